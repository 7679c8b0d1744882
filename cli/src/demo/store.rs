//! The demo's store: a topic of orders read by two consumer groups, one of which
//! dead-letters a poison event and schedules a retry, so that `tail`, `consumers` and `dlq`
//! have something to show.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tidelog::{GroupOptions, Header, Options, Record, Store, StoreOptions};

use crate::error::{CliError, CliResult};

/// The topic.
pub const TOPIC: &str = "orders";
/// The group that consumes everything: acks all, dead-letters the poison event, and
/// schedules one retry an hour away.
pub const BILLING: &str = "billing";
/// The group that is behind: it has consumed `SHIPPED` of the `ORDERS` events.
pub const SHIPPING: &str = "shipping";
/// Events published to the topic.
const ORDERS: u64 = 100;
/// Events the shipping group has consumed.
const SHIPPED: u64 = 60;
/// The event billing cannot process.
const POISON: u64 = 42;
/// The event billing retries in an hour.
const RETRIED: u64 = 77;
/// Small files: the demo store should not take the default 128 MiB per topic segment.
const SEGMENT_BYTES: u64 = 1 << 20;
const STATE_SEGMENT_BYTES: u64 = 256 << 10;

/// What the demo left in the store.
#[derive(Debug, Serialize)]
pub struct StoreSummary {
    pub dir: String,
    pub topic: &'static str,
    pub events: u64,
    pub groups: Vec<GroupSummary>,
}

/// One group of the demo store.
#[derive(Debug, Serialize)]
pub struct GroupSummary {
    pub group: &'static str,
    pub acked: u64,
    pub unconsumed: u64,
    pub scheduled_retries: u64,
    pub dead_letters: u64,
}

fn order_payload(i: u64) -> String {
    if i == POISON {
        // A producer bug: the total is not a number.
        return format!(r#"{{"event":"order_placed","order":"ord-{i:010}","total_cents":"twelve"}}"#);
    }
    let total = 499 + (i * 7_919) % 20_000;
    format!(r#"{{"event":"order_placed","order":"ord-{i:010}","total_cents":{total},"ship_to":"DE"}}"#)
}

/// Billing's check of an order: the total must be a number.
fn bill(payload: &[u8]) -> Result<(), &'static str> {
    const FIELD: &[u8] = b"\"total_cents\":";
    let at = payload.windows(FIELD.len()).position(|w| w == FIELD).ok_or("no total_cents")? + FIELD.len();
    match payload.get(at) {
        Some(b) if b.is_ascii_digit() => Ok(()),
        _ => Err("total_cents is not a number"),
    }
}

/// Build the store in `dir`: publish the orders, let billing and shipping consume.
pub fn build(dir: &Path) -> CliResult<StoreSummary> {
    let failed = |doing: &str| CliError::log(format!("{doing} in the demo store {}", dir.display()));
    let opts = StoreOptions::default()
        .topic(Options::default().segment_bytes(SEGMENT_BYTES))
        .state_segment_bytes(STATE_SEGMENT_BYTES)
        .dead_letter_segment_bytes(STATE_SEGMENT_BYTES);
    let store = Store::open(dir, opts).map_err(failed("creating the store"))?;
    let topic = store.topic(TOPIC).map_err(failed("creating the topic"))?;
    for i in 0..ORDERS {
        let key = format!("ord-{i:010}");
        let headers = [Header { name: "type", value: b"order_placed" }];
        let payload = order_payload(i);
        topic
            .publish(Record::new(payload.as_bytes()).key(key.as_bytes()).headers(&headers))
            .map_err(failed("publishing"))?;
    }

    let billing = topic.group(BILLING, GroupOptions::default()).map_err(failed("opening billing"))?;
    let mut billed = 0u64;
    while billed < ORDERS {
        let ds = billing.poll(64, Duration::from_secs(1)).map_err(failed("polling billing"))?;
        if ds.is_empty() {
            return Err(CliError::Mismatch(format!("billing received {billed} of {ORDERS} orders")));
        }
        for d in &ds {
            billed += 1;
            match bill(d.payload()) {
                Err(reason) => billing.reject(d, reason).map_err(failed("dead-lettering"))?,
                Ok(()) if d.offset() == RETRIED => billing
                    .nack_after(d, Duration::from_secs(3600), "payment provider timed out")
                    .map_err(failed("scheduling a retry"))?,
                Ok(()) => billing.ack(d).map_err(failed("acking"))?,
            }
        }
    }
    billing.close().map_err(failed("closing billing"))?;

    let shipping = topic.group(SHIPPING, GroupOptions::default()).map_err(failed("opening shipping"))?;
    let mut shipped = 0u64;
    while shipped < SHIPPED {
        let ds = shipping.poll((SHIPPED - shipped) as usize, Duration::from_secs(1)).map_err(failed("polling"))?;
        if ds.is_empty() {
            return Err(CliError::Mismatch(format!("shipping received {shipped} of {SHIPPED} orders")));
        }
        shipping.ack_batch(&ds).map_err(failed("acking"))?;
        shipped += ds.len() as u64;
    }
    shipping.close().map_err(failed("closing shipping"))?;

    let mut groups = Vec::new();
    for (group, acked) in [(BILLING, ORDERS - 2), (SHIPPING, SHIPPED)] {
        let lag = store.group_lag(TOPIC, group).map_err(failed("reading the lag"))?;
        groups.push(GroupSummary {
            group,
            acked,
            unconsumed: lag.unconsumed,
            scheduled_retries: lag.scheduled_retries,
            dead_letters: lag.dead_letters,
        });
    }
    if groups[0].dead_letters != 1 || groups[0].scheduled_retries != 1 || groups[1].unconsumed != ORDERS - SHIPPED {
        return Err(CliError::Mismatch(format!("the demo store's groups are not as built: {groups:?}")));
    }
    Ok(StoreSummary { dir: dir.display().to_string(), topic: TOPIC, events: ORDERS, groups })
}
