//! A bank account aggregate shared by the aggregate tests. `Account<FP>` has the state
//! fingerprint `FP`, so a test can play old and new code (same aggregate type, same events,
//! another state definition).
#![allow(dead_code)]

use std::sync::{Arc, Barrier};

use serde::{Deserialize, Serialize};
use tidelog::{Aggregate, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: i64 },
    Withdrew { cents: i64 },
}

impl Event for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "Opened",
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrew { .. } => "Withdrew",
        }
    }
}

#[derive(Debug)]
pub enum Command {
    Open(String),
    Deposit(i64),
    Withdraw(i64),
    /// Deposit, after waiting at the barrier once decided: two writers that both loaded
    /// the stream before either appends.
    DepositAfter(i64, Arc<Barrier>),
    /// Decide nothing.
    Nothing,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the account is not open")]
    NotOpen,
    #[error("the account is open already")]
    AlreadyOpen,
    #[error("overdraft: balance {balance}, withdrawal {cents}")]
    Overdraft { balance: i64, cents: i64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account<const FP: u64 = 1> {
    pub owner: Option<String>,
    pub balance: i64,
    pub events: u64,
}

impl<const FP: u64> Aggregate for Account<FP> {
    type Event = AccountEvent;
    type Command = Command;
    type Error = Rejected;

    fn aggregate_type() -> &'static str {
        "account"
    }

    fn state_fingerprint() -> u64 {
        FP
    }

    fn handle(&self, command: Command) -> Result<Vec<AccountEvent>, Rejected> {
        match command {
            Command::Open(_) if self.owner.is_some() => Err(Rejected::AlreadyOpen),
            Command::Open(owner) => Ok(vec![AccountEvent::Opened { owner }]),
            _ if self.owner.is_none() => Err(Rejected::NotOpen),
            Command::Deposit(cents) => Ok(vec![AccountEvent::Deposited { cents }]),
            Command::Withdraw(cents) if cents > self.balance => {
                Err(Rejected::Overdraft { balance: self.balance, cents })
            }
            Command::Withdraw(cents) => Ok(vec![AccountEvent::Withdrew { cents }]),
            Command::DepositAfter(cents, barrier) => {
                barrier.wait();
                Ok(vec![AccountEvent::Deposited { cents }])
            }
            Command::Nothing => Ok(Vec::new()),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { cents } => self.balance += cents,
            AccountEvent::Withdrew { cents } => self.balance -= cents,
        }
        self.events += 1;
    }
}

/// The state of a stream folded by hand from its events: the brute-force reference.
pub fn fold(events: impl IntoIterator<Item = AccountEvent>) -> Account {
    let mut a = Account::default();
    for e in events {
        a.apply(&e);
    }
    a
}
