//! One generation's SQLite database: opened in WAL mode, its schema created in the
//! transaction that stores its first position, and the position row read and written.
//!
//! The table `tidelog_position` holds one row per view:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `view` | TEXT PRIMARY KEY | the view's name |
//! | `version` | INTEGER | the definition's version that built the tables |
//! | `position` | INTEGER | the next log offset to apply: every record below it is in the tables, none at or above |
//! | `updated_at_us` | INTEGER | when the last batch was committed (µs since the epoch) |

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};

/// The table holding each view's position, written in the same transaction as the rows.
pub const POSITION_TABLE: &str = "tidelog_position";

/// How long a connection waits for another one's lock (a checkpoint, a reader's WAL recovery)
/// before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a database error happened, to locate it.
#[derive(Clone)]
pub(crate) struct DbPlace {
    pub(crate) view: String,
    pub(crate) path: PathBuf,
}

impl DbPlace {
    pub(crate) fn err(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Error {
        Error::ViewDatabase { view: self.view.clone(), path: self.path.clone(), source: e.into() }
    }
}

/// The connection that writes one generation.
pub(crate) struct Database {
    pub(crate) conn: Connection,
    pub(crate) place: DbPlace,
}

impl Database {
    /// Open (creating if missing) the database at `path` for view `view` at `version`,
    /// create the schema and the position row if they are not there, and return it with the
    /// stored position. A database whose row names another version is refused: each version
    /// has its own generation file.
    pub(crate) fn open(path: &Path, view: &str, version: u32, schema: &str) -> Result<(Database, u64)> {
        let place = DbPlace { view: view.to_owned(), path: path.to_path_buf() };
        let mut conn = Connection::open(path).map_err(|e| place.err(e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| place.err(e))?;
        // WAL: readers in other processes read committed snapshots while batches are written.
        // FULL: each commit is durable (fsync of the WAL), as the position it stores claims.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| place.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(place.err(format!("journal mode {mode}, not WAL")));
        }
        conn.execute_batch("PRAGMA synchronous=FULL").map_err(|e| place.err(e))?;
        let tx = conn.transaction().map_err(|e| place.err(e))?;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {POSITION_TABLE} (view TEXT PRIMARY KEY, version INTEGER NOT NULL, \
             position INTEGER NOT NULL, updated_at_us INTEGER NOT NULL)"
        ))
        .map_err(|e| place.err(e))?;
        let stored = read_row(&tx, view).map_err(|e| place.err(e))?;
        let position = match stored {
            Some((v, p)) if v == version => p,
            Some((v, _)) => {
                return Err(place.err(format!("the database holds version {v} of the view, not {version}")));
            }
            None => {
                tx.execute_batch(schema).map_err(|e| place.err(format!("the view's schema: {e}")))?;
                tx.execute(
                    &format!("INSERT INTO {POSITION_TABLE} VALUES (?1, ?2, 0, ?3)"),
                    params![view, version, now()],
                )
                .map_err(|e| place.err(e))?;
                0
            }
        };
        tx.commit().map_err(|e| place.err(e))?;
        Ok((Database { conn, place }, position))
    }

    /// Copy the write-ahead log into the database file and empty it (fsynced), so that the
    /// file alone holds every committed batch.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(|e| self.place.err(e))
    }
}

/// Store `position` as the view's, in the caller's transaction.
pub(crate) fn write_position(tx: &rusqlite::Transaction<'_>, view: &str, position: u64) -> rusqlite::Result<()> {
    tx.execute(
        &format!("UPDATE {POSITION_TABLE} SET position = ?2, updated_at_us = ?3 WHERE view = ?1"),
        params![view, to_sql(position), now()],
    )
    .map(|_| ())
}

/// The view's (version, position) as `conn` sees it (in its current transaction, if any).
pub(crate) fn read_row(conn: &Connection, view: &str) -> rusqlite::Result<Option<(u32, u64)>> {
    conn.query_row(&format!("SELECT version, position FROM {POSITION_TABLE} WHERE view = ?1"), [view], |r| {
        Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?))
    })
    .optional()
    .map(|o| o.map(|(v, p)| (v, u64::try_from(p).unwrap_or(0))))
}

/// A read-only connection to `path`.
pub(crate) fn open_reader(place: &DbPlace) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        &place.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| place.err(e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| place.err(e))?;
    Ok(conn)
}

/// Offsets are below 2^63 in any log that fits on a disk; SQLite integers are signed.
fn to_sql(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn now() -> i64 {
    to_sql(crate::time::now_us())
}
