//! [`SqliteView`]: one open SQLite read model. Opening it takes the directory's lock, picks
//! (or builds) the generation, and starts the runner thread; queries read committed batches
//! through a read-only connection; a rebuild builds the next generation beside the live one
//! and swaps the link once it has caught up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::io::DirLock;
use crate::log::Log;
use crate::view::position::{ViewAnswer, ViewLag, ViewStatus};
use crate::view::sqlite::apply::Applier;
use crate::view::sqlite::database::{open_reader, read_row, DbPlace};
use crate::view::sqlite::files::DbFiles;
use crate::view::sqlite::runner::{End, Runner};
use crate::view::sqlite::SqlProjection;
use crate::view::{View, ViewDefinition, ViewMode};

/// How a SQLite read model is kept current.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Records applied per transaction (at most). Default 1,024. Each transaction costs an
    /// fsync of SQLite's write-ahead log (and a flush of the log, if not yet durable).
    pub batch_records: usize,
    /// While the log is idle, how often the runner looks at its stop flag. Default 100 ms.
    pub idle_poll: Duration,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions { batch_records: 1024, idle_poll: Duration::from_millis(100) }
    }
}

impl SqliteOptions {
    /// Set [`SqliteOptions::batch_records`] (at least 1).
    #[must_use]
    pub fn batch_records(mut self, n: usize) -> SqliteOptions {
        self.batch_records = n;
        self
    }

    /// Set [`SqliteOptions::idle_poll`].
    #[must_use]
    pub fn idle_poll(mut self, d: Duration) -> SqliteOptions {
        self.idle_poll = d;
        self
    }
}

struct Inner<P: SqlProjection> {
    def: ViewDefinition,
    log: Log,
    files: DbFiles,
    projection: Arc<P>,
    opts: SqliteOptions,
    /// The runner of the generation in use; `None` once stopped.
    runner: RwLock<Option<Runner<P>>>,
    generation: AtomicU64,
    /// The handle's read connection, and the generation it reads.
    reader: Mutex<Option<(u64, Connection)>>,
    _lock: DirLock,
}

/// A read model in SQLite tables, kept current by a runner thread that follows the log
/// (see [`SqlProjection`]). Cheap to clone; `Send + Sync`.
///
/// The database is `DIR/NAME.db` ([`database_path`](SqliteView::database_path)): open it
/// with any SQL tool (`sqlite3 DIR/NAME.db`). Every committed batch is a consistent snapshot
/// whose position is the row of `tidelog_position` it holds. Answers of
/// [`query`](SqliteView::query) carry that position.
pub struct SqliteView<P: SqlProjection> {
    inner: Arc<Inner<P>>,
}

impl<P: SqlProjection> Clone for SqliteView<P> {
    fn clone(&self) -> SqliteView<P> {
        SqliteView { inner: Arc::clone(&self.inner) }
    }
}

impl<P: SqlProjection> std::fmt::Debug for SqliteView<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteView")
            .field("view", &self.inner.def.name)
            .field("version", &self.inner.def.version)
            .field("generation", &self.generation())
            .finish()
    }
}

impl<P: SqlProjection> SqliteView<P> {
    /// Open the read model `projection` over `log`, with its files in `dir` (created if
    /// missing; one process keeps a directory's view current: another open fails with
    /// `Error::ViewAlreadyOpen`). The runner thread starts from the stored position.
    ///
    /// If the stored generation was built by another version of the projection, the open
    /// first builds the new version's database beside it, from the start of the log up to
    /// its end, then swaps it in (processes reading the old database keep reading it until
    /// they reopen). Fails with `Error::RecordsRemoved` if retention removed records the
    /// view needs, and `Error::ViewDatabase` if SQLite fails (a schema that does not run).
    pub fn open(log: Log, dir: impl AsRef<Path>, projection: P, opts: SqliteOptions) -> Result<SqliteView<P>> {
        let def = ViewDefinition::fold(projection.name(), projection.version(), "sqlite");
        def.validate()?;
        if opts.batch_records == 0 {
            return Err(Error::InvalidOptions("a SQLite view's batch_records must be at least 1".into()));
        }
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = DirLock::acquire(dir).map_err(|e| match e {
            Error::Locked { .. } => Error::ViewAlreadyOpen { view: def.name.clone() },
            e => e,
        })?;
        let files = DbFiles::new(dir, &def.name);
        let projection = Arc::new(projection);
        let (generation, applier) = match files.current()? {
            Some(g) if stored_version(&files, &def.name, g)? == Some(def.version) => {
                (g, Applier::open(log.clone(), Arc::clone(&projection), &files.generation_path(g))?)
            }
            current => {
                // A new view, or another version: build beside whatever answers now.
                let next = files.generations()?.last().copied().unwrap_or(0).max(current.unwrap_or(0)) + 1;
                let mut applier = Applier::open(log.clone(), Arc::clone(&projection), &files.generation_path(next))?;
                if current.is_some() {
                    applier.catch_up(opts.batch_records, &mut |_| {})?;
                }
                applier.checkpoint()?;
                files.install(next)?;
                (next, applier)
            }
        };
        files.remove_generations_except(generation)?;
        let runner = Runner::spawn(applier, opts.batch_records, opts.idle_poll)?;
        Ok(SqliteView {
            inner: Arc::new(Inner {
                def,
                log,
                files,
                projection,
                opts,
                runner: RwLock::new(Some(runner)),
                generation: AtomicU64::new(generation),
                reader: Mutex::new(None),
                _lock: lock,
            }),
        })
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.inner.def.name
    }

    /// The path SQL tools open: `DIR/NAME.db`, a link to the current generation's file.
    pub fn database_path(&self) -> PathBuf {
        self.inner.files.current_path()
    }

    /// The generation answering now (a rebuild makes a new one).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The projection that defines the view.
    pub fn projection(&self) -> &P {
        &self.inner.projection
    }

    /// Call `f` with a read-only connection inside a read transaction: it sees one committed
    /// batch, and the answer carries that batch's position (every record below it is in the
    /// tables, none at or above). Fails with `Error::ProjectionStopped` once the view stopped
    /// or failed (the database file itself stays consistent at its stored position and can
    /// still be opened directly).
    pub fn query<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<ViewAnswer<R>> {
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        self.read(f)
    }

    /// [`query`](SqliteView::query) without looking at the runner.
    fn read<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<ViewAnswer<R>> {
        let generation = self.generation();
        let place = self.place(generation);
        let mut reader = self.inner.reader.lock();
        if reader.as_ref().is_none_or(|(g, _)| *g != generation) {
            *reader = Some((generation, open_reader(&place)?));
        }
        let Some((_, conn)) = reader.as_ref() else { return Err(Error::Internal("reader connection missing")) };
        let tx = conn.unchecked_transaction().map_err(|e| place.err(e))?;
        let position = read_row(&tx, &self.inner.def.name)
            .map_err(|e| place.err(e))?
            .map(|(_, p)| p)
            .ok_or_else(|| place.err("no position row for the view"))?;
        let value = f(&tx).map_err(|e| place.err(e))?;
        tx.finish().map_err(|e| place.err(e))?;
        Ok(ViewAnswer::new(value, position))
    }

    /// Wait until the view's position is at least `bound` (to read your own write: one past
    /// its offset), for up to `timeout`, then answer like [`query`](SqliteView::query): the
    /// answer's position is at least `bound`. If the view does not get there in time:
    /// `Error::ViewNotUpToBound` with its position and the bound.
    pub fn query_at_least<R>(
        &self,
        bound: u64,
        timeout: Duration,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<ViewAnswer<R>> {
        self.wait_for_position(bound, timeout)?;
        self.query(f)
    }

    /// Build the view again from the start of the log into a new generation beside the live
    /// one (which keeps answering and following the log meanwhile), then swap it in: stop the
    /// live runner, bring the new database up to the log's end, checkpoint it, make
    /// `NAME.db` link to it (an atomic rename), start its runner, remove the old files. A
    /// kill before the rename leaves the old generation named (the stray new one is removed
    /// at the next open); after it, the new one. `progress` is told the new generation's
    /// position after each batch. Returns the new generation.
    pub fn rebuild(&self, mut progress: impl FnMut(u64)) -> Result<u64> {
        let inner = &self.inner;
        let old = self.generation();
        let next = inner.files.generations()?.last().copied().unwrap_or(old).max(old) + 1;
        let mut applier =
            Applier::open(inner.log.clone(), Arc::clone(&inner.projection), &inner.files.generation_path(next))?;
        applier.catch_up(inner.opts.batch_records, &mut progress)?;
        let mut slot = inner.runner.write();
        let Some(live) = slot.take() else {
            return Err(Error::ProjectionStopped { projection: inner.def.name.clone(), position: 0, cause: None });
        };
        let old_applier = live.stop();
        let swapped = applier
            .catch_up(inner.opts.batch_records, &mut progress)
            .and_then(|_| applier.checkpoint())
            .and_then(|()| inner.files.install(next));
        if let Err(e) = swapped {
            // The old generation goes on answering, if it was still running.
            if let Ok(old_applier) = old_applier {
                *slot = Some(Runner::spawn(old_applier, inner.opts.batch_records, inner.opts.idle_poll)?);
            }
            return Err(e);
        }
        inner.generation.store(next, Ordering::Release);
        *slot = Some(Runner::spawn(applier, inner.opts.batch_records, inner.opts.idle_poll)?);
        drop(slot);
        *inner.reader.lock() = None;
        inner.files.remove_generations_except(next)?;
        Ok(next)
    }

    /// Stop the runner after the batch in progress (everything applied is committed).
    /// Queries then fail with `Error::ProjectionStopped`; the database stays as it is.
    pub fn stop(&self) -> Result<()> {
        let runner = self.inner.runner.write().take();
        match runner {
            Some(r) => r.stop().map(|_| ()),
            None => Ok(()),
        }
    }

    /// Whether a rebuild replaced `generation` (waiting for a swap in progress to end).
    fn swapped_since(&self, generation: u64) -> bool {
        let _swap_done = self.inner.runner.read();
        self.generation() != generation
    }

    fn place(&self, generation: u64) -> DbPlace {
        DbPlace { view: self.inner.def.name.clone(), path: self.inner.files.generation_path(generation) }
    }

    fn stopped(&self, position: u64, cause: Option<String>) -> Error {
        Error::ProjectionStopped { projection: self.inner.def.name.clone(), position, cause }
    }

    fn unusable(&self) -> Option<Error> {
        match self.status() {
            ViewStatus::Failed { offset, cause } => Some(self.stopped(offset, Some(cause))),
            ViewStatus::Stopped => Some(self.stopped(self.position(), None)),
            _ => None,
        }
    }
}

/// The version stored in generation `g`'s position row (`None`: no such row, or no file).
fn stored_version(files: &DbFiles, view: &str, g: u64) -> Result<Option<u32>> {
    let place = DbPlace { view: view.to_owned(), path: files.generation_path(g) };
    if !place.path.exists() {
        return Ok(None);
    }
    let conn = open_reader(&place)?;
    match read_row(&conn, view) {
        Ok(row) => Ok(row.map(|(v, _)| v)),
        // A database whose creation a kill interrupted may not have the table yet.
        Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.starts_with("no such table") => Ok(None),
        Err(e) => Err(place.err(e)),
    }
}

impl<P: SqlProjection> View for SqliteView<P> {
    fn definition(&self) -> &ViewDefinition {
        &self.inner.def
    }

    fn mode(&self) -> ViewMode {
        ViewMode::Async
    }

    fn position(&self) -> u64 {
        match &*self.inner.runner.read() {
            Some(r) => r.position(),
            // Stopped: the position the database stores.
            None => self.read(|_| Ok(())).map(|a| a.position).unwrap_or(0),
        }
    }

    fn status(&self) -> ViewStatus {
        match self.inner.runner.read().as_ref().map(Runner::end) {
            Some(None) => ViewStatus::Running,
            Some(Some(End::Failed { offset, cause })) => ViewStatus::Failed { offset, cause },
            Some(Some(End::Stopped)) | None => ViewStatus::Stopped,
        }
    }

    fn lag(&self) -> ViewLag {
        ViewLag::measure(&self.inner.log, self.position())
    }

    fn wait_for_position(&self, bound: u64, timeout: Duration) -> Result<u64> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            // Waited on without the runner's lock, so that a rebuild can swap runners meanwhile.
            let generation = self.generation();
            let Some(watch) = self.inner.runner.read().as_ref().map(Runner::watch) else {
                return Err(self.stopped(self.position(), None));
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            return match watch.wait_for(bound, left) {
                Ok(p) => Ok(p),
                Err(None) => Err(Error::ViewNotUpToBound {
                    view: self.inner.def.name.clone(),
                    position: watch.position(),
                    bound,
                }),
                // A rebuild stopped that runner to swap in the next generation's; it holds the
                // runner's lock until the swap is done.
                Err(Some(End::Stopped)) if self.swapped_since(generation) => continue,
                Err(Some(End::Stopped)) => Err(self.stopped(watch.position(), None)),
                Err(Some(End::Failed { offset, cause })) => Err(self.stopped(offset, Some(cause))),
            };
        }
    }

    fn catch_up(&self) -> Result<u64> {
        Ok(self.position())
    }
}
