//! Handing out deliveries: redeliveries and due retries first, then new events in offset
//! order (held back by key in per-key order), each recorded before it is handed out.

use std::time::{Duration, Instant};

use super::journal::Outcome;
use super::{Core, GroupInner};
use crate::consumer::dead_letters::DeadLetterCause;
use crate::consumer::delivery::Delivery;
use crate::consumer::now_us;
use crate::consumer::options::DeliveryOrder;
use crate::consumer::persist::StateEvent;
use crate::consumer::state::{ItemId, Status};
use crate::error::{Error, Result};
use crate::store::instant_after;
use crate::Log;

impl GroupInner {
    /// Unfinished items that count toward `max_outstanding`: every item but those held back
    /// by key (they have their own bound, `max_held_back`), so that a stuck key cannot take
    /// the capacity other keys need.
    pub(super) fn outstanding(&self, core: &Core) -> usize {
        core.state.entries.len() - core.state.held()
    }

    /// Hand out up to `max` deliveries now. Returns them and when something may become
    /// deliverable without an append (a retry due, a lease expiring).
    pub(super) fn collect(&self, max: usize) -> Result<(Vec<Delivery>, Option<Instant>, bool, Outcome)> {
        let mut core = self.core.lock();
        let now = Instant::now();
        let now_wall = now_us();
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut outcome = Outcome::default();
        let Some((log, follower)) = self.topic.reader()? else { return Ok((out, None, true, outcome)) };
        if follower {
            log.refresh()?;
        }
        outcome.notify |= self.check_retention(&mut core, log.first_offset(), &mut events);
        core.state.expire_leases(now, now_wall);
        let deadline = instant_after(now, self.opts.lease);
        let result = self.collect_inner(&mut core, &log, follower, max, now_wall, deadline, &mut out, &mut events);
        // Whatever was handed out or dead-lettered is recorded, even if a later read failed.
        self.write_events(&mut core, &events)?;
        outcome.sync |= events.iter().any(|e| matches!(e, StateEvent::DeadLettered { .. }));
        if let Err(e) = result {
            if out.is_empty() {
                drop(core);
                self.finish(outcome)?;
                return Err(e);
            }
        }
        let wake = {
            let s = &core.state;
            let due = s.scheduled.first().map(|&(due, _)| {
                if due <= now_wall {
                    now
                } else {
                    instant_after(now, Duration::from_micros(due - now_wall))
                }
            });
            let lease = s.leases.first().map(|&(d, _)| d);
            match (due, lease) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        Ok((out, wake, follower, outcome))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn collect_inner(
        &self,
        core: &mut Core,
        log: &Log,
        follower: bool,
        max: usize,
        now_wall: u64,
        deadline: Instant,
        out: &mut Vec<Delivery>,
        events: &mut Vec<StateEvent>,
    ) -> Result<()> {
        // 1. Redeliveries and due retries, earliest due first (then lowest offset).
        while out.len() < max {
            let Some(id) = core.state.pop_due(now_wall) else { break };
            let attempts = core.state.entries.get(&id).map_or(0, |e| e.attempts);
            if attempts >= self.opts.max_deliveries {
                if let Err(e) = self.dead_letter(core, log, id, DeadLetterCause::MaxDeliveries, None, events) {
                    // Not moved: it stays due, to be tried again.
                    core.state.set_status(id, Status::Scheduled { due_us: 0 });
                    return Err(e);
                }
                continue;
            }
            let record = match self.read_item(core, log, id) {
                Ok(r) => r,
                Err(Error::OffsetCompacted { offset, .. }) if id == ItemId::Topic(offset) => {
                    // Compaction removed its record since it was looked at: nothing to deliver.
                    self.skip_compacted(core, offset, offset + 1, events)?;
                    continue;
                }
                Err(Error::OffsetOutOfRange { offset, first, .. })
                    if offset < first && matches!(id, ItemId::Topic(_)) =>
                {
                    // Retention removed it between our check and the read.
                    self.check_retention(core, first, events);
                    continue;
                }
                Err(e) => {
                    // Put it back; it stays due.
                    core.state.set_status(id, Status::Scheduled { due_us: 0 });
                    return Err(e);
                }
            };
            if let Some((lease, attempt)) = core.state.lease(id, deadline) {
                events.push(StateEvent::Delivered { id, attempt });
                out.push(Delivery::new(&self.holder, (id, lease), attempt, deadline, record));
            }
        }
        // 2. New events, in offset order.
        let end = log.next_offset();
        while out.len() < max
            && core.state.cursor < end
            && self.outstanding(core) < self.opts.max_outstanding as usize
            && core.state.held() < self.opts.max_held_back as usize
        {
            let cursor_pos = core.state.cursor;
            let stale = match &core.scan {
                Some((c, f)) => *f != follower || c.position() != cursor_pos,
                None => true,
            };
            if stale {
                let reuse = matches!(&core.scan, Some((_, f)) if *f == follower);
                if reuse {
                    if let Some((c, _)) = core.scan.as_mut() {
                        c.seek(cursor_pos);
                    }
                } else {
                    core.scan = Some((log.cursor(cursor_pos), follower));
                }
            }
            let Some((cursor, _)) = core.scan.as_mut() else { break };
            let record = match cursor.next() {
                Ok(Some(r)) => r.to_owned(),
                Ok(None) => {
                    // A cursor steps over gaps, also at the end of what the topic holds.
                    let passed = cursor.position();
                    if passed > cursor_pos {
                        self.skip_compacted(core, cursor_pos, passed, events)?;
                    }
                    break;
                }
                Err(Error::OffsetOutOfRange { offset, first, .. }) if offset < first => {
                    self.check_retention(core, first, events);
                    continue;
                }
                Err(e) => {
                    core.scan = None;
                    return Err(e);
                }
            };
            let offset = record.offset;
            if offset > cursor_pos {
                // The offsets between hold no record (compaction removed them): one event
                // records the whole gap, however long.
                self.skip_compacted(core, cursor_pos, offset, events)?;
            }
            core.state.visit(offset).map_err(|_| Error::Internal("a new event is not next to the group's cursor"))?;
            let id = ItemId::Topic(offset);
            if self.opts.order == DeliveryOrder::PerKey {
                if let Some(k) = &record.key {
                    if !core.state.enqueue_key(id, k.clone()) {
                        continue;
                    }
                }
            }
            if let Some((lease, attempt)) = core.state.lease(id, deadline) {
                events.push(StateEvent::Delivered { id, attempt });
                out.push(Delivery::new(&self.holder, (id, lease), attempt, deadline, record));
            }
        }
        Ok(())
    }

    /// Topic offsets in `[from, to)` hold no record (compaction removed them): the group
    /// passes them, finishing any it had pending, and records so in one event. Returns
    /// whether an item of a key became deliverable.
    pub(super) fn skip_compacted(
        &self,
        core: &mut Core,
        from: u64,
        to: u64,
        events: &mut Vec<StateEvent>,
    ) -> Result<bool> {
        // Never past the cursor: `from` is the cursor or an offset the group looked at.
        if from > core.state.cursor {
            return Err(Error::Internal("a gap without records starts past the group's cursor"));
        }
        let released = core.state.skip(from, to).map_err(|_| Error::Internal("an empty gap without records"))?;
        events.push(StateEvent::Skipped { from, to });
        Ok(!released.is_empty())
    }

    pub(super) fn poll(&self, max: usize, timeout: Duration) -> Result<Vec<Delivery>> {
        self.check_usable()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let deadline = instant_after(start, timeout);
        let mut nap = Duration::from_micros(50);
        loop {
            self.check_usable()?;
            // Before looking for work: a publish after this point ends the wait (from another
            // process too, through the wake file, while this process does not publish).
            let watch = self.topic.signal().watch(!self.topic.is_writer());
            let (out, wake, follower, outcome) = self.collect(max)?;
            self.finish(outcome)?;
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            let mut until = deadline;
            if let Some(w) = wake {
                until = until.min(w.max(now));
            }
            if follower && !watch.wakes_across_processes() {
                // Appends by another process cannot signal us: look again soon.
                until = until.min(instant_after(now, nap));
                nap = (nap * 2).min(Duration::from_millis(1));
            }
            if until > now {
                watch.wait_until(until);
            }
        }
    }
}
