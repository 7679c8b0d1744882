//! A segment: one data file (`{base:020}.log`), its sparse offset index
//! (`{base:020}.index`) and its time index (`{base:020}.timeindex`).
//!
//! | file        | job                                                        |
//! |-------------|------------------------------------------------------------|
//! | `paths`     | file names                                                 |
//! | `file`      | the data file: header, creation, removal                   |
//! | `index`     | the sparse offset and time indexes, active and sealed      |
//! | `keys`      | the key index: records by key hash, in memory or `.keyindex` |
//! | `scan`      | the validating scan, torn-tail and damage probes           |
//! | `read`      | finding a record by offset or time                         |

pub(crate) mod builder;
pub(crate) mod file;
pub(crate) mod index;
pub(crate) mod keys;
pub(crate) mod paths;
pub(crate) mod read;
pub(crate) mod scan;

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::error::{IoContext, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::io::mmap::{MapWriter, SegmentMap};
use crate::segment::keys::SegKeys;

pub(crate) use file::{create_segment_file, open_data_file, remove_segment_files};
pub(crate) use index::{
    append_active_index_entries, open_index_files_for_append, open_sealed_index, read_active_index,
    write_active_index_files, write_sealed_index_files, ActiveIndex, IndexEntry, SealInfo, SealedIndex, SegIndex,
};
pub(crate) use keys::write_key_index_file;
pub(crate) use paths::{parse_segment_name, SegmentPaths};
pub(crate) use read::Located;
pub(crate) use scan::{
    durable_mark_after, last_valid_offset_in, nonzero_end, scan_frames, valid_frame_after, ScanState, ScanStop,
};

/// A segment as readers see it. Shared through `Arc`; never mutated except through atomics.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub created_us: u64,
    pub paths: SegmentPaths,
    pub map: Arc<SegmentMap>,
    pub index: SegIndex,
    /// Where the records of each key are (see `keys`).
    keys: SegKeys,
    /// One past the last published offset in this segment.
    next_offset: AtomicU64,
    /// Timestamp of the last published record (timestamps never decrease).
    max_ts: AtomicU64,
    /// Set if offsets in this segment may skip values (a sealed segment rewritten by
    /// compaction): where its header says it ends.
    sparse: Option<SparseEnd>,
    /// The number of records of a sparse segment, counted when first asked.
    sparse_records: OnceLock<u64>,
}

/// Who a segment is: its base offset, creation time and file names (from its header).
#[derive(Debug, Clone)]
pub(crate) struct SegmentId {
    pub base_offset: u64,
    pub created_us: u64,
    pub paths: SegmentPaths,
    /// Set if the header has the sparse-offsets flag: where it says the segment ends.
    pub sparse: Option<SparseEnd>,
}

/// Where a sparse segment ends, as its header records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SparseEnd {
    /// End of the records (bytes, header included).
    pub end_pos: u64,
    /// One past the last offset the segment spans.
    pub next_offset: u64,
}

impl Segment {
    fn new(id: SegmentId, map: Arc<SegmentMap>, index: SegIndex, next_offset: u64, max_ts: u64) -> Segment {
        let keys = match index {
            SegIndex::Sealed(_) => SegKeys::unopened(),
            SegIndex::Active(_) => SegKeys::growing(id.base_offset),
        };
        Segment {
            keys,
            base_offset: id.base_offset,
            created_us: id.created_us,
            paths: id.paths,
            map,
            index,
            next_offset: AtomicU64::new(next_offset),
            max_ts: AtomicU64::new(max_ts),
            sparse: id.sparse,
            sparse_records: OnceLock::new(),
        }
    }

    /// A sealed segment: its records mapped read-only up to `info.end_pos`, its index files
    /// mapped.
    pub fn sealed(id: SegmentId, file: &File, map_len: usize, sidx: SealedIndex, info: SealInfo) -> Result<Segment> {
        let map = SegmentMap::map_ro(file, map_len, info.end_pos as usize).at(&id.paths.data)?;
        Ok(Segment::new(id, map, SegIndex::Sealed(sidx), info.next_offset, info.max_ts))
    }

    /// A segment indexed in memory (the active one, or one whose sealed index is missing),
    /// readable up to where `end` says its valid records end. The map's published end is
    /// advanced to `end.pos`.
    pub fn in_memory(id: SegmentId, map: Arc<SegmentMap>, entries: Vec<IndexEntry>, end: ScanState) -> Segment {
        map.advance_published(end.pos);
        let index = SegIndex::Active(RwLock::new(ActiveIndex { entries }));
        Segment::new(id, map, index, end.next_offset, end.last_ts)
    }

    /// Create segment `base` (atomically, with `capacity` bytes reserved) and map it for
    /// writing. Returns the segment and the unique writer of its map.
    pub fn create(dir: &Path, base: u64, created_us: u64, capacity: usize) -> Result<(Segment, MapWriter)> {
        let file = create_segment_file(dir, base, created_us, capacity as u64)?;
        let paths = SegmentPaths::new(dir, base);
        let (map, mw) = SegmentMap::map_rw(&file, capacity, SEGMENT_HEADER_LEN).at(&paths.data)?;
        let id = SegmentId { base_offset: base, created_us, paths, sparse: None };
        Ok((Segment::in_memory(id, map, Vec::new(), ScanState::at_start(base)), mw))
    }

    /// This segment's identity.
    pub fn id(&self) -> SegmentId {
        SegmentId {
            base_offset: self.base_offset,
            created_us: self.created_us,
            paths: self.paths.clone(),
            sparse: self.sparse,
        }
    }

    /// After its sealed index files were written: the same segment, mapped read-only with
    /// its mapped index. `None` if the index files do not open as sealed (the segment stays
    /// as it is, indexed in memory).
    pub fn reopen_sealed(&self, end_pos: usize) -> Result<Option<Segment>> {
        let file = File::open(&self.paths.data).at(&self.paths.data)?;
        let Some((sidx, info)) = open_sealed_index(&self.id(), self.map.len() as u64) else {
            return Ok(None);
        };
        debug_assert_eq!(info.end_pos as usize, end_pos);
        Segment::sealed(self.id(), &file, self.map.len(), sidx, info).map(Some)
    }

    /// One past the last published offset of this segment.
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// True if this segment holds at least one published record. (A segment emptied by
    /// compaction spans offsets but holds no record.)
    pub fn has_records(&self) -> bool {
        // `next_offset` first: once it moved past the base, the map's end had moved too.
        self.next_offset() != self.base_offset && self.end_pos() > SEGMENT_HEADER_LEN
    }

    /// Timestamp of the last published record (0 if empty).
    pub fn max_ts(&self) -> u64 {
        self.max_ts.load(Ordering::Acquire)
    }

    /// Publish records up to `next_offset` (the map's published end was advanced first).
    pub fn publish(&self, next_offset: u64, max_ts: u64) {
        self.max_ts.store(max_ts, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
    }

    /// True if this segment's offsets may skip values (records removed by compaction).
    #[inline]
    pub fn is_sparse(&self) -> bool {
        self.sparse.is_some()
    }

    pub fn is_sealed(&self) -> bool {
        matches!(self.index, SegIndex::Sealed(_))
    }

    /// Bytes of records (header included) published in this segment.
    pub fn end_pos(&self) -> usize {
        self.map.published()
    }

    /// Append an index entry (active segment only).
    pub fn push_index(&self, e: IndexEntry) {
        if let SegIndex::Active(lock) = &self.index {
            lock.write().entries.push(e);
        }
    }

    /// A copy of the active index entries (empty for a sealed segment).
    pub fn active_entries(&self) -> Vec<IndexEntry> {
        match &self.index {
            SegIndex::Active(lock) => lock.read().entries.clone(),
            SegIndex::Sealed(_) => Vec::new(),
        }
    }
}
