//! The demo's workload: a ledger and shop event stream (deposits, withdrawals, checkouts as
//! atomic batches, payroll runs), generated deterministically, and the ledger a replay must
//! rebuild from it.

use std::fmt::Write as _;

use tidelog::Header;

/// Accounts in the simulated ledger.
pub(super) const ACCOUNTS: usize = 10_000;

/// xorshift64*: a small deterministic generator, enough for a synthetic workload.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(super) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const SOURCES: [&str; 4] = ["atm", "mobile", "web", "branch"];
const MEMOS: [&str; 6] = [
    "groceries",
    "rent october",
    "refund for returned item",
    "birthday gift from grandma",
    "split dinner bill",
    "monthly savings transfer to the holiday fund",
];
const SKUS: [&str; 8] = [
    "TEA-GREEN-100G",
    "MUG-STONE-350",
    "KETTLE-1L",
    "BEANS-ESPRESSO-1KG",
    "FILTER-V60-100",
    "GRINDER-HAND",
    "SCALE-0.1G",
    "CUP-TRAVEL",
];
const COUNTRIES: [&str; 5] = ["DE", "FR", "NL", "SE", "IE"];

/// What a replay must find: rebuilt independently by the writer and by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ledger {
    pub(super) balances: Vec<i64>,
    pub(super) deposits: u64,
    pub(super) withdrawals: u64,
    pub(super) payments: u64,
    pub(super) orders_placed: u64,
    pub(super) orders_confirmed: u64,
    pub(super) orders_rejected: u64,
}

impl Ledger {
    pub(super) fn new() -> Ledger {
        Ledger {
            balances: vec![0; ACCOUNTS],
            deposits: 0,
            withdrawals: 0,
            payments: 0,
            orders_placed: 0,
            orders_confirmed: 0,
            orders_rejected: 0,
        }
    }

    /// Apply one event as a consumer would, from its key, `type` header and payload.
    pub(super) fn apply(&mut self, key: &[u8], kind: &[u8], payload: &[u8]) -> Result<(), String> {
        if let Some((account, cents)) = balance_change(key, kind, payload)? {
            self.balances[account] += cents;
        }
        match kind {
            b"deposit" => self.deposits += 1,
            b"withdrawal" => self.withdrawals += 1,
            b"payment" => self.payments += 1,
            b"order_placed" => self.orders_placed += 1,
            b"order_confirmed" => self.orders_confirmed += 1,
            // `order_rejected`: `balance_change` refused every other kind.
            _ => self.orders_rejected += 1,
        }
        Ok(())
    }
}

/// What one event does to a balance, from its key, `type` header and payload: the account
/// and the signed amount in cents for money events, `None` for order events.
pub(super) fn balance_change(key: &[u8], kind: &[u8], payload: &[u8]) -> Result<Option<(usize, i64)>, String> {
    let account = || parse_account(key).ok_or_else(|| format!("bad account key {:?}", String::from_utf8_lossy(key)));
    let amount = || parse_amount(payload).ok_or_else(|| "payload without amount_cents".to_owned());
    match kind {
        b"deposit" => Ok(Some((account()?, amount()?))),
        b"withdrawal" | b"payment" => Ok(Some((account()?, -amount()?))),
        b"order_placed" | b"order_confirmed" | b"order_rejected" => Ok(None),
        other => Err(format!("unknown event type {:?}", String::from_utf8_lossy(other))),
    }
}

/// `acct-004217` -> 4217.
pub(super) fn parse_account(key: &[u8]) -> Option<usize> {
    let digits = key.strip_prefix(b"acct-")?;
    let n = std::str::from_utf8(digits).ok()?.parse::<usize>().ok()?;
    (n < ACCOUNTS).then_some(n)
}

/// The number after `"amount_cents":` (the second field of every money event, so the
/// search ends early).
fn parse_amount(payload: &[u8]) -> Option<i64> {
    const FIELD: &[u8] = b"\"amount_cents\":";
    let at = payload.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let digits = &payload[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// One event waiting to be appended; the strings are reused from tick to tick.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) key: String,
    pub(super) kind: &'static str,
    pub(super) source: &'static str,
    pub(super) payload: String,
}

/// Generates the event stream and keeps the writer's view of the ledger.
pub(super) struct Generator {
    rng: Rng,
    pub(super) expected: Ledger,
    next_order: u64,
    next_ref: u64,
    pool: Vec<Pending>,
    len: usize,
}

impl Generator {
    pub(super) fn new() -> Generator {
        Generator {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            expected: Ledger::new(),
            next_order: 1,
            next_ref: 1,
            pool: Vec::new(),
            len: 0,
        }
    }

    fn push(&mut self, kind: &'static str, source: &'static str) -> &mut Pending {
        if self.len == self.pool.len() {
            self.pool.push(Pending::default());
        }
        let p = &mut self.pool[self.len];
        self.len += 1;
        p.key.clear();
        p.payload.clear();
        p.kind = kind;
        p.source = source;
        p
    }

    fn money(&mut self, kind: &'static str, source: &'static str, account: usize, amount: i64, memo: &str) {
        let reference = self.next_ref;
        self.next_ref += 1;
        let p = self.push(kind, source);
        // `write!` into a `String` cannot fail.
        let _ = write!(p.key, "acct-{account:06}");
        let _ = write!(
            p.payload,
            r#"{{"event":"{kind}","amount_cents":{amount},"account":"acct-{account:06}","currency":"EUR","channel":"{source}","reference":"tx-{reference:012}","memo":"{memo}"}}"#
        );
    }

    /// Fill the pool with the next tick's events (at most `room`): a single deposit or
    /// withdrawal, a checkout (an atomic batch: order placed, payment, confirmed or rejected),
    /// or a payroll run (an atomic batch of deposits). Returns true for a batch.
    pub(super) fn tick(&mut self, room: u64) -> bool {
        self.len = 0;
        let roll = self.rng.below(100);
        if roll < 55 || room < 3 {
            let account = self.rng.below(ACCOUNTS as u64) as usize;
            let amount = 100 + self.rng.below(50_000) as i64;
            let source = self.rng.pick(&SOURCES);
            let memo = self.rng.pick(&MEMOS);
            if self.rng.below(2) == 0 && self.expected.balances[account] >= amount {
                self.money("withdrawal", source, account, amount, memo);
                self.expected.balances[account] -= amount;
                self.expected.withdrawals += 1;
            } else {
                self.money("deposit", source, account, amount, memo);
                self.expected.balances[account] += amount;
                self.expected.deposits += 1;
            }
            return false;
        }
        if roll < 92 {
            self.checkout();
        } else {
            let n = (16 + self.rng.below(49)).min(room);
            for _ in 0..n {
                let account = self.rng.below(ACCOUNTS as u64) as usize;
                let amount = 150_000 + self.rng.below(400_000) as i64;
                self.money("deposit", "payroll", account, amount, "salary");
                self.expected.balances[account] += amount;
                self.expected.deposits += 1;
            }
        }
        true
    }

    fn checkout(&mut self) {
        let account = self.rng.below(ACCOUNTS as u64) as usize;
        let order = self.next_order;
        self.next_order += 1;
        let source = self.rng.pick(&["web", "mobile"]);
        let mut items = String::new();
        let mut total = 0i64;
        for i in 0..1 + self.rng.below(3) {
            let qty = 1 + self.rng.below(3) as i64;
            let price = 299 + self.rng.below(9_000) as i64;
            total += qty * price;
            let sku = self.rng.pick(&SKUS);
            let _ =
                write!(items, r#"{}{{"sku":"{sku}","qty":{qty},"price_cents":{price}}}"#, if i > 0 { "," } else { "" });
        }
        let country = self.rng.pick(&COUNTRIES);
        let p = self.push("order_placed", source);
        let _ = write!(p.key, "ord-{order:010}");
        let _ = write!(
            p.payload,
            r#"{{"event":"order_placed","order":"ord-{order:010}","account":"acct-{account:06}","items":[{items}],"total_cents":{total},"ship_to":"{country}"}}"#
        );
        self.expected.orders_placed += 1;
        let paid = self.expected.balances[account] >= total;
        if paid {
            self.money("payment", source, account, total, "online order");
            self.expected.balances[account] -= total;
            self.expected.payments += 1;
        }
        let kind = if paid { "order_confirmed" } else { "order_rejected" };
        let p = self.push(kind, source);
        let _ = write!(p.key, "ord-{order:010}");
        let reason = if paid { "" } else { r#","reason":"insufficient funds""# };
        let _ = write!(
            p.payload,
            r#"{{"event":"{kind}","order":"ord-{order:010}","account":"acct-{account:06}"{reason}}}"#
        );
        if paid {
            self.expected.orders_confirmed += 1;
        } else {
            self.expected.orders_rejected += 1;
        }
    }

    pub(super) fn pending(&self) -> &[Pending] {
        &self.pool[..self.len]
    }
}

pub(super) fn headers_of(p: &Pending) -> [Header<'_>; 2] {
    [Header { name: "type", value: p.kind.as_bytes() }, Header { name: "source", value: p.source.as_bytes() }]
}
