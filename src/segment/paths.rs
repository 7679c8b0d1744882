//! A segment's file names.

use std::path::{Path, PathBuf};

use crate::format::index::{IndexKind, KEY_INDEX, OFFSET_INDEX, TIME_INDEX};

/// File names of a segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentPaths {
    pub data: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
    pub key_index: PathBuf,
}

impl SegmentPaths {
    /// The file of the index of this kind.
    pub fn index(&self, kind: IndexKind) -> &Path {
        if kind == TIME_INDEX {
            &self.time_index
        } else if kind == KEY_INDEX {
            &self.key_index
        } else {
            debug_assert_eq!(kind, OFFSET_INDEX);
            &self.offset_index
        }
    }

    pub fn new(dir: &Path, base: u64) -> SegmentPaths {
        SegmentPaths {
            data: dir.join(format!("{base:020}.log")),
            offset_index: dir.join(format!("{base:020}.index")),
            time_index: dir.join(format!("{base:020}.timeindex")),
            key_index: dir.join(format!("{base:020}.keyindex")),
        }
    }
}

/// Parse a segment data file name (`{20 digits}.log`) into its base offset.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
