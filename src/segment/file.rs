//! A segment's data file on disk: its header, creation, removal.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::segment_header::SEG_BASE_AT;
use crate::format::{SegmentHeader, SEGMENT_HEADER_LEN};
use crate::io::fs as fsutil;
use crate::io::storage;
use crate::segment::index::write_active_index_files;
use crate::segment::paths::view_index_files;
use crate::segment::{SegmentId, SegmentPaths, SparseEnd};

/// Read and validate the segment header of an open data file.
pub(crate) fn read_segment_header(file: &mut File, path: &Path) -> Result<(SegmentHeader, u64)> {
    let len = file.metadata().at(path)?.len();
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    if len < SEGMENT_HEADER_LEN as u64 {
        return Err(Error::corrupt(
            path,
            0,
            CorruptionKind::BadLength { len: SEGMENT_HEADER_LEN as u64, available: len },
        ));
    }
    file.read_exact(&mut b).at(path)?;
    let h = SegmentHeader::decode(&b).map_err(|(pos, kind)| Error::corrupt(path, pos as u64, kind))?;
    Ok((h, len))
}

/// Create a new segment data file atomically (temporary name, header, fsync, rename,
/// directory fsync) with `capacity` bytes reserved. Returns the open file.
pub(crate) fn create_segment_file(dir: &Path, base: u64, created_us: u64, capacity: u64) -> Result<File> {
    let paths = SegmentPaths::new(dir, base);
    let tmp = fsutil::tmp_path(&paths.data);
    let mut f = storage::create(&tmp, OpenOptions::new().read(true).write(true).create(true).truncate(true))?;
    storage::fallocate(&f, &tmp, capacity)?;
    let hdr = SegmentHeader::dense(base, created_us, capacity);
    storage::write_all(&mut f, &tmp, &hdr.encode())?;
    storage::sync_all(&f, &tmp)?;
    storage::rename(&tmp, &paths.data)?;
    // IMPORTANT: the new name is durable only after the directory is fsynced.
    fsutil::fsync_dir(dir)?;
    // Fresh active index files (derived data: not fsynced here).
    write_active_index_files(&paths, base, 0, &[])?;
    Ok(f)
}

/// Remove a segment's files (data first, so a crash never leaves indexes without data that a
/// later open would misread; stray index files are ignored and overwritten), its secondary
/// index files included (`{base:020}.{name}.vindex`, any index's: a stray one is ignored and
/// removed by its index view).
pub(crate) fn remove_segment_files(paths: &SegmentPaths) -> Result<()> {
    for p in [&paths.data, &paths.offset_index, &paths.time_index, &paths.key_index] {
        storage::remove(p)?;
    }
    for p in view_index_files(&paths.data) {
        storage::remove(&p)?;
    }
    Ok(())
}

/// Open the data file of segment `base` in `dir` and check its header (which must name the
/// same base offset). Returns who the segment is, the open file, its length and the capacity
/// its header records.
pub(crate) fn open_data_file(dir: &Path, base: u64, writable: bool) -> Result<(SegmentId, File, u64, u64)> {
    let paths = SegmentPaths::new(dir, base);
    let mut file = OpenOptions::new().read(true).write(writable).open(&paths.data).at(&paths.data)?;
    let (hdr, file_len) = read_segment_header(&mut file, &paths.data)?;
    if hdr.base_offset != base {
        return Err(Error::corrupt(&paths.data, SEG_BASE_AT as u64, CorruptionKind::BadField("base_offset")));
    }
    let sparse = hdr.sparse_offsets.then_some(SparseEnd { end_pos: hdr.end_pos, next_offset: hdr.next_offset });
    let id = SegmentId { base_offset: base, created_us: hdr.created_us, paths, sparse };
    Ok((id, file, file_len, hdr.capacity))
}
