//! Erasure reaches dead letters: the dead letters of a group whose event had a given key are
//! removed from the group's dead-letter log (every segment, the active one included).

use std::collections::HashSet;

use crate::consumer::dead_letters::{log_options, persisted};
use crate::consumer::persist::GroupPaths;
use crate::error::{Error, Result};
use crate::store::Topic;
use crate::Log;

/// Remove from `group`'s dead-letter log every dead letter whose event had key `key`. The
/// group must not be open (its dead-letter log is then locked: [`Error::Locked`]). Returns
/// how many were removed.
pub(crate) fn erase_key(topic: &Topic, group: &str, key: &[u8]) -> Result<u64> {
    let offsets: HashSet<u64> = match persisted(topic, group) {
        Ok(list) => list.into_iter().filter(|d| d.record.key.as_deref() == Some(key)).map(|d| d.dlq_offset).collect(),
        Err(Error::NotFound { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    if offsets.is_empty() {
        return Ok(0);
    }
    let paths = GroupPaths::new(topic, group);
    let dl = Log::open(&paths.dead_letters, log_options(topic.store().options()))?;
    let (n, _, _) = super::erase_where(&dl, |r| offsets.contains(&r.offset()))?;
    dl.close()?;
    Ok(n)
}
