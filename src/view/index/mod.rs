//! Secondary index views: a value (the record's key, a header, or what a user function
//! returns) mapped to the offsets of the records that carry it.
//!
//! | file            | job                                                              |
//! |-----------------|------------------------------------------------------------------|
//! | `definition.rs` | [`IndexOptions`]; the definition checked, its fingerprint            |
//! | `memory.rs`     | one segment's entries in memory (the active segment's)           |
//! | `sealed.rs`     | one sealed segment's file: validated, mapped, written            |
//! | `sync.rs`       | keeping up with the log: new records, rolls, retention, rebuilds |
//! | `query.rs`      | answers over every segment                                       |
//! | `view.rs`       | the index as a [`View`](crate::View): mode, status, lag, waits   |
//!
//! An index is a view of kind `ViewKind::Index { by }` ([`ViewDefinition::index`]); what it
//! indexes is a [`GroupBy`](crate::GroupBy): the key, a header, a JSON field of the payload
//! or a user function. It is kept current by its queries and by [`IndexView::catch_up`]
//! (which [`Views::append`](crate::Views::append) calls: it is an inline view), not by a
//! thread of its own.
//!
//! Per segment: a sealed segment's entries are in an immutable, checksummed file beside it
//! (`{base:020}.{name}.vindex`, `docs/format.md`), mapped; the active segment's are in
//! memory, rebuilt from its records when the view opens. Files are derived data: one that is
//! missing, damaged, stale (another definition) or built for other records is built again
//! from the log; retention and compaction remove a segment's files with it.

mod definition;
mod memory;
mod query;
mod sealed;
mod sync;
mod view;

use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::record::OwnedRecord;
use crate::view::definition::ViewDefinition;

pub use definition::IndexOptions;
pub use query::IndexHit;

use definition::Checked;
use sync::State;

/// What an index view found and did since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexReport {
    /// Sealed segments whose index file was valid and is used.
    pub files_used: u64,
    /// Index files written (for segments sealed since, or built again).
    pub files_written: u64,
    /// Index files found unusable (damaged, stale, built for other records) and built again
    /// from the log.
    pub files_rebuilt: u64,
    /// Index files (and leftover temporary files) of segments that no longer exist, removed.
    pub files_removed: u64,
    /// Segments whose entries are held in memory now (the active one, and sealed ones whose
    /// file a read-only handle could not use).
    pub segments_in_memory: usize,
}

/// A secondary index over one log: the offsets (or records) carrying a value, the newest of
/// them, their count, and for an ordered index the records of a range of values.
///
/// The view is current through [`IndexView::position`]. A query first catches up with the
/// records appended through this process's writer handle (so a query after an append sees
/// it); a handle over a read-only log catches up with another process's writer when
/// [`IndexView::catch_up`] is called.
///
/// Heap: the active segment's entries (each distinct value once, and 4 bytes per indexed
/// record); sealed segments' files are mapped.
#[derive(Clone)]
pub struct IndexView {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    def: ViewDefinition,
    checked: Checked,
    opts: IndexOptions,
    state: RwLock<State>,
}

impl std::fmt::Debug for IndexView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexView").field("name", &self.inner.def.name).field("position", &self.position()).finish()
    }
}

impl IndexView {
    /// Open the index `def` (a [`ViewDefinition::index`]) over `log`: use the valid files of
    /// sealed segments, build the others from the records (and write them, unless `log` is
    /// read-only), and read the active segment's records into memory. A writer also removes
    /// files of segments that no longer exist.
    pub fn open(log: &Log, def: ViewDefinition, opts: IndexOptions) -> Result<IndexView> {
        let checked = definition::check(&def, opts)?;
        let inner = Inner { log: log.clone(), def, checked, opts, state: RwLock::new(State::default()) };
        if !log.is_read_only() {
            let removed = inner.remove_stray_files()?;
            inner.state.write().report.files_removed += removed;
        }
        let view = IndexView { inner: Arc::new(inner) };
        view.catch_up()?;
        Ok(view)
    }

    /// The definition.
    pub fn definition(&self) -> &ViewDefinition {
        &self.inner.def
    }

    /// How the index keeps its values.
    pub fn options(&self) -> IndexOptions {
        self.inner.opts
    }

    /// The offset through which the view is current: it reflects every record below it.
    pub fn position(&self) -> u64 {
        self.inner.state.read().position
    }

    /// What the view found and did since it was opened.
    pub fn report(&self) -> IndexReport {
        let st = self.inner.state.read();
        IndexReport { segments_in_memory: st.in_memory(), ..st.report.clone() }
    }

    /// Bring the view up to the log's end (for a read-only log: to what the writer has
    /// committed, after a refresh): index new records, write the files of segments sealed
    /// since, drop segments retention removed, rebuild segments compaction rewrote. Returns
    /// the new position.
    pub fn catch_up(&self) -> Result<u64> {
        self.inner.catch_up()
    }

    /// Offsets of the records indexed under `value`, in increasing order.
    pub fn offsets(&self, value: &[u8]) -> Result<Vec<u64>> {
        self.inner.current()?;
        let st = self.inner.state.read();
        Ok(query::offsets(st.oldest_first(), value))
    }

    /// The records indexed under `value`, in offset order. A record removed from the log
    /// since the view last caught up (retention, compaction) is not returned.
    pub fn records(&self, value: &[u8]) -> Result<Vec<OwnedRecord>> {
        let mut out = Vec::new();
        for offset in self.offsets(value)? {
            match self.inner.log.read(offset) {
                Ok(r) => out.push(r),
                Err(Error::OffsetCompacted { .. } | Error::OffsetOutOfRange { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Offsets of the newest `n` records indexed under `value`, newest first.
    pub fn newest(&self, value: &[u8], n: usize) -> Result<Vec<u64>> {
        self.inner.current()?;
        let st = self.inner.state.read();
        Ok(query::newest(st.newest_first(), value, n))
    }

    /// How many records are indexed under `value`.
    pub fn count(&self, value: &[u8]) -> Result<u64> {
        self.inner.current()?;
        let st = self.inner.state.read();
        Ok(query::count(st.oldest_first(), value))
    }

    /// The first `limit` records whose value lies between `lo` and `hi`, ordered by value,
    /// then offset. Only an ordered index ([`IndexOptions::ordered`]) answers; another gives
    /// [`Error::IndexNotOrdered`].
    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, limit: usize) -> Result<Vec<IndexHit>> {
        if !self.inner.opts.ordered {
            return Err(Error::IndexNotOrdered { index: self.inner.def.name.clone() });
        }
        self.inner.current()?;
        let st = self.inner.state.read();
        Ok(query::range(st.oldest_first(), lo, hi, limit))
    }
}
