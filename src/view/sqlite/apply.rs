//! Applying records to one generation's database: up to N records per transaction, and the
//! position after the last of them stored in the same transaction.
//!
//! Order of a batch: read the records from the view's position (the cursor steps over gaps
//! left by compaction), `apply` each inside the transaction, flush the log up to the new
//! position (a writer handle: so the database never vouches for records a power loss could
//! take from the log), store the position, commit. A failure anywhere rolls the whole batch
//! back; when it was a record's `apply`, the records before that one are applied again in a
//! transaction of their own, so the database ends exactly at the failed record.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::view::sqlite::database::{write_position, Database};
use crate::view::sqlite::SqlProjection;

/// One generation's database and the log position it reached.
pub(crate) struct Applier<P: SqlProjection> {
    db: Database,
    log: Log,
    projection: Arc<P>,
    position: u64,
}

impl<P: SqlProjection> Applier<P> {
    /// Open the generation at `path` (creating it) and resume after its stored position.
    pub(crate) fn open(log: Log, projection: Arc<P>, path: &std::path::Path) -> Result<Applier<P>> {
        let (db, position) = Database::open(path, projection.name(), projection.version(), projection.schema())?;
        Ok(Applier { db, log, projection, position })
    }

    /// The next offset to apply.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    /// Apply up to `limit` records from the position, in one transaction; how many.
    /// `Error::ProjectionFailed` names the record whose `apply` failed (or panicked): its
    /// batch is rolled back, then the records before it are applied again and committed, so
    /// the database stops exactly at the failed record. `Error::RecordsRemoved` says
    /// retention removed records the view still needs.
    pub(crate) fn apply_batch(&mut self, limit: usize) -> Result<usize> {
        match self.apply_records(limit, u64::MAX) {
            Err(Error::ProjectionFailed { projection, offset, source }) => {
                if offset > self.position {
                    // Best effort: the failure reported is the record's, whatever this does.
                    let _ = self.apply_records(limit, offset);
                }
                Err(Error::ProjectionFailed { projection, offset, source })
            }
            r => r,
        }
    }

    /// [`apply_batch`](Applier::apply_batch), stopping before the record at `before`.
    fn apply_records(&mut self, limit: usize, before: u64) -> Result<usize> {
        let name = self.projection.name().to_owned();
        let first = self.log.first_offset();
        if self.position < first {
            return Err(Error::RecordsRemoved { projection: name, position: self.position, first_offset: first });
        }
        let mut cursor = self.log.cursor(self.position);
        let place = self.db.place.clone();
        let tx = self.db.conn.transaction().map_err(|e| place.err(e))?;
        let mut applied = 0;
        let mut next = self.position;
        while applied < limit {
            let Some(record) = cursor.next()? else { break };
            let offset = record.offset();
            if offset >= before {
                next = offset;
                break;
            }
            let projection = &self.projection;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| projection.apply(&tx, &record)))
                .unwrap_or_else(|_| Err("the view's apply panicked".into()));
            if let Err(source) = outcome {
                // Dropping `tx` rolls the batch back.
                return Err(Error::ProjectionFailed { projection: name, offset, source });
            }
            applied += 1;
            next = cursor.position();
        }
        if applied == 0 {
            return Ok(0);
        }
        // IMPORTANT: the log is durable up to `next` before the database says it holds it.
        self.log.flush()?;
        write_position(&tx, &name, next).map_err(|e| place.err(e))?;
        tx.commit().map_err(|e| place.err(e))?;
        self.position = next;
        Ok(applied)
    }

    /// Apply batches up to the log's end as it is when called (a writer that appends faster
    /// than batches commit is not chased forever: the runner goes on from there); the records
    /// applied. `progress` is told the position after each batch.
    pub(crate) fn catch_up(&mut self, limit: usize, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        self.log.refresh()?;
        let target = self.log.next_offset();
        let mut total = 0;
        while self.position < target {
            let n = self.apply_batch(limit)?;
            total += n as u64;
            progress(self.position);
            if n < limit {
                break;
            }
        }
        Ok(total)
    }

    /// Make the database file alone hold every committed batch (before it is swapped in).
    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.db.checkpoint()
    }
}
