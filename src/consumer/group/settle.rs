//! Settling deliveries: ack, nack, reject, lease extension, and redrive of dead letters;
//! and moving an item to the dead letters.

use std::time::{Duration, Instant};

use super::journal::Outcome;
use super::{Core, GroupInner};
use crate::consumer::dead_letters::{self, DeadLetterCause, DeadLetterMeta};
use crate::consumer::delivery::Delivery;
use crate::consumer::now_us;
use crate::consumer::options::retry_due_us;
use crate::consumer::persist::StateEvent;
use crate::consumer::state::ItemId;
use crate::error::{Error, Result};
use crate::store::instant_after;
use crate::Log;
use crate::OwnedRecord;

/// What a settling call names: an item and the lease its caller holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    pub(super) id: ItemId,
    pub(super) lease: u64,
    /// For errors: the event's topic offset and the attempt the caller holds.
    pub(super) offset: u64,
    pub(super) attempt: u32,
}

impl Claim {
    fn of(d: &Delivery) -> Claim {
        let (id, lease) = d.lease();
        Claim { id, lease, offset: d.offset(), attempt: d.attempt() }
    }
}

/// How held items are settled.
#[derive(Debug, Clone, Copy)]
pub(super) enum Settle<'a> {
    /// Done.
    Ack,
    /// Failed: retried after `delay` (the backoff if `None`), or dead-lettered if rejected
    /// or out of deliveries.
    Fail { rejected: bool, delay: Option<Duration>, reason: &'a str },
    /// Given back without counting the delivery as an attempt: due again at once.
    Release,
}

impl GroupInner {
    /// The event behind `id`: from the topic, or for a redrive from the dead-letter log.
    pub(super) fn read_item(&self, core: &Core, log: &Log, id: ItemId) -> Result<OwnedRecord> {
        match id {
            ItemId::Topic(o) => log.read(o),
            ItemId::Redrive(d) => Ok(self.read_dead_letter(core, None, d)?.record),
        }
    }

    /// The dead letter at `dlq_offset`, read from `dl` (opened if `None`).
    fn read_dead_letter(&self, core: &Core, dl: Option<&Log>, dlq_offset: u64) -> Result<dead_letters::DeadLetter> {
        let opened;
        let dl = match dl {
            Some(dl) => dl,
            None => {
                opened = self.dead_letter_reader()?.ok_or(Error::UnknownDeadLetter { dlq_offset })?;
                &opened
            }
        };
        dead_letters::decode(dl.read(dlq_offset)?, core.state.dead_letter_format_from, dl.dir())
    }

    /// The dead-letter log, for reading; `None` if the group has none. Opened for each use,
    /// not kept: an idle group holds no descriptor for it.
    pub(super) fn dead_letter_reader(&self) -> Result<Option<Log>> {
        match Log::open_read_only(&self.paths.dead_letters, dead_letters::log_options(self.topic.store().options())) {
            Ok(dl) => Ok(Some(dl)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Move `id` to the dead letters. IMPORTANT: the dead-letter record is durable before
    /// the state change that finishes `id` is appended; recovery reconciles the other way
    /// round (see `open`), so a crash in between never writes it twice.
    pub(super) fn dead_letter(
        &self,
        core: &mut Core,
        log: &Log,
        id: ItemId,
        cause: DeadLetterCause,
        reason: Option<&str>,
        events: &mut Vec<StateEvent>,
    ) -> Result<bool> {
        let record = match self.read_item(core, log, id) {
            Ok(r) => r,
            // Compaction removed its record: there is nothing left to set aside.
            Err(Error::OffsetCompacted { offset, .. }) if id == ItemId::Topic(offset) => {
                return self.skip_compacted(core, offset, offset + 1, events);
            }
            Err(e) => return Err(e),
        };
        let now = now_us();
        let Some(e) = core.state.entries.get(&id) else { return Ok(false) };
        let fallback = match cause {
            DeadLetterCause::Rejected => "rejected".to_owned(),
            DeadLetterCause::MaxDeliveries => format!("delivered {} times without an ack", e.attempts),
        };
        let reason = reason.map(str::to_owned).or_else(|| e.last_reason.clone()).unwrap_or(fallback);
        let meta = DeadLetterMeta {
            topic: self.topic.name(),
            group: &self.name,
            attempts: e.attempts,
            cause,
            reason: &reason,
            first_failure_us: if e.first_failure_us == 0 { now } else { e.first_failure_us },
            last_failure_us: now,
            redrive_of: match id {
                ItemId::Redrive(d) => Some(d),
                ItemId::Topic(_) => None,
            },
        };
        // Opened for this append and closed after it: see `dead_letter_reader`.
        let dl = Log::open(&self.paths.dead_letters, dead_letters::log_options(self.topic.store().options()))?;
        let at = dead_letters::append(&dl, &record, &meta)?;
        // The record is durable once `append` returns (`Durability::Always`). A failure to
        // close afterwards (writing the log's checkpoint) changes nothing about it, and the
        // next open of the dead-letter log recovers without the checkpoint; reporting it
        // here would leave the item pending in memory with its dead letter written.
        let _ = dl.close();
        events.push(StateEvent::DeadLettered { id, dlq_offset: at });
        Ok(core.state.dead_lettered(id, at).is_some())
    }

    /// [`Error::ForeignDelivery`] unless this opening of this group handed `d` out.
    pub(super) fn check_ours(&self, d: &Delivery) -> Result<()> {
        if d.holder().same(&self.holder) {
            return Ok(());
        }
        Err(Error::ForeignDelivery {
            offset: d.offset(),
            delivered_by: d.holder().label().to_owned(),
            settled_by: self.holder.label().to_owned(),
        })
    }

    /// [`Error::LeaseLost`] unless the holder of `c` may still settle it.
    fn check_held(core: &Core, c: &Claim) -> Result<()> {
        match core.state.holds(c.id, c.lease) {
            true => Ok(()),
            false => Err(Error::LeaseLost { offset: c.offset, attempt: c.attempt }),
        }
    }

    /// The claims of deliveries this opening handed out; [`Error::ForeignDelivery`] for the
    /// first that it did not, before anything changes.
    pub(super) fn claims_of(&self, ds: &[Delivery]) -> Result<Vec<Claim>> {
        ds.iter().map(|d| self.check_ours(d).map(|()| Claim::of(d))).collect()
    }

    pub(super) fn ack_batch(&self, ds: &[Delivery]) -> Result<()> {
        self.check_usable()?;
        // Checked for every delivery before anything changes.
        let claims = self.claims_of(ds)?;
        self.settle(|_| Ok(claims), Settle::Ack)
    }

    /// Settle `d` as failed: retry it after `delay` (the backoff if `None`), or move it to
    /// the dead letters if it was rejected or has used up its deliveries.
    pub(super) fn fail(&self, d: &Delivery, rejected: bool, delay: Option<Duration>, reason: &str) -> Result<()> {
        self.check_usable()?;
        let claims = self.claims_of(std::slice::from_ref(d))?;
        self.settle(|_| Ok(claims), Settle::Fail { rejected, delay, reason })
    }

    /// Settle the items `claims` names (found under the group's lock: an error there changes
    /// nothing) in one state-log append and one flush. Every claim still held is settled; if
    /// some were not, returns [`Error::LeaseLost`] for the first of them after settling the
    /// others.
    pub(super) fn settle(&self, claims: impl FnOnce(&Core) -> Result<Vec<Claim>>, how: Settle<'_>) -> Result<()> {
        self.check_usable()?;
        let mut first_lost = None;
        let mut outcome = Outcome { sync: true, notify: matches!(how, Settle::Release) };
        let failed = {
            let mut core = self.core.lock();
            let claims = claims(&core)?;
            let mut events = Vec::with_capacity(claims.len());
            // Finishing an item at the limit frees capacity for new events.
            outcome.notify |= self.outstanding(&core) >= self.opts.max_outstanding as usize;
            // The topic's reader, taken when a dead letter needs its event.
            let mut log = None;
            let mut failed = None;
            for c in &claims {
                if let Err(e) = Self::check_held(&core, c) {
                    first_lost.get_or_insert(e);
                    continue;
                }
                match self.settle_one(&mut core, &mut log, c.id, &how, &mut events) {
                    Ok(notify) => outcome.notify |= notify,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            // What was settled before a failure is recorded: memory already holds it.
            self.write_events(&mut core, &events)?;
            failed
        };
        self.finish(outcome)?;
        match (failed, first_lost) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(()),
        }
    }

    /// Settle one held item; returns whether pollers should be woken.
    fn settle_one(
        &self,
        core: &mut Core,
        log: &mut Option<Log>,
        id: ItemId,
        how: &Settle<'_>,
        events: &mut Vec<StateEvent>,
    ) -> Result<bool> {
        let attempts = core.state.entries.get(&id).map_or(0, |e| e.attempts);
        match *how {
            Settle::Ack => {
                events.push(StateEvent::Acked { id });
                Ok(core.state.finish(id).is_some())
            }
            Settle::Release => {
                // The delivery given back does not count: the next one has its attempt number.
                let attempts = attempts.saturating_sub(1);
                core.state.release(id, attempts);
                events.push(StateEvent::Released { id, attempts });
                Ok(true)
            }
            Settle::Fail { rejected, delay, reason } => {
                let reason = dead_letters::clip_reason(reason);
                if rejected || attempts >= self.opts.max_deliveries {
                    let cause = if rejected { DeadLetterCause::Rejected } else { DeadLetterCause::MaxDeliveries };
                    let log = match log {
                        Some(log) => log,
                        None => log.insert(self.topic_log()?),
                    };
                    self.dead_letter(core, log, id, cause, Some(&reason), events)
                } else {
                    let now = now_us();
                    let r = core.random();
                    let due = retry_due_us(now, delay.unwrap_or_else(|| self.opts.backoff.delay(attempts, r)));
                    core.state.schedule_retry(id, due, now, reason.clone());
                    events.push(StateEvent::Nacked { id, attempt: attempts, retry_at_us: due, at_us: now, reason });
                    Ok(true)
                }
            }
        }
    }

    pub(super) fn topic_log(&self) -> Result<Log> {
        match self.topic.reader()? {
            Some((log, _)) => Ok(log),
            None => Err(Error::NotFound { path: self.topic.dir().to_path_buf() }),
        }
    }

    /// The same rule as ack and nack: the lease is current, or it expired and nobody has been
    /// given the event since (then the holder gets it back).
    pub(super) fn extend_lease(&self, d: &Delivery, by: Duration) -> Result<Instant> {
        self.check_usable()?;
        self.check_ours(d)?;
        let mut core = self.core.lock();
        let c = Claim::of(d);
        Self::check_held(&core, &c)?;
        let (id, lease) = (c.id, c.lease);
        let deadline = instant_after(Instant::now(), by);
        core.state.extend(id, lease, deadline);
        Ok(deadline)
    }

    /// A retry of topic event `offset` that waits for its due time becomes due at once.
    pub(super) fn retry_now(&self, offset: u64) -> Result<bool> {
        self.check_usable()?;
        let id = ItemId::Topic(offset);
        {
            let mut core = self.core.lock();
            if !core.state.retry_now(id) {
                return Ok(false);
            }
            self.write_events(&mut core, &[StateEvent::RetryNow { id }])?;
        }
        self.finish(Outcome { sync: true, notify: true })?;
        Ok(true)
    }

    pub(super) fn redrive(&self, which: Option<u64>) -> Result<u64> {
        self.check_usable()?;
        let n = {
            let mut core = self.core.lock();
            let targets: Vec<u64> = match which {
                Some(d) => {
                    if !core.state.parked.contains(&d) {
                        return Err(Error::UnknownDeadLetter { dlq_offset: d });
                    }
                    vec![d]
                }
                None => core.state.parked.iter().copied().collect(),
            };
            if targets.is_empty() {
                return Ok(0);
            }
            // Every record is read before the state changes: a damaged one fails the redrive
            // as a whole, leaving memory and the state log in step.
            let dl = self.dead_letter_reader()?;
            let sources = targets
                .iter()
                .map(|d| Ok((*d, self.read_dead_letter(&core, dl.as_ref(), *d)?.source_offset)))
                .collect::<Result<Vec<_>>>()?;
            let mut events = Vec::with_capacity(sources.len());
            for (dlq_offset, source_offset) in sources {
                if core.state.redrive(dlq_offset, source_offset) {
                    events.push(StateEvent::Redriven { dlq_offset, source_offset });
                }
            }
            self.write_events(&mut core, &events)?;
            events.len() as u64
        };
        self.finish(Outcome { sync: true, notify: true })?;
        Ok(n)
    }
}
