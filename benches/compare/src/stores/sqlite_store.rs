//! SQLite through rusqlite (bundled SQLite), WAL mode, prepared statements.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use super::{missing, Store};
use crate::data::{Digest, Event};
use crate::{now_us, Result};

const INSERT: &str = "INSERT INTO events(offset, ts, key, payload) VALUES (?1, ?2, ?3, ?4)";
const UPSERT_POSITION: &str =
    "INSERT INTO positions(consumer, pos) VALUES (?1, ?2) ON CONFLICT(consumer) DO UPDATE SET pos = excluded.pos";
const SELECT_ONE: &str = "SELECT ts, key, payload FROM events WHERE offset = ?1";

pub struct SqliteStore {
    conn: Connection,
    next: i64,
    in_tx: bool,
}

impl SqliteStore {
    pub fn open(dir: &Path, full: bool) -> Result<SqliteStore> {
        let conn = Connection::open(dir.join("events.db"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("sqlite: journal_mode is {mode}, not wal").into());
        }
        conn.execute_batch(if full { "PRAGMA synchronous=FULL;" } else { "PRAGMA synchronous=NORMAL;" })?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events(offset INTEGER PRIMARY KEY, ts INTEGER, key BLOB, payload BLOB);
             CREATE TABLE IF NOT EXISTS positions(consumer BLOB PRIMARY KEY, pos INTEGER);",
        )?;
        let next: i64 = conn.query_row("SELECT coalesce(max(offset) + 1, 0) FROM events", [], |r| r.get(0))?;
        Ok(SqliteStore { conn, next, in_tx: false })
    }

    fn insert(&mut self, batch: &[Event<'_>]) -> Result<()> {
        let ts = now_us() as i64;
        let mut st = self.conn.prepare_cached(INSERT)?;
        for e in batch {
            st.execute(params![self.next, ts, &e.key[..], e.payload])?;
            self.next += 1;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN")?;
            self.in_tx = true;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            self.conn.execute_batch("COMMIT")?;
            self.in_tx = false;
        }
        Ok(())
    }
}

fn blob<'a>(v: ValueRef<'a>) -> rusqlite::Result<&'a [u8]> {
    match v {
        ValueRef::Blob(b) => Ok(b),
        other => Err(rusqlite::Error::InvalidColumnType(0, "payload".into(), other.data_type())),
    }
}

impl Store for SqliteStore {
    /// The whole bulk load is one transaction; [`Store::sync`] commits it.
    fn append(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.begin()?;
        self.insert(batch)
    }

    fn sync(&mut self) -> Result<()> {
        self.commit()
    }

    fn append_durable(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.begin()?;
        self.insert(batch)?;
        self.commit()
    }

    fn append_with_position(&mut self, batch: &[Event<'_>], consumer: &[u8], position: u64) -> Result<()> {
        self.begin()?;
        self.insert(batch)?;
        self.conn.prepare_cached(UPSERT_POSITION)?.execute(params![consumer, position as i64])?;
        self.commit()
    }

    fn position_state(&mut self, consumer: &[u8]) -> Result<(u64, Option<u64>)> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let pos: Option<i64> = self
            .conn
            .query_row("SELECT pos FROM positions WHERE consumer = ?1", [consumer], |r| r.get(0))
            .optional()?;
        Ok((n as u64, pos.map(|p| p as u64)))
    }

    fn replay(&mut self) -> Result<Digest> {
        let mut d = Digest::default();
        let mut st = self.conn.prepare_cached("SELECT offset, ts, key, payload FROM events ORDER BY offset")?;
        let mut rows = st.query([])?;
        while let Some(row) = rows.next()? {
            d.add(blob(row.get_ref(3)?)?);
        }
        Ok(d)
    }

    fn read_at(&mut self, offset: u64, digest: &mut Digest) -> Result<()> {
        let mut st = self.conn.prepare_cached(SELECT_ONE)?;
        let found = st
            .query_row([offset as i64], |row| {
                digest.add(blob(row.get_ref(2)?)?);
                Ok(())
            })
            .optional()?;
        found.ok_or_else(|| missing("sqlite", offset))
    }

    fn read_last(&mut self) -> Result<Option<u64>> {
        let last: Option<i64> = self
            .conn
            .query_row("SELECT offset, payload FROM events ORDER BY offset DESC LIMIT 1", [], |r| r.get(0))
            .optional()?;
        Ok(last.map(|o| o as u64))
    }

    fn close(self: Box<Self>) -> Result<()> {
        let mut this = *self;
        this.commit()?;
        this.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}
