//! [`Views`]: the views of one log (a plain [`Log`] or a store's topic), by name; the views
//! directory they live in; and the inline append path, which brings inline views up to date
//! before an append returns.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::log::Log;
use crate::projection::Projection;
use crate::record::Record;
use crate::store::Topic;
use crate::view::aggregate::AggregateView;
use crate::view::definition::ViewDefinition;
use crate::view::definition_file::{self, StoredView};
use crate::view::handle::{ViewHandle, ViewMode, ViewOptions};
use crate::view::index::{IndexOptions, IndexView};
use crate::view::layout::{self, ViewDir, DEFINITION_FILE};
use crate::view::position::ViewLag;
use crate::view::View;

struct Shared {
    log: Log,
    topic: Option<Topic>,
    dir: PathBuf,
    views: RwLock<BTreeMap<String, Arc<dyn View>>>,
    /// Held by an append through the registry while it appends and updates inline views,
    /// so that inline views see appends in order and each append returns after its views.
    append: Mutex<()>,
    /// The inline views registered: with none, an append goes straight to the log (no lock,
    /// no look at the registry), so async views cost the writer nothing here.
    inline: AtomicUsize,
}

/// The views of one log: open them by definition, look them up by name, and append through
/// the registry so that inline views are current when the append returns. Cheap to clone.
///
/// Files: a plain log's views live in `LOG_DIR.views/` (beside the log directory, or any
/// directory given to [`Views::open_in`]); a topic's in `STORE/views/TOPIC/`. Each view has
/// its own directory there, `NAME/`, holding `view.def` and its state (`docs/format.md`).
#[derive(Clone)]
pub struct Views {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views").field("dir", &self.shared.dir).field("views", &self.names()).finish()
    }
}

impl Views {
    /// The views of `log`, in `LOG_DIR.views/`.
    pub fn open(log: Log) -> Views {
        let dir = layout::views_dir_beside(log.dir());
        Views::open_in(log, dir)
    }

    /// The views of `log`, in `dir`.
    pub fn open_in(log: Log, dir: impl AsRef<Path>) -> Views {
        Views::new(log, None, dir.as_ref().to_path_buf())
    }

    /// The views of a store's topic, in `STORE/views/TOPIC/`. Takes the topic's writer (the
    /// views' snapshots flush the log first); appends through [`Views::append`] publish to
    /// the topic (waking its consumer groups).
    pub fn for_topic(topic: &Topic) -> Result<Views> {
        Ok(Views::new(topic.writer()?, Some(topic.clone()), topic.views_dir()))
    }

    /// The views of a store's topic for reading only (a read-only follower of the topic's
    /// log): open views with [`ViewMode::ReadOnly`] to query another process's views.
    pub fn for_topic_read_only(topic: &Topic) -> Result<Views> {
        let log = topic.fresh_reader()?.map(|(l, _)| l).ok_or_else(|| Error::NotFound { path: topic.dir().into() })?;
        Ok(Views::new(log, None, topic.views_dir()))
    }

    fn new(log: Log, topic: Option<Topic>, dir: PathBuf) -> Views {
        Views {
            shared: Arc::new(Shared {
                log,
                topic,
                dir,
                views: RwLock::new(BTreeMap::new()),
                append: Mutex::new(()),
                inline: AtomicUsize::new(0),
            }),
        }
    }

    /// The views directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The log the views follow.
    pub fn log(&self) -> &Log {
        &self.shared.log
    }

    /// The directory of view `name` (its `view.def` and state).
    pub fn view_dir(&self, name: &str) -> PathBuf {
        ViewDir::new(&self.shared.dir, name).path().to_path_buf()
    }

    /// Open the aggregate view `def` (see [`AggregateView`]) and register it.
    ///
    /// If the stored definition differs and is a built-in aggregate, an async view answers
    /// from the stored generation at once while the new definition's is built beside it
    /// ([`ViewStatus::Rebuilding`](crate::ViewStatus::Rebuilding)); an inline one is built
    /// before this returns.
    pub fn aggregate(&self, def: ViewDefinition, opts: ViewOptions) -> Result<ViewHandle<AggregateView>> {
        let projection = AggregateView::new(&def)?;
        let stored = definition_file::read(&ViewDir::new(&self.shared.dir, &def.name).definition_path())?;
        let previous = stored
            .filter(|s| s.fingerprint != def.fingerprint())
            .and_then(|s| s.builtin_definition().ok())
            .and_then(|d| AggregateView::new(&d).ok());
        if self.shared.views.read().contains_key(&def.name) {
            return Err(Error::ViewAlreadyOpen { view: def.name });
        }
        let handle =
            ViewHandle::open_with_previous(self.shared.log.clone(), &self.shared.dir, def, projection, previous, opts)?;
        self.register(Arc::new(handle.clone()))?;
        Ok(handle)
    }

    /// Open a view computed by `projection` (a user fold: `def` is usually
    /// [`ViewDefinition::fold`], or an aggregate with user functions) and register it.
    /// `projection.name()` must be the view's name.
    pub fn projection<P>(&self, def: ViewDefinition, projection: P, opts: ViewOptions) -> Result<ViewHandle<P>>
    where
        P: Projection + Clone + Send + Sync + 'static,
        P::State: Send + Sync + 'static,
    {
        if self.shared.views.read().contains_key(&def.name) {
            return Err(Error::ViewAlreadyOpen { view: def.name });
        }
        let handle = ViewHandle::open(self.shared.log.clone(), &self.shared.dir, def, projection, opts)?;
        self.register(Arc::new(handle.clone()))?;
        Ok(handle)
    }

    /// Open the secondary index `def` ([`ViewDefinition::index`]; see [`IndexView`]), store
    /// its definition in the views directory (so `tidelog view` lists and queries it) unless
    /// the log is read-only, and register it. It is an inline view: [`Views::append`] and its
    /// queries bring it up to date. Its files live beside the log's segments.
    pub fn index(&self, def: ViewDefinition, opts: IndexOptions) -> Result<IndexView> {
        if self.shared.views.read().contains_key(&def.name) {
            return Err(Error::ViewAlreadyOpen { view: def.name });
        }
        let index = IndexView::open(&self.shared.log, def.clone(), opts)?;
        if !self.shared.log.is_read_only() {
            let dir = ViewDir::new(&self.shared.dir, &def.name);
            dir.create()?;
            let flags = if opts.ordered { definition_file::FLAG_ORDERED } else { 0 };
            // Generation 1 always: an index's files are per segment, checked at each open.
            definition_file::write_with_flags(&dir.definition_path(), &def, 1, flags)?;
        }
        self.register(Arc::new(index.clone()))?;
        Ok(index)
    }

    /// Open the stored index `name` from its definition file (see [`Views::open_stored`]).
    pub fn open_stored_index(&self, name: &str) -> Result<IndexView> {
        let stored = definition_file::read(&ViewDir::new(&self.shared.dir, name).definition_path())?
            .ok_or_else(|| Error::UnknownView { view: name.to_owned(), dir: self.shared.dir.clone() })?;
        let def = stored.builtin_definition()?;
        self.index(def, IndexOptions::default().ordered(stored.ordered))
    }

    /// Register a view opened elsewhere (a secondary index, for example), so that it is
    /// listed, looked up and, if inline, updated by [`Views::append`].
    pub fn register(&self, view: Arc<dyn View>) -> Result<()> {
        let name = view.definition().name.clone();
        let mut views = self.shared.views.write();
        if views.contains_key(&name) {
            return Err(Error::ViewAlreadyOpen { view: name });
        }
        if view.mode() == ViewMode::Inline {
            self.shared.inline.fetch_add(1, Ordering::SeqCst);
        }
        views.insert(name, view);
        Ok(())
    }

    /// Forget view `name` (it is not stopped: drop or stop its handles for that). Returns it.
    pub fn unregister(&self, name: &str) -> Option<Arc<dyn View>> {
        let view = self.shared.views.write().remove(name);
        if view.as_ref().is_some_and(|v| v.mode() == ViewMode::Inline) {
            self.shared.inline.fetch_sub(1, Ordering::SeqCst);
        }
        view
    }

    /// The registered view `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn View>> {
        self.shared.views.read().get(name).cloned()
    }

    /// Names of the registered views, sorted.
    pub fn names(&self) -> Vec<String> {
        self.shared.views.read().keys().cloned().collect()
    }

    /// The lag of every registered view, by name.
    pub fn lags(&self) -> Vec<(String, ViewLag)> {
        self.shared.views.read().iter().map(|(n, v)| (n.clone(), v.lag())).collect()
    }

    /// The views stored in the views directory (whether open or not), from their
    /// definition files, sorted by name. A damaged definition file is an error located in
    /// it.
    pub fn stored(&self) -> Result<Vec<StoredView>> {
        Views::stored_in(&self.shared.dir)
    }

    /// The views stored in the views directory `dir` (see [`Views::stored`]).
    pub fn stored_in(dir: &Path) -> Result<Vec<StoredView>> {
        let mut out = Vec::new();
        for name in crate::store::list_names(dir)? {
            if let Some(s) = definition_file::read(&dir.join(&name).join(DEFINITION_FILE))? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Open the stored view `name` from its definition file alone (aggregates without user
    /// functions); `Error::ViewNeedsApplication` for one that needs the application's code,
    /// `Error::UnknownView` if none is stored. Secondary indexes are opened with
    /// [`Views::open_stored_index`].
    pub fn open_stored(&self, name: &str, opts: ViewOptions) -> Result<ViewHandle<AggregateView>> {
        let stored = definition_file::read(&ViewDir::new(&self.shared.dir, name).definition_path())?
            .ok_or_else(|| Error::UnknownView { view: name.to_owned(), dir: self.shared.dir.clone() })?;
        let def = stored.builtin_definition()?;
        self.aggregate(def, opts)
    }

    /// Append one record, then bring every inline view up to date, before returning its
    /// offset. See [`Views::append_batch`].
    pub fn append(&self, record: Record<'_>) -> Result<u64> {
        Ok(self.append_batch(std::slice::from_ref(&record))?.start)
    }

    /// Append a batch atomically (through the topic, for a topic's views), then bring every
    /// inline view up to date, all under the registry's append lock, so inline views apply
    /// appends in order and the caller can query them at once. Async views are not waited
    /// for.
    ///
    /// An inline view that fails is stopped (its status and queries report the offset and
    /// the cause); the append itself stands and is returned: the records are in the log.
    pub fn append_batch(&self, records: &[Record<'_>]) -> Result<Range<u64>> {
        if self.shared.inline.load(Ordering::SeqCst) == 0 {
            // No inline view to bring up to date (one registered meanwhile catches up from
            // the log itself when it opens, and at the next append).
            return match &self.shared.topic {
                Some(t) => t.publish_batch(records),
                None => self.shared.log.append_batch(records),
            };
        }
        let _g = self.shared.append.lock();
        let range = match &self.shared.topic {
            Some(t) => t.publish_batch(records)?,
            None => self.shared.log.append_batch(records)?,
        };
        let views = self.shared.views.read();
        for view in views.values().filter(|v| v.mode() == ViewMode::Inline) {
            // Its failure is recorded by the view itself, with the offset.
            let _ = view.catch_up();
        }
        Ok(range)
    }
}
