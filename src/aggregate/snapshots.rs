//! One aggregate's snapshots: projection snapshot files (`docs/format.md`, "Projection
//! snapshot file") in a directory per key, whose payload names the key and the codec before
//! the encoded state ("Aggregate snapshots"). The file's `records` field is the stream
//! version the state covers, `position` one past the offset of its last event.

use std::marker::PhantomData;
use std::path::Path;

use crate::aggregate::Aggregate;
use crate::codec::EventCodec;
use crate::error::{Error, Result};
use crate::log::Log;
use crate::projection::{
    load_snapshot, BoxError, Projection, RestoreReport, SnapshotDir, SnapshotInfo, SnapshotRetention,
};
use crate::record::RecordView;

/// The state of one key of aggregate `A` as a projection, so that the projection snapshot
/// machinery (checksums, fingerprint checks, atomic writes, retention) serves it. It is never
/// folded from the log: its events are read through the key index.
struct KeyState<'a, A, C> {
    key: &'a [u8],
    codec: &'a C,
    aggregate: PhantomData<fn() -> A>,
}

impl<'a, A, C> KeyState<'a, A, C> {
    fn new(key: &'a [u8], codec: &'a C) -> Self {
        KeyState { key, codec, aggregate: PhantomData }
    }
}

impl<A: Aggregate, C: EventCodec> Projection for KeyState<'_, A, C> {
    type State = A;

    fn name(&self) -> &str {
        A::aggregate_type()
    }

    fn fingerprint(&self) -> u64 {
        A::state_fingerprint()
    }

    fn initial(&self) -> A {
        A::default()
    }

    fn apply(&self, _: &mut A, _: &RecordView<'_>) -> std::result::Result<(), BoxError> {
        Err("an aggregate's state is built from its stream, not folded from the whole log".into())
    }

    fn snapshot(&self, state: &A, out: &mut Vec<u8>) -> std::result::Result<(), BoxError> {
        let key_len = u32::try_from(self.key.len()).map_err(|_| "key longer than 4 GiB")?;
        let codec = self.codec.name();
        let codec_len = u8::try_from(codec.len()).map_err(|_| "codec name longer than 255 bytes")?;
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(self.key);
        out.push(codec_len);
        out.extend_from_slice(codec.as_bytes());
        out.extend_from_slice(&self.codec.encode(state)?);
        Ok(())
    }

    fn restore(&self, payload: &[u8]) -> std::result::Result<A, BoxError> {
        let (key, rest) = split_prefix(payload, 4).ok_or("payload shorter than its key")?;
        if key != self.key {
            return Err("snapshot of another key (its directory name is shared)".into());
        }
        let (codec, state) = split_prefix(rest, 1).ok_or("payload shorter than its codec name")?;
        if codec != self.codec.name().as_bytes() {
            return Err(format!("state encoded with codec {:?}", String::from_utf8_lossy(codec)).into());
        }
        self.codec.decode(state)
    }
}

/// Split a field prefixed by its length (`width` bytes, little-endian) off `b`; `None` if
/// `b` is shorter than the length claims. The length is checked before it is used.
fn split_prefix(b: &[u8], width: usize) -> Option<(&[u8], &[u8])> {
    let mut len_bytes = [0u8; 8];
    len_bytes[..width].copy_from_slice(b.get(..width)?);
    let len = usize::try_from(u64::from_le_bytes(len_bytes)).ok()?;
    let rest = &b[width..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// A state restored from a snapshot (or the initial state): the stream version and log
/// position it covers.
pub(super) struct Restored<A> {
    pub state: A,
    pub version: u64,
    pub position: u64,
    pub report: RestoreReport,
}

/// The newest usable snapshot of `key` in `dir` at a position at or below `at_most`, or the
/// initial state. Snapshots that are damaged, of another fingerprint, key or codec, or ahead
/// of the log are skipped and listed in the report.
pub(super) fn restore<A: Aggregate, C: EventCodec>(
    log: &Log,
    dir: &Path,
    key: &[u8],
    codec: &C,
    at_most: u64,
) -> Result<Restored<A>> {
    let snapshots = SnapshotDir::open_read_only(dir);
    match load_snapshot(log, &KeyState::<A, C>::new(key, codec), &snapshots, at_most) {
        Ok(r) => Ok(Restored { state: r.state, version: r.records, position: r.position, report: r.report }),
        // No usable snapshot at or after the log's first offset: the stream itself may still
        // be whole (the caller checks that its first event is version 0).
        Err(Error::RecordsRemoved { .. }) => {
            Ok(Restored { state: A::default(), version: 0, position: 0, report: RestoreReport::default() })
        }
        Err(e) => Err(e),
    }
}

/// Write a snapshot of `key`'s `state`, covering every event below `position`, stream
/// version `version`, then prune by `retention`. Atomic: a crash leaves the older snapshots.
pub(super) fn save<A: Aggregate, C: EventCodec>(
    log: &Log,
    dir: &Path,
    (key, codec): (&[u8], &C),
    state: &A,
    (position, version): (u64, u64),
    retention: &SnapshotRetention,
) -> Result<SnapshotInfo> {
    let snapshots = SnapshotDir::open(dir)?;
    let info = snapshots.save(log, &KeyState::<A, C>::new(key, codec), state, position, version)?;
    snapshots.prune(position, retention)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::split_prefix;

    #[test]
    fn length_prefixes_are_checked_before_use() {
        assert_eq!(split_prefix(&[2, 0, 0, 0, b'a', b'b', b'c'], 4), Some((&b"ab"[..], &b"c"[..])));
        assert_eq!(split_prefix(&[3, b'a'], 1), None);
        assert_eq!(split_prefix(&[255, 255, 255, 255], 4), None);
        assert_eq!(split_prefix(&[1, 0], 4), None);
    }
}
