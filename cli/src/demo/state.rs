//! The demo's state feed: event-carried state transfer in the demo store. A warehouse
//! publishes only each SKU's new stock level to the topic `stock`; a subscriber reading the
//! topic receives every change with the level before and after it, which the engine filled
//! in. The read-back is checked: every `before` is the previous `after`. (The subscriber reads
//! the topic as `tidelog tail` does rather than through a consumer group, so that the demo
//! store's groups stay the two that `tidelog consumers` shows; `examples/inventory_feed.rs`
//! subscribes with a group.)

use std::io::Write;
use std::path::Path;
use tidelog::{Envelope, Options, Published, Store, StoreOptions};

use crate::error::{CliError, CliResult};
use crate::render::{bytes_text, plural};

/// The topic of stock levels.
pub const TOPIC: &str = "stock";
/// What the warehouse publishes, in order: a SKU and its new level (`None`: discontinued).
const LEVELS: [(&str, Option<&str>); 7] = [
    ("sku-kettle", Some("12")),
    ("sku-teapot", Some("3")),
    ("sku-kettle", Some("11")),
    ("sku-teapot", Some("0")),
    ("sku-kettle", Some("11")), // unchanged: not written
    ("sku-teapot", Some("5")),
    ("sku-kettle", None),
];

/// Publish the levels to `stock` in the store at `dir`, read them back as a subscriber does, and
/// check (and, for humans, show) every change's before and after.
pub fn run(dir: &Path, out: &mut impl Write, human: bool) -> CliResult {
    let failed = |doing: &str| CliError::log(format!("{doing} in the demo store {}", dir.display()));
    let opts = StoreOptions::default().topic(Options::default().segment_bytes(1 << 20));
    let store = Store::open(dir, opts).map_err(failed("opening the store"))?;
    let topic = store.topic(TOPIC).map_err(failed("creating the stock topic"))?;
    let start = topic.next_offset();
    let mut written = 0;
    for (sku, level) in LEVELS {
        let published = match level {
            Some(l) => topic.publish_state(sku.as_bytes(), l.as_bytes()),
            None => topic.delete_state(sku.as_bytes()),
        }
        .map_err(failed("publishing a state"))?;
        written += usize::from(matches!(published, Published::Written { .. }));
    }
    let mut lines = Vec::new();
    let mut last: std::collections::HashMap<Vec<u8>, Vec<u8>> = Default::default();
    for rec in topic.iter(start).map_err(failed("reading the stock topic"))? {
        let rec = rec.map_err(failed("reading the stock topic"))?;
        let env = Envelope::decode_owned(&rec).map_err(failed("decoding an envelope"))?;
        let key = rec.key().unwrap_or_default().to_vec();
        if env.before_state() != last.get(&key).map(Vec::as_slice) {
            return Err(CliError::Mismatch(format!("the before of offset {} is not the previous after", rec.offset())));
        }
        match env.after() {
            Some(a) => last.insert(key.clone(), a.to_vec()),
            None => last.remove(&key),
        };
        let show = |s: Option<&[u8]>| s.map_or_else(|| "-".to_owned(), bytes_text);
        lines.push(format!(
            "{:<10}  {:<6}  {:>2} -> {}",
            bytes_text(&key),
            env.op().name(),
            show(env.before_state()),
            show(env.after())
        ));
    }
    if lines.len() != written {
        return Err(CliError::Mismatch(format!("the subscriber read {} of {written} changes", lines.len())));
    }
    if human {
        writeln!(
            out,
            "  states   {} of stock levels published to topic {TOPIC} (only the new level each; \
             {} skipped); a subscriber reads before and after:",
            plural(LEVELS.len() as u64, "change"),
            LEVELS.len() - written
        )?;
        for l in &lines {
            writeln!(out, "             {l}")?;
        }
    }
    Ok(())
}
