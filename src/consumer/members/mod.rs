//! Competing consumers across processes: processes on one machine share a group's work.
//! The process holding the group's lock is its **owner** and keeps the state (as for any
//! open group); the others are **remote members** that poll and settle through the owner
//! over a Unix domain socket in the group's directory (`docs/consumers.md`, "Competing
//! consumers across processes"; the bytes in `docs/format.md`, "Member socket protocol").
//!
//! * [`protocol`]: the frames and their checked decoding;
//! * [`server`]: the owner's side, serving members' requests with its [`Group`];
//! * [`client`]: a member's side, the [`crate::consumer::group::Remote`] behind its handle;
//! * [`takeover`]: becoming the owner, or reaching the current one.

pub(crate) mod client;
pub(crate) mod protocol;
pub(crate) mod server;
pub(crate) mod takeover;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::group::Group;
use super::options::GroupOptions;
use super::persist::GroupPaths;
use crate::error::Result;
use crate::store::{validate_name, Topic};

/// The socket's name in the group's directory.
const SOCKET_NAME: &str = "members.sock";
/// The longest path a Unix domain socket address holds (`sun_path` is 108 bytes, one of
/// them the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where the group in `group_dir` listens for members: `members.sock` in its directory, or,
/// if that path is too long for a socket address, `tidelog-<hash>.sock` in the temporary
/// directory, named by the FNV-1a hash of the group directory's canonical path (so the
/// owner and every member find the same one).
pub(crate) fn socket_path(group_dir: &Path) -> PathBuf {
    let inside = group_dir.join(SOCKET_NAME);
    if inside.as_os_str().len() <= MAX_SOCKET_PATH {
        return inside;
    }
    let canonical = std::fs::canonicalize(group_dir).unwrap_or_else(|_| group_dir.to_owned());
    let hash = crate::format::index::key_hash(std::os::unix::ffi::OsStrExt::as_bytes(canonical.as_os_str()));
    std::env::temp_dir().join(format!("tidelog-{hash:016x}.sock"))
}

impl Topic {
    /// Open the consumer group `name` of this topic to share its work with other processes
    /// on this machine. If no process has the group open, this process becomes its owner
    /// (as with [`Topic::group`]) and serves other processes that join; if another process
    /// owns it (and opened it with `join_group`), the handle is a remote member
    /// ([`crate::Role::Member`]) that polls and settles through the owner: each delivery is
    /// leased to one member at a time, and a member whose owner goes away takes the group
    /// over or joins the new owner. Waits up to 10 s for an owner that holds the lock but
    /// does not serve yet; [`crate::Error::Locked`] if none does (it was opened with
    /// [`Topic::group`], which does not serve members). The owner's options govern
    /// deliveries (lease, backoff, order, retries).
    pub fn join_group(&self, name: &str, opts: GroupOptions) -> Result<Group> {
        validate_name("group", name)?;
        opts.validate()?;
        let socket = socket_path(&GroupPaths::new(self, name).dir);
        match takeover::reach(self, name, &opts, &socket)? {
            takeover::Reached::Owner(g) => Ok(g),
            takeover::Reached::Member(stream) => {
                let member = client::Member::new(self.clone(), name, opts, socket, stream);
                Ok(Group::from_remote(Arc::new(member)))
            }
        }
    }
}
