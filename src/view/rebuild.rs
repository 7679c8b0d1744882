//! Rebuilding a view without downtime: a new generation of its state is built from the log
//! beside the live one (which keeps answering queries), then swapped in atomically by
//! rewriting the definition file, and the old generation is removed.
//!
//! Crash safety, step by step: until `view.def` is replaced, it names the old generation,
//! whose files are untouched (the new one is a stray directory the next open removes); once
//! replaced, it names the new generation, which was checkpointed at the position it reached
//! before the swap. A kill at any point leaves exactly one usable generation named.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::log::Log;
use crate::projection::{state_as_of, Projection, ProjectionRunner, RunnerOptions, SnapshotDir};
use crate::view::definition_file;
use crate::view::engine::Engine;
use crate::view::handle::{ViewHandle, ViewMode};

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RebuildReport {
    /// The generation built and swapped in.
    pub generation: u64,
    /// The generation it replaced.
    pub replaced: u64,
    /// Position the new generation had reached at the swap.
    pub position: u64,
    /// Records applied to build it.
    pub records: u64,
    /// Time spent building, before the swap.
    pub build_time: Duration,
    /// With a determinism check: whether the new state's snapshot encoding equals the old
    /// generation's state at the same position (`None`: not checked).
    pub same_as_replaced: Option<bool>,
}

/// Build a generation of `projection` in `dir` from the log: restore whatever snapshot is
/// there (a rebuild interrupted earlier is continued), apply every committed record, write a
/// snapshot of the position reached. `progress(position, log_next_offset)` is called every
/// batch of records. Returns the records applied; the generation's lock is released (the
/// caller opens the generation with its own options, from the snapshot just written).
pub(crate) fn build<P: Projection>(
    log: &Log,
    projection: P,
    dir: &Path,
    opts: &RunnerOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    // Snapshots while building are only the final one: a rebuild is fastest without them,
    // and a killed rebuild starts over (its directory is removed).
    let build_opts = opts.clone().checkpoint_every_records(0).checkpoint_interval(None);
    let mut runner = ProjectionRunner::open(log.clone(), projection, dir, build_opts)?;
    const CHUNK: u64 = 1 << 16;
    loop {
        let mut applied = 0;
        while applied < CHUNK {
            let n = runner.run_until_caught_up()?;
            applied += n;
            if n == 0 {
                break;
            }
        }
        progress(runner.position(), log.next_offset());
        if applied < CHUNK {
            break;
        }
    }
    runner.checkpoint()?;
    Ok(runner.records())
}

impl<P> ViewHandle<P>
where
    P: Projection + Clone + Send + Sync + 'static,
    P::State: Send + Sync + 'static,
{
    /// Rebuild the view from the log into a new generation, beside the live one, which keeps
    /// answering queries meanwhile; then swap it in (atomically: the definition file is
    /// replaced) and remove the old one. With `verify`, the new state is compared with the
    /// old generation's state at the same position (their snapshot encodings), which catches
    /// a projection whose `apply` is not deterministic. `progress(position, log_next_offset)`
    /// is called as the build advances.
    ///
    /// A read-only handle cannot rebuild (`Error::ReadOnly`).
    pub fn rebuild(&self, verify: bool, mut progress: impl FnMut(u64, u64)) -> Result<RebuildReport> {
        let inner = &self.inner;
        if inner.opts.mode == ViewMode::ReadOnly {
            return Err(crate::Error::ReadOnly);
        }
        if matches!(*inner.building.lock(), Some(Ok(_))) {
            return Err(crate::Error::InvalidOptions(format!(
                "view {:?} is being built for its new definition already",
                inner.def.name
            )));
        }
        let replaced = self.generation();
        let generation = inner.dir.generations()?.last().copied().unwrap_or(replaced).max(replaced) + 1;
        let started = Instant::now();
        let gen_dir = inner.dir.generation_dir(generation);
        let records = build(&inner.log, inner.projection.clone(), &gen_dir, &inner.opts.runner, &mut progress)?;
        let build_time = started.elapsed();
        let runner =
            ProjectionRunner::open(inner.log.clone(), inner.projection.clone(), &gen_dir, inner.opts.runner.clone())?;
        let same_as_replaced = if verify {
            let at = runner.position();
            let old = state_as_of(
                &inner.log,
                &inner.projection,
                &SnapshotDir::open_read_only(inner.dir.generation_dir(replaced)),
                at,
            )?;
            let encode = |s: &P::State| {
                let mut out = Vec::new();
                inner.projection.snapshot(s, &mut out).map(|_| out)
            };
            Some(match (encode(&old.state), encode(runner.state())) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            })
        } else {
            None
        };
        let position = self.swap_in(runner, generation)?;
        Ok(RebuildReport { generation, replaced, position, records, build_time, same_as_replaced })
    }

    /// Swap `runner` (of generation `generation`, caught up a moment ago) in: under the
    /// engine's lock, so no query sees a half-swapped view, it catches up the last records, is
    /// checkpointed, and `view.def` is replaced to name it; then the old engine is stopped
    /// and the old generation removed. Returns the position at the swap.
    fn swap_in(&self, mut runner: ProjectionRunner<P>, generation: u64) -> Result<u64> {
        let inner = &self.inner;
        let mut engine = inner.engine.write();
        runner.run_until_caught_up()?;
        runner.checkpoint()?;
        let position = runner.position();
        // IMPORTANT: the new generation is checkpointed before the definition names it.
        definition_file::write(&inner.dir.definition_path(), &inner.def, generation)?;
        let new_engine = match inner.opts.mode {
            ViewMode::Async => Engine::Async(crate::view::follow::Follower::spawn(runner)?),
            _ => Engine::Inline { runner: Box::new(runner), failed: None },
        };
        let old = std::mem::replace(&mut *engine, new_engine);
        inner.generation.store(generation, Ordering::Release);
        drop(engine);
        // The old generation's final snapshot, if any, goes to a directory about to go.
        let _ = old.stop();
        inner.dir.remove_generations_except(generation)?;
        Ok(position)
    }

    /// Build generation `generation` of the current definition on a thread while the stored
    /// generation answers, then swap it in. A failure is kept and reported by `status`; the
    /// stored generation goes on answering.
    pub(crate) fn build_in_background(&self, generation: u64) -> Result<()> {
        *self.inner.building.lock() = Some(Ok(generation));
        let me = self.clone();
        let spawned = std::thread::Builder::new().name("tidelog-view-build".into()).spawn(move || {
            let inner = &me.inner;
            let gen_dir = inner.dir.generation_dir(generation);
            let result = build(&inner.log, inner.projection.clone(), &gen_dir, &inner.opts.runner, &mut |_, _| {})
                .and_then(|_| {
                    let runner = ProjectionRunner::open(
                        inner.log.clone(),
                        inner.projection.clone(),
                        &gen_dir,
                        inner.opts.runner.clone(),
                    )?;
                    if matches!(*inner.engine.read(), Engine::Stopped) {
                        return Ok(());
                    }
                    me.swap_in(runner, generation).map(|_| ())
                });
            *inner.building.lock() = match result {
                Ok(()) => None,
                Err(e) => Some(Err(e.to_string())),
            };
        });
        spawned.map(|_| ()).map_err(|e| crate::Error::io("view build thread", e))
    }
}
