//! A power-loss simulator on tidelog's storage seam, in the spirit of redb's crash-test
//! backend. It watches every call the engine makes on one log directory and keeps, beside the
//! live files (the page cache), the durable image: for each file, only what a successful
//! flush covered, and for the directory, only the names a directory fsync covered.
//!
//! * `fsync`/`fdatasync` of a file: the durable image of that file becomes its whole content.
//! * `msync` of a range of a mapped segment: that range of the map (read back through the
//!   page cache, which a shared map is) is copied into the durable image.
//! * directory fsync: the durable names become the directory's current entries.
//! * creating a file starts it with an empty durable image.
//!
//! [`PowerLoss::crash_image`] builds what the disk could hold after a power cut now: the
//! durable image, plus any subset of what was not flushed, page by page (a later page may
//! survive while an earlier one is lost), and for names not covered by a directory fsync,
//! either the old or the new entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tidelog::testing::{install, FaultInjector, Installed, IoCall, IoOp};

use super::Rng;

/// Granularity at which the kernel writes back (or fails to write back) a file.
pub const PAGE: usize = 4096;

/// Which unflushed pages survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survival {
    /// Each file keeps a prefix of its unflushed pages: writeback in file order, cut anywhere.
    InOrder,
    /// Each unflushed page survives or not independently of the others.
    AnySubset,
}

#[derive(Debug, Default)]
struct Images {
    /// Durable content by inode number.
    content: HashMap<u64, Vec<u8>>,
    /// Durable directory entries: file name to inode number.
    names: BTreeMap<String, u64>,
}

/// The simulator for one log directory. Install with [`PowerLoss::on`].
#[derive(Debug)]
pub struct PowerLoss {
    dir: PathBuf,
    images: Mutex<Images>,
}

fn ino(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

fn live_names(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if let (Ok(name), Ok(m)) = (e.file_name().into_string(), e.metadata()) {
            if m.is_file() {
                out.insert(name, m.ino());
            }
        }
    }
    out
}

impl PowerLoss {
    /// Watch `dir` (which must be empty or missing: its current files count as durable).
    pub fn on(dir: &Path) -> (Arc<PowerLoss>, Installed) {
        let sim = Arc::new(PowerLoss { dir: dir.to_path_buf(), images: Mutex::new(Images::default()) });
        {
            let mut im = sim.images.lock();
            im.names = live_names(dir);
            for (name, &i) in &im.names.clone() {
                im.content.insert(i, fs::read(dir.join(name)).unwrap_or_default());
            }
        }
        let guard = install(dir, sim.clone());
        (sim, guard)
    }

    /// Write into `dst` (created) the files the disk could hold if power were cut now.
    pub fn crash_image(&self, dst: &Path, rng: &mut Rng, survival: Survival) {
        fs::create_dir_all(dst).unwrap();
        let im = self.images.lock();
        let live = live_names(&self.dir);
        let all: BTreeSet<&String> = im.names.keys().chain(live.keys()).collect();
        for name in all {
            let chosen = match (im.names.get(name), live.get(name)) {
                (Some(&d), Some(&l)) if d == l => Some(d),
                (Some(&d), Some(&l)) => Some(if rng.range(0, 2) == 0 { d } else { l }),
                (Some(&d), None) => (rng.range(0, 2) == 0).then_some(d),
                (None, Some(&l)) => (rng.range(0, 2) == 0).then_some(l),
                (None, None) => None,
            };
            let Some(i) = chosen else { continue };
            let durable = im.content.get(&i).cloned().unwrap_or_default();
            // The live content, if the inode is still reachable under its live name.
            let now = live.iter().find(|(_, &l)| l == i).and_then(|(n, _)| fs::read(self.dir.join(n)).ok());
            let bytes = match now {
                Some(now) => mix(&durable, &now, rng, survival),
                None => durable,
            };
            fs::write(dst.join(name), bytes).unwrap();
        }
    }
}

/// Durable bytes plus some of the unflushed pages of `now`.
fn mix(durable: &[u8], now: &[u8], rng: &mut Rng, survival: Survival) -> Vec<u8> {
    let len = if durable.len() == now.len() || rng.range(0, 2) == 0 { now.len() } else { durable.len() };
    let mut out = vec![0u8; len];
    let page = |b: &[u8], p: usize| -> Vec<u8> {
        let mut v = vec![0u8; PAGE];
        let (s, e) = ((p * PAGE).min(b.len()), ((p + 1) * PAGE).min(b.len()));
        v[..e - s].copy_from_slice(&b[s..e]);
        v
    };
    let pages = len.div_ceil(PAGE);
    let unflushed: Vec<usize> = (0..pages).filter(|&p| page(durable, p) != page(now, p)).collect();
    // In order: a cut among the unflushed pages; those before it reached the disk.
    let cut = rng.range(0, unflushed.len() as u64 + 1) as usize;
    for p in 0..pages {
        let keep_new = match unflushed.iter().position(|&u| u == p) {
            None => true,
            Some(k) => match survival {
                Survival::InOrder => k < cut,
                Survival::AnySubset => rng.range(0, 2) == 0,
            },
        };
        let src = if keep_new { page(now, p) } else { page(durable, p) };
        let (s, e) = (p * PAGE, ((p + 1) * PAGE).min(len));
        out[s..e].copy_from_slice(&src[..e - s]);
    }
    out
}

impl FaultInjector for PowerLoss {
    fn before(&self, _: &IoCall<'_>) -> io::Result<()> {
        Ok(())
    }

    fn after(&self, call: &IoCall<'_>) {
        let mut im = self.images.lock();
        match call.op {
            IoOp::Create => {
                if let Some(i) = ino(call.path) {
                    im.content.insert(i, Vec::new());
                }
            }
            IoOp::Fsync | IoOp::Fdatasync => {
                if let (Some(i), Ok(bytes)) = (ino(call.path), fs::read(call.path)) {
                    im.content.insert(i, bytes);
                }
            }
            IoOp::Msync => {
                let (Some(i), Some((from, to))) = (ino(call.path), call.range) else { return };
                let (from, to) = (from as usize, to as usize);
                let mut buf = vec![0u8; to - from];
                let f = fs::File::open(call.path).unwrap();
                f.read_exact_at(&mut buf, from as u64).unwrap();
                let d = im.content.entry(i).or_default();
                if d.len() < to {
                    d.resize(to, 0);
                }
                d[from..to].copy_from_slice(&buf);
            }
            IoOp::FsyncDir if call.path == self.dir => {
                im.names = live_names(&self.dir);
            }
            _ => {}
        }
    }
}
