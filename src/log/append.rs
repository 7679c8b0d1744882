//! Appends with a durability chosen per call, and appends of any iterator of records. The
//! default-durability `append` and `append_batch` are in `writer`; all of them come here.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::options::Durability;
use crate::record::{with_records, AsRecord};

impl Log {
    /// Append one record with the durability `durability` instead of the log's; returns its
    /// offset. See [`Log::append_batch_with`].
    pub fn append_with(&self, record: impl AsRecord, durability: Durability) -> Result<u64> {
        Ok(self.append_batch_with(std::slice::from_ref(&record), durability)?.start)
    }

    /// Append a batch atomically, like [`Log::append_batch`], with the durability
    /// `durability` for this call instead of the log's (the log keeps its mode):
    ///
    /// * [`Durability::Always`]: returns once every record of the batch is on stable storage,
    ///   whatever mode the log was opened in. The flush covers every record appended before
    ///   the batch too, and is shared with concurrent durable appends (group commit).
    /// * [`Durability::None`]: returns once the batch is in the page cache, without waiting
    ///   for a flush even if the log was opened `Always`; the batch reaches stable storage
    ///   with the next flush (a later durable append, [`Log::sync`], an interval tick,
    ///   [`Log::close`]).
    /// * [`Durability::Interval`]: only the log's own mode (what the log would do anyway);
    ///   another interval is refused with [`Error::InvalidOptions`], since only the log's
    ///   background flusher keeps an interval.
    ///
    /// If the flush fails, the error is returned and the log is poisoned, as in `Always`
    /// mode (see `docs/durability.md`): the batch is not acknowledged, and the reopen cuts the
    /// log back to the last flush that succeeded.
    pub fn append_batch_with<R: AsRecord>(&self, records: &[R], durability: Durability) -> Result<Range<u64>> {
        let flush = match durability {
            Durability::Always => true,
            Durability::None => false,
            Durability::Interval(_) if durability == self.inner.opts.durability => false,
            Durability::Interval(d) => {
                return Err(Error::InvalidOptions(format!(
                    "per-call durability Interval({d:?}) is not the log's mode ({:?}): one append \
                     is Always or None",
                    self.inner.opts.durability
                )))
            }
        };
        let range = with_records(records, |records| self.inner.append_batch(records))?;
        if flush {
            self.inner.flush_to(range.end)?;
        }
        Ok(range)
    }

    /// Append the records `records` yields as one atomic batch, with the log's durability;
    /// returns the range of offsets assigned. The items are gathered first (the batch is
    /// checked whole before anything is written); their bytes are not copied.
    ///
    /// ```
    /// use tidelog::{Log, Options};
    /// # fn main() -> Result<(), tidelog::Error> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let log = Log::open(tmp.path().join("events"), Options::default().segment_bytes(1 << 20))?;
    /// let lines = "deposit 10\nwithdraw 3\n";
    /// assert_eq!(log.append_iter(lines.lines())?, 0..2);
    /// # Ok(()) }
    /// ```
    pub fn append_iter<I>(&self, records: I) -> Result<Range<u64>>
    where
        I: IntoIterator,
        I::Item: AsRecord,
    {
        let items: Vec<I::Item> = records.into_iter().collect();
        self.append_batch(&items)
    }
}
