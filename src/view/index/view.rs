//! A secondary index as the registry and the command line see every view ([`View`]): an
//! inline view over a writer's log (queries and [`Views::append`](crate::Views::append)
//! bring it up to date), a read-only one over a follower.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::view::definition::ViewDefinition;
use crate::view::handle::ViewMode;
use crate::view::index::IndexView;
use crate::view::position::{ViewLag, ViewStatus};
use crate::view::View;

impl View for IndexView {
    fn definition(&self) -> &ViewDefinition {
        IndexView::definition(self)
    }

    fn mode(&self) -> ViewMode {
        if self.inner.log.is_read_only() {
            ViewMode::ReadOnly
        } else {
            ViewMode::Inline
        }
    }

    fn position(&self) -> u64 {
        IndexView::position(self)
    }

    /// Failed while its last catch-up failed (the next query or catch-up tries again);
    /// otherwise running (read-only over a follower).
    fn status(&self) -> ViewStatus {
        if let Some((offset, cause)) = self.inner.state.read().failed.clone() {
            return ViewStatus::Failed { offset, cause };
        }
        match View::mode(self) {
            ViewMode::ReadOnly => ViewStatus::ReadOnly,
            _ => ViewStatus::Running,
        }
    }

    fn lag(&self) -> ViewLag {
        ViewLag::measure(&self.inner.log, IndexView::position(self))
    }

    /// Catch up, then wait for the log to commit more (a follower polls the writer's files)
    /// until the position reaches `bound` or `timeout` passes.
    fn wait_for_position(&self, bound: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let position = IndexView::catch_up(self)?;
            if position >= bound {
                return Ok(position);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::ViewNotUpToBound { view: self.inner.def.name.clone(), position, bound });
            }
            self.inner.log.wait_for(position, left)?;
        }
    }

    fn catch_up(&self) -> Result<u64> {
        IndexView::catch_up(self)
    }
}
