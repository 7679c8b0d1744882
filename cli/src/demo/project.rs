//! The demo's projection: per-account balances folded from the ledger by a
//! [`ProjectionRunner`] that writes snapshots; a restart that restores the newest snapshot and
//! replays only the records after it; and a temporal query (one account's balance as of an
//! earlier offset) with [`state_as_of`]. Every result is checked against an independent fold.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tidelog::{
    fingerprint_of, state_as_of, BoxError, Log, Projection, ProjectionRunner, RecordView, RunnerOptions, SnapshotDir,
    SnapshotRetention,
};

use super::ledger::{balance_change, parse_account, ACCOUNTS};
use crate::error::{CliError, CliResult};
use crate::render::{self, count, plural};

/// Snapshots written over a whole rebuild. They are spaced so that the last one falls some
/// records before the end, as it does for a real restart: `records * 2 / 17` apart.
const SNAPSHOTS: u64 = 8;

/// Balances in cents, by account number.
struct Balances;

impl Projection for Balances {
    type State = Vec<i64>;

    fn name(&self) -> &str {
        "balances"
    }

    fn fingerprint(&self) -> u64 {
        fingerprint_of(
            b"demo balances: i64 cents by account number; deposit adds, withdrawal and payment subtract; \
              snapshot = one i64 little-endian per account",
        )
    }

    fn initial(&self) -> Vec<i64> {
        vec![0; ACCOUNTS]
    }

    fn apply(&self, state: &mut Vec<i64>, r: &RecordView<'_>) -> Result<(), BoxError> {
        let kind = r.header("type").unwrap_or_default();
        if let Some((account, cents)) = balance_change(r.key().unwrap_or_default(), kind, r.payload())? {
            state[account] += cents;
        }
        Ok(())
    }

    fn snapshot(&self, state: &Vec<i64>, out: &mut Vec<u8>) -> Result<(), BoxError> {
        for cents in state {
            out.extend_from_slice(&cents.to_le_bytes());
        }
        Ok(())
    }

    fn restore(&self, payload: &[u8]) -> Result<Vec<i64>, BoxError> {
        if payload.len() != ACCOUNTS * 8 {
            return Err(format!("{} bytes, expected {}", payload.len(), ACCOUNTS * 8).into());
        }
        Ok(payload.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default())).collect())
    }
}

/// One account's balance as of an earlier offset.
#[derive(Debug, Serialize)]
pub struct AsOf {
    /// The balance reflects every record below this offset.
    pub offset: u64,
    pub account: String,
    pub balance_cents: i64,
    /// Its balance now, for comparison.
    pub balance_now_cents: i64,
    /// The snapshot the query started from (`None`: from offset 0).
    pub snapshot_position: Option<u64>,
    pub records_replayed: u64,
}

/// What the projection stage did.
#[derive(Debug, Serialize)]
pub struct ProjectionSummary {
    /// The snapshot directory.
    pub dir: String,
    /// Records a rebuild without a snapshot replayed (every record).
    pub records_without_snapshot: u64,
    pub rebuild_seconds: f64,
    /// Snapshot files left in the directory.
    pub snapshots: usize,
    /// The snapshot a restart restored.
    pub snapshot_position: Option<u64>,
    /// Records the restart replayed after it.
    pub records_with_snapshot: u64,
    pub restart_seconds: f64,
    pub as_of: AsOf,
}

fn failed(doing: &str) -> impl FnOnce(tidelog::Error) -> CliError + '_ {
    move |error| CliError::Log { doing: format!("{doing} the balances projection"), error }
}

/// Fold the balances of `log` into snapshots in `dir`, restart from them, and ask for the
/// balance of the account of the first money event at or after `as_of` as of that offset.
/// `expected` holds the balances below `written`, as the writer computed them.
pub fn run(log: &Log, dir: &Path, written: u64, expected: &[i64], as_of: u64) -> CliResult<ProjectionSummary> {
    let every = (log.next_offset() * 2 / (2 * SNAPSHOTS + 1)).max(1);
    let opts = RunnerOptions::default()
        .checkpoint_every_records(every)
        .checkpoint_interval(None)
        .retention(SnapshotRetention::default().keep_latest(SNAPSHOTS as usize + 1));

    // A rebuild from nothing: every record, a snapshot every `every` records.
    let started = Instant::now();
    let mut runner = ProjectionRunner::open(log.clone(), Balances, dir, opts.clone()).map_err(failed("opening"))?;
    let records_without_snapshot = runner.run_until_caught_up().map_err(failed("running"))?;
    let rebuild_time = started.elapsed();
    let rebuilt = runner.into_state();

    // A restart: the newest snapshot, then the records after it.
    let started = Instant::now();
    let mut runner = ProjectionRunner::open(log.clone(), Balances, dir, opts).map_err(failed("reopening"))?;
    let snapshot_position = runner.restore_report().used.as_ref().map(|s| s.position);
    let records_with_snapshot = runner.run_until_caught_up().map_err(failed("running"))?;
    let restart_time = started.elapsed();
    if *runner.state() != rebuilt {
        return Err(CliError::Mismatch("the balances restored from a snapshot differ from the rebuilt ones".into()));
    }
    drop(runner);

    let snapshots = SnapshotDir::open_read_only(dir);
    let before_tail = state_as_of(log, &Balances, &snapshots, written).map_err(failed("querying"))?;
    if before_tail.state != expected {
        return Err(CliError::Mismatch(format!("the balances as of offset {written} differ from those written")));
    }
    let as_of = temporal_query(log, &snapshots, as_of, &rebuilt)?;
    Ok(ProjectionSummary {
        dir: dir.display().to_string(),
        records_without_snapshot,
        rebuild_seconds: rebuild_time.as_secs_f64(),
        snapshots: snapshots.files().map_err(failed("listing the snapshots of"))?.len(),
        snapshot_position,
        records_with_snapshot,
        restart_seconds: restart_time.as_secs_f64(),
        as_of,
    })
}

/// The balance of the account of the first money event at or after `from`, as of that event's
/// offset, checked against a fold of that account's events from the start.
fn temporal_query(log: &Log, snapshots: &SnapshotDir, from: u64, now: &[i64]) -> CliResult<AsOf> {
    let reading = |e| CliError::Log { doing: "reading the ledger".into(), error: e };
    let mut cursor = log.cursor(from);
    let mut found = None;
    while let Some(r) = cursor.next().map_err(reading)? {
        if let Some(account) = r.key().and_then(parse_account) {
            found = Some((r.offset(), account));
            break;
        }
    }
    let (offset, account) = found.unwrap_or((log.first_offset(), 0));
    let q = state_as_of(log, &Balances, snapshots, offset).map_err(failed("querying"))?;

    let mut cursor = log.cursor(log.first_offset());
    let mut folded = 0i64;
    while let Some(r) = cursor.next().map_err(reading)? {
        if r.offset() >= offset {
            break;
        }
        if r.key().and_then(parse_account) == Some(account) {
            let kind = r.header("type").unwrap_or_default();
            let change = balance_change(r.key().unwrap_or_default(), kind, r.payload())
                .map_err(|e| CliError::Mismatch(format!("record {}: {e}", r.offset())))?;
            folded += change.map_or(0, |(_, cents)| cents);
        }
    }
    if q.state[account] != folded {
        return Err(CliError::Mismatch(format!(
            "acct-{account:06} as of offset {offset}: {} from the snapshot, {folded} folded from the start",
            q.state[account]
        )));
    }
    Ok(AsOf {
        offset,
        account: format!("acct-{account:06}"),
        balance_cents: folded,
        balance_now_cents: now[account],
        snapshot_position: q.report.used.map(|s| s.position),
        records_replayed: q.replayed,
    })
}

/// Cents as an amount: `-3,328.76`.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", count(abs / 100), abs % 100)
}

impl ProjectionSummary {
    /// The stage's lines in the demo's human output.
    pub fn print(&self, out: &mut impl Write) -> CliResult {
        writeln!(
            out,
            "  project  balances as a projection: rebuilt from {} in {}, {} kept in {}",
            plural(self.records_without_snapshot, "record"),
            render::duration(Duration::from_secs_f64(self.rebuild_seconds)),
            plural(self.snapshots as u64, "snapshot"),
            self.dir
        )?;
        let from = self
            .snapshot_position
            .map_or_else(|| "offset 0 (no snapshot)".to_owned(), |o| format!("the snapshot at offset {}", count(o)));
        writeln!(
            out,
            "           restart from {from} replayed {} in {} ({} without a snapshot), balances match",
            plural(self.records_with_snapshot, "record"),
            render::duration(Duration::from_secs_f64(self.restart_seconds)),
            count(self.records_without_snapshot)
        )?;
        let a = &self.as_of;
        let from = a
            .snapshot_position
            .map_or_else(|| "no snapshot at or before it".to_owned(), |o| format!("the snapshot at {}", count(o)));
        writeln!(
            out,
            "           as of offset {}: {} held {} (now {}): {from} plus {} replayed",
            count(a.offset),
            a.account,
            money(a.balance_cents),
            money(a.balance_now_cents),
            plural(a.records_replayed, "record")
        )?;
        out.flush()?;
        Ok(())
    }
}
