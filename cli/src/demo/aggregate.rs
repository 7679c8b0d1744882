//! The demo's event-sourcing stage: a cart as an aggregate on a topic of the demo store
//! ([`CARTS`]), with snapshots beside the store's topics (`aggregates/`). It adds items, then
//! loads the cart from its newest snapshot plus the events after it, shows an
//! expected-version conflict between two writers that decided on the same version, and asks
//! for the cart as of an earlier time. Every result is checked against a fold of the cart's
//! history.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tidelog::{
    fingerprint_of, Aggregate, AggregateOptions, AggregateStore, AsOf, Error, Event, Loaded, Options, SnapshotPolicy,
    Store, StoreOptions,
};

use crate::error::{CliError, CliResult};
use crate::render::{self, count, plural};

/// The topic holding the carts' streams.
pub const CARTS: &str = "carts";
/// The cart's key (its stream).
const CART: &[u8] = b"cart-0001";
/// Events written to the cart, and a snapshot every this many.
const EVENTS: u64 = 1_000;
const SNAPSHOT_EVERY: u64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CartEvent {
    Added { sku: u32, cents: i64 },
    Removed { sku: u32, cents: i64 },
}

impl Event for CartEvent {
    fn event_type(&self) -> &'static str {
        match self {
            CartEvent::Added { .. } => "ItemAdded",
            CartEvent::Removed { .. } => "ItemRemoved",
        }
    }
}

#[derive(Debug)]
struct NotInCart(u32);

impl std::fmt::Display for NotInCart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sku {} is not in the cart", self.0)
    }
}

impl std::error::Error for NotInCart {}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: u64,
    total_cents: i64,
}

enum CartCommand {
    Add { sku: u32, cents: i64 },
    Remove { sku: u32, cents: i64 },
}

impl Aggregate for Cart {
    type Event = CartEvent;
    type Command = CartCommand;
    type Error = NotInCart;

    fn aggregate_type() -> &'static str {
        "cart"
    }

    fn state_fingerprint() -> u64 {
        fingerprint_of(b"demo cart v1: item count, total in cents")
    }

    fn handle(&self, c: CartCommand) -> Result<Vec<CartEvent>, NotInCart> {
        match c {
            CartCommand::Add { sku, cents } => Ok(vec![CartEvent::Added { sku, cents }]),
            CartCommand::Remove { sku, .. } if self.items == 0 => Err(NotInCart(sku)),
            CartCommand::Remove { sku, cents } => Ok(vec![CartEvent::Removed { sku, cents }]),
        }
    }

    fn apply(&mut self, e: &CartEvent) {
        match e {
            CartEvent::Added { cents, .. } => {
                (self.items, self.total_cents) = (self.items + 1, self.total_cents + cents)
            }
            CartEvent::Removed { cents, .. } => {
                (self.items, self.total_cents) = (self.items - 1, self.total_cents - cents)
            }
        }
    }
}

/// What the stage did.
#[derive(Debug, Serialize)]
pub struct AggregateSummary {
    pub topic: &'static str,
    pub key: String,
    pub events: u64,
    /// The load: the snapshot's stream version and the events replayed after it.
    pub snapshot_version: Option<u64>,
    pub replayed: u64,
    pub load_micros: f64,
    /// The same load without snapshots.
    pub replayed_without_snapshot: u64,
    pub load_without_snapshot_micros: f64,
    /// The version both writers decided on, and what the second one got.
    pub conflict_version: u64,
    pub conflict: String,
    /// Items and total as of the time after the first half of the events, and now.
    pub as_of_timestamp_us: u64,
    pub items_then: u64,
    pub items_now: u64,
}

fn failed(doing: &str) -> impl FnOnce(Error) -> CliError + '_ {
    move |error| CliError::Log { doing: format!("{doing} the demo cart"), error }
}

/// Run the stage on the demo store in `store_dir`.
pub fn run(store_dir: &Path) -> CliResult<AggregateSummary> {
    // Small segments: each is preallocated on disk.
    let opts = StoreOptions::default().topic(Options::default().segment_bytes(1 << 20));
    let store = Store::open(store_dir, opts).map_err(failed("opening the store of"))?;
    let topic = store.topic(CARTS).map_err(failed("creating the topic of"))?;
    let options = AggregateOptions::default().snapshots(SnapshotPolicy::on_demand().every(SNAPSHOT_EVERY));
    let carts = AggregateStore::<Cart>::on_topic(&topic, store_dir.join("aggregates"), options)
        .map_err(failed("opening the aggregates of"))?;
    let mut half_time = 0;
    for i in 0..EVENTS {
        let (sku, cents) = (i as u32 % 97, 100 + (i as i64 * 37) % 900);
        let c = if i % 4 == 3 { CartCommand::Remove { sku, cents } } else { CartCommand::Add { sku, cents } };
        carts.execute(CART, c).map_err(failed("writing"))?;
        if i + 1 == EVENTS / 2 {
            half_time = topic.read(topic.next_offset() - 1).map_err(failed("reading"))?.timestamp_us;
            // The rest of the events are stamped strictly later.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    let plain =
        AggregateStore::<Cart>::open(carts.log(), store_dir.join("aggregates-none"), AggregateOptions::default());
    let plain = plain.map_err(failed("opening"))?;
    // Each load once untimed first, so that neither pays for first touches of the files.
    let timed = |s: &AggregateStore<Cart>| -> CliResult<(Loaded<Cart>, Duration)> {
        s.load(CART).map_err(failed("loading"))?;
        let started = Instant::now();
        let loaded = s.load(CART).map_err(failed("loading"))?;
        Ok((loaded, started.elapsed()))
    };
    let (loaded, load_time) = timed(&carts)?;
    let (replayed_all, plain_time) = timed(&plain)?;
    drop(plain);
    let _ = std::fs::remove_dir_all(store_dir.join("aggregates-none"));

    // Two writers decide on the same version; the second append must fail.
    let first = carts.load(CART).map_err(failed("loading"))?;
    let second = carts.load(CART).map_err(failed("loading"))?;
    let conflict_version = first.version;
    carts.execute_on(CART, first, CartCommand::Add { sku: 1, cents: 250 }).map_err(failed("writing"))?;
    let conflict = match carts.execute_on(CART, second, CartCommand::Add { sku: 2, cents: 250 }) {
        Err(Error::WrongExpectedVersion { expected, actual, .. }) => {
            format!("it expected {expected:?}, the stream is at version {actual}")
        }
        other => return Err(CliError::Mismatch(format!("a stale writer was not refused: {other:?}"))),
    };

    let then = carts.state_as_of(CART, AsOf::Time(half_time)).map_err(failed("querying"))?;
    let history = carts.history(CART, 0, usize::MAX).map_err(failed("reading the history of"))?;
    let fold = |upto: u64| {
        let mut c = Cart::default();
        history.iter().filter(|h| h.timestamp_us <= upto).for_each(|h| c.apply(&h.event));
        c
    };
    let now = carts.load(CART).map_err(failed("loading"))?;
    if loaded.state != replayed_all.state || then.state != fold(half_time) || now.state != fold(u64::MAX) {
        return Err(CliError::Mismatch("the cart loaded from a snapshot differs from its history".into()));
    }
    Ok(AggregateSummary {
        topic: CARTS,
        key: String::from_utf8_lossy(CART).into_owned(),
        events: now.version,
        snapshot_version: loaded.report.used.map(|u| u.records),
        replayed: loaded.replayed,
        load_micros: load_time.as_secs_f64() * 1e6,
        replayed_without_snapshot: replayed_all.replayed,
        load_without_snapshot_micros: plain_time.as_secs_f64() * 1e6,
        conflict_version,
        conflict,
        as_of_timestamp_us: half_time,
        items_then: then.state.items,
        items_now: now.state.items,
    })
}

impl AggregateSummary {
    /// The stage's lines in the demo's human output.
    pub fn print(&self, out: &mut impl Write) -> CliResult {
        let from =
            self.snapshot_version.map_or_else(|| "no snapshot".to_owned(), |v| format!("the snapshot at version {v}"));
        writeln!(
            out,
            "  events   {} as an aggregate on topic {} ({}): loaded from {from} plus {} in {} \
             ({} without a snapshot: {})",
            self.key,
            self.topic,
            plural(self.events, "event"),
            plural(self.replayed, "event"),
            render::duration(Duration::from_secs_f64(self.load_micros / 1e6)),
            count(self.replayed_without_snapshot),
            render::duration(Duration::from_secs_f64(self.load_without_snapshot_micros / 1e6)),
        )?;
        writeln!(
            out,
            "           two writers decided on version {}; the second was refused: {}",
            self.conflict_version, self.conflict
        )?;
        writeln!(
            out,
            "           as of the time after its first {} events it held {} items (now {}), checked against its history",
            count(EVENTS / 2),
            count(self.items_then),
            count(self.items_now)
        )?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stage_loads_from_a_snapshot_refuses_a_stale_writer_and_answers_as_of_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let s = super::run(&tmp.path().join("store")).unwrap();
        assert_eq!(s.events, super::EVENTS + 1);
        assert_eq!(s.snapshot_version, Some(900));
        assert_eq!((s.replayed, s.replayed_without_snapshot), (100, super::EVENTS));
        assert_eq!(s.conflict_version, super::EVENTS);
        // Every fourth event removes an item: 375 added, 125 removed by the first half.
        assert_eq!((s.items_then, s.items_now), (250, 501));
        assert!(!tmp.path().join("store").join("aggregates-none").exists());
    }
}
