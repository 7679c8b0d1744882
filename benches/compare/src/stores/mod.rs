//! The stores under test, behind one trait so every workload runs the same code on each: tidelog,
//! the two physical baselines (`file`, `mmap`: what a plain program gets from the hardware with
//! the same bytes) and the stores users would pick instead.

use std::path::Path;

use serde::Serialize;

use crate::data::{Digest, Event};
use crate::Result;

mod commitlog_store;
mod file_store;
mod fjall_store;
pub mod frames;
mod mmap_store;
mod sqlite_store;
mod tidelog_store;

/// Which store (and configuration) a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    /// tidelog; in the position workload: events log + a second log for positions.
    Tidelog,
    /// tidelog with the position written as a record in the same atomic batch (position
    /// workload only).
    Tidelog1Log,
    /// Physical baseline: minimal frames written to one file with `write` (a 256 KiB staging
    /// buffer in bulk) and `fdatasync`; replay with `read`, random reads with `pread`.
    File,
    /// Physical baseline: minimal frames copied into a bare memory map of a fallocated file,
    /// `msync` at durability points; reads slice the map.
    Mmap,
    /// SQLite, WAL, `synchronous=FULL`.
    SqliteFull,
    /// SQLite, WAL, `synchronous=NORMAL`.
    SqliteNormal,
    /// fjall 2.x, one keyspace, big-endian u64 keys.
    Fjall,
    /// The `commitlog` crate, using only its own API (`flush()` never fsyncs segment data).
    Commitlog,
    /// The `commitlog` crate plus an fdatasync of its files done by this harness at each
    /// durability point (write workloads only).
    CommitlogFsync,
}

impl Kind {
    /// Every store, in report order.
    pub const ALL: [Kind; 9] = [
        Kind::Tidelog,
        Kind::Tidelog1Log,
        Kind::File,
        Kind::Mmap,
        Kind::SqliteFull,
        Kind::SqliteNormal,
        Kind::Fjall,
        Kind::Commitlog,
        Kind::CommitlogFsync,
    ];

    /// Name used in tables, JSON and `--stores`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tidelog => "tidelog",
            Kind::Tidelog1Log => "tidelog-1log",
            Kind::File => "file",
            Kind::Mmap => "mmap",
            Kind::SqliteFull => "sqlite-full",
            Kind::SqliteNormal => "sqlite-normal",
            Kind::Fjall => "fjall",
            Kind::Commitlog => "commitlog",
            Kind::CommitlogFsync => "commitlog+fsync",
        }
    }

    /// Parse a name from [`Kind::name`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Colour in the charts.
    pub fn colour(self) -> &'static str {
        match self {
            Kind::Tidelog => "#e8590c",
            Kind::Tidelog1Log => "#fab005",
            Kind::File => "#7048e8",
            Kind::Mmap => "#c2255c",
            Kind::SqliteFull => "#1971c2",
            Kind::SqliteNormal => "#74c0fc",
            Kind::Fjall => "#2f9e44",
            Kind::Commitlog => "#868e96",
            Kind::CommitlogFsync => "#495057",
        }
    }
}

/// tidelog's `Options::index_interval_bytes` for this run (0 = tidelog's default).
pub static TIDELOG_INDEX_INTERVAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No per-append durability; [`Store::sync`] makes everything durable.
    Bulk,
    /// Every [`Store::append_durable`] is durable before it returns.
    Durable,
    /// [`Store::append_with_position`] is used (two logs for tidelog and commitlog).
    Position,
}

/// What every store implements. All methods are called from one thread.
pub trait Store {
    /// Append a chunk without making it durable (bulk load).
    fn append(&mut self, batch: &[Event<'_>]) -> Result<()>;
    /// Make everything appended so far durable (the end of a bulk load).
    fn sync(&mut self) -> Result<()>;
    /// Append a batch and return only once it is durable.
    fn append_durable(&mut self, batch: &[Event<'_>]) -> Result<()>;
    /// Append one record per event from `shares.len()` threads at once (thread `i` appends
    /// `shares[i]` in order), each durable before that thread's next; returns every append's
    /// latency in µs. Only the stores in the `durable-4t` workload implement it.
    fn append_durable_threads(&mut self, shares: &[&[Event<'_>]]) -> Result<Vec<f64>> {
        let _ = shares;
        Err("this store does not take part in the multi-threaded workload".into())
    }
    /// Append a batch and record `position` for `consumer`, durably, as one step.
    fn append_with_position(&mut self, batch: &[Event<'_>], consumer: &[u8], position: u64) -> Result<()>;
    /// (number of events, last committed position of `consumer`).
    fn position_state(&mut self, consumer: &[u8]) -> Result<(u64, Option<u64>)>;
    /// Read every record in order, touching every payload byte.
    fn replay(&mut self) -> Result<Digest>;
    /// Read the record at `offset` (0-based sequence number) and fold its payload in.
    fn read_at(&mut self, offset: u64, digest: &mut Digest) -> Result<()>;
    /// Read the last record; returns its offset (`None` if empty).
    fn read_last(&mut self) -> Result<Option<u64>>;
    /// Bytes actually holding data, where that differs from the file sizes (tidelog:
    /// preallocated segments; mmap: the preallocated file).
    fn used_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Close cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}

/// Open (creating if needed) `kind` in `dir`. `max_payload` is the largest payload the
/// dataset holds (commitlog needs it to size a one-record read).
pub fn open(kind: Kind, dir: &Path, mode: Mode, max_payload: usize) -> Result<Box<dyn Store>> {
    std::fs::create_dir_all(dir)?;
    Ok(match kind {
        Kind::Tidelog => Box::new(tidelog_store::TidelogStore::open(dir, mode, false)?),
        Kind::Tidelog1Log => Box::new(tidelog_store::TidelogStore::open(dir, mode, true)?),
        Kind::File => Box::new(file_store::FileStore::open(dir)?),
        Kind::Mmap => Box::new(mmap_store::MmapStore::open(dir)?),
        Kind::SqliteFull => Box::new(sqlite_store::SqliteStore::open(dir, true)?),
        Kind::SqliteNormal => Box::new(sqlite_store::SqliteStore::open(dir, false)?),
        Kind::Fjall => Box::new(fjall_store::FjallStore::open(dir)?),
        Kind::Commitlog => Box::new(commitlog_store::CommitlogStore::open(dir, mode, false, max_payload)?),
        Kind::CommitlogFsync => Box::new(commitlog_store::CommitlogStore::open(dir, mode, true, max_payload)?),
    })
}

/// Run `append(event)` for every event of `shares`, `shares.len()` threads at once (thread `i`
/// takes `shares[i]` in order); returns each call's latency in µs.
fn in_threads(shares: &[&[Event<'_>]], append: impl Fn(&Event<'_>) -> Result<()> + Sync) -> Result<Vec<f64>> {
    let append = &append;
    std::thread::scope(|s| {
        let workers: Vec<_> = shares
            .iter()
            .map(|share| {
                s.spawn(move || -> Result<Vec<f64>> {
                    let mut lat = Vec::with_capacity(share.len());
                    for e in share.iter() {
                        let t = std::time::Instant::now();
                        append(e)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.join().map_err(|_| "an appending thread panicked")??);
        }
        Ok(all)
    })
}

/// Sum of the sizes of all files under `dir` (apparent size, and allocated blocks).
pub fn dir_bytes(dir: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut size = 0;
    let mut alloc = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (s, a) = dir_bytes(&entry.path())?;
            size += s;
            alloc += a;
        } else {
            size += meta.len();
            alloc += meta.blocks() * 512;
        }
    }
    Ok((size, alloc))
}

fn missing(what: &str, offset: u64) -> crate::Error {
    format!("{what}: record {offset} not found").into()
}
