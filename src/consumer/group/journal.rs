//! Recording a group's state changes: appending them to the state log in the order they
//! happen, making them durable, waking pollers, and snapshotting.

use std::sync::atomic::Ordering;

use super::{Core, GroupInner};
use crate::consumer::options::AckMode;
use crate::consumer::persist::{self, StateEvent};
use crate::error::Result;
use crate::Record;

/// What one operation did, to finish outside the lock.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) notify: bool,
    pub(super) sync: bool,
}

impl GroupInner {
    /// Append state changes to the state log, in order. A failure poisons the group: its
    /// memory is then ahead of its log, and only reopening (replay) is safe.
    pub(super) fn write_events(&self, core: &mut Core, events: &[StateEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let payloads = events.iter().map(StateEvent::encode).collect::<Result<Vec<_>>>()?;
        let records: Vec<Record<'_>> = payloads.iter().map(|p| Record::new(p)).collect();
        if let Err(e) = self.state_log.append_batch(&records) {
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        core.since_snapshot += events.len() as u64;
        Ok(())
    }

    /// After an operation, outside the lock: make it durable if asked, wake pollers,
    /// snapshot when due.
    pub(super) fn finish(&self, out: Outcome) -> Result<()> {
        if out.sync && self.opts.ack_mode == AckMode::Durable {
            if let Err(e) = self.state_log.flush() {
                self.poisoned.store(true, Ordering::Release);
                return Err(e);
            }
        }
        // Waiting pollers are woken after the flush, so that they usually see durable state
        // (a poller that is not waiting may take a released event before it: at-least-once).
        if out.notify {
            self.topic.signal().notify();
        }
        let since = self.core.lock().since_snapshot;
        let due = since >= self.opts.snapshot_every;
        if due && self.snapshotting.load(Ordering::Acquire) && since >= self.opts.snapshot_every.saturating_mul(2) {
            // The background snapshot fell behind (a loaded machine, a slow disk): wait for
            // it and take the next one here, so that the state log stays bounded whatever
            // the scheduling. Failing is not this operation's error (see below).
            let _ = self.snapshot_now();
            return Ok(());
        }
        if due && !self.snapshotting.swap(true, Ordering::AcqRel) {
            // Why a thread: writing a snapshot costs a few fsyncs; a consumer should not wait
            // for them. Nothing depends on it finishing (the state log holds everything);
            // a failed snapshot is retried after the next `snapshot_every` changes.
            let me = self.me.clone();
            let spawned = std::thread::Builder::new().name("tidelog-snapshot".into()).spawn(move || {
                if let Some(g) = me.upgrade() {
                    let _ = g.snapshot_now();
                    g.snapshotting.store(false, Ordering::Release);
                }
            });
            if spawned.is_err() {
                self.snapshotting.store(false, Ordering::Release);
                self.snapshot_now()?;
            }
        }
        Ok(())
    }

    /// Write a snapshot of the state and drop the state-log segments it covers. Does
    /// nothing once the group is closed: another process may own it by then.
    pub(super) fn snapshot_now(&self) -> Result<()> {
        let _s = self.snapshot_lock.lock();
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.write_snapshot_locked()
    }

    /// Caller holds `snapshot_lock`.
    pub(super) fn write_snapshot_locked(&self) -> Result<()> {
        let prepared = {
            let mut core = self.core.lock();
            let prepared = persist::prepare(&self.state_log, &core.state)?;
            core.since_snapshot = 0;
            prepared
        };
        // IMPORTANT: the state log is durable up to the snapshot's position before the
        // snapshot claims it. Otherwise, after a power loss, the log could end before it and
        // new state changes would reuse offsets the snapshot says it already holds. (Saving
        // flushes too; flushing here first poisons the group if the flush fails.)
        if let Err(e) = self.state_log.flush() {
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        persist::save(&self.paths.dir, &self.state_log, &prepared)
    }
}
