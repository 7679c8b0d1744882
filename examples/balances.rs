//! Account balances as a projection of a ledger log: a background runner keeps them current,
//! a query waits for the deposit just made (read-your-writes), a restart resumes from the
//! newest snapshot instead of the whole ledger, and a query answers "as of" an older offset.
//!
//! Run with `cargo run --example balances`.

use std::collections::BTreeMap;
use std::time::Duration;

use tidelog::{
    fingerprint_of, state_as_of, BoxError, Log, Options, Projection, ProjectionRunner, Record, RecordView,
    RunnerOptions, SnapshotDir, SnapshotRetention,
};

/// Balances in cents, by account. Each record: key = account, payload = signed cents as text.
struct Balances;

impl Projection for Balances {
    type State = BTreeMap<String, i64>;

    fn name(&self) -> &str {
        "balances"
    }

    fn fingerprint(&self) -> u64 {
        // Change the text when `apply` or the snapshot encoding changes meaning: old
        // snapshots are then ignored and the balances rebuilt from the ledger.
        fingerprint_of(b"balances: key=account, payload=signed cents; snapshot=lines 'account=cents'")
    }

    fn initial(&self) -> Self::State {
        BTreeMap::new()
    }

    fn apply(&self, state: &mut Self::State, r: &RecordView<'_>) -> Result<(), BoxError> {
        let account = std::str::from_utf8(r.key().ok_or("entry without an account")?)?;
        let cents: i64 = std::str::from_utf8(r.payload())?.parse()?;
        *state.entry(account.to_owned()).or_default() += cents;
        Ok(())
    }

    fn snapshot(&self, state: &Self::State, out: &mut Vec<u8>) -> Result<(), BoxError> {
        for (account, cents) in state {
            out.extend_from_slice(format!("{account}={cents}\n").as_bytes());
        }
        Ok(())
    }

    fn restore(&self, payload: &[u8]) -> Result<Self::State, BoxError> {
        let mut state = BTreeMap::new();
        for line in std::str::from_utf8(payload)?.lines() {
            let (account, cents) = line.split_once('=').ok_or("bad snapshot line")?;
            state.insert(account.to_owned(), cents.parse()?);
        }
        Ok(state)
    }
}

fn post(log: &Log, account: &str, cents: i64) -> tidelog::Result<u64> {
    log.append(Record::new(cents.to_string().as_bytes()).key(account.as_bytes()))
}

fn main() -> tidelog::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| tidelog::Error::Io { path: "tempdir".into(), source: e })?;
    let (ledger_dir, snaps) = (tmp.path().join("ledger"), tmp.path().join("balances"));
    let opts = RunnerOptions::default()
        .checkpoint_every_records(1000)
        .retention(SnapshotRetention::default().keep_latest(2).spaced(2500, 8));

    let ledger = Log::open(&ledger_dir, Options::default())?;
    let view = ProjectionRunner::open(ledger.clone(), Balances, &snaps, opts.clone())?.spawn()?;
    for i in 0..10_000i64 {
        post(&ledger, &format!("acct-{}", i % 10), 100 + i % 7)?;
    }
    let deposit = post(&ledger, "acct-3", 50_000)?;
    // Read-your-writes: wait until the view reflects the deposit, then query it.
    assert!(view.wait_for_position(deposit + 1, Duration::from_secs(10))?);
    let q = view.query(|b| b["acct-3"])?;
    println!("acct-3 holds {} cents (view at offset {}, lag {})", q.value, q.position, view.lag());
    let runner = view.stop()?;
    println!("stopped at {}, last snapshot at {:?}", runner.position(), runner.snapshot_position());
    drop(runner);

    // A restart replays only what the last snapshot does not cover.
    post(&ledger, "acct-3", -20_000)?;
    let mut runner = ProjectionRunner::open(ledger.clone(), Balances, &snaps, opts)?;
    let from = runner.restore_report().used.as_ref().map_or(0, |s| s.position);
    let replayed = runner.run_until_caught_up()?;
    println!("restart: restored at {from}, replayed {replayed} record(s); acct-3 = {}", runner.state()["acct-3"]);

    // As of an older offset: the nearest snapshot at or before it, then the records up to it.
    let then = 3_700;
    let as_of = state_as_of(&ledger, &Balances, &SnapshotDir::open_read_only(&snaps), then)?;
    println!(
        "as of offset {then}: acct-3 = {} (from the snapshot at {:?}, {} record(s) replayed)",
        as_of.state["acct-3"],
        as_of.report.used.map(|s| s.position),
        as_of.replayed
    );
    Ok(())
}
