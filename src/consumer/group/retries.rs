//! Managing what waits: listing unfinished events, and cancelling or rescheduling a
//! scheduled retry.

use std::time::Duration;

use super::journal::Outcome;
use super::GroupInner;
use crate::consumer::now_us;
use crate::consumer::options::retry_due_us;
use crate::consumer::pending::{self, Pending};
use crate::consumer::persist::StateEvent;
use crate::consumer::state::ItemId;
use crate::error::Result;

impl GroupInner {
    pub(super) fn pending(&self) -> Vec<Pending> {
        pending::of(&self.core.lock().state)
    }

    /// Change the retry topic event `offset` waits for: give it up as done (`None`), or make
    /// it due `delay` from now. Returns false, changing nothing, if it is not waiting for a
    /// retry.
    pub(super) fn change_retry(&self, offset: u64, delay: Option<Duration>) -> Result<bool> {
        self.check_usable()?;
        let id = ItemId::Topic(offset);
        let notify = {
            let mut core = self.core.lock();
            if !core.state.is_retrying(id) {
                return Ok(false);
            }
            let (event, notify) = match delay {
                None => (StateEvent::Acked { id }, core.state.finish(id).is_some()),
                Some(d) => {
                    let due = retry_due_us(now_us(), d);
                    core.state.reschedule(id, due);
                    (StateEvent::Rescheduled { id, retry_at_us: due }, true)
                }
            };
            self.write_events(&mut core, &[event])?;
            notify
        };
        self.finish(Outcome { sync: true, notify })?;
        Ok(true)
    }
}
