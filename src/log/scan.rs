//! Reading without copying, the easy way: a cursor from the start of the log that follows
//! retention, and whole-range scans (`for_each`, `try_for_each`, `fold`, `try_fold`) that lend
//! each record from the map. Built on the cursor's public `next` and `seek` only.
//!
//! A [`Cursor`] lends each [`RecordView`] from its own state, so it cannot be a
//! [`std::iter::Iterator`] (whose items may outlive the next call); these methods take a
//! closure instead, which receives each record borrowed for the duration of the call.

use crate::error::{Error, Result};
use crate::log::{Cursor, Log};
use crate::record::RecordView;

impl Log {
    /// A cursor from the first record still in the log, borrowing each record from the map.
    ///
    /// The start is taken when this is called, and retention running meanwhile does not make
    /// it fail: if the first segment is deleted between looking up the first offset and
    /// positioning the cursor, it starts at the new first offset; once positioned, the cursor
    /// holds the segment list it was positioned in, so deleting the segment it reads from
    /// does not take its records away from it (its map stays open until the cursor moves on).
    /// A cursor placed with [`Log::cursor`]`(log.first_offset())` instead looks the segment
    /// up at its first read, and reports [`Error::OffsetOutOfRange`] if retention removed it
    /// by then.
    ///
    /// ```
    /// use tidelog::{Log, Options};
    /// # fn main() -> Result<(), tidelog::Error> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let log = Log::open(tmp.path().join("events"), Options::default().segment_bytes(1 << 20))?;
    /// log.append_batch(&["a", "bb", "ccc"])?;
    /// let mut bytes = 0;
    /// log.cursor_from_start().for_each(|rec| bytes += rec.payload().len())?;
    /// assert_eq!(bytes, 6);
    /// # Ok(()) }
    /// ```
    pub fn cursor_from_start(&self) -> Cursor {
        loop {
            let first = self.first_offset();
            let mut cursor = self.cursor(first);
            if self.inner.segments.read().is_empty() {
                // Nothing to position in (a read-only handle of an empty directory): the
                // cursor looks at its first read.
                return cursor;
            }
            match cursor.position_now() {
                Ok(()) => return cursor,
                // Retention moved the start between the two looks: take the new one.
                Err(Error::OffsetOutOfRange { first: now, .. }) if now > first => continue,
                // Left to the first read to report.
                Err(_) => return self.cursor(first),
            }
        }
    }

    /// Call `f` with each record from `offset` to the current end, borrowed from the map, and
    /// return the offset to continue from (one past the last record read; `offset` if there
    /// was none). A scan from the start: [`Log::cursor_from_start`] with
    /// [`Cursor::for_each`].
    ///
    /// ```
    /// use tidelog::{Log, Options};
    /// # fn main() -> Result<(), tidelog::Error> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let log = Log::open(tmp.path().join("events"), Options::default().segment_bytes(1 << 20))?;
    /// log.append_batch(&["a", "b"])?;
    /// let mut seen = Vec::new();
    /// let resume = log.scan(0, |rec| seen.push(rec.offset()))?;
    /// log.append("c")?;
    /// log.scan(resume, |rec| seen.push(rec.offset()))?;            // only the new record
    /// assert_eq!(seen, [0, 1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn scan(&self, offset: u64, f: impl FnMut(RecordView<'_>)) -> Result<u64> {
        let mut cursor = self.cursor(offset);
        cursor.for_each(f)?;
        Ok(cursor.position())
    }
}

impl Cursor {
    /// Call `f` with each record from the cursor's position to the current end of the log,
    /// borrowed from the map; the cursor is then at the end (call again later to read what
    /// was appended since). On a read error, the cursor stays at the record it could not read.
    pub fn for_each(&mut self, mut f: impl FnMut(RecordView<'_>)) -> Result<()> {
        self.try_for_each(|rec| {
            f(rec);
            Ok::<(), Error>(())
        })
    }

    /// Like [`Cursor::for_each`], for an `f` that may fail: the first error of `f` stops the
    /// scan and is returned, with the cursor left at the record `f` failed on, so that calling
    /// again retries it. A read error is returned as `E::from`.
    ///
    /// ```
    /// use tidelog::{Log, Options};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let log = Log::open(tmp.path().join("events"), Options::default().segment_bytes(1 << 20))?;
    /// log.append_batch(&["10", "x", "30"])?;
    /// let mut cursor = log.cursor_from_start();
    /// let mut sum = 0;
    /// let failed = cursor.try_for_each(|rec| -> Result<(), Box<dyn std::error::Error>> {
    ///     sum += std::str::from_utf8(rec.payload())?.parse::<i64>()?;
    ///     Ok(())
    /// });
    /// assert!(failed.is_err());
    /// assert_eq!((sum, cursor.position()), (10, 1));             // at the record that failed
    /// # Ok(()) }
    /// ```
    pub fn try_for_each<E: From<Error>>(
        &mut self,
        mut f: impl FnMut(RecordView<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.try_fold((), |(), rec| f(rec))
    }

    /// Fold every record from the cursor's position to the current end of the log into an
    /// accumulator, each record borrowed from the map; the cursor is then at the end.
    ///
    /// ```
    /// use tidelog::{Log, Options};
    /// # fn main() -> Result<(), tidelog::Error> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let log = Log::open(tmp.path().join("events"), Options::default().segment_bytes(1 << 20))?;
    /// log.append_batch(&[("acct-7", "ab"), ("acct-8", "cde")])?;
    /// let bytes = log.cursor_from_start().fold(0, |n, rec| n + rec.payload().len())?;
    /// assert_eq!(bytes, 5);
    /// # Ok(()) }
    /// ```
    pub fn fold<B>(&mut self, init: B, mut f: impl FnMut(B, RecordView<'_>) -> B) -> Result<B> {
        self.try_fold(init, |acc, rec| Ok::<B, Error>(f(acc, rec)))
    }

    /// Like [`Cursor::fold`], for an `f` that may fail: the first error of `f` stops the fold
    /// and is returned (the accumulator is dropped), with the cursor left at the record `f`
    /// failed on. A read error is returned as `E::from`, with the cursor at the record it
    /// could not read.
    pub fn try_fold<B, E: From<Error>>(
        &mut self,
        init: B,
        mut f: impl FnMut(B, RecordView<'_>) -> std::result::Result<B, E>,
    ) -> std::result::Result<B, E> {
        let mut acc = init;
        loop {
            let at = self.position();
            let rec = match self.next() {
                Ok(Some(rec)) => rec,
                Ok(None) => return Ok(acc),
                Err(e) => {
                    // Whether or not the cursor moved before failing, it stays at the record.
                    self.seek(at);
                    return Err(E::from(e));
                }
            };
            let offset = rec.offset();
            match f(acc, rec) {
                Ok(next) => acc = next,
                Err(e) => {
                    self.seek(offset);
                    return Err(e);
                }
            }
        }
    }
}
