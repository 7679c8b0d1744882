//! Stages 1 and 2: check the directory, list the segment files and the temporary files
//! tidelog names, read the checkpoint. Nothing here writes but the creation of a new log's
//! directory.

use super::*;

/// What the checkpoint file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckpointState {
    Missing,
    /// Present but not a valid checkpoint (a crash cannot produce this: it is replaced
    /// atomically). Treated as missing: the whole active segment is validated.
    Unreadable,
    Valid(Checkpoint),
}

impl CheckpointState {
    pub(super) fn valid(self) -> Option<Checkpoint> {
        match self {
            CheckpointState::Valid(c) => Some(c),
            _ => None,
        }
    }
}

pub(super) fn read_checkpoint(dir: &Path) -> Result<CheckpointState> {
    let path = dir.join(CHECKPOINT_FILE);
    match fs::read(&path) {
        Ok(b) => {
            Ok(Checkpoint::decode_file(&b).map_or(CheckpointState::Unreadable, |(c, _)| CheckpointState::Valid(c)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CheckpointState::Missing),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// True for the temporary names tidelog itself gives files it replaces atomically or creates
/// (`{20 digits}.log.tmp`, `.index.tmp`, `.timeindex.tmp`, the same with `.compact.tmp`, and
/// `checkpoint.tmp`): the only `*.tmp` files a writer's open removes.
pub(super) fn is_own_tmp(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tmp") else { return false };
    if stem == CHECKPOINT_FILE || stem == stream::REMOVED_STREAMS_FILE {
        return true;
    }
    // Files of a segment rewrite that never got installed end in `.compact.tmp`.
    let stem = stem.strip_suffix(".compact").unwrap_or(stem);
    let digits =
        ["log", "index", "timeindex", "keyindex"].iter().find_map(|ext| stem.strip_suffix(ext)?.strip_suffix('.'));
    digits.is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) struct Discovered {
    pub(super) bases: Vec<u64>,
    pub(super) tmp_files: Vec<PathBuf>,
    pub(super) ckpt: CheckpointState,
}

pub(super) fn discover(dir: &Path) -> Result<Discovered> {
    let mut bases = Vec::new();
    let mut tmp_files = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_segment_name(name) {
            bases.push(base);
        } else if is_own_tmp(name) {
            tmp_files.push(entry.path());
        }
    }
    bases.sort_unstable();
    Ok(Discovered { bases, tmp_files, ckpt: read_checkpoint(dir)? })
}

/// Check the directory; a writer creates a missing one (and with it a new, empty log).
pub(super) fn prepare_dir(dir: &Path, read_only: bool) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(Error::NotADirectory { path: dir.to_path_buf() }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if read_only {
                return Err(Error::NotFound { path: dir.to_path_buf() });
            }
            fs::create_dir_all(dir).at(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsutil::fsync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tidelogs_own_temporary_names_are_removed() {
        for own in [
            "checkpoint.tmp",
            "00000000000000000042.log.tmp",
            "00000000000000000000.index.tmp",
            "00000000000000000007.timeindex.tmp",
            "00000000000000000007.keyindex.tmp",
            "removed-streams.tmp",
            "00000000000000000042.log.compact.tmp",
            "00000000000000000042.index.compact.tmp",
            "00000000000000000042.timeindex.compact.tmp",
        ] {
            assert!(is_own_tmp(own), "{own}");
        }
        for other in [
            "notes.tmp",
            "checkpoint",
            "42.log.tmp",
            "0000000000000000004x.log.tmp",
            ".tmp",
            "my.index.tmp",
            "00000000000000000042.log",
        ] {
            assert!(!is_own_tmp(other), "{other}");
        }
    }
}
