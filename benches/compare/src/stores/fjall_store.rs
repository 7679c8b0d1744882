//! fjall 2.x: one keyspace, an `events` partition keyed by the big-endian u64 sequence number
//! (and a `positions` partition for the position workload). Values: timestamp, key, payload.

use std::path::Path;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use super::{missing, Store};
use crate::data::{Digest, Event, KEY_LEN};
use crate::{now_us, Result};

/// Value layout: 8-byte timestamp, 16-byte key, payload.
const VALUE_HEADER: usize = 8 + KEY_LEN;

pub struct FjallStore {
    keyspace: Keyspace,
    events: PartitionHandle,
    positions: PartitionHandle,
    next: u64,
}

impl FjallStore {
    pub fn open(dir: &Path) -> Result<FjallStore> {
        let keyspace = Config::new(dir.join("fjall")).open()?;
        let events = keyspace.open_partition("events", PartitionCreateOptions::default())?;
        let positions = keyspace.open_partition("positions", PartitionCreateOptions::default())?;
        let next = match events.last_key_value()? {
            Some((k, _)) => be(&k)? + 1,
            None => 0,
        };
        Ok(FjallStore { keyspace, events, positions, next })
    }

    fn batch(&mut self, batch: &[Event<'_>]) -> fjall::Batch {
        let ts = now_us().to_le_bytes();
        let mut b = self.keyspace.batch();
        for e in batch {
            let mut v = Vec::with_capacity(VALUE_HEADER + e.payload.len());
            v.extend_from_slice(&ts);
            v.extend_from_slice(&e.key);
            v.extend_from_slice(e.payload);
            b.insert(&self.events, self.next.to_be_bytes().to_vec(), v);
            self.next += 1;
        }
        b
    }
}

fn be(k: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(k.try_into()?))
}

fn payload(v: &[u8]) -> Result<&[u8]> {
    v.get(VALUE_HEADER..).ok_or_else(|| "fjall: short value".into())
}

impl Store for FjallStore {
    fn append(&mut self, batch: &[Event<'_>]) -> Result<()> {
        // `Keyspace::batch` commits with `PersistMode::Buffer`: written to the OS, no fsync.
        Ok(self.batch(batch).commit()?)
    }

    fn sync(&mut self) -> Result<()> {
        Ok(self.keyspace.persist(PersistMode::SyncData)?)
    }

    fn append_durable(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.batch(batch).commit()?;
        Ok(self.keyspace.persist(PersistMode::SyncData)?)
    }

    fn append_with_position(&mut self, batch: &[Event<'_>], consumer: &[u8], position: u64) -> Result<()> {
        // One write batch across the two partitions is atomic; then fdatasync the journal.
        let mut b = self.batch(batch);
        b.insert(&self.positions, consumer.to_vec(), position.to_le_bytes().to_vec());
        b.commit()?;
        Ok(self.keyspace.persist(PersistMode::SyncData)?)
    }

    fn position_state(&mut self, consumer: &[u8]) -> Result<(u64, Option<u64>)> {
        let n = self.events.len()? as u64;
        let pos = match self.positions.get(consumer)? {
            Some(v) => Some(u64::from_le_bytes(v.as_ref().try_into()?)),
            None => None,
        };
        Ok((n, pos))
    }

    fn replay(&mut self) -> Result<Digest> {
        let mut d = Digest::default();
        for kv in self.events.iter() {
            let (_k, v) = kv?;
            d.add(payload(&v)?);
        }
        Ok(d)
    }

    fn read_at(&mut self, offset: u64, digest: &mut Digest) -> Result<()> {
        let v = self.events.get(offset.to_be_bytes())?.ok_or_else(|| missing("fjall", offset))?;
        digest.add(payload(&v)?);
        Ok(())
    }

    fn read_last(&mut self) -> Result<Option<u64>> {
        match self.events.last_key_value()? {
            Some((k, v)) => {
                payload(&v)?;
                Ok(Some(be(&k)?))
            }
            None => Ok(None),
        }
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Dropping the keyspace persists the journal (to the OS) and stops its workers.
        drop(self);
        Ok(())
    }
}
