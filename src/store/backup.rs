//! A consistent copy of a whole store, taken while its writers and consumer groups run (see
//! `docs/durability.md`).
//!
//! Each log is copied by [`Log::backup`]. The order makes the copy consistent: for each
//! topic, its consumer groups first, then the topic's log, so that no group's position in
//! the copy is past the copy of its topic; inside a group, its plain files (snapshots) first,
//! then its logs (state log, dead letters), so that no snapshot is newer than the copied
//! state log. A group whose files change while it is copied (a new snapshot, which lets the
//! group drop older state records) is copied again. Everything is written under `DEST~partial`
//! and renamed to DEST once complete.

use std::path::{Path, PathBuf};

use super::{names, Store, GROUPS_DIR, TOPICS_DIR};
use crate::error::{Error, IoContext, Result};
use crate::io::storage;
use crate::log::{install, partial_name};
use crate::{BackupReport, Log};

/// How many times a group whose files changed during its copy is copied again.
const GROUP_ATTEMPTS: u32 = 5;

/// What a store backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreBackupReport {
    /// The backup's directory.
    pub dir: PathBuf,
    /// Every log copied, in the order copied: each group's logs, then its topic's log. Each
    /// report's `dir` is inside the backup.
    pub logs: Vec<BackupReport>,
    /// Plain files copied (group snapshots).
    pub files: u64,
}

impl Store {
    /// Copy the store (every topic and every consumer group) to `dest`, which must not
    /// exist or be an empty directory ([`Error::BackupDestinationNotEmpty`] otherwise), while
    /// writers and groups in this or other processes go on. Each log holds what was
    /// committed when its copy started (see [`Log::backup`]).
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<StoreBackupReport> {
        let dest = dest.as_ref();
        crate::log::check_destination(dest)?;
        let staging = partial_name(dest);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).at(&staging)?;
        }
        let mut report = StoreBackupReport { dir: dest.to_path_buf(), logs: Vec::new(), files: 0 };
        for topic in self.topic_names()? {
            let groups_src = self.shared.groups_dir(&topic);
            for group in names::list_names(&groups_src)? {
                let dst = staging.join(GROUPS_DIR).join(&topic).join(&group);
                copy_group(&groups_src.join(&group), &dst, &mut report)?;
            }
            let src = self.shared.dir.join(TOPICS_DIR).join(&topic);
            let log = Log::open_read_only(&src, self.shared.opts.topic.clone())?;
            ensure_parent(&staging.join(TOPICS_DIR).join(&topic))?;
            report.logs.push(log.backup(staging.join(TOPICS_DIR).join(&topic))?);
        }
        for sub in [TOPICS_DIR, GROUPS_DIR] {
            std::fs::create_dir_all(staging.join(sub)).at(&staging.join(sub))?;
        }
        install(&staging, dest)?;
        for r in &mut report.logs {
            if let Ok(rel) = r.dir.strip_prefix(&staging) {
                r.dir = dest.join(rel);
            }
        }
        Ok(report)
    }
}

/// Create the parent directories of `path` (durably).
fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => names::ensure_dir(parent),
        None => Ok(()),
    }
}

/// The names, lengths and modification times of the plain files under `dir` (recursively),
/// sorted: what tells that a group wrote a snapshot meanwhile.
fn plain_files(dir: &Path, out: &mut Vec<(PathBuf, u64, Option<std::time::SystemTime>)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        if meta.is_dir() {
            if !is_log(&path) {
                plain_files(&path, out)?;
            }
        } else if meta.is_file() && wanted(&path) {
            out.push((path, meta.len(), meta.modified().ok()));
        }
    }
    out.sort();
    Ok(())
}

/// Lock files and temporary files are not copied (nor anything but regular files: a
/// group's member socket is not data).
fn wanted(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name != "LOCK" && !name.ends_with(".tmp")
}

/// A directory holding segment files is a log.
fn is_log(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".log") && n.len() == 24))
    })
}

/// Copy one group: its plain files, then its logs; again if its plain files changed meanwhile.
fn copy_group(src: &Path, dst: &Path, report: &mut StoreBackupReport) -> Result<()> {
    for _ in 0..GROUP_ATTEMPTS {
        if dst.exists() {
            std::fs::remove_dir_all(dst).at(dst)?;
        }
        let mut before = Vec::new();
        plain_files(src, &mut before)?;
        let mut logs = Vec::new();
        let mut files = 0;
        for (path, _, _) in &before {
            let Ok(rel) = path.strip_prefix(src) else { continue };
            match std::fs::read(path) {
                Ok(bytes) => {
                    let to = dst.join(rel);
                    ensure_parent(&to)?;
                    let mut file = storage::create(&to, std::fs::OpenOptions::new().write(true).create_new(true))?;
                    storage::write_all(&mut file, &to, &bytes)?;
                    storage::sync_all(&file, &to)?;
                    files += 1;
                }
                // Pruned meanwhile: the comparison below sees it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        for entry in std::fs::read_dir(src).at(src)? {
            let path = entry.at(src)?.path();
            if path.is_dir() && is_log(&path) {
                let Some(name) = path.file_name() else { continue };
                let log = Log::open_read_only(&path, crate::Options::default())?;
                ensure_parent(&dst.join(name))?;
                logs.push(log.backup(dst.join(name))?);
            }
        }
        let mut after = Vec::new();
        plain_files(src, &mut after)?;
        if after == before {
            if let Some(parent) = dst.parent() {
                names::ensure_dir(dst)?;
                storage::fsync_dir(dst)?;
                storage::fsync_dir(parent)?;
            }
            report.logs.extend(logs);
            report.files += files;
            return Ok(());
        }
    }
    Err(Error::io(
        src,
        std::io::Error::other(format!("the group's files kept changing during {GROUP_ATTEMPTS} copies")),
    ))
}
