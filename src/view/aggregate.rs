//! [`AggregateView`]: per group, the count of records and the count, sum, minimum, maximum
//! and average of a numeric value, maintained one record at a time. A [`Projection`], so the
//! runner, snapshots, restore and as-of queries of `projection/` keep it.
//!
//! Heap: one `BTreeMap` entry per distinct group: the group's name (its own allocation), a
//! 56-byte [`GroupStats`] and the name's 24-byte `Vec` in a B-tree node, with the node's
//! slack: 168 bytes per group of a 16-byte name, measured (`tests/view_heap.rs`). Nothing
//! grows with the number of records.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::format::{le_u32, le_u64};
use crate::projection::{BoxError, Projection};
use crate::record::RecordView;
use crate::view::definition::{GroupBy, ValueOf, ViewDefinition, ViewKind};
use crate::view::extract;

/// One group's aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct GroupStats {
    /// Records of the group.
    pub records: u64,
    /// Records of the group that carried a value.
    pub values: u64,
    /// Sum of the values (an `f64`: integers are exact up to 2^53).
    pub sum: f64,
    /// Smallest value; `None` if no record carried one.
    pub min: Option<f64>,
    /// Largest value; `None` if no record carried one.
    pub max: Option<f64>,
}

impl GroupStats {
    /// Average of the values; `None` if no record carried one.
    pub fn average(&self) -> Option<f64> {
        (self.values > 0).then(|| self.sum / self.values as f64)
    }

    fn add(&mut self, value: Option<f64>) {
        self.records += 1;
        if let Some(v) = value {
            self.values += 1;
            self.sum += v;
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
        }
    }
}

/// An aggregate view's state: the groups in byte order of their names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AggregateState {
    /// The group with the empty name (`GroupBy::All`'s only group), kept apart: it sorts
    /// first, and a map lookup of an empty key compares empty slices, which costs about
    /// 300 ns on some machines (`memcmp` of a dangling pointer, measured), ten times a
    /// lookup among 1,000 groups.
    empty: Option<GroupStats>,
    /// Every other group.
    groups: BTreeMap<Vec<u8>, GroupStats>,
}

/// Bytes of one group's entry in a snapshot, besides the group's name.
const ENTRY_FIXED: usize = 4 + 8 + 8 + 8 + 8 + 8;

impl AggregateState {
    /// The aggregate of `group`, if any record belonged to it.
    pub fn get(&self, group: &[u8]) -> Option<&GroupStats> {
        if group.is_empty() {
            return self.empty.as_ref();
        }
        self.groups.get(group)
    }

    /// Every group, in byte order of their names.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &GroupStats)> + '_ {
        let empty = self.empty.iter().map(|v| (&[][..], v));
        empty.chain(self.groups.iter().map(|(k, v)| (k.as_slice(), v)))
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len() + usize::from(self.empty.is_some())
    }

    /// True if no record belonged to any group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add a record (and its value, if any) to `group`, created if new.
    fn add(&mut self, group: std::borrow::Cow<'_, [u8]>, value: Option<f64>) {
        if group.is_empty() {
            self.empty.get_or_insert_with(GroupStats::default).add(value);
            return;
        }
        // Looked up before inserting, so that a group seen before costs no allocation.
        match self.groups.get_mut(group.as_ref()) {
            Some(s) => s.add(value),
            None => self.groups.entry(group.into_owned()).or_default().add(value),
        }
    }

    /// A stable 64-bit digest of the state (of its snapshot encoding): two states with the
    /// same digest hold the same groups and figures. Used to check that a rebuild is
    /// deterministic.
    pub fn digest(&self) -> u64 {
        let mut out = Vec::new();
        self.encode(&mut out);
        crate::projection::fingerprint_of(&out)
    }

    /// The snapshot payload (`docs/format.md`, "Aggregate view state"): the group count
    /// (u64), then per group its name's length (u32), the name, records, values (u64), sum,
    /// min, max (f64 bits; min and max are 0 when the group has no value).
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for (k, s) in self.iter() {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            for x in
                [s.records, s.values, s.sum.to_bits(), s.min.unwrap_or(0.0).to_bits(), s.max.unwrap_or(0.0).to_bits()]
            {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    fn decode(b: &[u8]) -> std::result::Result<AggregateState, String> {
        if b.len() < 8 {
            return Err("payload shorter than its group count".into());
        }
        let n = le_u64(b, 0);
        let mut at = 8;
        let mut state = AggregateState::default();
        for i in 0..n {
            // Every length is checked against what is left before it is used.
            if b.len() - at < ENTRY_FIXED {
                return Err(format!("group {i} of {n} is cut short at byte {at}"));
            }
            let len = le_u32(b, at) as usize;
            if b.len() - at - ENTRY_FIXED < len {
                return Err(format!("group {i}'s name of {len} bytes runs past the payload at byte {at}"));
            }
            let name = b[at + 4..at + 4 + len].to_vec();
            let f = at + 4 + len;
            let (records, values) = (le_u64(b, f), le_u64(b, f + 8));
            let sum = f64::from_bits(le_u64(b, f + 16));
            let (min, max) = (f64::from_bits(le_u64(b, f + 24)), f64::from_bits(le_u64(b, f + 32)));
            if values > records {
                return Err(format!("group {i} has more values than records"));
            }
            let has = values > 0;
            let stats = GroupStats { records, values, sum, min: has.then_some(min), max: has.then_some(max) };
            let twice = if name.is_empty() {
                state.empty.replace(stats).is_some()
            } else {
                state.groups.insert(name, stats).is_some()
            };
            if twice {
                return Err(format!("group {i} appears twice"));
            }
            at = f + 40;
        }
        if at != b.len() {
            return Err(format!("{} bytes after the last group", b.len() - at));
        }
        Ok(state)
    }
}

/// The [`Projection`] behind an aggregate view: it groups each record as its
/// [`GroupBy`] says, takes the value [`ValueOf`] says, and adds it to the group's
/// [`GroupStats`]. Records without a group are passed over; a value that is present but not
/// a number fails the view at that record.
#[derive(Debug, Clone)]
pub struct AggregateView {
    name: String,
    fingerprint: u64,
    group_by: GroupBy,
    value: ValueOf,
}

impl AggregateView {
    /// The projection for `def`; `Error::InvalidOptions` if `def` is not an aggregate.
    pub fn new(def: &ViewDefinition) -> Result<AggregateView> {
        match &def.kind {
            ViewKind::Aggregate { group_by, value } => Ok(AggregateView {
                name: def.name.clone(),
                fingerprint: def.fingerprint(),
                group_by: group_by.clone(),
                value: value.clone(),
            }),
            other => Err(Error::InvalidOptions(format!("view {:?} is a {}, not an aggregate", def.name, other.name()))),
        }
    }
}

impl Projection for AggregateView {
    type State = AggregateState;

    fn name(&self) -> &str {
        &self.name
    }

    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn initial(&self) -> AggregateState {
        AggregateState::default()
    }

    fn apply(&self, state: &mut AggregateState, record: &RecordView<'_>) -> std::result::Result<(), BoxError> {
        let Some(group) = extract::group_of(&self.group_by, record) else { return Ok(()) };
        let value = extract::value_of(&self.value, record)?;
        state.add(group, value);
        Ok(())
    }

    fn snapshot(&self, state: &AggregateState, out: &mut Vec<u8>) -> std::result::Result<(), BoxError> {
        state.encode(out);
        Ok(())
    }

    fn restore(&self, payload: &[u8]) -> std::result::Result<AggregateState, BoxError> {
        AggregateState::decode(payload).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_snapshot_payload() {
        let mut s = AggregateState::default();
        s.add(b"a"[..].into(), Some(2.5));
        s.add(b"a"[..].into(), Some(-1.0));
        s.add(b""[..].into(), None);
        assert_eq!(s.iter().map(|(g, _)| g).collect::<Vec<_>>(), vec![&b""[..], b"a"]);
        let mut out = Vec::new();
        s.encode(&mut out);
        assert_eq!(AggregateState::decode(&out).unwrap(), s);
        assert_eq!(s.get(b"a").unwrap().average(), Some(0.75));
        assert_eq!(s.get(b"").unwrap().average(), None);
        for len in 0..out.len() {
            assert!(AggregateState::decode(&out[..len]).is_err(), "cut at {len}");
        }
        let mut huge = out.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(AggregateState::decode(&huge).is_err());
    }
}
