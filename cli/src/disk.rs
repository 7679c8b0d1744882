//! Space on disk as `du` counts it: the blocks the file system allocated, not file lengths.
//! tidelog preallocates segment files, so a file's length says what was reserved; the
//! allocated blocks say what the disk actually holds.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes allocated on disk for `path` and, for a directory, everything under it
/// (`st_blocks * 512`, what `du -s --block-size=1` prints).
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            total += allocated_bytes(&entry?.path())?;
        }
    }
    Ok(total)
}
