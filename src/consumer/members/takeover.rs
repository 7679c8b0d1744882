//! Reaching a group to share its work: become its owner if no process holds its lock
//! (serving members from then on), else connect to the owner's member socket. Used when a
//! member joins, and again when its connection to the owner ends (the owner closed the
//! group or died): the first member to take the lock becomes the owner, its state replayed
//! from the state log as for any opening; the others connect to it.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::server;
use crate::consumer::group::Group;
use crate::consumer::options::GroupOptions;
use crate::error::{Error, Result};
use crate::store::Topic;

/// How long to keep trying when the lock is held but nobody answers on the socket (an
/// owner starting up, or one that does not serve members).
const REACH_FOR: Duration = Duration::from_secs(10);
/// Between attempts.
const RETRY_EVERY: Duration = Duration::from_millis(20);

/// The group, reached.
pub(crate) enum Reached {
    /// This process owns the group now (and serves its members).
    Owner(Group),
    /// Connected to the owner's member socket.
    Member(UnixStream),
}

/// Take the group's lock, or connect to the process that holds it. [`Error::Locked`] if
/// for [`REACH_FOR`] the lock stays held and nothing answers on `socket`.
pub(crate) fn reach(topic: &Topic, name: &str, opts: &GroupOptions, socket: &Path) -> Result<Reached> {
    let until = Instant::now() + REACH_FOR;
    loop {
        let locked = match topic.group(name, opts.clone()) {
            Ok(g) => {
                server::serve(&g)?;
                return Ok(Reached::Owner(g));
            }
            Err(e @ Error::Locked { .. }) => e,
            Err(e) => return Err(e),
        };
        if let Ok(s) = UnixStream::connect(socket) {
            return Ok(Reached::Member(s));
        }
        if Instant::now() >= until {
            return Err(locked);
        }
        std::thread::sleep(RETRY_EVERY);
    }
}
