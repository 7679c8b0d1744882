//! Stream reads (the events of one key) equal a brute-force filter of the whole log: the
//! version, a forward read from any version and a backward read, across segment rolls,
//! reopens, retention and sealed segments rewritten with gaps in their offsets. Versions
//! count the events retention removed (and not those a rewrite removed).

use std::path::Path;

use proptest::prelude::*;
use tidelog::testing::rewrite_segment;
use tidelog::{Log, Options, Record, StreamEvent};

const INTERVAL: u32 = 256;
const KEYS: u8 = 6;

fn opts() -> Options {
    Options::default().segment_bytes(2048).index_interval_bytes(INTERVAL)
}

fn key(k: u8) -> Vec<u8> {
    format!("stream-{k}").into_bytes()
}

/// (offset, payload) of every record of `key` in the log, by a full read.
fn brute_force(log: &Log, key: &[u8]) -> Vec<(u64, Vec<u8>)> {
    log.iter(log.first_offset())
        .map(|r| r.unwrap())
        .filter(|r| r.key() == Some(key))
        .map(|r| (r.offset(), r.payload().to_vec()))
        .collect()
}

fn as_pairs(events: &[StreamEvent]) -> Vec<(u64, Vec<u8>)> {
    events.iter().map(|e| (e.record.offset(), e.record.payload().to_vec())).collect()
}

/// `removed[k]`: the events of key `k` that retention removed (versions count them).
fn check_streams(log: &Log, removed: &[u64], ctx: &str) {
    for k in 0..=KEYS {
        let key = key(k);
        let want = brute_force(log, &key);
        let base = removed[k as usize];
        assert_eq!(log.stream_version(&key).unwrap(), base + want.len() as u64, "{ctx}: version of {k}");
        let all = log.read_stream(&key, 0, usize::MAX).unwrap();
        assert_eq!(as_pairs(&all), want, "{ctx}: stream {k}");
        assert!(all.iter().enumerate().all(|(i, e)| e.version == base + i as u64), "{ctx}: versions of {k}");
        for from in [1, want.len() / 2, want.len().saturating_sub(1), want.len() + 3] {
            let got = log.read_stream(&key, base + from as u64, 4).unwrap();
            let expect: Vec<_> = want.iter().skip(from).take(4).cloned().collect();
            assert_eq!(as_pairs(&got), expect, "{ctx}: stream {k} from {from}");
        }
        let back = log.read_stream_backward(&key, 5).unwrap();
        let expect: Vec<_> = want.iter().rev().take(5).cloned().collect();
        assert_eq!(as_pairs(&back), expect, "{ctx}: stream {k} backward");
        assert!(back.iter().enumerate().all(|(i, e)| e.version == base + (want.len() - 1 - i) as u64), "{ctx}");
    }
}

/// Key number of every record in the log, by offset (`None`: no key, or another key).
fn keys_in_log(log: &Log) -> Vec<(u64, Option<u8>)> {
    log.iter(log.first_offset())
        .map(|r| {
            let r = r.unwrap();
            (r.offset(), (0..=KEYS).find(|&k| r.key() == Some(&key(k)[..])))
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Step {
    /// A batch: each record's key number (KEYS means no key) and payload length.
    Append(Vec<(u8, usize)>),
    Reopen,
    /// Remove the segments before this fraction (in percent) of the log.
    Retention(u8),
    /// Close, rewrite the oldest sealed segment without the records whose offset is a
    /// multiple of this, reopen.
    Rewrite(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec((0..=KEYS, 0usize..120), 1..8).prop_map(Step::Append),
        1 => Just(Step::Reopen),
        1 => (0u8..60).prop_map(Step::Retention),
        1 => (2u64..4).prop_map(Step::Rewrite),
    ]
}

fn append(log: &Log, batch: &[(u8, usize)], seq: &mut u64) {
    let keys: Vec<Vec<u8>> = batch.iter().map(|&(k, _)| key(k)).collect();
    let payloads: Vec<Vec<u8>> = batch
        .iter()
        .map(|&(_, len)| {
            *seq += 1;
            let mut p = seq.to_le_bytes().to_vec();
            p.resize(8 + len, *seq as u8);
            p
        })
        .collect();
    let records: Vec<Record<'_>> = batch
        .iter()
        .enumerate()
        .map(|(i, &(k, _))| {
            let r = Record::new(&payloads[i]);
            if k == KEYS {
                r
            } else {
                r.key(&keys[i])
            }
        })
        .collect();
    log.append_batch(&records).unwrap();
}

fn oldest_sealed(log: &Log) -> Option<u64> {
    let segs = log.segments();
    (segs.len() > 1).then(|| segs[0].base_offset)
}

fn run(dir: &Path, steps: &[Step]) {
    let mut log = Log::open(dir, opts()).unwrap();
    let mut seq = 0;
    let mut removed = vec![0u64; KEYS as usize + 1];
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Append(batch) => append(&log, batch, &mut seq),
            Step::Reopen => {
                drop(log);
                log = Log::open(dir, opts()).unwrap();
            }
            Step::Retention(pct) => {
                let (first, next) = (log.first_offset(), log.next_offset());
                let before = keys_in_log(&log);
                log.remove_segments_before(first + (next - first) * u64::from(*pct) / 100).unwrap();
                let now_first = log.first_offset();
                for (_, k) in before.iter().filter(|(o, _)| *o < now_first) {
                    if let Some(k) = k {
                        removed[*k as usize] += 1;
                    }
                }
            }
            Step::Rewrite(m) => {
                let Some(base) = oldest_sealed(&log) else { continue };
                drop(log);
                rewrite_segment(dir, base, INTERVAL, |o| o % m != 0).unwrap();
                log = Log::open(dir, opts()).unwrap();
            }
        }
        check_streams(&log, &removed, &format!("after step {i} ({s:?})"));
    }
    drop(log);
    let ro = Log::open_read_only(dir, opts()).unwrap();
    check_streams(&ro, &removed, "read-only handle");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random keyed and unkeyed batches, with reopens, retention and sparse rewrites between
    /// them: every stream read equals the brute-force filter of the log.
    #[test]
    fn stream_reads_equal_a_filter_of_the_log(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &steps);
    }
}

/// A fixed history touching every path once: many rolls, a reopen, a rewrite, retention.
#[test]
fn stream_reads_over_rolls_reopen_rewrite_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let batch: Vec<(u8, usize)> = (0..7).map(|i| (i % (KEYS + 1), 40)).collect();
    let mut steps: Vec<Step> = (0..30).map(|_| Step::Append(batch.clone())).collect();
    steps.extend([Step::Reopen, Step::Rewrite(2), Step::Append(batch.clone()), Step::Retention(30)]);
    steps.extend((0..5).map(|_| Step::Append(batch.clone())));
    run(dir.path(), &steps);
}
