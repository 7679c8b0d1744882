//! `tidelog topics list|create|delete`, driven as a user would.

mod support;

use std::path::Path;

use support::{json, p, text, tidelog};
use tidelog::{GroupOptions, Record, Store, StoreOptions};

/// `orders` with 30 records and groups `audit` and `billing`; `empty` with none.
fn fixture(dir: &Path) -> Store {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let t = store.topic("orders").unwrap();
    for i in 0..30 {
        t.publish(Record::new(format!("order-{i}").as_bytes())).unwrap();
    }
    for g in ["billing", "audit"] {
        t.group(g, GroupOptions::default()).unwrap().close().unwrap();
    }
    store.topic("empty").unwrap();
    store
}

#[test]
fn topics_list_shows_records_bytes_segments_and_groups_per_topic() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let v = json(&["topics", "list", p(tmp.path())], 0);
    let topics = v["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2);
    assert_eq!(topics[0]["topic"], "empty");
    assert_eq!(topics[0]["records"], 0);
    assert_eq!(topics[1]["topic"], "orders");
    assert_eq!(topics[1]["records"], 30);
    assert_eq!(topics[1]["next_offset"], 30);
    assert_eq!(topics[1]["segments"], 1);
    assert_eq!(topics[1]["groups"], serde_json::json!(["audit", "billing"]));
    assert!(topics[1]["bytes_used"].as_u64().unwrap() > 30 * 8);
    let o = tidelog(&["topics", "list", p(tmp.path())]);
    let out = String::from_utf8_lossy(&o.stdout);
    let heading = out.lines().next().unwrap();
    for field in
        ["topic", "records", "first_offset", "next_offset", "bytes_used", "bytes_on_disk", "segments", "groups"]
    {
        assert!(heading.split_whitespace().any(|h| h == field), "{field} in {heading}");
    }
    assert!(out.contains("audit, billing"), "{out}");
}

#[test]
fn topics_create_makes_an_empty_topic_and_refuses_an_existing_or_invalid_name() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("new-store");
    let v = json(&["topics", "create", p(&store), "events", "--segment-bytes", "65536"], 0);
    assert_eq!(v["topic"], "events");
    assert_eq!(v["records"], 0);
    let seg = std::fs::read_dir(store.join("topics/events")).unwrap().find_map(|e| {
        let path = e.unwrap().path();
        (path.extension().is_some_and(|x| x == "log")).then_some(path)
    });
    assert_eq!(std::fs::metadata(seg.unwrap()).unwrap().len(), 65536);
    let o = tidelog(&["topics", "create", p(&store), "events"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already has a topic events"), "{}", text(&o));
    let o = tidelog(&["topics", "create", p(&store), "../escape"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!tmp.path().join("escape").exists());
}

#[test]
fn topics_delete_asks_first_and_without_a_terminal_needs_yes() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let o = tidelog(&["topics", "delete", p(tmp.path()), "orders"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass --yes"), "{}", text(&o));
    assert_eq!(json(&["topics", "list", p(tmp.path())], 0)["topics"].as_array().unwrap().len(), 2);
    let o = tidelog(&["topics", "delete", p(tmp.path()), "orders", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "deleted topic orders: 30 records and 2 consumer groups\n");
    let v = json(&["topics", "list", p(tmp.path())], 0);
    assert_eq!(v["topics"].as_array().unwrap().len(), 1);
    assert!(!tmp.path().join("groups/orders").exists());
    assert_eq!(json(&["topics", "delete", p(tmp.path()), "orders", "--yes"], 2)["error"], "not_found");
}

#[test]
fn topics_delete_is_refused_while_a_writer_holds_the_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(tmp.path());
    let writer = store.topic("orders").unwrap();
    writer.publish(Record::new(b"still writing")).unwrap();
    let o = tidelog(&["topics", "delete", p(tmp.path()), "orders", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("topic orders is in use: a writer holds it"), "{err}");
    assert_eq!(json(&["topics", "delete", p(tmp.path()), "orders", "--yes"], 2)["error"], "in_use");
    assert_eq!(writer.next_offset(), 31);
    writer.publish(Record::new(b"and goes on")).unwrap();
}
