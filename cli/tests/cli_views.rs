//! `tidelog view list|query|lag|rebuild` on views written through the library: a plain log's
//! views and a store topic's, human and JSON output, and the user-function view that only
//! the application can open.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{text, tidelog};
use tidelog::{
    GroupBy, Header, IndexOptions, Log, Options, Record, Store, StoreOptions, ValueOf, ViewDefinition, ViewMode,
    ViewOptions, Views,
};

/// Run with `--json`, expect success, parse the document.
fn json(args: &[&str]) -> Value {
    support::json(args, 0)
}

/// 30 sales of three products (amount i), through an inline `revenue` view; a user-function
/// view `by-len` and an index of the products `by-product` beside it.
fn fill(views: &Views) {
    let revenue =
        ViewDefinition::aggregate("revenue", 1, GroupBy::Header("product".into()), ValueOf::JsonField("amount".into()));
    let v = views.aggregate(revenue, ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    let by_len = ViewDefinition::aggregate(
        "by-len",
        1,
        GroupBy::function("len", |r| Some(r.payload().len().to_string().into_bytes())),
        ValueOf::Nothing,
    );
    let f = views.aggregate(by_len, ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    views
        .index(ViewDefinition::index("by-product", 1, GroupBy::Header("product".into())), IndexOptions::default())
        .unwrap();
    for i in 0..30u64 {
        let product = ["apple", "pear", "plum"][(i % 3) as usize];
        let h = [Header { name: "product", value: product.as_bytes() }];
        views.append(Record::new(format!("{{\"amount\":{i}}}").as_bytes()).headers(&h)).unwrap();
    }
    v.stop().unwrap();
    f.stop().unwrap();
}

#[test]
fn a_logs_views_are_listed_queried_measured_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sales");
    let d = dir.to_str().unwrap();
    {
        let log = Log::open(&dir, Options::default().segment_bytes(1 << 20)).unwrap();
        fill(&Views::open(log.clone()));
        log.close().unwrap();
    }
    let list = json(&["view", "list", d]);
    let names: Vec<&str> = list["views"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["by-len", "by-product", "revenue"]);
    assert_eq!(list["views"][0]["needs_application"], true);
    assert_eq!(list["views"][1]["kind"], "index");
    assert_eq!(list["views"][2]["checkpoint"], 30);
    let q = json(&["view", "query", d, "by-product", "--group", "pear"]);
    assert_eq!(q["offsets"], serde_json::json!((1..30).step_by(3).collect::<Vec<u64>>()));

    let q = json(&["view", "query", d, "revenue", "--group", "apple"]);
    assert_eq!(q["position"], 30);
    assert_eq!(q["groups"][0]["records"], 10);
    assert_eq!(q["groups"][0]["sum"], (0..30).step_by(3).sum::<u64>() as f64);
    let q = json(&["view", "query", d, "revenue", "--as-of", "3"]);
    assert_eq!(q["position"], 3);
    assert_eq!(q["groups"].as_array().unwrap().len(), 3);

    let lag = json(&["view", "lag", d]);
    assert_eq!(lag["views"][1]["lag_records"], 0);
    assert_eq!(lag["views"][2]["lag_records"], 0);

    let r = json(&["view", "rebuild", d, "revenue", "--verify"]);
    assert_eq!(
        (r["generation"].clone(), r["position"].clone(), r["same_as_replaced"].clone()),
        (2.into(), 30.into(), true.into())
    );
    let human = tidelog(&["view", "query", d, "revenue"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("as of position 30"), "{}", text(&human));

    let o = tidelog(&["view", "rebuild", d, "by-len"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs the application"), "{}", text(&o));
}

#[test]
fn a_topics_views_are_found_in_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store"), StoreOptions::default()).unwrap();
    fill(&Views::for_topic(&store.topic("sales").unwrap()).unwrap());
    drop(store);
    let d = tmp.path().join("store");
    let d = d.to_str().unwrap();
    let list = json(&["view", "list", d]);
    assert_eq!(list["views"].as_array().unwrap().len(), 3);
    let q = json(&["view", "query", d, "sales", "revenue", "--group", "plum"]);
    assert_eq!((q["position"].clone(), q["groups"][0]["records"].clone()), (30.into(), 10.into()));
    let human = tidelog(&["view", "list", d, "sales"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("(needs the application)"), "{}", text(&human));
    assert!(Path::new(d).join("views/sales/revenue/view.def").is_file());
}

/// `tidelog replay --views --snapshots` rebuilds what is derived from a store's log: every
/// built-in view of the topic gets a new generation that answers as before (the user-function
/// view is reported, not rebuilt), and every consumer group gets a fresh snapshot.
#[test]
fn replay_with_views_and_snapshots_rebuilds_a_topics_views_and_group_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store"), StoreOptions::default()).unwrap();
    let topic = store.topic("sales").unwrap();
    fill(&Views::for_topic(&topic).unwrap());
    topic.group("billing", tidelog::GroupOptions::default()).unwrap().close().unwrap();
    drop(topic);
    drop(store);
    let d = tmp.path().join("store");
    let d = d.to_str().unwrap();
    let generation = |list: &Value| {
        list["views"].as_array().unwrap().iter().find(|v| v["name"] == "revenue").unwrap()["generation"].as_u64()
    };
    let before = generation(&json(&["view", "list", d, "sales"]));

    let o = tidelog(&["replay", d, "sales", "--views", "--snapshots"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("rebuilt view revenue"), "{}", text(&o));
    assert!(out.contains("by-len uses a function of the application's"), "{}", text(&o));
    assert!(out.contains("1 view rebuilt from the log"), "{}", text(&o));
    assert!(out.contains("wrote the snapshot of sales/billing"), "{}", text(&o));

    assert!(generation(&json(&["view", "list", d, "sales"])) > before);
    let q = json(&["view", "query", d, "sales", "revenue", "--group", "plum"]);
    assert_eq!((q["position"].clone(), q["groups"][0]["records"].clone()), (30.into(), 10.into()));
    let refused = tidelog(&["replay", d, "sales", "--views", "--from", "3"]);
    assert_eq!(refused.status.code(), Some(2), "--views writes no records: --from is refused\n{}", text(&refused));
}
