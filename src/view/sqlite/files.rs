//! The directory of one SQLite read model:
//!
//! ```text
//! DIR/LOCK                       flock: one process keeps the view current
//! DIR/NAME.db                    symbolic link to the current generation (what SQL tools open)
//! DIR/NAME.gen-{n:020}.db        a generation's database (and SQLite's -wal, -shm beside it)
//! ```
//!
//! Why a link and not a renamed file: in WAL mode a database's `-wal` and `-shm` files are
//! found by name. Renaming a new database over one that a reader in another process has open
//! would pair that reader's connection with the new file's write-ahead log (SQLite lists
//! renaming a database in use among the ways to corrupt one). Each generation keeps its own
//! file names; a reader that opened the old one keeps reading it, consistently, until it
//! reopens `NAME.db`. The swap itself is a rename of a new link over the old one.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::io::{fs as fsutil, storage};

const GEN_INFIX: &str = ".gen-";
const GEN_DIGITS: usize = 20;
/// SQLite's companion files of a database, removed with it.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

pub(crate) struct DbFiles {
    dir: PathBuf,
    name: String,
}

impl DbFiles {
    pub(crate) fn new(dir: &Path, name: &str) -> DbFiles {
        DbFiles { dir: dir.to_path_buf(), name: name.to_owned() }
    }

    /// `DIR/NAME.db`: the link SQL tools open.
    pub(crate) fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}.db", self.name))
    }

    fn generation_file(&self, generation: u64) -> String {
        format!("{}{GEN_INFIX}{generation:0GEN_DIGITS$}.db", self.name)
    }

    pub(crate) fn generation_path(&self, generation: u64) -> PathBuf {
        self.dir.join(self.generation_file(generation))
    }

    fn parse_generation(&self, file: &str) -> Option<u64> {
        let digits = file.strip_prefix(&self.name)?.strip_prefix(GEN_INFIX)?.strip_suffix(".db")?;
        if digits.len() == GEN_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    }

    /// The generation `NAME.db` links to, if it exists. Anything else at that path (a
    /// regular file, a link elsewhere) is refused rather than replaced.
    pub(crate) fn current(&self) -> Result<Option<u64>> {
        let path = self.current_path();
        let target = match std::fs::read_link(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::InvalidOptions(format!(
                    "{path:?} is not the link tidelog keeps to the current read model: {e}"
                )))
            }
        };
        match target.to_str().and_then(|t| self.parse_generation(t)) {
            Some(g) => Ok(Some(g)),
            None => Err(Error::InvalidOptions(format!(
                "{path:?} links to {target:?}, not to a generation of view {:?}",
                self.name
            ))),
        }
    }

    /// The generations present, oldest first.
    pub(crate) fn generations(&self) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let name = entry.at(&self.dir)?.file_name();
            if let Some(g) = name.to_str().and_then(|n| self.parse_generation(n)) {
                out.push(g);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Make `NAME.db` link to `generation`, atomically: a new link under a temporary name,
    /// renamed over the old one, then the directory fsynced. The generation's database must
    /// be durable first (its caller checkpoints it).
    pub(crate) fn install(&self, generation: u64) -> Result<()> {
        let link = self.current_path();
        let tmp = fsutil::tmp_path(&link);
        storage::remove(&tmp)?; // a link left by a kill during an earlier swap
        std::os::unix::fs::symlink(self.generation_file(generation), &tmp).at(&tmp)?;
        // IMPORTANT: the generation's own directory entry is durable before the link names it.
        fsutil::fsync_dir(&self.dir)?;
        storage::rename(&tmp, &link)?;
        fsutil::fsync_dir(&self.dir)
    }

    /// Remove every generation's files but `keep`'s (strays of a rebuild a kill interrupted,
    /// or the generation a swap replaced), and a temporary link.
    pub(crate) fn remove_generations_except(&self, keep: u64) -> Result<()> {
        storage::remove(&fsutil::tmp_path(&self.current_path()))?;
        for g in self.generations()? {
            if g != keep {
                self.remove_generation(g)?;
            }
        }
        fsutil::fsync_dir(&self.dir)
    }

    fn remove_generation(&self, generation: u64) -> Result<()> {
        let db = self.generation_path(generation);
        // Companions first: a database without its WAL is older but whole; a WAL without its
        // database is never read.
        for suffix in COMPANIONS {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            storage::remove(Path::new(&p))?;
        }
        storage::remove(&db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_parse_back_and_others_do_not() {
        let f = DbFiles::new(Path::new("/x"), "orders");
        assert_eq!(f.parse_generation(&f.generation_file(7)), Some(7));
        assert_eq!(f.parse_generation("orders.db"), None);
        assert_eq!(f.parse_generation("orders.gen-7.db"), None);
        assert_eq!(f.parse_generation("other.gen-00000000000000000007.db"), None);
    }

    #[test]
    fn install_swaps_the_link_and_removal_keeps_only_the_named_generation() {
        let tmp = tempfile::tempdir().unwrap();
        let f = DbFiles::new(tmp.path(), "v");
        assert_eq!(f.current().unwrap(), None);
        for g in [1, 2] {
            std::fs::write(f.generation_path(g), b"x").unwrap();
        }
        f.install(1).unwrap();
        assert_eq!(f.current().unwrap(), Some(1));
        f.install(2).unwrap();
        assert_eq!(f.current().unwrap(), Some(2));
        f.remove_generations_except(2).unwrap();
        assert_eq!(f.generations().unwrap(), vec![2]);
        assert_eq!(std::fs::read(f.current_path()).unwrap(), b"x");
    }

    #[test]
    fn a_regular_file_at_the_database_path_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let f = DbFiles::new(tmp.path(), "v");
        std::fs::write(f.current_path(), b"mine").unwrap();
        assert!(matches!(f.current(), Err(Error::InvalidOptions(_))));
    }
}
