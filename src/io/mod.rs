//! Everything that touches the operating system's files.
//!
//! | file      | job                                                                        |
//! |-----------|----------------------------------------------------------------------------|
//! | `mmap`    | memory maps: the only `unsafe` code                                         |
//! | `storage` | the storage seam: every write, fallocate, fsync, msync, rename goes through it |
//! | `fs`      | directory fsync, atomic file replacement (on the seam)                     |
//! | `poison`  | the poisoned state after a failed flush, and the durable limit it leaves   |
//! | `lock`    | the writer lock                                                            |
//! | `wake`    | the wake file: readers in other processes sleep until the writer publishes |
//! | `prefault` | faulting in the active segment ahead of the writer, on a background thread |

pub(crate) mod fs;
pub(crate) mod lock;
pub(crate) mod mmap;
pub(crate) mod poison;
pub(crate) mod prefault;
pub(crate) mod storage;
pub(crate) mod wake;

pub(crate) use lock::DirLock;
