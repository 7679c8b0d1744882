//! Helpers shared by the integration tests: directory copies, a seeded PRNG, and the
//! "re-execute this test binary as a child process" trick used by the multi-process tests.
//!
//! Each test crate uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod faults;
pub mod powerloss;

use tidelog::{Header, Log, OwnedRecord, Record};

/// Copy every regular file of `src` into `dst` (created if missing). Log directories are
/// flat, so no recursion is needed; anything that is not a regular file is skipped.
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
    }
}

/// A fresh temporary directory for a short-lived case. Sweeps open thousands of copies, and
/// every open and close fsyncs several times, so they run on a RAM file system when one is
/// available (`TIDELOG_TEST_SCRATCH` names another place; the default temporary directory
/// is the fallback). The code paths are the same; only the device is faster.
pub fn scratch_dir() -> tempfile::TempDir {
    let place = std::env::var_os("TIDELOG_TEST_SCRATCH").map(PathBuf::from).unwrap_or_else(|| "/dev/shm".into());
    tempfile::tempdir_in(&place).or_else(|_| tempfile::tempdir()).unwrap()
}

/// A fresh scratch directory holding a copy of the log in `src`; returns the guard and the
/// path of the copied log directory.
pub fn copy_of(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let tmp = scratch_dir();
    let dst = tmp.path().join("log");
    copy_dir(src, &dst);
    (tmp, dst)
}

/// The data files (`*.log`) of a log directory, oldest first.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[path = "../support/rng.rs"]
mod rng;
pub use rng::Rng;

/// FNV-1a, to report payload fingerprints across a process boundary.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A command that re-runs this test binary, executing only the `#[ignore]`d test `name`.
/// The child test returns at once unless the environment variables the caller sets are
/// present, so a plain `cargo test -- --ignored` does nothing harmful.
pub fn child_test(name: &str) -> Command {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--ignored", "--test-threads=1", "-q"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Wait until the child writes a line starting with `READY` to `progress` (panicking with
/// its stderr if it exits or takes longer than `start_timeout`), let it run `run_for`, then
/// SIGKILL it, checking that it was still running and that the signal is what ended it.
pub fn kill_when_ready(
    mut child: std::process::Child,
    progress: &std::path::Path,
    round: u64,
    start_timeout: std::time::Duration,
    run_for: std::time::Duration,
) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let stderr_of = |child: &mut std::process::Child| {
        let mut stderr = String::new();
        child.stderr.take().expect("piped stderr").read_to_string(&mut stderr).expect("read stderr");
        stderr
    };
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(progress).is_ok_and(|p| p.starts_with("READY")) {
        if child.try_wait().unwrap().is_some() || started.elapsed() > start_timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("round {round}: the child did not start: {}", stderr_of(&mut child));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    std::thread::sleep(run_for);
    let exited = child.try_wait().unwrap();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let stderr = stderr_of(&mut child);
    assert!(exited.is_none(), "round {round}: the child exited by itself ({status}): {stderr}");
    assert_eq!(status.signal(), Some(9), "round {round}: not killed by SIGKILL: {status}: {stderr}");
}

// ---- the file layout, read independently of the library ---------------------------------

/// Bytes of a segment file header; the first record frame starts here.
pub const HEADER_LEN: u64 = 64;

pub fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
pub fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// One record frame found in a segment file.
#[derive(Debug, Clone, Copy)]
pub struct FrameAt {
    pub pos: u64,
    /// `frame_len`: header + body, without alignment padding.
    pub len: u64,
    pub offset: u64,
    /// Records that follow in the same batch.
    pub batch_rest: u32,
    /// Offset and byte position of the first record of this frame's batch.
    pub batch_start_off: u64,
    pub batch_start_pos: u64,
    /// The durable mark the frame carries (flag bit 1: the offset before which the log was
    /// durable when the frame was written), if any.
    pub durable_mark: Option<u64>,
}

/// Walk the frames of a segment file by their length fields (format/frame.rs: frame_len u32 at
/// 0, offset u64 at 8, batch_rest u32 at 24, flags u16 at 36, a durable mark u64 at 40 when
/// flag bit 1 is set; frames 8-byte aligned from byte 64), up to the first zero length.
pub fn parse_frames(bytes: &[u8]) -> Vec<FrameAt> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN as usize;
    let mut batch: Option<(u64, u64)> = None;
    while pos + 40 <= bytes.len() {
        let len = le_u32(bytes, pos) as usize;
        if len == 0 {
            break;
        }
        let offset = le_u64(bytes, pos + 8);
        let batch_rest = le_u32(bytes, pos + 24);
        let (batch_start_off, batch_start_pos) = batch.unwrap_or((offset, pos as u64));
        let flags = u16::from_le_bytes([bytes[pos + 36], bytes[pos + 37]]);
        let durable_mark = (flags & 2 != 0 && pos + 48 <= bytes.len()).then(|| le_u64(bytes, pos + 40));
        out.push(FrameAt {
            pos: pos as u64,
            len: len as u64,
            offset,
            batch_rest,
            batch_start_off,
            batch_start_pos,
            durable_mark,
        });
        batch = if batch_rest == 0 { None } else { Some((batch_start_off, batch_start_pos)) };
        pos += (len + 7) & !7;
    }
    out
}

// ---- records as a test wrote them -------------------------------------------------------

/// A record as the test wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
}

/// Append `batch` atomically.
pub fn append(log: &Log, batch: &[Want]) -> Range<u64> {
    let headers: Vec<Vec<Header<'_>>> =
        batch.iter().map(|w| w.headers.iter().map(|(n, v)| Header { name: n, value: v }).collect()).collect();
    let records: Vec<Record<'_>> = batch
        .iter()
        .zip(&headers)
        .map(|(w, h)| {
            let r = Record::new(&w.payload).headers(h);
            match &w.key {
                Some(k) => r.key(k),
                None => r,
            }
        })
        .collect();
    log.append_batch(&records).unwrap()
}

/// `got` is exactly `want`, at `offset`.
pub fn assert_same(got: &OwnedRecord, offset: u64, want: &Want, ctx: &str) {
    assert_eq!(got.offset, offset, "{ctx}: offset");
    assert_eq!(got.key, want.key, "{ctx}: key of {offset}");
    assert_eq!(got.headers, want.headers, "{ctx}: headers of {offset}");
    assert_eq!(got.payload, want.payload, "{ctx}: payload of {offset}");
}
