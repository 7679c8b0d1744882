//! The wake file (`DIR/wake`, `docs/format.md`): lets a reader in another process sleep until
//! the writer publishes, instead of polling. Two 32-bit words of a small file mapped shared by
//! every process: `seq`, bumped to wake, and `waiters`, the readers asleep (or about to be) on
//! `seq` with a Linux futex (`FUTEX_WAIT`/`FUTEX_WAKE` without the private flag: the sleepers
//! are in other processes).
//!
//! The file is advisory and carries no data. Where it is missing, damaged, cannot be created
//! or mapped, or where there is no futex (not Linux), readers poll as they always did; a
//! damaged file is replaced by the next writer that opens the log.
//!
//! # Protocol, and why no wake-up is lost
//!
//! * **Writer**, after publishing a batch (every frame length stored with `Release`, then the
//!   log's end): a `SeqCst` fence, then a load of `waiters`. Only if it is non-zero: `seq += 1`
//!   and `FUTEX_WAKE` every sleeper. With nobody waiting an append pays one load.
//! * **Reader**: `waiters += 1`, a `SeqCst` fence, `seen = seq`; then it looks at the log
//!   (validates the frames committed since its last look); only if nothing is new does it
//!   `FUTEX_WAIT(seq, seen)` with a timeout; then `waiters -= 1`.
//!
//! The writer's fence and load, and the reader's increment and fence, are `SeqCst`, so one of
//! them comes first in their single total order:
//!
//! * The writer's load comes first (it read 0 and wakes nobody): then its fence precedes the
//!   reader's fence, so the reader's look, after its fence, sees every frame the writer stored
//!   before its fence. The reader finds the records and does not sleep.
//! * The reader's increment comes first: the writer sees `waiters > 0`, bumps `seq` and wakes.
//!   If the reader read `seen` after the bump, it synchronised with the bump (a `SeqCst`
//!   read-modify-write, after the frames) and its look finds the records. If it read `seen`
//!   before the bump, its `FUTEX_WAIT` either finds `seq != seen` and returns at once (the
//!   kernel compares the word under the lock the wake takes), or it is already queued and the
//!   wake reaches it.
//!
//! [`Wake::bump`] (an in-process event for a reader asleep on the futex: see `store::signal`)
//! is the writer's half without the check of `waiters`.
//!
//! A reader never sleeps longer than the recheck interval (10 ms) before it looks again: that
//! bounds the delay in the cases this protocol cannot see, namely a writer that does not bump
//! (an older release of tidelog), a file replaced while mapped (a writer found it damaged), and
//! a writer's open, which resets `waiters` (a reader killed while asleep leaves it raised; the
//! writer would otherwise make a wake call per publish from then on). Those cases cost a delay
//! of up to 10 ms, never a lost record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::io::mmap::SharedWords;

/// The wake file's name in a log directory.
pub(crate) const WAKE_FILE: &str = "wake";
/// Its temporary name while a writer creates it (replaced by the rename, or by the next try).
const WAKE_TMP: &str = "wake.tmp";
/// The file's length in bytes (docs/format.md, "Wake file").
pub(crate) const WAKE_LEN: usize = 64;
/// Bytes 0..8.
const MAGIC: [u8; 8] = *b"TIDEWAKE";
/// Bytes 8..12, little-endian.
const VERSION: u32 = 1;
const VERSION_AT: usize = MAGIC.len();
/// Byte 16: the sequence word (host byte order; only processes on this machine read it).
const SEQ_AT: usize = 16;
/// Byte 20: the waiter count (host byte order).
const WAITERS_AT: usize = SEQ_AT + 4;
const _: () = assert!(VERSION_AT + 4 <= SEQ_AT && WAITERS_AT + 4 <= WAKE_LEN && SEQ_AT.is_multiple_of(4));

/// The longest a reader sleeps on the futex before it looks at the log again (µs).
static RECHECK_US: AtomicU64 = AtomicU64::new(10_000);
/// Futex sleeps in this process that ended at their timeout (for tests: a lost wake-up shows
/// up as a sleep that ran to the caller's deadline).
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// Set the recheck interval of this process (tests set it very long, so that a lost wake-up
/// would show as a sleep that runs to its deadline).
pub(crate) fn set_recheck(d: Duration) {
    RECHECK_US.store(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
}

/// How many futex sleeps in this process ended at their timeout.
pub(crate) fn timed_out_sleeps() -> u64 {
    TIMED_OUT.load(Ordering::Relaxed)
}

/// A mapped, valid wake file.
#[derive(Debug)]
pub(crate) struct Wake {
    words: SharedWords,
}

impl Wake {
    /// For a writer (which holds the log's lock): open the wake file, creating it, or replacing
    /// it if it is short, foreign or damaged; then, if the waiter count is not zero, reset it
    /// and wake everyone.
    /// `None` where the mechanism is unavailable (no futex, the file cannot be created or
    /// mapped): readers then poll.
    pub(crate) fn for_writer(dir: &Path) -> Option<Wake> {
        if !futex::AVAILABLE {
            return None;
        }
        // A creation that crashed before its rename left this; nothing else uses the name.
        let _ = fs::remove_file(dir.join(WAKE_TMP));
        let path = dir.join(WAKE_FILE);
        let wake = match Wake::open_valid(&path) {
            Some(w) => w,
            None => {
                create(dir).ok()?;
                Wake::open_valid(&path)?
            }
        };
        // A reader killed while registered left the count raised: start from zero. Readers
        // asleep now are woken by the bump and register again (see the module comment). A
        // count of zero is left alone, so that an open with nobody waiting writes nothing.
        if wake.waiters().load(Ordering::SeqCst) != 0 {
            wake.waiters().store(0, Ordering::SeqCst);
            wake.bump();
        }
        Some(wake)
    }

    /// For a reader: open an existing, valid wake file for reading and writing (a reader
    /// registers by writing the waiter count). `None` otherwise: the reader polls.
    pub(crate) fn for_reader(dir: &Path) -> Option<Wake> {
        if !futex::AVAILABLE {
            return None;
        }
        Wake::open_valid(&dir.join(WAKE_FILE))
    }

    fn open_valid(path: &Path) -> Option<Wake> {
        let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() != WAKE_LEN as u64 {
            return None;
        }
        let wake = Wake { words: SharedWords::map(&file, WAKE_LEN / 4).ok()? };
        let word = |at: usize| wake.word(at).load(Ordering::SeqCst).to_ne_bytes();
        let magic_ok = word(0) == MAGIC[..4] && word(4) == MAGIC[4..];
        let version_ok = word(VERSION_AT) == VERSION.to_le_bytes();
        (magic_ok && version_ok).then_some(wake)
    }

    /// The word at byte `at` (a multiple of 4 below `WAKE_LEN`, which is what is mapped).
    fn word(&self, at: usize) -> &AtomicU32 {
        &self.words.words()[at / 4]
    }

    fn seq(&self) -> &AtomicU32 {
        self.word(SEQ_AT)
    }

    fn waiters(&self) -> &AtomicU32 {
        self.word(WAITERS_AT)
    }

    /// The writer, after publishing a batch and a `SeqCst` fence: wake the sleepers, if any.
    /// The fence is the caller's (the append path has one for in-process waiters already).
    #[inline]
    pub(crate) fn publish_after_fence(&self) {
        if self.waiters().load(Ordering::SeqCst) != 0 {
            self.bump();
        }
    }

    /// Bump the sequence and wake every sleeper, in every process.
    pub(crate) fn bump(&self) {
        self.seq().fetch_add(1, Ordering::SeqCst);
        futex::wake_all(self.seq());
    }

    /// Register as a waiter and note the sequence. Call before looking at the log; sleep
    /// with [`Waiter::sleep_until`] only if the look found nothing.
    pub(crate) fn register(self: &Arc<Self>) -> Waiter {
        self.waiters().fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let seen = self.seq().load(Ordering::SeqCst);
        Waiter { wake: self.clone(), seen }
    }
}

/// Write a fresh wake file under its temporary name and rename it into place. Only a writer
/// does this, holding the log's lock, so two creators never race. Not fsynced: the file
/// carries no data, and whatever a crash leaves of it is replaced at the next writer's open.
fn create(dir: &Path) -> io::Result<()> {
    let tmp = dir.join(WAKE_TMP);
    let result = write_fresh(&tmp).and_then(|()| fs::rename(&tmp, dir.join(WAKE_FILE)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_fresh(path: &Path) -> io::Result<()> {
    let mut bytes = [0u8; WAKE_LEN];
    bytes[..MAGIC.len()].copy_from_slice(&MAGIC);
    bytes[VERSION_AT..VERSION_AT + 4].copy_from_slice(&VERSION.to_le_bytes());
    let mut f: File = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    f.write_all(&bytes)
}

/// A registered reader (see [`Wake::register`]); unregisters when dropped.
#[derive(Debug)]
pub(crate) struct Waiter {
    wake: Arc<Wake>,
    seen: u32,
}

impl Waiter {
    /// Sleep until the sequence moves from what it was at registration, `deadline` passes or
    /// the recheck interval ends, whichever is first. May return early (a signal, a spurious
    /// wake-up): the caller looks at the log again either way.
    pub(crate) fn sleep_until(&self, deadline: Instant) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let recheck = Duration::from_micros(RECHECK_US.load(Ordering::Relaxed));
        if futex::wait(self.wake.seq(), self.seen, (deadline - now).min(recheck)) {
            TIMED_OUT.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // Saturating: a writer's open may have reset the count while we were registered.
        let _ = self.wake.waiters().fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

/// A log handle's access to its wake file: a writer's is settled at open (its publish path
/// reads it without a lock); a reader's is opened at first use, and tried again at most once
/// a second while it is missing (the writer may create it later).
#[derive(Debug)]
pub(crate) struct WakeSlot {
    dir: PathBuf,
    ready: OnceLock<Arc<Wake>>,
    /// When a reader last tried to open the file; `None` for a writer's slot (never retried).
    last_try: Option<Mutex<Option<Instant>>>,
}

impl WakeSlot {
    const RETRY: Duration = Duration::from_secs(1);

    /// A writer's slot: empty until [`WakeSlot::open_for_writer`].
    pub(crate) fn writer(dir: &Path) -> WakeSlot {
        WakeSlot { dir: dir.to_path_buf(), ready: OnceLock::new(), last_try: None }
    }

    /// A reader's slot: nothing is opened until [`WakeSlot::get`].
    pub(crate) fn reader(dir: &Path) -> WakeSlot {
        WakeSlot { dir: dir.to_path_buf(), ready: OnceLock::new(), last_try: Some(Mutex::new(None)) }
    }

    /// Open (create, repair) the wake file for the writer, once its open has succeeded.
    pub(crate) fn open_for_writer(&self) {
        if self.ready.get().is_none() {
            if let Some(w) = Wake::for_writer(&self.dir) {
                let _ = self.ready.set(Arc::new(w));
            }
        }
    }

    /// The wake file if it is open (never opens it; no lock).
    #[inline]
    pub(crate) fn ready(&self) -> Option<&Arc<Wake>> {
        self.ready.get()
    }

    /// The wake file, opening it if this is a reader's slot and the last try is old enough.
    /// `None`: poll.
    pub(crate) fn get(&self) -> Option<Arc<Wake>> {
        if let Some(w) = self.ready.get() {
            return Some(w.clone());
        }
        let mut last = self.last_try.as_ref()?.lock();
        if let Some(w) = self.ready.get() {
            return Some(w.clone());
        }
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < WakeSlot::RETRY) {
            return None;
        }
        *last = Some(now);
        let w = Arc::new(Wake::for_reader(&self.dir)?);
        Some(self.ready.get_or_init(|| w).clone())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use rustix::io::Errno;
    use rustix::thread::futex::{self, Flags, Timespec};

    pub(super) const AVAILABLE: bool = true;

    /// `FUTEX_WAIT` (shared, not private: the wakers are other processes). Returns true if it
    /// ended at its timeout.
    pub(super) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) -> bool {
        let ts = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // EAGAIN (the word moved before we slept) and EINTR are early returns: the caller
        // looks again.
        matches!(futex::wait(word, Flags::empty(), seen, Some(&ts)), Err(Errno::TIMEDOUT))
    }

    /// `FUTEX_WAKE` every sleeper on `word`, in every process mapping it.
    pub(super) fn wake_all(word: &AtomicU32) {
        let _ = futex::wake(word, Flags::empty(), i32::MAX as u32);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod futex {
    //! No futex here: no wake file is opened, readers poll.
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    pub(super) const AVAILABLE: bool = false;

    pub(super) fn wait(_word: &AtomicU32, _seen: u32, timeout: Duration) -> bool {
        std::thread::sleep(timeout);
        true
    }

    pub(super) fn wake_all(_word: &AtomicU32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_creates_the_file_and_a_reader_shares_its_words() {
        let d = tempfile::tempdir().unwrap();
        assert!(Wake::for_reader(d.path()).is_none(), "a reader creates nothing");
        let w = Arc::new(Wake::for_writer(d.path()).unwrap());
        assert_eq!(fs::metadata(d.path().join(WAKE_FILE)).unwrap().len(), WAKE_LEN as u64);
        let r = Arc::new(Wake::for_reader(d.path()).unwrap());
        let waiter = r.register();
        assert_eq!(w.waiters().load(Ordering::SeqCst), 1);
        let before = r.seq().load(Ordering::SeqCst);
        w.publish_after_fence();
        assert_eq!(r.seq().load(Ordering::SeqCst), before + 1, "a registered waiter makes the writer bump");
        // The sequence moved since registration: the sleep returns at once.
        waiter.sleep_until(Instant::now() + Duration::from_secs(60));
        drop(waiter);
        assert_eq!(w.waiters().load(Ordering::SeqCst), 0);
        w.publish_after_fence();
        assert_eq!(r.seq().load(Ordering::SeqCst), before + 1, "nobody waits: no bump");
    }

    #[test]
    fn a_short_or_foreign_wake_file_is_replaced_by_a_writer_and_ignored_by_a_reader() {
        for garbage in [&b""[..], b"TIDEWAKE", &[0xA5u8; WAKE_LEN], &[0u8; 4096]] {
            let d = tempfile::tempdir().unwrap();
            fs::write(d.path().join(WAKE_FILE), garbage).unwrap();
            assert!(Wake::for_reader(d.path()).is_none());
            assert!(Wake::for_writer(d.path()).is_some());
            assert!(Wake::for_reader(d.path()).is_some());
            assert!(!d.path().join(WAKE_TMP).exists());
        }
    }

    #[test]
    fn a_wake_file_that_cannot_be_created_leaves_the_slot_empty() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join(WAKE_FILE)).unwrap();
        let slot = WakeSlot::writer(d.path());
        slot.open_for_writer();
        assert!(slot.ready().is_none());
        assert!(WakeSlot::reader(d.path()).get().is_none());
        assert!(!d.path().join(WAKE_TMP).exists());
    }

    #[test]
    fn a_waiter_registered_before_a_writer_reopens_never_drives_the_count_below_zero() {
        let d = tempfile::tempdir().unwrap();
        let w = Arc::new(Wake::for_writer(d.path()).unwrap());
        let waiter = w.register();
        let again = Wake::for_writer(d.path()).unwrap();
        drop(waiter);
        assert_eq!(again.waiters().load(Ordering::SeqCst), 0);
    }
}
