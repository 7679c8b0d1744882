//! A view's directory inside a views directory:
//!
//! ```text
//! VIEWS/NAME/view.def                    the definition and the generation that answers
//! VIEWS/NAME/gen-{generation:020}/       one generation's state (snapshot files, LOCK)
//! ```
//!
//! A rebuild writes a new generation beside the live one and swaps it in by rewriting
//! `view.def`; a generation that `view.def` does not name is left over from a rebuild that
//! was interrupted or that has been swapped out, and is removed by the next writer open.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::io::fs as fsutil;

/// The definition file's name.
pub(crate) const DEFINITION_FILE: &str = "view.def";
const GEN_PREFIX: &str = "gen-";
const GEN_DIGITS: usize = 20;

/// One view's directory.
#[derive(Debug, Clone)]
pub(crate) struct ViewDir {
    dir: PathBuf,
}

impl ViewDir {
    pub(crate) fn new(views_dir: &Path, name: &str) -> ViewDir {
        ViewDir { dir: views_dir.join(name) }
    }

    /// The view whose directory is `dir`.
    pub(crate) fn from_path(dir: &Path) -> ViewDir {
        ViewDir { dir: dir.to_path_buf() }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn definition_path(&self) -> PathBuf {
        self.dir.join(DEFINITION_FILE)
    }

    /// The directory of generation `generation`'s state.
    pub(crate) fn generation_dir(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{GEN_PREFIX}{generation:0GEN_DIGITS$}"))
    }

    /// Create the view's directory if missing (durably).
    pub(crate) fn create(&self) -> Result<()> {
        crate::store::ensure_dir(&self.dir)
    }

    /// The generations present, ascending.
    pub(crate) fn generations(&self) -> Result<Vec<u64>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry.at(&self.dir)?.file_name();
            let Some(digits) = name.to_str().and_then(|n| n.strip_prefix(GEN_PREFIX)) else { continue };
            if digits.len() == GEN_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(g) = digits.parse() {
                    out.push(g);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Remove every generation but `keep`, except one whose lock another runner holds
    /// (a process still keeping it current: it is left for a later open).
    pub(crate) fn remove_generations_except(&self, keep: u64) -> Result<()> {
        let mut removed = false;
        for g in self.generations()? {
            if g != keep {
                let d = self.generation_dir(g);
                let _lock = match crate::io::DirLock::acquire(&d) {
                    Ok(l) => l,
                    Err(Error::Locked { .. }) => continue,
                    Err(e) => return Err(e),
                };
                std::fs::remove_dir_all(&d).at(&d)?;
                removed = true;
            }
        }
        if removed {
            fsutil::fsync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// The state directories (every generation) of every view in `views_dir`: what an erasure
/// must clean, since a view's state may hold a key (a group) or values of its records.
pub(crate) fn state_dirs(views_dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(views_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(views_dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.at(views_dir)?.path();
        if path.is_dir() {
            let view = ViewDir::from_path(&path);
            out.extend(view.generations()?.into_iter().map(|g| view.generation_dir(g)));
        }
    }
    out.sort();
    Ok(out)
}

/// The views directory of a log at `log_dir` opened as a plain log: `LOG_DIR.views`, beside
/// it (the log's own directory holds only its files). Spelled from the directory's name, so
/// `events/` and `events` give the same `events.views`; a path without a name of its own
/// (`.`, `..`, `/`) is resolved first.
pub(crate) fn views_dir_beside(log_dir: &Path) -> PathBuf {
    let named = |p: &Path| Some((p.parent()?.to_path_buf(), p.file_name()?.to_owned()));
    let resolved = std::fs::canonicalize(log_dir).ok();
    match named(log_dir).or_else(|| resolved.as_deref().and_then(named)) {
        Some((parent, name)) => {
            let mut name = name;
            name.push(".views");
            parent.join(name)
        }
        // The root directory: nothing beside it.
        None => log_dir.join("views"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logs_views_directory_is_beside_it_however_its_path_is_spelled() {
        assert_eq!(views_dir_beside(Path::new("data/events")), Path::new("data/events.views"));
        assert_eq!(views_dir_beside(Path::new("data/events/")), Path::new("data/events.views"));
        assert_eq!(views_dir_beside(Path::new("events")), Path::new("events.views"));
        let here = std::env::current_dir().unwrap();
        let want = here.parent().unwrap().join(format!("{}.views", here.file_name().unwrap().to_string_lossy()));
        assert_eq!(views_dir_beside(Path::new(".")), want);
    }
}
