//! Helpers shared by the projection tests: `Tally`, a projection whose state depends on every
//! record applied and on their order, with a hand-written snapshot encoding whose decoder
//! rejects anything malformed.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use tidelog::{
    BoxError, Durability, Log, Options, Projection, ProjectionRunner, Record, RecordView, RunnerOptions, SnapshotInfo,
    SnapshotRetention,
};

/// Payloads of the most recent records the state keeps (they make snapshots larger).
pub const RECENT: usize = 8;

/// Per key: how many records and how many payload bytes; a hash chained over every record
/// applied (offset and payload, in order); the last few payloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TallyState {
    pub per_key: BTreeMap<Vec<u8>, (u64, u64)>,
    pub chain: u64,
    pub recent: VecDeque<Vec<u8>>,
}

/// The projection definition. `fail_at` makes `apply` fail at that offset.
#[derive(Debug, Clone)]
pub struct Tally {
    pub name: String,
    pub fingerprint: u64,
    pub fail_at: Option<u64>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally { name: "tally".into(), fingerprint: 1, fail_at: None }
    }

    pub fn version(mut self, fingerprint: u64) -> Tally {
        self.fingerprint = fingerprint;
        self
    }
}

fn mix(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Projection for Tally {
    type State = TallyState;

    fn name(&self) -> &str {
        &self.name
    }

    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn initial(&self) -> TallyState {
        TallyState { chain: 0xcbf2_9ce4_8422_2325, ..TallyState::default() }
    }

    fn apply(&self, s: &mut TallyState, r: &RecordView<'_>) -> Result<(), BoxError> {
        if self.fail_at == Some(r.offset()) {
            return Err(format!("cannot apply offset {}", r.offset()).into());
        }
        let e = s.per_key.entry(r.key().unwrap_or_default().to_vec()).or_default();
        e.0 += 1;
        e.1 += r.payload().len() as u64;
        s.chain = mix(mix(s.chain, &r.offset().to_le_bytes()), r.payload());
        s.recent.push_back(r.payload().to_vec());
        if s.recent.len() > RECENT {
            s.recent.pop_front();
        }
        Ok(())
    }

    fn snapshot(&self, s: &TallyState, out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(&s.chain.to_le_bytes());
        out.extend_from_slice(&(s.per_key.len() as u32).to_le_bytes());
        for (k, (n, bytes)) in &s.per_key {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&bytes.to_le_bytes());
        }
        out.extend_from_slice(&(s.recent.len() as u32).to_le_bytes());
        for p in &s.recent {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        Ok(())
    }

    fn restore(&self, b: &[u8]) -> Result<TallyState, BoxError> {
        let mut r = Reader(b);
        let chain = r.u64()?;
        let mut per_key = BTreeMap::new();
        for _ in 0..r.u32()? {
            let len = r.u32()? as usize;
            let k = r.take(len)?.to_vec();
            per_key.insert(k, (r.u64()?, r.u64()?));
        }
        let mut recent = VecDeque::new();
        for _ in 0..r.u32()? {
            let len = r.u32()? as usize;
            recent.push_back(r.take(len)?.to_vec());
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(TallyState { per_key, chain, recent })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BoxError> {
        if n > self.0.len() {
            return Err("short payload".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, BoxError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64, BoxError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
}

/// The state a full replay of `log` from offset 0 gives, without snapshots.
pub fn full_replay(log: &Log) -> TallyState {
    replay_below(log, u64::MAX)
}

/// The state of every record of `log` below `offset`, without snapshots.
pub fn replay_below(log: &Log, offset: u64) -> TallyState {
    let t = Tally::new();
    let mut s = t.initial();
    let mut c = log.cursor(0);
    while let Some(r) = c.next().unwrap() {
        if r.offset() >= offset {
            break;
        }
        t.apply(&mut s, &r).unwrap();
    }
    s
}

/// Small segments so that tests roll and can remove old segments.
pub fn log_options() -> Options {
    Options::default().segment_bytes(16 << 10).index_interval_bytes(256).durability(Durability::None)
}

pub fn open_log(dir: &Path) -> Log {
    Log::open(dir, log_options()).unwrap()
}

/// Append `n` records with keys `k0..k4` and payloads derived from `tag` and their index.
pub fn append_n(log: &Log, n: u64, tag: &str) {
    for i in 0..n {
        let payload = format!("{tag}-{i}-{}", "x".repeat((i % 13) as usize));
        log.append(Record::new(payload.as_bytes()).key(format!("k{}", i % 5).as_bytes())).unwrap();
    }
}

/// Snapshot files in `dir`, by position.
pub fn snapshot_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    tidelog::SnapshotDir::open_read_only(dir).files().unwrap()
}

/// Runner options that never checkpoint on their own (tests call `checkpoint` where they
/// want one) and keep up to ten snapshots.
pub fn manual() -> RunnerOptions {
    RunnerOptions::default()
        .checkpoint_every_records(0)
        .checkpoint_interval(None)
        .retention(SnapshotRetention::default().keep_latest(10))
}

/// Open a runner of `projection` over `log`, apply every record, write a snapshot, and
/// close the runner; returns the snapshot.
pub fn checkpoint_all(log: &Log, projection: Tally, snaps: &Path) -> SnapshotInfo {
    let mut r = ProjectionRunner::open(log.clone(), projection, snaps, manual()).unwrap();
    r.run_until_caught_up().unwrap();
    r.checkpoint().unwrap()
}

/// Open a runner of `Tally::new()` over `log`, catch up, and check that the state equals a
/// full replay; returns the runner (its restore report tells where it started).
pub fn restore_and_check(log: &Log, snaps: &Path) -> ProjectionRunner<Tally> {
    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), snaps, manual()).unwrap();
    r.run_until_caught_up().unwrap();
    assert_eq!(r.state(), &full_replay(log), "restore + replay differs from a full replay");
    r
}

/// A fresh temporary directory with a log in `log/`; snapshots go to `snaps/`.
pub fn fresh() -> (tempfile::TempDir, Log, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(&tmp.path().join("log"));
    let snaps = tmp.path().join("snaps");
    (tmp, log, snaps)
}
