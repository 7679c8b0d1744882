//! Opening a group: take its lock (the state log's), load the snapshot and replay the state
//! log after it, reconcile with the dead-letter log, and record a new group's start.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Core, GroupInner};
use crate::consumer::dead_letters;
use crate::consumer::delivery::Holder;
use crate::consumer::now_us;
use crate::consumer::options::{AckMode, DeliveryOrder, GroupOptions};
use crate::consumer::persist::{self, GroupPaths, Source, StateEvent};
use crate::consumer::position;
use crate::consumer::state::{GroupState, ItemId, MAX_GAP};
use crate::error::{Error, Result};
use crate::store::Topic;
use crate::Log;

impl GroupInner {
    pub(crate) fn open(topic: Topic, name: &str, opts: GroupOptions) -> Result<Arc<GroupInner>> {
        let store_opts = topic.store().options().clone();
        let paths = GroupPaths::new(&topic, name);
        paths.create()?;
        let flush_every = match opts.ack_mode {
            AckMode::Durable => None,
            AckMode::Periodic(d) => Some(d),
        };
        // The state log's writer lock is the group's lock.
        let state_log = persist::open_state_log(&paths.state, &store_opts, flush_every)?;
        let reader = topic.fresh_reader()?;
        let (topic_first, topic_end) = match &reader {
            Some((log, _)) => (log.first_offset(), log.next_offset()),
            None => (0, 0),
        };
        let mut events = Vec::new();
        let loaded = persist::load(&paths.dir, &state_log)?;
        let fresh = loaded.source == Source::Nothing && state_log.is_empty() && state_log.first_offset() == 0;
        let mut replayed = 0;
        let mut state = if fresh {
            let start = position::resolve(reader.as_ref().map(|(log, _)| log), opts.start)?;
            events.push(StateEvent::Start { offset: start });
            GroupState::starting_at(start)
        } else {
            let mut s = loaded.state;
            replayed = persist::replay(&mut s, &state_log, loaded.position)?;
            s
        };
        let dl_next = reconcile_dead_letters(&paths, &store_opts, &mut state, topic_end, &mut events)?;
        if state.dead_letter_format_from.is_none() {
            // The first opening by a release that writes format 2: every record there is now
            // is in format 1, every later one in format 2.
            state.dead_letter_format_from = Some(dl_next);
            events.push(StateEvent::DeadLetterFormat { from: dl_next });
        }
        let seed = now_us() ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        let inner = Arc::new_cyclic(|me| GroupInner {
            holder: Holder::new_incarnation(topic.name(), name),
            topic,
            name: name.to_owned(),
            paths,
            opts,
            state_log,
            core: Mutex::new(Core { state, scan: None, since_snapshot: replayed, rng: seed | 1 }),
            snapshot_lock: Mutex::new(()),
            snapshotting: AtomicBool::new(false),
            me: me.clone(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            serving: AtomicBool::new(false),
        });
        let snapshot_due = {
            let mut core = inner.core.lock();
            inner.check_retention(&mut core, topic_first, &mut events);
            if inner.opts.order == DeliveryOrder::PerKey {
                inner.rebuild_keys(&mut core)?;
            }
            inner.write_events(&mut core, &events)?;
            // A group whose snapshot is still the earlier releases' file migrates now.
            core.since_snapshot >= inner.opts.snapshot_every || loaded.source == Source::Legacy
        };
        // The group's creation and any reconciliation are durable before it is used. Why not
        // always: a group reopened after a clean close has nothing to flush, and opening many
        // groups should not cost a flush each (nor a snapshot, written when due and at close).
        if !events.is_empty() {
            inner.state_log.flush()?;
        }
        if snapshot_due {
            inner.snapshot_now()?;
        }
        Ok(inner)
    }

    /// Per-key order after a restart: queue every pending topic event under its key, in
    /// offset order, so the earliest of each key goes first and the others wait.
    pub(super) fn rebuild_keys(&self, core: &mut Core) -> Result<()> {
        let Some((log, _)) = self.topic.reader()? else { return Ok(()) };
        let ids: Vec<u64> = core
            .state
            .entries
            .range(ItemId::Topic(0)..=ItemId::Topic(u64::MAX))
            .filter_map(|(id, _)| match id {
                ItemId::Topic(o) => Some(*o),
                ItemId::Redrive(_) => None,
            })
            .collect();
        for o in ids {
            let key = match log.read_with(o, |r| r.key().map(<[u8]>::to_vec)) {
                Ok(k) => k,
                // Removed by retention or compaction since: the next poll accounts for it.
                Err(Error::OffsetOutOfRange { .. } | Error::OffsetCompacted { .. }) => None,
                Err(e) => return Err(e),
            };
            if let Some(k) = key {
                core.state.enqueue_key(ItemId::Topic(o), k);
            }
        }
        Ok(())
    }
}

/// Record the dead letters written just before a crash, whose state change did not make it
/// (the dead-letter record is durable before its `DeadLettered` event): every record at or
/// after the state's `dlq_next`. Returns the dead-letter log's next offset.
///
/// A record finishes the pending item it names, if there is one; the event it names may also
/// be one the state has not looked at yet (its `Delivered` event was lost with the crash),
/// if it lies in the topic and within replay's reach. Any other record, or one that does not
/// decode, is parked without finishing anything: nothing read from a record can make the
/// group fail to open.
fn reconcile_dead_letters(
    paths: &GroupPaths,
    store_opts: &crate::store::StoreOptions,
    state: &mut GroupState,
    topic_end: u64,
    events: &mut Vec<StateEvent>,
) -> Result<u64> {
    // Read-only: this opening holds the group's lock, so nobody appends meanwhile.
    let dl = match Log::open_read_only(&paths.dead_letters, dead_letters::log_options(store_opts)) {
        Ok(dl) => dl,
        Err(Error::NotFound { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    let from = state.dlq_next.max(dl.first_offset());
    if from >= dl.next_offset() {
        return Ok(dl.next_offset());
    }
    for rec in dl.iter(from) {
        let rec = rec?;
        let at = rec.offset;
        let id = match dead_letters::decode(rec, state.dead_letter_format_from, dl.dir()) {
            Ok(d) => match d.redrive_of {
                Some(x) => ItemId::Redrive(x),
                None => ItemId::Topic(d.source_offset),
            },
            Err(_) => {
                state.dead_letter_found(at);
                events.push(StateEvent::DeadLetterFound { dlq_offset: at });
                continue;
            }
        };
        let unseen = match id {
            ItemId::Topic(o) => o >= state.cursor && o < topic_end && o - state.cursor <= MAX_GAP,
            ItemId::Redrive(_) => false,
        };
        if unseen {
            if let ItemId::Topic(o) = id {
                state.visit(o).map_err(|_| Error::Internal("a dead letter's source checked to be in reach is not"))?;
            }
        }
        if state.entries.contains_key(&id) {
            state.dead_lettered(id, at);
            events.push(StateEvent::DeadLettered { id, dlq_offset: at });
        } else {
            state.dead_letter_found(at);
            events.push(StateEvent::DeadLetterFound { dlq_offset: at });
        }
    }
    Ok(dl.next_offset())
}
