//! Everything that touches the operating system's files: the memory maps (the only `unsafe`
//! code), file-system helpers (block reservation, directory fsync, atomic replacement), and
//! the writer lock.

pub(crate) mod fs;
pub(crate) mod lock;
pub(crate) mod mmap;

pub(crate) use lock::DirLock;
