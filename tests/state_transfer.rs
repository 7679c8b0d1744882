//! Event-carried state transfer: publishing a key's new state writes an envelope whose
//! `before` the engine fills from the key's latest state (through the key index), deletes
//! are tombstones carrying the last state, concurrent publishers form one chain, and damaged
//! or hostile envelope bytes are typed errors.

mod consumer_support;

use std::sync::Arc;

use consumer_support::{open_store, poll_n, quick_group};
use tidelog::{
    Before, CorruptionKind, Envelope, Error, LatestState, Log, Op, Options, Published, Record, StreamEvent,
    ENVELOPE_HEADER_LEN,
};

fn small() -> Options {
    Options::default().segment_bytes(4096)
}

/// A decoded envelope: (op, before, after).
type Change = (Op, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every event of `key`'s stream in the log, decoded.
fn chain(log: &Log, key: &[u8]) -> Vec<Change> {
    chain_from(log, key, 0)
}

/// The events of `key`'s stream from version `from` on, decoded.
fn chain_from(log: &Log, key: &[u8], from: u64) -> Vec<Change> {
    let events: Vec<StreamEvent> = log.read_stream(key, from, usize::MAX).unwrap();
    events
        .iter()
        .map(|e| {
            let env = Envelope::decode_owned(&e.record).unwrap();
            (env.op(), env.before_state().map(<[u8]>::to_vec), env.after().map(<[u8]>::to_vec))
        })
        .collect()
}

fn v(b: &[u8]) -> Option<Vec<u8>> {
    Some(b.to_vec())
}

#[test]
fn a_publisher_that_knows_only_the_new_state_gets_before_filled_from_the_latest_state() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    assert!(matches!(log.publish_state(b"sku-1", b"10").unwrap(), Published::Written { op: Op::Create, .. }));
    log.publish_state(b"sku-2", b"99").unwrap();
    log.publish_state(b"sku-1", b"7").unwrap();
    log.publish_state(b"sku-1", b"3").unwrap();
    assert_eq!(
        chain(&log, b"sku-1"),
        [(Op::Create, None, v(b"10")), (Op::Update, v(b"10"), v(b"7")), (Op::Update, v(b"7"), v(b"3"))]
    );
    let latest = log.latest_state(b"sku-1").unwrap();
    assert_eq!(latest.state(), Some(&b"3"[..]));
    assert_eq!(log.latest_state(b"sku-3").unwrap(), LatestState::Absent);
}

#[test]
fn a_delete_is_a_tombstone_carrying_the_last_state_and_the_next_publish_is_a_create() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    log.publish_state(b"k", b"a").unwrap();
    let Published::Written { offset, op: Op::Delete } = log.delete_state(b"k").unwrap() else { panic!("not written") };
    let rec = log.read(offset).unwrap();
    assert!(rec.tombstone, "a delete is a tombstone record, for key compaction");
    let env = Envelope::decode_owned(&rec).unwrap();
    assert_eq!((env.before(), env.after()), (Before::State(b"a"), None));
    assert_eq!(log.latest_state(b"k").unwrap(), LatestState::Absent);
    log.publish_state(b"k", b"b").unwrap();
    assert_eq!(chain(&log, b"k")[2], (Op::Create, None, v(b"b")));
}

#[test]
fn a_tombstone_without_an_envelope_also_deletes_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    log.publish_state(b"k", b"a").unwrap();
    log.append(Record::new(b"").key(b"k").tombstone()).unwrap();
    assert_eq!(log.latest_state(b"k").unwrap(), LatestState::Absent);
    assert_eq!(log.delete_state(b"k").unwrap(), Published::NoState);
    log.publish_state(b"k", b"b").unwrap();
    assert_eq!(chain_from(&log, b"k", 2), [(Op::Create, None, v(b"b"))]);
}

#[test]
fn a_delete_of_a_key_without_state_and_an_identical_update_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(log.delete_state(b"never").unwrap(), Published::NoState);
    let first = log.publish_state(b"k", b"same").unwrap().offset().unwrap();
    assert_eq!(log.publish_state(b"k", b"same").unwrap(), Published::Unchanged { offset: first });
    log.delete_state(b"k").unwrap();
    assert_eq!(log.delete_state(b"k").unwrap(), Published::NoState, "deleted already");
    assert_eq!(log.next_offset(), 2, "only the create and the first delete were written");
    // An empty state is a state, distinct from none.
    log.publish_state(b"e", b"").unwrap();
    assert_eq!(log.latest_state(b"e").unwrap().state(), Some(&b""[..]));
}

#[test]
fn concurrent_publishers_of_one_key_form_one_chain_where_each_before_is_the_previous_after() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(tmp.path(), small()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let state = format!("{t}-{i}");
                    log.publish_state(b"shared", state.as_bytes()).unwrap();
                    if i % 25 == 24 {
                        log.delete_state(b"shared").unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let events = chain(&log, b"shared");
    let publishes = events.iter().filter(|e| e.2.is_some()).count();
    assert_eq!(publishes, 400, "every state is distinct, so every publish wrote");
    let mut previous: Option<Vec<u8>> = None;
    for (i, (op, before, after)) in events.iter().enumerate() {
        assert_eq!(before, &previous, "event {i}: before is the previous after");
        let expected_op = match (&previous, after) {
            (None, _) => Op::Create,
            (Some(_), Some(_)) => Op::Update,
            (Some(_), None) => Op::Delete,
        };
        assert_eq!(*op, expected_op, "event {i}");
        previous = after.clone();
    }
}

#[test]
fn the_latest_state_is_found_after_a_reopen_across_segment_rolls() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), small()).unwrap();
    let filler = [b'f'; 200];
    for i in 0..200u32 {
        let key = format!("sku-{}", i % 10);
        log.publish_state(key.as_bytes(), format!("{i}").as_bytes()).unwrap();
        log.append(Record::new(&filler)).unwrap();
    }
    assert!(log.segments().len() > 5, "the states are spread over segments");
    drop(log);
    let log = Log::open(tmp.path(), small()).unwrap();
    assert_eq!(log.latest_state(b"sku-3").unwrap().state(), Some(&b"193"[..]));
    log.publish_state(b"sku-3", b"new").unwrap();
    let last = chain(&log, b"sku-3").pop().unwrap();
    assert_eq!(last, (Op::Update, v(b"193"), v(b"new")), "the key index was built again after the reopen");
    assert_eq!(chain(&log, b"sku-3").len(), 21);
}

#[test]
fn before_is_unknown_once_retention_removed_every_event_of_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), small()).unwrap();
    log.publish_state(b"old", b"1").unwrap();
    log.publish_state(b"kept", b"1").unwrap();
    let filler = [b'f'; 200];
    for _ in 0..60 {
        log.append(Record::new(&filler)).unwrap();
    }
    log.publish_state(b"kept", b"2").unwrap();
    let cut = log.segments().last().unwrap().base_offset;
    assert!(log.remove_segments_before(cut).unwrap() > 0);
    // The key whose newest event is left keeps a known before.
    log.publish_state(b"kept", b"3").unwrap();
    assert_eq!(chain(&log, b"kept").pop().unwrap(), (Op::Update, v(b"2"), v(b"3")));
    // The key whose every event went: its state is unknown, not absent.
    assert_eq!(log.latest_state(b"old").unwrap(), LatestState::Unknown);
    let at = log.publish_state(b"old", b"2").unwrap().offset().unwrap();
    let rec = log.read(at).unwrap();
    let env = Envelope::decode_owned(&rec).unwrap();
    assert_eq!((env.op(), env.before(), env.after()), (Op::Update, Before::Unknown, Some(&b"2"[..])));
    // A delete of a key whose every event went is written, before unknown.
    log.publish_state(b"gone", b"1").unwrap();
    for _ in 0..60 {
        log.append(Record::new(&filler)).unwrap();
    }
    let cut = log.segments().last().unwrap().base_offset;
    log.remove_segments_before(cut).unwrap();
    let at = log.delete_state(b"gone").unwrap().offset().unwrap();
    let rec = log.read(at).unwrap();
    assert_eq!(Envelope::decode_owned(&rec).unwrap().before(), Before::Unknown);
    drop(log);
    let log = Log::open(tmp.path(), small()).unwrap();
    assert_eq!(log.latest_state(b"gone").unwrap(), LatestState::Absent);
    assert_eq!(log.latest_state(b"old").unwrap(), LatestState::Unknown, "the second retention removed it again");
}

#[test]
fn a_consumer_group_receives_before_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let topic = store.topic("stock").unwrap();
    let group = topic.group("search-index", quick_group()).unwrap();
    topic.publish_state(b"sku-1", b"5").unwrap();
    topic.publish_state(b"sku-1", b"4").unwrap();
    topic.delete_state(b"sku-1").unwrap();
    assert_eq!(topic.latest_state(b"sku-1").unwrap(), LatestState::Absent);
    let got: Vec<_> = poll_n(&group, 3)
        .iter()
        .map(|d| {
            let env = Envelope::decode_owned(d.record()).unwrap();
            (env.op(), env.before_state().map(<[u8]>::to_vec), env.after().map(<[u8]>::to_vec))
        })
        .collect();
    assert_eq!(got, [(Op::Create, None, v(b"5")), (Op::Update, v(b"5"), v(b"4")), (Op::Delete, v(b"4"), None)]);
}

/// An envelope written by hand to the layout of `docs/format.md`.
fn envelope(op: u8, flags: u16, before: &[u8], after: &[u8]) -> Vec<u8> {
    let mut b = b"TLSE".to_vec();
    b.push(1);
    b.push(op);
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&(before.len() as u32).to_le_bytes());
    b.extend_from_slice(&(after.len() as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(before);
    b.extend_from_slice(after);
    seal(&mut b);
    b
}

/// Write the CRC over the bytes around it.
fn seal(b: &mut [u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..16]);
    h.update(&b[ENVELOPE_HEADER_LEN..]);
    let crc = h.finalize();
    b[16..20].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn an_envelope_written_to_the_specified_layout_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    let at = log.append(Record::new(&envelope(2, 0b011, b"old", b"new")).key(b"k")).unwrap();
    let rec = log.read(at).unwrap();
    let env = Envelope::decode_owned(&rec).unwrap();
    assert_eq!((env.op(), env.before(), env.after()), (Op::Update, Before::State(b"old"), Some(&b"new"[..])));
    assert_eq!(log.latest_state(b"k").unwrap().state(), Some(&b"new"[..]));
}

#[test]
fn hostile_envelope_bytes_are_typed_errors_located_by_offset_and_payload_byte() {
    let mut huge_lengths = envelope(2, 0b011, b"a", b"b");
    huge_lengths[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    huge_lengths[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    seal(&mut huge_lengths);
    let mut bad_crc = envelope(1, 0b010, b"", b"x");
    bad_crc[20] ^= 1;
    let mut bad_version = envelope(1, 0b010, b"", b"x");
    bad_version[4] = 9;
    let cases: Vec<(Vec<u8>, u64, &str)> = vec![
        (b"not an envelope at all".to_vec(), 0, "bad_magic"),
        (b"TLSE".to_vec(), 0, "bad_length"),
        (bad_version, 4, "bad_magic"),
        (huge_lengths, 8, "bad_length"),
        (bad_crc, 16, "checksum_mismatch"),
        (envelope(7, 0b010, b"", b"x"), 5, "bad_field"),
        (envelope(1, 0b011, b"a", b"x"), 6, "bad_field"), // a create with a before
        (envelope(3, 0b011, b"a", b"x"), 6, "bad_field"), // a delete with an after
        (envelope(2, 0b101, b"a", b"x"), 6, "bad_field"), // before both present and unknown
        (envelope(2, 0b1011, b"a", b"x"), 6, "bad_field"), // an unknown flag
        (envelope(2, 0b110, b"a", b"x"), 8, "bad_field"), // bytes for an absent before
    ];
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    for (i, (bytes, at, kind)) in cases.iter().enumerate() {
        let offset = log.append(Record::new(bytes).key(b"k")).unwrap();
        let err = log.read_with(offset, |view| Envelope::decode(&view).map(|_| ())).unwrap().unwrap_err();
        let Error::InvalidEnvelope { log: None, offset: o, position, kind: k } = err else { panic!("case {i}: {err}") };
        assert_eq!((o, position, k.name()), (offset, *at, *kind), "case {i}");
    }
    // Through the engine the error also names the log; nothing is written.
    let err = log.publish_state(b"k", b"next").unwrap_err();
    let Error::InvalidEnvelope { log: Some(dir), offset, kind, .. } = err else { panic!("{err}") };
    assert_eq!((dir.as_path(), offset), (tmp.path(), log.next_offset() - 1));
    assert_eq!(kind, CorruptionKind::BadField("before_len"), "the last case");
    assert!(log.latest_state(b"k").is_err());
}

mod arbitrary_bytes {
    use proptest::prelude::*;
    use tidelog::{Envelope, Error, Log, Options, Record};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any payload, and any payload behind a valid-looking header, decodes to an
        /// envelope or to a located `InvalidEnvelope`: never a panic, never another error.
        #[test]
        fn any_bytes_decode_to_an_envelope_or_a_located_error(
            tail in proptest::collection::vec(any::<u8>(), 0..64),
            header in proptest::collection::vec(any::<u8>(), 16..17),
            with_magic in any::<bool>(),
        ) {
            let mut payload = if with_magic { b"TLSE\x01".to_vec() } else { Vec::new() };
            payload.extend_from_slice(&header);
            payload.extend_from_slice(&tail);
            let tmp = tempfile::tempdir().unwrap();
            let log = Log::open(tmp.path(), Options::default().segment_bytes(1 << 16)).unwrap();
            let at = log.append(Record::new(&payload).key(b"k")).unwrap();
            let decoded = log.read_with(at, |view| Envelope::decode(&view).map(|e| e.op())).unwrap();
            match decoded {
                Ok(_) => {}
                Err(Error::InvalidEnvelope { offset, position, .. }) => {
                    prop_assert_eq!(offset, at);
                    prop_assert!(position < payload.len().max(1) as u64);
                }
                Err(other) => prop_assert!(false, "{}", other),
            }
        }
    }
}
