//! Options for opening a log.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// When appended records reach stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The operating system writes pages back when it chooses. `append` returning means the
    /// record is in the page cache: it survives a process crash (`kill -9`), not power loss,
    /// until [`crate::Log::sync`] returns.
    None,
    /// A background thread flushes every interval. Power loss loses at most about one
    /// interval of acknowledged records.
    Interval(Duration),
    /// `append` returns only once the record is on stable storage. Concurrent appenders share
    /// one flush (group commit).
    Always,
}

/// What opening does when it finds damaged records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// A torn tail (invalid bytes with nothing valid after them, past the last durable point)
    /// is zeroed and the log opens; damage followed by valid records fails the open with
    /// [`Error::Corruption`] naming the file and byte position.
    TruncateTornTail,
    /// Like `TruncateTornTail`, but on damage followed by valid records the log opens
    /// read-only, ending just before the damage, so that what precedes it can be read out.
    ReadOnlyUpToDamage,
    /// Salvage a damaged active segment and keep appending: cut the log at the damaged batch
    /// (or at the end of a file cut short below the durable point), write the bytes cut away
    /// to `salvaged-{base}-{position}.bin` beside the log, report both in
    /// [`crate::OpenReport`], and continue with the next offset after the last intact batch.
    /// Acknowledged records after the damage leave the log (their bytes are kept in the
    /// salvage file). Damage in a sealed segment opens read-only, as with
    /// `ReadOnlyUpToDamage`. Choose this only to get a log writable again after media damage.
    Salvage,
}

/// Options for [`crate::Log::open`]. Built with consuming setters:
///
/// ```
/// use std::time::Duration;
/// use tidelog::{Durability, Options};
/// let opts = Options::default()
///     .segment_bytes(64 << 20)
///     .durability(Durability::Interval(Duration::from_millis(10)));
/// assert_eq!(opts.segment_bytes, 64 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Bytes reserved per segment file (header included). Default 128 MiB.
    pub segment_bytes: u64,
    /// Bytes of records between two index entries. Default 4096.
    pub index_interval_bytes: u32,
    /// Durability mode. Default [`Durability::None`].
    pub durability: Durability,
    /// Largest record body (key + header section + payload) accepted. Default 16 MiB.
    pub max_record_bytes: u64,
    /// Recovery behaviour on open. Default [`RecoveryMode::TruncateTornTail`].
    pub recovery: RecoveryMode,
    /// Roll to a new segment once the active one is this old (and non-empty). Default none.
    pub segment_max_age: Option<Duration>,
    /// Bytes of the active segment kept faulted in ahead of the writer by a background
    /// thread, so that appends do not stop at the first touch of each new page of the map
    /// (see `docs/benchmarks.md`). Default 8 MiB; 0 turns it off.
    pub prefault_bytes: u64,
}

/// Largest segment the format allows: byte positions in index entries are `u32`.
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_bytes: 128 << 20,
            index_interval_bytes: 4096,
            durability: Durability::None,
            max_record_bytes: 16 << 20,
            recovery: RecoveryMode::TruncateTornTail,
            segment_max_age: None,
            prefault_bytes: 8 << 20,
        }
    }
}

impl Options {
    /// Set [`Options::segment_bytes`].
    #[must_use]
    pub fn segment_bytes(mut self, n: u64) -> Options {
        self.segment_bytes = n;
        self
    }
    /// Set [`Options::index_interval_bytes`].
    #[must_use]
    pub fn index_interval_bytes(mut self, n: u32) -> Options {
        self.index_interval_bytes = n;
        self
    }
    /// Set [`Options::durability`].
    #[must_use]
    pub fn durability(mut self, d: Durability) -> Options {
        self.durability = d;
        self
    }
    /// Set [`Options::max_record_bytes`].
    #[must_use]
    pub fn max_record_bytes(mut self, n: u64) -> Options {
        self.max_record_bytes = n;
        self
    }
    /// Set [`Options::recovery`].
    #[must_use]
    pub fn recovery(mut self, r: RecoveryMode) -> Options {
        self.recovery = r;
        self
    }
    /// Set [`Options::segment_max_age`].
    #[must_use]
    pub fn segment_max_age(mut self, age: Option<Duration>) -> Options {
        self.segment_max_age = age;
        self
    }
    /// Set [`Options::prefault_bytes`].
    #[must_use]
    pub fn prefault_bytes(mut self, n: u64) -> Options {
        self.prefault_bytes = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let min_segment = (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64 * 2;
        if self.segment_bytes < min_segment || self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(Error::InvalidOptions(format!(
                "segment_bytes must be in [{min_segment}, {MAX_SEGMENT_BYTES}], got {}",
                self.segment_bytes
            )));
        }
        if self.index_interval_bytes == 0 {
            return Err(Error::InvalidOptions("index_interval_bytes must be at least 1".into()));
        }
        let max_body = MAX_SEGMENT_BYTES - (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64 - 8;
        if self.max_record_bytes > max_body {
            return Err(Error::InvalidOptions(format!("max_record_bytes must be at most {max_body}")));
        }
        if let Durability::Interval(d) = self.durability {
            if d.is_zero() {
                return Err(Error::InvalidOptions("durability interval must be non-zero".into()));
            }
        }
        Ok(())
    }
}
