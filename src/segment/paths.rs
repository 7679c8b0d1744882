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

/// Suffix of a secondary index file: `{base:020}.{index name}.vindex`, beside its segment.
pub(crate) const VIEW_INDEX_SUFFIX: &str = ".vindex";

/// The file of secondary index `name` for segment `base` in `dir`.
pub(crate) fn view_index_path(dir: &Path, base: u64, name: &str) -> PathBuf {
    dir.join(format!("{base:020}.{name}{VIEW_INDEX_SUFFIX}"))
}

/// Parse a secondary index file name (`{20 digits}.{name}.vindex`) into its segment's base
/// offset and the index name.
pub(crate) fn parse_view_index_name(file_name: &str) -> Option<(u64, &str)> {
    let stem = file_name.strip_suffix(VIEW_INDEX_SUFFIX)?;
    let (digits, name) = (stem.get(..20)?, stem.get(20..)?.strip_prefix('.')?);
    if name.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, name))
}

/// The secondary index files of the segment whose data file is `data` (every index's), found
/// by listing its directory. A directory that cannot be listed has none to report.
pub(crate) fn view_index_files(data: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(base)) =
        (data.parent(), data.file_name().and_then(|n| n.to_str()).and_then(parse_segment_name))
    else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().and_then(parse_view_index_name).is_some_and(|(b, _)| b == base))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_index_names_round_trip_and_other_names_are_not_taken_for_them() {
        let p = view_index_path(Path::new("/d"), 42, "by.user-id");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "00000000000000000042.by.user-id.vindex");
        assert_eq!(parse_view_index_name(name), Some((42, "by.user-id")));
        for other in [
            "00000000000000000042.vindex",
            "00000000000000000042..vindex",
            "0000000000000000004x.a.vindex",
            "42.a.vindex",
            "00000000000000000042.a.vindex.tmp",
            "00000000000000000042.keyindex",
        ] {
            assert_eq!(parse_view_index_name(other), None, "{other}");
        }
    }
}
