//! Where groups meet the store: opening a group of a topic (one shared state per group in a
//! process), and the store-wide views of groups (lag, dead letters) that read a group live
//! when it is open here and from its files otherwise.

use super::dead_letters::{self, DeadLetter};
use super::group::{Group, GroupInner};
use super::lag::{self, GroupLag};
use super::options::GroupOptions;
use crate::error::{Error, Result};
use crate::store::{validate_name, Store, Topic};

impl Topic {
    /// Open the consumer group `name` of this topic, creating it if new. In one process, all
    /// handles to a group share one state (consumers share its work): opening a group that is
    /// already open in this process returns it, if `opts` equal the options it is open with;
    /// other options are [`Error::InvalidOptions`] (close every handle first to change them).
    /// [`Error::Locked`] if another process has the group open.
    pub fn group(&self, name: &str, opts: GroupOptions) -> Result<Group> {
        validate_name("group", name)?;
        opts.validate()?;
        let inner = self.attached().get_or_make(
            name,
            |g: &GroupInner| !g.is_closed(),
            || GroupInner::open(self.clone(), name, opts.clone()),
        )?;
        if inner.options() != &opts {
            return Err(Error::InvalidOptions(format!(
                "group {}/{name} is open in this process with other options; \
                 open it with the same options, or close it first",
                self.name()
            )));
        }
        Ok(Group::from_inner(inner))
    }

    /// The group `name` if it is open in this process.
    pub(crate) fn live_group(&self, name: &str) -> Option<Group> {
        self.attached().get(name, |g: &GroupInner| !g.is_closed()).map(Group::from_inner)
    }

    /// The lag of group `name`: live if it is open in this process, else from its files.
    pub(crate) fn group_lag(&self, name: &str) -> Result<GroupLag> {
        match self.live_group(name) {
            Some(g) => g.lag(),
            None => lag::persisted(self, name),
        }
    }
}

impl Store {
    /// Lag of every group of every topic. Groups open in this process report their live
    /// state; the others (closed, or open in another process) what their persisted state
    /// says, read without taking their lock.
    pub fn lag(&self) -> Result<Vec<GroupLag>> {
        let mut out = Vec::new();
        for t in self.topic_names()? {
            for g in self.group_names(&t)? {
                out.push(self.group_lag(&t, &g)?);
            }
        }
        Ok(out)
    }

    /// Lag of one group (see [`Store::lag`]).
    pub fn group_lag(&self, topic: &str, group: &str) -> Result<GroupLag> {
        let t = self.open_topic(topic)?;
        validate_name("group", group)?;
        t.group_lag(group)
    }

    /// The dead letters of a group, read without taking its lock (see
    /// [`Group::dead_letters`]).
    pub fn dead_letters(&self, topic: &str, group: &str) -> Result<Vec<DeadLetter>> {
        let t = self.open_topic(topic)?;
        validate_name("group", group)?;
        match t.live_group(group) {
            Some(g) => g.dead_letters(),
            None => dead_letters::persisted(&t, group),
        }
    }
}
