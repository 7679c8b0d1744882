//! An open log holds one file descriptor: its writer lock. Segments are memory-mapped (a map
//! needs no descriptor) and the active index files are opened only while entries are written
//! to them, so thousands of open logs (one per consumer group, say) stay far below the
//! process's descriptor limit.

use std::fs;
use std::path::{Path, PathBuf};

use tidelog::{Durability, Log, Options, Record};

/// The files under `dir` that this process holds open.
fn open_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort();
    v
}

#[test]
fn an_open_log_holds_only_its_writer_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap().join("log");
    for durability in [Durability::None, Durability::Always] {
        let log = Log::open(&dir, Options::default().segment_bytes(16 << 10).durability(durability)).unwrap();
        let payload = [3u8; 500];
        while log.segments().len() < 3 {
            log.append(Record::new(&payload)).unwrap();
        }
        log.sync().unwrap();
        assert_eq!(open_files_under(&dir), vec![dir.join("LOCK")], "{durability:?}");
        let reader = Log::open_read_only(&dir, Options::default()).unwrap();
        reader.refresh().unwrap();
        assert_eq!(open_files_under(&dir), vec![dir.join("LOCK")], "{durability:?}: a follower holds none");
        drop(reader);
        log.close().unwrap();
        assert!(open_files_under(&dir).is_empty(), "{durability:?}: a closed log holds none");
    }
}
