//! Helpers shared by the consumer-group tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use tidelog::{Backoff, Delivery, Group, GroupOptions, Options, Store, StoreOptions};

/// Store options with small files, so tests roll segments and stay light on disk.
pub fn small_store_options() -> StoreOptions {
    StoreOptions::default()
        .topic(Options::default().segment_bytes(64 << 10).index_interval_bytes(512))
        .state_segment_bytes(64 << 10)
        .dead_letter_segment_bytes(64 << 10)
}

pub fn open_store(dir: &Path) -> Store {
    Store::open(dir, small_store_options()).unwrap()
}

/// Group options with short retry delays and no jitter.
pub fn quick_group() -> GroupOptions {
    GroupOptions::default()
        .backoff(Backoff::new(Duration::from_millis(20), Duration::from_millis(200)).jitter(0.0))
        .lease(Duration::from_secs(30))
}

/// Poll until `n` deliveries arrived (or 10 s pass); returns them.
pub fn poll_n(g: &Group, n: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n && std::time::Instant::now() < deadline {
        out.extend(g.poll(n - out.len(), Duration::from_millis(200)).unwrap());
    }
    out
}

pub fn offsets(ds: &[Delivery]) -> Vec<u64> {
    ds.iter().map(|d| d.offset()).collect()
}

pub fn publish_n(t: &tidelog::Topic, n: usize, prefix: &str) -> Vec<u64> {
    (0..n).map(|i| t.publish(tidelog::Record::new(format!("{prefix}-{i}").as_bytes())).unwrap()).collect()
}

/// Every file and directory under `root`, relative, sorted.
pub fn tree(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v.sort();
    v
}

/// Copy the directory tree `from` into `to` (created), so a test can open a committed fixture
/// without changing it.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
