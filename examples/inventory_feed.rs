//! An inventory feed by event-carried state transfer: the warehouse publishes each SKU's new
//! stock level and nothing else; the engine fills in the level before the change. A search
//! indexer (a consumer group) receives both, so it can tell "back in stock" (0 → n) and
//! "sold out" (n → 0) from a plain update without keeping a copy of the stock itself.
//!
//! Run with `cargo run --example inventory_feed`.

use std::time::Duration;

use tidelog::{Before, Envelope, GroupOptions, Op, Published, Store, StoreOptions};

fn main() -> tidelog::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| tidelog::Error::Io { path: "tempdir".into(), source: e })?;
    let store = Store::open(tmp.path().join("store"), StoreOptions::default())?;
    let stock = store.topic("stock")?;
    let indexer = stock.group("search-indexer", GroupOptions::default())?;

    // The warehouse knows only the new level of each SKU.
    let updates: [(&str, Option<u32>); 8] = [
        ("sku-kettle", Some(12)),
        ("sku-teapot", Some(3)),
        ("sku-kettle", Some(11)),
        ("sku-teapot", Some(0)),
        ("sku-kettle", Some(11)), // unchanged: nothing is written
        ("sku-teapot", Some(5)),
        ("sku-mug", None),    // a delete of a SKU never stocked: nothing is written
        ("sku-kettle", None), // discontinued: a tombstone carrying the last level
    ];
    for (sku, level) in updates {
        let published = match level {
            Some(n) => stock.publish_state(sku.as_bytes(), n.to_string().as_bytes())?,
            None => stock.delete_state(sku.as_bytes())?,
        };
        match published {
            Published::Written { offset, op } => println!("warehouse: {sku} {op} at offset {offset}"),
            other => println!("warehouse: {sku} not written ({other:?})"),
        }
    }

    // The indexer sees each change with the state before and after it.
    let mut seen = 0;
    while seen < 6 {
        let deliveries = indexer.poll(16, Duration::from_secs(1))?;
        if deliveries.is_empty() {
            break;
        }
        for d in &deliveries {
            let env = Envelope::decode_owned(d.record())?;
            let sku = String::from_utf8_lossy(d.key().unwrap_or_default());
            let level = |s: Option<&[u8]>| s.map_or("-".to_owned(), |b| String::from_utf8_lossy(b).into_owned());
            let before = match env.before() {
                Before::State(s) => level(Some(s)),
                Before::Absent => "-".to_owned(),
                Before::Unknown => "?".to_owned(),
            };
            let note = match (env.op(), env.before_state(), env.after()) {
                (Op::Update, Some(b"0"), Some(_)) => "  back in stock",
                (Op::Update, Some(_), Some(b"0")) => "  sold out",
                (Op::Delete, ..) => "  remove from the index",
                _ => "",
            };
            println!("indexer: {sku:<11} {:<6} {before:>2} -> {:<2}{note}", env.op().name(), level(env.after()));
            seen += 1;
        }
        indexer.ack_batch(&deliveries)?;
    }
    assert_eq!(seen, 6, "six changes were written");
    let teapot = stock.latest_state(b"sku-teapot")?;
    println!("latest sku-teapot: {}", String::from_utf8_lossy(teapot.state().unwrap_or_default()));
    Ok(())
}
