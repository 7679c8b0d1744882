//! [`ViewHandle`]: one open view. It keeps one generation of the view's state current (see
//! `engine.rs`), answers queries with the position they were computed at, waits for a bound
//! (read-your-writes), reports lag and status, answers as of an older offset or time, and
//! rebuilds a new generation beside the live one.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::projection::{state_as_of, Projection, ProjectionRunner, RunnerOptions, SnapshotDir};
use crate::view::definition::ViewDefinition;
use crate::view::definition_file;
use crate::view::engine::{self, Engine};
use crate::view::follow::Follower;
use crate::view::layout::ViewDir;
use crate::view::position::{ViewAnswer, ViewLag, ViewStatus};
use crate::view::View;

/// How a view is kept current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewMode {
    /// A runner thread follows the log and applies records in batches; appends never wait
    /// for the view. Queries may see a position behind the log: ask for a bound to read your
    /// own writes.
    Async,
    /// The view is brought up to date by each append made through [`Views`](crate::Views)
    /// (under its append lock) before the append returns: it costs the appender one read of
    /// the records it wrote and the view's update, and snapshots are written by the appender.
    Inline,
    /// This process only reads the view's files (another process keeps it current): each
    /// query that finds the log moved folds the newest snapshot and the records after it.
    ReadOnly,
}

/// How a view is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewOptions {
    /// How it is kept current. Default [`ViewMode::Async`].
    pub mode: ViewMode,
    /// Checkpoints (snapshot frequency, retention) and the runner's idle poll. Keep spaced
    /// snapshots ([`SnapshotRetention::spaced`](crate::SnapshotRetention::spaced)) to make
    /// as-of queries of old offsets cheap. Default: [`RunnerOptions::default`] with a
    /// checkpoint every [`VIEW_CHECKPOINT_EVERY_RECORDS`] records (or 10 s).
    pub runner: RunnerOptions,
}

/// Records between two checkpoints of a view by default: 1,000,000. A checkpoint makes the
/// log durable up to the view's position (a snapshot is never ahead of the log after a
/// crash) and writes the state; at the projection layer's default of 10,000, a view kept
/// current at a million records a second flushed the log a hundred times a second, and the
/// writer lost nearly half its rate to those flushes. A crash costs at most this many records
/// replayed on the next open (about 50 ms at the rebuild rate of a count view).
pub const VIEW_CHECKPOINT_EVERY_RECORDS: u64 = 1_000_000;

impl Default for ViewOptions {
    fn default() -> ViewOptions {
        ViewOptions {
            mode: ViewMode::Async,
            runner: RunnerOptions::default().checkpoint_every_records(VIEW_CHECKPOINT_EVERY_RECORDS),
        }
    }
}

impl ViewOptions {
    /// Set [`ViewOptions::mode`].
    #[must_use]
    pub fn mode(mut self, mode: ViewMode) -> ViewOptions {
        self.mode = mode;
        self
    }

    /// Set [`ViewOptions::runner`].
    #[must_use]
    pub fn runner(mut self, runner: RunnerOptions) -> ViewOptions {
        self.runner = runner;
        self
    }
}

pub(crate) struct Inner<P: Projection> {
    pub(crate) def: ViewDefinition,
    pub(crate) log: Log,
    pub(crate) dir: ViewDir,
    pub(crate) projection: P,
    pub(crate) opts: ViewOptions,
    pub(crate) engine: RwLock<Engine<P>>,
    pub(crate) generation: AtomicU64,
    /// A generation of a new definition being built while the stored one answers
    /// (`Ok(generation)`), or why that build failed.
    pub(crate) building: parking_lot::Mutex<Option<std::result::Result<u64, String>>>,
}

/// One open view over a log. Cheap to clone; `Send + Sync`.
///
/// Every answer carries the view's position ([`ViewAnswer::position`]): the state reflected
/// every record below it. [`query_at_least`](ViewHandle::query_at_least) first waits until
/// the position reaches a bound (to read your own write: one past its offset) and answers
/// `Error::ViewNotUpToBound` if it does not in time.
///
/// If the view's update fails (its projection returns an error or panics), the view stops:
/// queries answer `Error::ProjectionStopped` with the offset and the cause, and
/// [`status`](View::status) reports them. The log and other views go on.
pub struct ViewHandle<P: Projection> {
    pub(crate) inner: Arc<Inner<P>>,
}

impl<P: Projection> Clone for ViewHandle<P> {
    fn clone(&self) -> ViewHandle<P> {
        ViewHandle { inner: Arc::clone(&self.inner) }
    }
}

impl<P: Projection> std::fmt::Debug for ViewHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewHandle")
            .field("view", &self.inner.def.name)
            .field("version", &self.inner.def.version)
            .field("mode", &self.inner.opts.mode)
            .finish()
    }
}

impl<P> ViewHandle<P>
where
    P: Projection + Clone + Send + Sync + 'static,
    P::State: Send + Sync + 'static,
{
    /// Open the view `def` computed by `projection` over `log`, with its files in
    /// `views_dir/NAME/`. A writer open of a view whose stored definition differs (another
    /// version) first builds the new definition's state beside the old one and swaps it in
    /// (see [`rebuild`](ViewHandle::rebuild)); a read-only open answers from the stored
    /// generation and fails with `Error::InvalidOptions` if it is of another definition.
    ///
    /// `projection.name()` must be the view's name and its fingerprint the definition's
    /// ([`ViewDefinition::fingerprint`]) or one the application derives.
    pub fn open(log: Log, views_dir: &Path, def: ViewDefinition, projection: P, opts: ViewOptions) -> Result<Self> {
        ViewHandle::open_with_previous(log, views_dir, def, projection, None, opts)
    }

    /// [`open`](ViewHandle::open), given the projection of the stored definition when it
    /// differs and can be rebuilt from its file (`previous`): an async view then answers from
    /// the stored generation at once while the new definition's is built on a thread, and
    /// swaps it in when caught up (see [`ViewStatus::Rebuilding`]).
    pub(crate) fn open_with_previous(
        log: Log,
        views_dir: &Path,
        def: ViewDefinition,
        projection: P,
        previous: Option<P>,
        opts: ViewOptions,
    ) -> Result<Self> {
        def.validate()?;
        if projection.name() != def.name {
            return Err(Error::InvalidOptions(format!(
                "view {:?} is computed by projection {:?}: their names must be the same",
                def.name,
                projection.name()
            )));
        }
        let dir = ViewDir::new(views_dir, &def.name);
        let stored = definition_file::read(&dir.definition_path())?;
        // The generation to build on a thread, when the stored one answers meanwhile.
        let mut deferred: Option<u64> = None;
        let (generation, engine) = match opts.mode {
            ViewMode::ReadOnly => {
                let stored =
                    stored.ok_or_else(|| Error::UnknownView { view: def.name.clone(), dir: views_dir.into() })?;
                if stored.fingerprint != def.fingerprint() {
                    return Err(Error::InvalidOptions(format!(
                        "view {:?} is stored as version {} ({}); this process defines version {} ({})",
                        def.name,
                        stored.version,
                        stored.describe(),
                        def.version,
                        def.kind.describe()
                    )));
                }
                (stored.generation, Engine::ReadOnly(parking_lot::Mutex::new(None)))
            }
            ViewMode::Async | ViewMode::Inline => {
                dir.create()?;
                let generation = match stored {
                    Some(s) if s.fingerprint == def.fingerprint() => s.generation,
                    Some(s) if opts.mode == ViewMode::Async && previous.is_some() => {
                        // Serve the stored generation while the new one builds beside it.
                        deferred =
                            Some(dir.generations()?.last().copied().unwrap_or(s.generation).max(s.generation) + 1);
                        s.generation
                    }
                    Some(s) => {
                        // Another definition: build this one beside it, then swap.
                        let next = dir.generations()?.last().copied().unwrap_or(s.generation).max(s.generation) + 1;
                        crate::view::rebuild::build(
                            &log,
                            projection.clone(),
                            &dir.generation_dir(next),
                            &opts.runner,
                            &mut |_, _| {},
                        )?;
                        next
                    }
                    None => 1,
                };
                let serving = match (&previous, deferred) {
                    (Some(prev), Some(_)) => prev.clone(),
                    _ => projection.clone(),
                };
                let runner =
                    ProjectionRunner::open(log.clone(), serving, dir.generation_dir(generation), opts.runner.clone())
                        .map_err(|e| match e {
                        Error::Locked { .. } => Error::ViewAlreadyOpen { view: def.name.clone() },
                        e => e,
                    })?;
                if deferred.is_none() {
                    // Written after the generation exists (and is locked): a crash before
                    // this leaves a generation the next open reuses.
                    definition_file::write(&dir.definition_path(), &def, generation)?;
                    dir.remove_generations_except(generation)?;
                }
                let engine = match opts.mode {
                    ViewMode::Async => {
                        let mut runner = runner;
                        runner.run_until_caught_up()?;
                        Engine::Async(Follower::spawn(runner)?)
                    }
                    _ => {
                        let mut engine = Engine::Inline { runner: Box::new(runner), failed: None };
                        engine.catch_up()?;
                        engine
                    }
                };
                (generation, engine)
            }
        };
        let handle = ViewHandle {
            inner: Arc::new(Inner {
                def,
                log,
                dir,
                projection,
                opts,
                engine: RwLock::new(engine),
                generation: AtomicU64::new(generation),
                building: parking_lot::Mutex::new(None),
            }),
        };
        if let Some(next) = deferred {
            handle.build_in_background(next)?;
        }
        Ok(handle)
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.inner.def.name
    }

    /// The generation of the view's state that answers queries (a rebuild makes a new one).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The view's directory.
    pub fn dir(&self) -> &Path {
        self.inner.dir.path()
    }

    /// The log the view follows.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// Call `f` with the view's current state; the answer carries the position. Keep `f`
    /// short: an async view's runner waits meanwhile.
    pub fn query<R>(&self, f: impl FnOnce(&P::State) -> R) -> Result<ViewAnswer<R>> {
        let engine = self.inner.engine.read();
        if let Some(e) = engine.unusable(&self.inner.def.name) {
            return Err(e);
        }
        match &*engine {
            Engine::Async(h) => Ok(h.with_state(|s, position| ViewAnswer::new(f(s), position))),
            Engine::Inline { runner, .. } => Ok(ViewAnswer::new(f(runner.state()), runner.position())),
            Engine::ReadOnly(cache) => {
                let mut cache = cache.lock();
                let generation = self.reload_generation()?;
                engine::refresh_read_only(
                    &mut cache,
                    &self.inner.log,
                    &self.inner.projection,
                    &self.inner.dir.generation_dir(generation),
                    generation,
                )?;
                match cache.as_ref() {
                    Some(c) => Ok(ViewAnswer::new(f(&c.state), c.position)),
                    None => Err(Error::Internal("read-only view state missing after refresh")),
                }
            }
            Engine::Stopped => Err(Error::Internal("stopped view passed the usability check")),
        }
    }

    /// Wait until the view's position is at least `bound` (to read your own write: one past
    /// its offset), for up to `timeout`, then answer like [`query`](ViewHandle::query). The
    /// answer's position is at least `bound`; if the view does not reach it in time:
    /// `Error::ViewNotUpToBound` with the view's position and the bound.
    pub fn query_at_least<R>(
        &self,
        bound: u64,
        timeout: Duration,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<ViewAnswer<R>> {
        self.wait_for_position(bound, timeout)?;
        let answer = self.query(f)?;
        debug_assert!(answer.position >= bound);
        Ok(answer)
    }

    /// The view's answer as of `offset`: `f` sees the state reflecting every record below
    /// `offset` and none at or above it, computed from the view's newest snapshot at or below
    /// `offset` and the records after it (keep spaced snapshots to bound that replay). Reads
    /// only; the live view goes on meanwhile.
    ///
    /// Fails with `Error::OffsetOutOfRange` past the log's end, and `Error::RecordsRemoved`
    /// if no snapshot at or below `offset` can be continued from the records the log holds.
    pub fn query_as_of<R>(&self, offset: u64, f: impl FnOnce(&P::State) -> R) -> Result<ViewAnswer<R>> {
        let generation = self.reload_generation()?;
        let dir = SnapshotDir::open_read_only(self.inner.dir.generation_dir(generation));
        let restored = state_as_of(&self.inner.log, &self.inner.projection, &dir, offset)?;
        Ok(ViewAnswer::new(f(&restored.state), restored.position))
    }

    /// The view's answer as of the time `ts_us` (µs since the epoch): the state reflecting
    /// every record with a timestamp at or before it.
    pub fn query_as_of_time<R>(&self, ts_us: u64, f: impl FnOnce(&P::State) -> R) -> Result<ViewAnswer<R>> {
        self.inner.log.refresh()?;
        let offset = match self.inner.log.offset_for_time(ts_us.saturating_add(1))? {
            Some(o) => o,
            None => self.inner.log.next_offset(),
        };
        self.query_as_of(offset, f)
    }

    /// Stop keeping the view current (an async runner writes its final snapshot, an inline
    /// view writes one if it applied records since the last). Queries then fail with
    /// `Error::ProjectionStopped`.
    pub fn stop(&self) -> Result<()> {
        let engine = std::mem::replace(&mut *self.inner.engine.write(), Engine::Stopped);
        engine.stop()
    }

    /// The generation `view.def` names now (a read-only handle follows rebuilds another
    /// process swaps in; a writer knows its own).
    fn reload_generation(&self) -> Result<u64> {
        if self.inner.opts.mode == ViewMode::ReadOnly {
            if let Some(s) = definition_file::read(&self.inner.dir.definition_path())? {
                if s.fingerprint == self.inner.def.fingerprint() {
                    self.inner.generation.store(s.generation, Ordering::Release);
                }
            }
        }
        Ok(self.generation())
    }
}

impl<P> View for ViewHandle<P>
where
    P: Projection + Clone + Send + Sync + 'static,
    P::State: Send + Sync + 'static,
{
    fn definition(&self) -> &ViewDefinition {
        &self.inner.def
    }

    fn mode(&self) -> ViewMode {
        self.inner.opts.mode
    }

    fn position(&self) -> u64 {
        if let Some(p) = self.inner.engine.read().position() {
            return p;
        }
        // A read-only view computes its position when asked.
        self.query(|_| ()).map(|a| a.position).unwrap_or(0)
    }

    fn status(&self) -> ViewStatus {
        let status = self.inner.engine.read().status();
        match (&*self.inner.building.lock(), status) {
            (Some(Ok(generation)), ViewStatus::Running) => ViewStatus::Rebuilding { generation: *generation },
            (Some(Err(cause)), ViewStatus::Running) => {
                ViewStatus::Failed { offset: self.position(), cause: format!("building the new definition: {cause}") }
            }
            (_, status) => status,
        }
    }

    fn lag(&self) -> ViewLag {
        ViewLag::measure(&self.inner.log, self.position())
    }

    fn wait_for_position(&self, bound: u64, timeout: Duration) -> Result<u64> {
        let not_yet = |position| Error::ViewNotUpToBound { view: self.inner.def.name.clone(), position, bound };
        {
            let engine = self.inner.engine.read();
            if let Some(err) = engine.unusable(&self.inner.def.name) {
                return Err(err);
            }
            if let Engine::Async(h) = &*engine {
                // The runner's condvar wakes this as soon as a batch is applied.
                return match h.wait_for(bound, timeout) {
                    Ok(position) => Ok(position),
                    Err(None) => Err(not_yet(h.position())),
                    Err(Some((position, cause))) => {
                        Err(Error::ProjectionStopped { projection: self.inner.def.name.clone(), position, cause })
                    }
                };
            }
        }
        engine::wait_until(&self.inner.log, timeout, || self.catch_up(), bound)?.map_err(not_yet)
    }

    fn catch_up(&self) -> Result<u64> {
        let mut engine = self.inner.engine.write();
        match &mut *engine {
            Engine::Inline { .. } => engine.catch_up(),
            Engine::Async(h) => Ok(h.position()),
            Engine::ReadOnly(_) => {
                drop(engine);
                self.query(|_| ()).map(|a| a.position)
            }
            Engine::Stopped => {
                Err(Error::ProjectionStopped { projection: self.inner.def.name.clone(), position: 0, cause: None })
            }
        }
    }
}
