//! The storage seam: every call by which the engine changes a file or makes a change durable
//! (create, write, fallocate, fsync, fdatasync, msync, rename, directory fsync) goes through a
//! function of this module, so that tests can make any one of them fail and can watch what
//! reached stable storage (the power-loss simulator in `tests/common`).
//!
//! A hook ([`FaultInjector`]) is installed for one directory and sees only the calls on paths
//! inside it, so tests that each use their own directory run in parallel. With no hook
//! installed anywhere, which is always the case outside tests, the cost of the seam is one
//! relaxed atomic load per call, next to a system call.
//!
//! Reads are not part of the seam: a failed read is an ordinary error that changes nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{IoContext, Result};
use crate::io::mmap::SegmentMap;

/// A call that changes a file or makes a change durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoOp {
    /// Create (or truncate) a file.
    Create,
    /// Write bytes into a file (`write`, `pwrite`).
    Write,
    /// Reserve a file's blocks (`fallocate`).
    Fallocate,
    /// `fsync` of a file: data and metadata.
    Fsync,
    /// `fdatasync` of a file: data (and the size, if it changed).
    Fdatasync,
    /// `msync(MS_SYNC)` of a range of a memory map (`range` says which bytes).
    Msync,
    /// Rename a file over another (`path` is the new name).
    Rename,
    /// `fsync` of a directory, making the names created, renamed or removed in it durable.
    FsyncDir,
    /// Remove a file.
    Remove,
}

/// One call as a hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct IoCall<'a> {
    /// What is done.
    pub op: IoOp,
    /// The file (for a rename, the new name; for a directory fsync, the directory).
    pub path: &'a Path,
    /// For a rename, the old name.
    pub from: Option<&'a Path>,
    /// For `Msync`, `Fallocate` and a positioned `Write`, the byte range of the file concerned.
    pub range: Option<(u64, u64)>,
}

/// A test hook on the storage seam. Not for production use: see the module documentation.
pub trait FaultInjector: Send + Sync {
    /// Called before the call is made. An error makes the call fail with it, without doing
    /// anything.
    fn before(&self, call: &IoCall<'_>) -> io::Result<()>;
    /// Called after the call succeeded.
    fn after(&self, call: &IoCall<'_>) {
        let _ = call;
    }
}

/// How many hooks are installed, so that the common case (none) costs one load.
static INSTALLED: AtomicUsize = AtomicUsize::new(0);
type Registry = RwLock<Vec<(u64, PathBuf, Arc<dyn FaultInjector>)>>;
static HOOKS: Registry = RwLock::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Keeps a hook installed; dropping it uninstalls the hook.
#[derive(Debug)]
#[must_use = "the hook is uninstalled when this guard drops"]
pub struct Installed {
    id: u64,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let mut hooks = HOOKS.write();
        let before = hooks.len();
        hooks.retain(|(id, _, _)| *id != self.id);
        INSTALLED.fetch_sub(before - hooks.len(), Ordering::Release);
    }
}

/// Install `hook` for every call on a path inside `dir` (compared as given: use the same
/// spelling of the directory as the log is opened with). Test support only.
pub fn install(dir: &Path, hook: Arc<dyn FaultInjector>) -> Installed {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    HOOKS.write().push((id, dir.to_path_buf(), hook));
    INSTALLED.fetch_add(1, Ordering::Release);
    Installed { id }
}

fn hook_for(path: &Path) -> Option<Arc<dyn FaultInjector>> {
    if INSTALLED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    HOOKS.read().iter().find(|(_, dir, _)| path.starts_with(dir)).map(|(_, _, h)| h.clone())
}

/// Run `f` as the call `call`, letting a hook fail it before and observe it after.
fn seam<T>(call: IoCall<'_>, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let Some(hook) = hook_for(call.path) else { return f() };
    hook.before(&call)?;
    let out = f()?;
    hook.after(&call);
    Ok(out)
}

fn call<'a>(op: IoOp, path: &'a Path) -> IoCall<'a> {
    IoCall { op, path, from: None, range: None }
}

/// Create (or truncate) `path` with `opts` (which must include `create`).
pub(crate) fn create(path: &Path, opts: &OpenOptions) -> Result<File> {
    seam(call(IoOp::Create, path), || opts.open(path)).at(path)
}

/// Write all of `bytes` at the file's cursor.
pub(crate) fn write_all(file: &mut File, path: &Path, bytes: &[u8]) -> Result<()> {
    seam(call(IoOp::Write, path), || file.write_all(bytes)).at(path)
}

/// Write all of `bytes` at byte `at` of the file.
pub(crate) fn write_all_at(file: &File, path: &Path, bytes: &[u8], at: u64) -> Result<()> {
    let c = IoCall { range: Some((at, at + bytes.len() as u64)), ..call(IoOp::Write, path) };
    seam(c, || file.write_all_at(bytes, at)).at(path)
}

/// `fsync` a file.
pub(crate) fn sync_all(file: &File, path: &Path) -> Result<()> {
    seam(call(IoOp::Fsync, path), || file.sync_all()).at(path)
}

/// `fdatasync` a file.
pub(crate) fn sync_data(file: &File, path: &Path) -> Result<()> {
    seam(call(IoOp::Fdatasync, path), || file.sync_data()).at(path)
}

/// Reserve `len` bytes of blocks for `file`, so that a full disk is an error now rather than
/// a SIGBUS on a later write into the map. Falls back to `set_len` (sparse) only on file
/// systems that do not support reservation, where that is the best available.
pub(crate) fn fallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    let c = IoCall { range: Some((0, len)), ..call(IoOp::Fallocate, path) };
    seam(c, || match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => file.set_len(len),
        Err(e) => Err(io::Error::from(e)),
    })
    .at(path)
}

/// Write the dirty pages of bytes `[from, to)` of `map` (the file `path`) to stable storage.
pub(crate) fn msync(map: &SegmentMap, path: &Path, from: usize, to: usize) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    let c = IoCall { range: Some((from as u64, to as u64)), ..call(IoOp::Msync, path) };
    seam(c, || map.flush_range(from, to)).at(path)
}

/// Rename `from` over `to`.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    let c = IoCall { from: Some(from), ..call(IoOp::Rename, to) };
    seam(c, || std::fs::rename(from, to)).at(to)
}

/// Remove a file. A file that does not exist is not an error.
pub(crate) fn remove(path: &Path) -> Result<()> {
    seam(call(IoOp::Remove, path), || match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    })
    .at(path)
}

/// Fsync a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    seam(call(IoOp::FsyncDir, dir), || File::open(dir).and_then(|d| d.sync_all())).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every call and counts them.
    struct FailAll(std::sync::atomic::AtomicUsize);

    impl FaultInjector for FailAll {
        fn before(&self, _: &IoCall<'_>) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(io::Error::from_raw_os_error(5))
        }
    }

    #[test]
    fn a_hook_sees_only_its_own_directory_and_only_while_installed() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let hook = Arc::new(FailAll(AtomicUsize::new(0)));
        let guard = install(a.path(), hook.clone());
        assert!(fsync_dir(b.path()).is_ok(), "another directory is not affected");
        assert!(fsync_dir(a.path()).is_err());
        let f = a.path().join("f");
        assert!(create(&f, OpenOptions::new().write(true).create(true)).is_err());
        assert!(!f.exists(), "a failed call is not made");
        assert_eq!(hook.0.load(Ordering::Relaxed), 2);
        drop(guard);
        assert!(fsync_dir(a.path()).is_ok());
        assert!(create(&f, OpenOptions::new().write(true).create(true)).is_ok());
        assert_eq!(hook.0.load(Ordering::Relaxed), 2, "uninstalled");
    }
}
