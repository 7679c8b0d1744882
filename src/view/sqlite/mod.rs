//! A read model kept in SQLite tables (the `sqlite` feature): the application's
//! [`SqlProjection`] writes rows, a runner thread follows the log and applies records in
//! batches, one SQLite transaction per batch, and stores the view's position in the table
//! `tidelog_position` inside the same transaction. A crash therefore never loses or repeats an
//! update: the database holds exactly the records below the position it stores, and a restart
//! resumes from it. Any SQL tool can query the database while tidelog keeps it current (WAL
//! mode: readers in other processes see committed batches, each a consistent snapshot).
//!
//! - [`SqlProjection`] (this file): what the application defines: a name, a version, the
//!   schema and how one record changes the tables.
//! - `files.rs`: the view's directory: the lock, the stable database path (a symbolic link)
//!   and one database file per generation.
//! - `database.rs`: one generation's connection: WAL, the schema, the position row.
//! - `apply.rs`: applying a batch of records in one transaction.
//! - `runner.rs`: the thread that follows the log.
//! - `handle.rs`: [`SqliteView`], the open view: queries, lag, waits, rebuild, stop.
//!
//! Rust 1.89 or newer (rusqlite 0.43); the default build does not need it.

mod apply;
mod database;
mod files;
mod handle;
mod runner;

use crate::projection::BoxError;
use crate::record::RecordView;

pub use database::POSITION_TABLE;
pub use handle::{SqliteOptions, SqliteView};

/// A read model in SQLite: the tables it keeps ([`schema`](SqlProjection::schema)) and how
/// one record changes them ([`apply`](SqlProjection::apply)). Opened with
/// [`SqliteView::open`].
///
/// `apply` runs inside the transaction that also stores the view's position: it must change
/// the database only through `tx`, and must not commit or roll it back. It must be
/// deterministic in the record (a rebuild applies the same records again to a new database).
/// Its failure (an error or a panic) stops the view at that record: the batch it was part of
/// is rolled back, and the records before it are applied again and committed, so the database
/// holds every record below the failed one and stores its offset as the position.
pub trait SqlProjection: Send + Sync + 'static {
    /// The view's name: 1 to 255 bytes of `[A-Za-z0-9._-]`, not starting with `.`. The
    /// database is `DIR/NAME.db`.
    fn name(&self) -> &str;

    /// The version of the definition (schema and `apply`): bump it when either changes, and
    /// the next open rebuilds the read model beside the old one and swaps it in.
    fn version(&self) -> u32;

    /// SQL statements creating the read model's tables (and indexes), run once when a
    /// database is created, in the transaction that stores its first position.
    fn schema(&self) -> &str;

    /// Apply one record to the tables, through `tx`.
    fn apply(&self, tx: &rusqlite::Transaction<'_>, record: &RecordView<'_>) -> Result<(), BoxError>;
}
