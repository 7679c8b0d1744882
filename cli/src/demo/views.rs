//! The demo's read view: order totals per destination country over the store's `orders`
//! topic, kept by a runner thread, queried with a freshness bound, its sum and average
//! checked against the orders published. The view stays in the store, where `tidelog view`
//! finds it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tidelog::{GroupBy, Store, StoreOptions, ValueOf, ViewDefinition, ViewOptions, Views};

use super::store::TOPIC;
use crate::error::{CliError, CliResult};
use crate::render::count;

/// The view's name.
pub const VIEW: &str = "totals-by-country";

/// What the view answered.
#[derive(Debug, Serialize)]
pub struct ViewSummary {
    pub view: &'static str,
    pub topic: &'static str,
    pub group: String,
    pub orders: u64,
    pub sum_cents: f64,
    pub average_cents: Option<f64>,
    /// The answer reflects every event below this offset.
    pub position: u64,
    /// Orders passed over (no destination: the poison event).
    pub passed_over: u64,
}

/// Open the view over the demo store's topic, wait until it reflects every order, and check
/// its figures against the orders themselves.
pub fn run(store_dir: &Path) -> CliResult<ViewSummary> {
    let failed = |doing: &str| CliError::log(format!("{doing} the view {VIEW}"));
    let store = Store::open(store_dir, StoreOptions::default().create_if_missing(false)).map_err(failed("opening"))?;
    let topic = store.open_topic(TOPIC).map_err(failed("opening the topic of"))?;
    let views = Views::for_topic(&topic).map_err(failed("opening the views of the topic of"))?;
    let def = ViewDefinition::aggregate(
        VIEW,
        1,
        GroupBy::JsonField("ship_to".into()),
        ValueOf::JsonField("total_cents".into()),
    );
    let view = views.aggregate(def, ViewOptions::default()).map_err(failed("opening"))?;
    let end = topic.next_offset();
    let answer = view
        .query_at_least(end, Duration::from_secs(10), |s| s.iter().map(|(g, st)| (g.to_vec(), *st)).collect::<Vec<_>>())
        .map_err(failed("querying"))?;
    view.stop().map_err(failed("stopping"))?;
    let [(group, stats)] = answer.value.as_slice() else {
        return Err(CliError::Mismatch(format!("the view has {} groups, expected one", answer.value.len())));
    };
    // The orders' own figures, read from the topic.
    let (mut orders, mut sum) = (0u64, 0f64);
    for r in topic.iter(0).map_err(failed("reading the topic for"))? {
        let r = r.map_err(failed("reading the topic for"))?;
        let text = String::from_utf8_lossy(r.payload());
        if let Some(total) = text.split("\"total_cents\":").nth(1).and_then(|t| t.split(',').next()) {
            if let Ok(cents) = total.parse::<f64>() {
                orders += 1;
                sum += cents;
            }
        }
    }
    if (stats.records, stats.sum) != (orders, sum) {
        return Err(CliError::Mismatch(format!(
            "the view counts {} orders totalling {}; the topic holds {orders} totalling {sum}",
            stats.records, stats.sum
        )));
    }
    Ok(ViewSummary {
        view: VIEW,
        topic: TOPIC,
        group: String::from_utf8_lossy(group).into_owned(),
        orders: stats.records,
        sum_cents: stats.sum,
        average_cents: stats.average(),
        position: answer.position,
        passed_over: answer.position - stats.records,
    })
}

impl ViewSummary {
    /// One line for the human report.
    pub fn print(&self, out: &mut impl Write, store_dir: &Path) -> CliResult {
        writeln!(
            out,
            "  view     {} over topic {}: {} orders to {}, {} cents in total, {:.1} on average, as of position {} \
             ({} without a destination passed over); `tidelog view query {} {} {}`",
            self.view,
            self.topic,
            count(self.orders),
            self.group,
            count(self.sum_cents as u64),
            self.average_cents.unwrap_or(0.0),
            self.position,
            self.passed_over,
            store_dir.display(),
            self.topic,
            self.view
        )?;
        Ok(())
    }
}
