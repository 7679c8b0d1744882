//! Building a sealed segment whole, from records with explicit offsets and timestamps: the
//! building block of compaction, which rewrites a sealed segment without some of its records
//! while every record kept keeps its offset.
//!
//! The builder writes beside the segment it replaces, under temporary names
//! (`{base:020}.log.compact.tmp` and the same for both index files), each fsynced: these play
//! the part of Kafka's `.cleaned` files. A writer's open deletes such leftovers, so a crash
//! while building leaves the old segment as it was. [`BuiltSegment::install`] then swaps the
//! new files in, in an order that never pairs a data file with index files that do not
//! describe it. One data file replaces one data file by one `rename`, which is atomic: so no
//! `.swap`/`.deleted` stage is needed, and after a crash at any step the directory holds the
//! old data file or the new one, never both and never neither:
//!
//! 1. remove the old index files (a crash here leaves the old data without an index: rebuilt
//!    by a scan on the next open);
//! 2. rename the new data file over the old one, fsync the directory (a crash here leaves the
//!    new data without an index: rebuilt the same way);
//! 3. rename the new index files into place, fsync the directory.
//!
//! The output is dense (no header flag) when the records kept are exactly the offsets the
//! segment spans; otherwise its header carries the sparse flag with the end of its records and
//! the end of the offsets it spans (the next segment's base), so that a scan can tell a
//! complete sparse segment from one that lost its tail. Every record is written as a batch of
//! its own (the batches it was appended in are of no use once it is sealed) and without a
//! durable mark.
//!
//! Every call that changes a file goes through the storage seam (`io::storage`), so that
//! tests can fail each step of a build and of an install.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::frame::{encode_frame, FrameBody};
use crate::format::index::IndexKind;
use crate::format::{align_up, SegmentHeader, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::io::{fs as fsutil, storage};
use crate::options::MAX_SEGMENT_BYTES;
use crate::record::RecordView;
use crate::segment::index::{write_sealed_index_files_to, IndexEntry, SealInfo};
use crate::segment::SegmentPaths;

/// Suffix of the files a build writes before they are installed (ends in `.tmp`, so a
/// writer's open removes leftovers).
const BUILD_SUFFIX: &str = ".compact.tmp";

/// Bytes gathered before one write to the file.
const WRITE_CHUNK: usize = 1 << 20;

fn build_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(BUILD_SUFFIX);
    PathBuf::from(s)
}

/// Writes one sealed segment from records given in offset order.
#[must_use = "a builder does nothing until finished and installed"]
pub(crate) struct SegmentBuilder {
    dir: PathBuf,
    paths: SegmentPaths,
    base: u64,
    created_us: u64,
    interval: u32,
    out: File,
    /// Bytes not yet written to `out`.
    buf: Vec<u8>,
    pos: usize,
    since_entry: usize,
    entries: Vec<IndexEntry>,
    /// The lowest offset the next record may have.
    next_min: u64,
    /// True while the records pushed are exactly `base, base + 1, …`.
    dense: bool,
    last_ts: u64,
    frame: Vec<u8>,
}

impl SegmentBuilder {
    /// Start building segment `base` in `dir` (created at `created_us`, index entries every
    /// `interval` bytes).
    pub fn new(dir: &Path, base: u64, created_us: u64, interval: u32) -> Result<SegmentBuilder> {
        let paths = SegmentPaths::new(dir, base);
        let tmp = build_path(&paths.data);
        let out = storage::create(&tmp, OpenOptions::new().write(true).create(true).truncate(true))?;
        // The header is written last, when the builder knows where the segment ends.
        let mut buf = Vec::with_capacity(WRITE_CHUNK + SEGMENT_HEADER_LEN);
        buf.resize(SEGMENT_HEADER_LEN, 0);
        Ok(SegmentBuilder {
            dir: dir.to_path_buf(),
            paths,
            base,
            created_us,
            interval,
            out,
            buf,
            pos: SEGMENT_HEADER_LEN,
            since_entry: 0,
            entries: Vec::new(),
            next_min: base,
            dense: true,
            last_ts: 0,
            frame: Vec::new(),
        })
    }

    fn misuse(&self, what: String) -> Error {
        Error::InvalidOptions(format!("segment builder for {:?}: {what}", self.paths.data))
    }

    /// Append a copy of `rec`, keeping its offset, timestamp, key, headers, payload and
    /// tombstone flag. Offsets must strictly increase and timestamps must not decrease.
    pub fn push(&mut self, rec: &RecordView<'_>) -> Result<()> {
        let offset = rec.offset();
        if offset < self.next_min {
            return Err(self.misuse(format!("offset {offset} does not follow {}", self.next_min)));
        }
        if rec.timestamp_us() < self.last_ts {
            return Err(self.misuse(format!("timestamp of offset {offset} goes backwards")));
        }
        let key = rec.key();
        let headers_len: usize = rec.headers().map(|h| 2 + h.name.len() + 4 + h.value.len()).sum();
        let frame_len = RECORD_HEADER_LEN + key.map_or(0, <[u8]>::len) + headers_len + rec.payload().len();
        let padded = align_up(frame_len);
        if (self.pos + padded) as u64 > MAX_SEGMENT_BYTES {
            return Err(self.misuse(format!("records past {MAX_SEGMENT_BYTES} bytes")));
        }
        self.frame.clear();
        self.frame.resize(padded, 0);
        let body = FrameBody {
            durable_mark: None,
            tombstone: rec.is_tombstone(),
            key,
            headers: rec.headers().map(|h| (h.name, h.value)),
            payload: rec.payload(),
        };
        encode_frame(&mut self.frame[..frame_len], body, offset, rec.timestamp_us(), 0);
        self.frame[..4].copy_from_slice(&(frame_len as u32).to_le_bytes());
        self.buf.extend_from_slice(&self.frame);
        if self.buf.len() >= WRITE_CHUNK {
            self.write_buffered()?;
        }
        if self.entries.is_empty() || self.since_entry >= self.interval as usize {
            let rel = (offset - self.base) as u32;
            self.entries.push(IndexEntry { rel, pos: self.pos as u32, ts: rec.timestamp_us() });
            self.since_entry = 0;
        }
        self.dense &= offset == self.next_min;
        self.pos += padded;
        self.since_entry += padded;
        self.next_min = offset + 1;
        self.last_ts = rec.timestamp_us();
        Ok(())
    }

    fn write_buffered(&mut self) -> Result<()> {
        let tmp = build_path(&self.paths.data);
        storage::write_all(&mut self.out, &tmp, &self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Finish the segment, which spans the offsets up to `next_offset` (the next segment's
    /// base): write its header and its sealed index files, all fsynced under temporary names.
    pub fn finish(mut self, next_offset: u64) -> Result<BuiltSegment> {
        if next_offset < self.next_min || next_offset <= self.base || next_offset - self.base > u32::MAX as u64 {
            return Err(self.misuse(format!("cannot span offsets up to {next_offset}")));
        }
        let dense = self.dense && self.next_min == next_offset;
        let end_pos = self.pos as u64;
        let header = SegmentHeader {
            base_offset: self.base,
            created_us: self.created_us,
            capacity: end_pos,
            sparse_offsets: !dense,
            end_pos: if dense { 0 } else { end_pos },
            next_offset: if dense { 0 } else { next_offset },
        };
        self.write_buffered()?;
        let tmp = build_path(&self.paths.data);
        storage::write_all_at(&self.out, &tmp, &header.encode(), 0)?;
        storage::sync_all(&self.out, &tmp)?;
        let seal = SealInfo { end_pos, next_offset, max_ts: self.last_ts };
        let paths = self.paths.clone();
        write_sealed_index_files_to(|k| build_path(paths.index(k)), self.base, self.interval, &self.entries, seal)?;
        // IMPORTANT: the temporary names are durable only after this.
        fsutil::fsync_dir(&self.dir)?;
        Ok(BuiltSegment { dir: self.dir, paths: self.paths, sparse: !dense })
    }
}

/// A segment written whole under temporary names, ready to replace the one with its base.
#[must_use = "the segment is not in place until installed"]
pub(crate) struct BuiltSegment {
    dir: PathBuf,
    paths: SegmentPaths,
    sparse: bool,
}

impl BuiltSegment {
    /// True if the segment's offsets skip values (its header carries the sparse flag).
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// Remove the built files without installing them (the segment they were to replace is
    /// gone, or the build is abandoned).
    pub fn discard(self) -> Result<()> {
        discard_build(&self.paths)?;
        fsutil::fsync_dir(&self.dir)
    }

    /// Swap the built files in place of the segment's files (order in the module docs).
    pub fn install(self) -> Result<()> {
        let kinds: [IndexKind; 2] = [crate::format::index::OFFSET_INDEX, crate::format::index::TIME_INDEX];
        // The key index of the old records is not rebuilt here: it is derived data, built
        // again from the new records when first needed.
        for kind in [kinds[0], kinds[1], crate::format::index::KEY_INDEX] {
            storage::remove(self.paths.index(kind))?;
        }
        // Secondary index files describe the old records too (derived data: their views
        // build them again from the new ones).
        for p in crate::segment::paths::view_index_files(&self.paths.data) {
            storage::remove(&p)?;
        }
        storage::rename(&build_path(&self.paths.data), &self.paths.data)?;
        // IMPORTANT: the new data must be in place for good before index files describe it.
        fsutil::fsync_dir(&self.dir)?;
        for kind in kinds {
            let p = self.paths.index(kind);
            storage::rename(&build_path(p), p)?;
        }
        fsutil::fsync_dir(&self.dir)
    }
}

/// Remove whatever a build of segment `paths` left under temporary names.
pub(crate) fn discard_build(paths: &SegmentPaths) -> Result<()> {
    let kinds = [crate::format::index::OFFSET_INDEX, crate::format::index::TIME_INDEX];
    storage::remove(&build_path(&paths.data))?;
    for kind in kinds {
        storage::remove(&build_path(paths.index(kind)))?;
    }
    Ok(())
}
