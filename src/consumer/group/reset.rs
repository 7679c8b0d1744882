//! Moving a group's position: to the topic's start or end, an offset or a time. Recorded as
//! one state event, so that it is durable and replays the same.

use super::journal::Outcome;
use super::GroupInner;
use crate::consumer::options::StartFrom;
use crate::consumer::persist::StateEvent;
use crate::consumer::position;
use crate::error::Result;

impl GroupInner {
    /// Reset the position to `to`; returns the topic offset it resolved to.
    pub(super) fn reset(&self, to: StartFrom) -> Result<u64> {
        self.check_usable()?;
        let reader = self.topic.fresh_reader()?;
        let at = position::resolve(reader.as_ref().map(|(log, _)| log), to)?;
        {
            let mut core = self.core.lock();
            core.state.reset(at);
            // The scan reads from the new cursor on its next look.
            core.scan = None;
            self.write_events(&mut core, &[StateEvent::Reset { to: at }])?;
        }
        self.finish(Outcome { sync: true, notify: true })?;
        Ok(at)
    }
}
