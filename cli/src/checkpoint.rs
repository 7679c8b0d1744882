//! Why a log was not closed cleanly, for `info`: was its checkpoint written by a writer that
//! has not closed (yet), or is the file missing or damaged?
//!
//! Whether the last writer closed cleanly comes from the library (`OpenReport`); the library
//! does not say why not, so this reads the 64-byte `checkpoint` file as `docs/format.md`
//! specifies it (magic, format version, CRC-32 of bytes [0, 60)), and nothing more.

use std::fs;
use std::io;
use std::path::Path;

const FILE: &str = "checkpoint";
const LEN: usize = 64;
const MAGIC: &[u8; 8] = b"TDLGCKP\0";
const VERSION_AT: usize = 8;
const CRC_AT: usize = 60;

/// What the checkpoint file of a log that was not closed cleanly holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unclean {
    /// A valid checkpoint without the clean mark: a writer has the log open, or stopped
    /// without closing it (a crash, a kill).
    WriterOpenOrCrashed,
    /// There is no checkpoint file.
    Missing,
    /// The file could not be read.
    Unreadable(String),
    /// The file is not a valid checkpoint: why.
    Damaged(String),
}

impl Unclean {
    /// A stable machine-readable name.
    pub fn name(&self) -> &'static str {
        match self {
            Unclean::WriterOpenOrCrashed => "not_closed",
            Unclean::Missing => "checkpoint_missing",
            Unclean::Unreadable(_) => "checkpoint_unreadable",
            Unclean::Damaged(_) => "checkpoint_damaged",
        }
    }

    /// A sentence for humans.
    pub fn describe(&self) -> String {
        const NEXT: &str = "the next writer validates the last segment";
        match self {
            Unclean::WriterOpenOrCrashed => "last writer is still open or did not close cleanly".to_owned(),
            Unclean::Missing => format!("no checkpoint file: the last writer did not close the log cleanly ({NEXT})"),
            Unclean::Unreadable(e) => {
                format!("the checkpoint file is unreadable ({e}): whether the last writer closed cleanly is unknown ({NEXT})")
            }
            Unclean::Damaged(why) => {
                format!("the checkpoint file is damaged ({why}): whether the last writer closed cleanly is unknown ({NEXT})")
            }
        }
    }
}

/// Look at the checkpoint of the log in `dir`, which the library found not clean.
pub fn why_unclean(dir: &Path) -> Unclean {
    let b = match fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Unclean::Missing,
        Err(e) => return Unclean::Unreadable(e.to_string()),
    };
    if b.len() != LEN {
        return Unclean::Damaged(format!("{} bytes, expected {LEN}", b.len()));
    }
    if &b[..8] != MAGIC {
        return Unclean::Damaged("bad magic".to_owned());
    }
    let le_u32 = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if le_u32(VERSION_AT) != tidelog::FORMAT_VERSION {
        return Unclean::Damaged(format!("format version {}", le_u32(VERSION_AT)));
    }
    if crc32fast::hash(&b[..CRC_AT]) != le_u32(CRC_AT) {
        return Unclean::Damaged("checksum mismatch".to_owned());
    }
    Unclean::WriterOpenOrCrashed
}
