//! A bank ledger with event-sourced accounts: each account is an aggregate (its events are
//! the stream of its key), a withdrawal that would overdraw is rejected, two tellers who
//! decided on the same version cannot both write, yesterday's balance is a time query, and
//! the audit trail lists every event with its time, offset and version.
//!
//! Run with `cargo run --example bank_ledger`. Everything lives in a temporary directory.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidelog::{
    fingerprint_of, Aggregate, AggregateOptions, AggregateStore, AsOf, Error, Event, Log, Options, SnapshotPolicy,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: i64, memo: String },
    Withdrawn { cents: i64, memo: String },
}

impl Event for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "Opened",
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrawn { .. } => "Withdrawn",
        }
    }
}

enum Command {
    Open { owner: String },
    Deposit { cents: i64, memo: String },
    Withdraw { cents: i64, memo: String },
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("amounts must be positive")]
    NotPositive,
    #[error("insufficient funds: balance {balance} cents, withdrawal {cents} cents")]
    Overdraft { balance: i64, cents: i64 },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    owner: Option<String>,
    balance: i64,
}

impl Aggregate for Account {
    type Event = AccountEvent;
    type Command = Command;
    type Error = Refused;

    fn aggregate_type() -> &'static str {
        "account"
    }

    fn state_fingerprint() -> u64 {
        // Change the text when the state or `apply` change meaning: older snapshots are then
        // skipped (and reported) and the accounts rebuilt from their events.
        fingerprint_of(b"account v1: owner, balance in cents")
    }

    fn handle(&self, command: Command) -> Result<Vec<AccountEvent>, Refused> {
        match command {
            Command::Open { owner } if self.owner.is_none() => Ok(vec![AccountEvent::Opened { owner }]),
            Command::Open { .. } => Err(Refused::AlreadyOpen),
            _ if self.owner.is_none() => Err(Refused::NotOpen),
            Command::Deposit { cents, .. } | Command::Withdraw { cents, .. } if cents <= 0 => Err(Refused::NotPositive),
            Command::Deposit { cents, memo } => Ok(vec![AccountEvent::Deposited { cents, memo }]),
            Command::Withdraw { cents, .. } if cents > self.balance => {
                Err(Refused::Overdraft { balance: self.balance, cents })
            }
            Command::Withdraw { cents, memo } => Ok(vec![AccountEvent::Withdrawn { cents, memo }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { cents, .. } => self.balance += cents,
            AccountEvent::Withdrawn { cents, .. } => self.balance -= cents,
        }
    }
}

fn deposit(cents: i64, memo: &str) -> Command {
    Command::Deposit { cents, memo: memo.into() }
}

fn withdraw(cents: i64, memo: &str) -> Command {
    Command::Withdraw { cents, memo: memo.into() }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let log = Log::open(tmp.path().join("ledger"), Options::default())?;
    // A snapshot of an account every 3 events: a load reads the snapshot and at most a few
    // events after it.
    let options = AggregateOptions::default().snapshots(SnapshotPolicy::on_demand().every(3));
    let accounts = AggregateStore::<Account>::open(&log, tmp.path().join("snapshots"), options)?;

    // Yesterday.
    accounts.execute(b"alice", Command::Open { owner: "Alice".into() })?;
    accounts.execute(b"alice", deposit(10_000, "salary"))?;
    accounts.execute(b"alice", withdraw(3_000, "groceries"))?;
    accounts.execute(b"bob", Command::Open { owner: "Bob".into() })?;
    accounts.execute(b"bob", deposit(2_000, "gift"))?;
    let close_of_yesterday = log.read(log.next_offset() - 1)?.timestamp_us;
    // Times are the log's own append times; the pause makes "today" start strictly after.
    std::thread::sleep(Duration::from_millis(2));

    // Today.
    accounts.execute(b"alice", withdraw(5_000, "rent"))?;
    match accounts.execute(b"alice", withdraw(4_000, "concert tickets")) {
        Err(Error::CommandRejected { source, .. }) => println!("alice's withdrawal of 40.00 refused: {source}"),
        other => return Err(format!("expected an overdraft refusal, got {other:?}").into()),
    }

    // Two tellers look at bob's account (same version), each decides a withdrawal.
    let teller_a = accounts.load(b"bob")?;
    let teller_b = accounts.load(b"bob")?;
    println!("both tellers see bob at version {} with {:.2}", teller_a.version, teller_a.state.balance as f64 / 100.0);
    accounts.execute_on(b"bob", teller_a, withdraw(1_500, "cash, teller A"))?;
    match accounts.execute_on(b"bob", teller_b, withdraw(1_500, "cash, teller B")) {
        Err(Error::WrongExpectedVersion { expected, actual, .. }) => {
            println!("teller B's withdrawal not written: it expected {expected:?}, bob is at version {actual}");
        }
        other => return Err(format!("expected a version conflict, got {other:?}").into()),
    }
    // Teller B loads again and decides on the current balance: now it is an overdraft.
    if let Err(e) = accounts.execute(b"bob", withdraw(1_500, "cash, teller B")) {
        println!("teller B, after reloading: {e}");
    }

    let now = accounts.load(b"alice")?;
    let yesterday = accounts.state_as_of(b"alice", AsOf::Time(close_of_yesterday))?;
    println!(
        "alice: balance {:.2} now (version {}, {} events replayed after the snapshot), {:.2} at yesterday's close",
        now.state.balance as f64 / 100.0,
        now.version,
        now.replayed,
        yesterday.state.balance as f64 / 100.0,
    );
    assert_eq!((now.state.balance, yesterday.state.balance), (2_000, 7_000));

    println!("audit trail of alice:");
    for e in accounts.history(b"alice", 0, usize::MAX)? {
        let (cents, memo) = match &e.event {
            AccountEvent::Opened { owner } => (0, format!("opened for {owner}")),
            AccountEvent::Deposited { cents, memo } => (*cents, memo.clone()),
            AccountEvent::Withdrawn { cents, memo } => (-cents, memo.clone()),
        };
        println!(
            "  v{} offset {:>2} at {} µs  {:<9} {:>+8.2}  {memo}",
            e.version,
            e.offset,
            e.timestamp_us,
            e.event_type,
            cents as f64 / 100.0
        );
    }
    log.close()?;
    Ok(())
}
