//! Typed events on disk: codec round trips, headers, upcasting of older schema versions,
//! and records that are not what the reader expects (another codec, a newer version, another
//! type, hostile bytes): typed errors located by log and offset, never a panic.

mod aggregate_support;

use std::path::Path;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use aggregate_support::{Account, AccountEvent, Command};
use tidelog::{
    decode_event, AggregateOptions, AggregateStore, BincodeCodec, Error, Event, EventCodec, EventDecodeError,
    ExpectedVersion, Header, JsonCodec, Location, Log, Options, Record, CODEC_HEADER, EVENT_TYPE_HEADER,
    SCHEMA_VERSION_HEADER,
};

fn open_log(dir: &Path) -> Log {
    Log::open(dir.join("log"), Options::default()).unwrap()
}

fn open_and_deposit<C: EventCodec + Default>(log: &Log, dir: &Path) -> AggregateStore<Account, C> {
    let s = AggregateStore::<Account, C>::open(log, dir.join("snaps"), AggregateOptions::default()).unwrap();
    s.execute(b"a", Command::Open("ann".into())).unwrap();
    s.execute(b"a", Command::Deposit(7)).unwrap();
    s
}

#[test]
fn both_codecs_round_trip_events_and_snapshots_and_name_themselves_in_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let json = open_and_deposit::<JsonCodec>(&log, &tmp.path().join("json"));
    let rec = &log.read_stream(b"a", 1, 1).unwrap()[0].record;
    assert_eq!(rec.payload(), br#"{"Deposited":{"cents":7}}"#);
    assert_eq!(rec.header(CODEC_HEADER), Some(&b"json"[..]));
    assert_eq!(rec.header(EVENT_TYPE_HEADER), Some(&b"Deposited"[..]));
    assert_eq!(rec.header(SCHEMA_VERSION_HEADER), Some(&b"1"[..]));
    json.snapshot(b"a").unwrap();
    let a = json.load(b"a").unwrap();
    assert_eq!((a.replayed, a.state.balance, a.state.owner.as_deref()), (0, 7, Some("ann")));
    let h = json.history(b"a", 0, 10).unwrap();
    assert_eq!(h.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), ["Opened", "Deposited"]);
    assert_eq!(h[1].event, AccountEvent::Deposited { cents: 7 });

    let log2 = Log::open(tmp.path().join("log2"), Options::default()).unwrap();
    let bin = open_and_deposit::<BincodeCodec>(&log2, &tmp.path().join("bin"));
    let rec = &log2.read_stream(b"a", 1, 1).unwrap()[0].record;
    assert_eq!(rec.header(CODEC_HEADER), Some(&b"bincode"[..]));
    assert_eq!(rec.payload(), [1, 14]); // variant 1, zigzag varint 7
    bin.snapshot(b"a").unwrap();
    assert_eq!(bin.load(b"a").unwrap().state.balance, 7);
}

#[test]
fn events_of_another_codec_are_refused_at_their_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    open_and_deposit::<JsonCodec>(&log, tmp.path());
    let bin = AggregateStore::<Account>::open(&log, tmp.path().join("snaps"), AggregateOptions::default()).unwrap();
    let err = bin.load(b"a").unwrap_err();
    let Error::EventDecode { location: Location::Log { dir, offset }, kind } = err else { panic!("{err:?}") };
    assert_eq!((dir, offset), (log.dir().to_path_buf(), 0));
    assert_eq!(kind, EventDecodeError::WrongCodec { found: "json".into(), expected: "bincode" });
}

/// Version 1 of a deposit: whole euros, no memo.
#[derive(Serialize, Deserialize)]
enum LedgerV1 {
    Deposited { euros: u32 },
}

impl Event for LedgerV1 {
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
}

/// Version 2: cents and a memo; reads version 1 by upcasting.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Ledger {
    Deposited { cents: i64, memo: String },
}

impl Event for Ledger {
    fn event_type(&self) -> &'static str {
        "Deposited"
    }

    fn schema_version() -> u32 {
        2
    }

    fn upcast<C: EventCodec>(
        event_type: &str,
        version: u32,
        payload: &[u8],
        codec: &C,
    ) -> Result<Self, tidelog::BoxError> {
        match (event_type, version) {
            ("Deposited", 1) => {
                let LedgerV1::Deposited { euros } = codec.decode(payload)?;
                Ok(Ledger::Deposited { cents: i64::from(euros) * 100, memo: String::new() })
            }
            _ => Err(format!("unknown {event_type} v{version}").into()),
        }
    }
}

/// Append `event` to stream `key` as its type and version say, with `codec`.
fn append_typed<E: Event, C: EventCodec>(log: &Log, codec: &C, key: &[u8], event: &E, version: &[u8]) -> u64 {
    let payload = codec.encode(event).unwrap();
    let headers = [
        Header { name: EVENT_TYPE_HEADER, value: event.event_type().as_bytes() },
        Header { name: SCHEMA_VERSION_HEADER, value: version },
        Header { name: CODEC_HEADER, value: codec.name().as_bytes() },
    ];
    log.append_to_stream(key, ExpectedVersion::Any, &[Record::new(&payload).key(key).headers(&headers)]).unwrap().start
}

#[test]
fn events_of_an_older_schema_version_are_upcast_when_read() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let old = append_typed(&log, &BincodeCodec, b"k", &LedgerV1::Deposited { euros: 3 }, b"1");
    let new = append_typed(&log, &BincodeCodec, b"k", &Ledger::Deposited { cents: 5, memo: "x".into() }, b"2");
    let read = |o: u64| decode_event::<Ledger, _>(&BincodeCodec, log.dir(), &log.read(o).unwrap());
    assert_eq!(read(old).unwrap(), Ledger::Deposited { cents: 300, memo: String::new() });
    assert_eq!(read(new).unwrap(), Ledger::Deposited { cents: 5, memo: "x".into() });
    // The same with JSON.
    let old = append_typed(&log, &JsonCodec, b"j", &LedgerV1::Deposited { euros: 4 }, b"1");
    let got = decode_event::<Ledger, _>(&JsonCodec, log.dir(), &log.read(old).unwrap()).unwrap();
    assert_eq!(got, Ledger::Deposited { cents: 400, memo: String::new() });
}

#[test]
fn newer_versions_other_types_and_bad_headers_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let kind_at = |o: u64| match decode_event::<LedgerV1, _>(&BincodeCodec, log.dir(), &log.read(o).unwrap()) {
        Err(Error::EventDecode { location: Location::Log { offset, .. }, kind }) if offset == o => kind,
        other => panic!("{:?}", other.map(|_| ())),
    };
    // Written by newer code: never guessed at.
    let o = append_typed(&log, &BincodeCodec, b"k", &Ledger::Deposited { cents: 5, memo: "x".into() }, b"2");
    assert_eq!(kind_at(o), EventDecodeError::UnknownVersion { found: 2, current: 1 });
    for bad in [&b"0"[..], b"01", b"-1", b"", b"99999999999"] {
        let o = append_typed(&log, &BincodeCodec, b"k", &LedgerV1::Deposited { euros: 1 }, bad);
        assert!(matches!(kind_at(o), EventDecodeError::BadSchemaVersion { .. }), "{bad:?}");
    }
    // Decodes, but as another type than the header names.
    let payload = BincodeCodec.encode(&LedgerV1::Deposited { euros: 1 }).unwrap();
    let headers = [
        Header { name: EVENT_TYPE_HEADER, value: b"Withdrew" },
        Header { name: SCHEMA_VERSION_HEADER, value: b"1" },
        Header { name: CODEC_HEADER, value: b"bincode" },
    ];
    let o = log.append_to_stream(b"k", ExpectedVersion::Any, &[Record::new(&payload).key(b"k").headers(&headers)]);
    assert_eq!(
        kind_at(o.unwrap().start),
        EventDecodeError::WrongType { found: "Withdrew".into(), decoded: "Deposited" }
    );
    // A plain record in the stream.
    let o = log.append_to_stream(b"k", ExpectedVersion::Any, &[Record::new(b"raw").key(b"k")]).unwrap().start;
    assert_eq!(kind_at(o), EventDecodeError::MissingHeader { header: CODEC_HEADER });
    // An aggregate whose stream holds such a record fails to load, located, without panicking.
    let s = AggregateStore::<Account>::open(&log, tmp.path().join("snaps"), AggregateOptions::default()).unwrap();
    assert!(matches!(s.load(b"k"), Err(Error::EventDecode { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary payloads under valid headers, with either codec: an error or an event,
    /// never a panic (bincode's length limits, serde_json's depth limit).
    #[test]
    fn hostile_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..64), json in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let log = open_log(tmp.path());
        let codec: &[u8] = if json { b"json" } else { b"bincode" };
        let headers = [
            Header { name: EVENT_TYPE_HEADER, value: b"Deposited" },
            Header { name: SCHEMA_VERSION_HEADER, value: b"1" },
            Header { name: CODEC_HEADER, value: codec },
        ];
        let o = log.append(Record::new(&payload).key(b"k").headers(&headers)).unwrap();
        let rec = log.read(o).unwrap();
        if json {
            let _ = decode_event::<AccountEvent, _>(&JsonCodec, log.dir(), &rec);
        } else {
            let _ = decode_event::<AccountEvent, _>(&BincodeCodec, log.dir(), &rec);
        }
        // An owner name claiming 2^60 bytes (or, under a json header, the wrong codec).
        let mut hostile = vec![0u8, 255, 0, 0, 0, 0, 0, 0, 0, 0x10];
        hostile.extend_from_slice(&payload);
        let o = log.append(Record::new(&hostile).key(b"k").headers(&headers)).unwrap();
        let r = decode_event::<AccountEvent, _>(&BincodeCodec, log.dir(), &log.read(o).unwrap());
        prop_assert!(r.is_err());
    }
}
