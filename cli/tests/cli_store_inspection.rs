//! `tidelog info` and `tidelog verify` on a whole store: a row per topic and per consumer
//! group, and damage in any part found and located.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{json, p, text, tidelog};
use tidelog::{GroupOptions, Options, Record, Store, StoreOptions};

/// `orders` (400 records in several segments; group `billing` consumed and acked 50, group
/// `audit` nothing) and `quiet` (no records).
fn fixture(dir: &Path) {
    let opts = StoreOptions::default().topic(Options::default().segment_bytes(8 * 1024));
    let store = Store::open(dir, opts).unwrap();
    let t = store.topic("orders").unwrap();
    for i in 0..400 {
        t.publish(Record::new(format!("order-{i:04}-{}", "x".repeat(40)).as_bytes())).unwrap();
    }
    let billing = t.group("billing", GroupOptions::default()).unwrap();
    let ds = billing.poll(50, Duration::from_secs(1)).unwrap();
    billing.ack_batch(&ds).unwrap();
    billing.close().unwrap();
    t.group("audit", GroupOptions::default()).unwrap().close().unwrap();
    store.topic("quiet").unwrap();
}

#[test]
fn info_on_a_store_shows_a_row_per_topic_and_per_group() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let v = json(&["info", p(tmp.path())], 0);
    let topics = v["topics"].as_array().unwrap();
    assert_eq!(topics.iter().map(|t| t["topic"].as_str().unwrap()).collect::<Vec<_>>(), ["orders", "quiet"]);
    assert_eq!(topics[0]["records"], 400);
    assert!(topics[0]["segments"].as_u64().unwrap() > 2);
    assert_eq!(topics[0]["shutdown"], "clean");
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!((groups[1]["group"].as_str(), groups[1]["committed"].as_u64()), (Some("billing"), Some(50)));
    assert_eq!(groups[1]["unconsumed"], 350);
    let o = tidelog(&["info", p(tmp.path())]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2 topics and 2 consumer groups"), "{out}");
    for heading in ["shutdown", "committed", "unconsumed", "dead_letters", "bytes_on_disk"] {
        assert!(out.contains(heading), "{heading} in {out}");
    }
}

#[test]
fn verify_on_a_store_checks_every_topic_and_group_log() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let v = json(&["verify", p(tmp.path())], 0);
    assert_eq!(v["intact"], true);
    let logs: Vec<&str> = v["logs"].as_array().unwrap().iter().map(|l| l["log"].as_str().unwrap()).collect();
    assert!(logs.contains(&"topics/orders") && logs.contains(&"topics/quiet"), "{logs:?}");
    assert!(logs.contains(&"groups/orders/billing/state"), "{logs:?}");
    let o = tidelog(&["verify", p(tmp.path())]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok: store "), "{}", text(&o));
}

#[test]
fn verify_on_a_store_exits_1_and_locates_damage_in_one_topic() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let seg = tmp.path().join("topics/orders").join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[200] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let v = json(&["verify", p(tmp.path())], 1);
    assert_eq!(v["intact"], false);
    let logs = v["logs"].as_array().unwrap();
    let orders = logs.iter().find(|l| l["log"] == "topics/orders").unwrap();
    assert_eq!(orders["intact"], false);
    assert_eq!(orders["damage"][0]["file"], seg.display().to_string());
    assert!(logs.iter().filter(|l| l["log"] != "topics/orders").all(|l| l["intact"] == true));
    let o = tidelog(&["verify", p(tmp.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("DAMAGED: store"), "{out}");
    assert!(out.contains("topics/orders:"), "{out}");
}
