//! `tidelog consumers list|reset|delete` and `tidelog dlq purge`: changing a group that no
//! process has open, refused while one has; a dry run changes nothing.

mod support;

#[path = "../../tests/consumer_support/mod.rs"]
mod consumer_support;

use std::path::Path;

use consumer_support::{open_store, poll_n, quick_group, tree};
use serde_json::Value;
use support::{p, text, tidelog};
use tidelog::{Record, Store};

/// Run with `--json`, expect success, parse the document.
fn json(args: &[&str]) -> Value {
    support::json(args, 0)
}

/// Topic `orders` with 10 events (the last 4 published a few milliseconds after the first 6),
/// group `billing` that acked them all and rejected 3 more after, closed.
fn fixture(dir: &Path) -> Store {
    let store = open_store(dir);
    let t = store.topic("orders").unwrap();
    for i in 0..10 {
        if i == 6 {
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        t.publish(Record::new(format!("order-{i}").as_bytes())).unwrap();
    }
    let g = t.group("billing", quick_group()).unwrap();
    g.ack_batch(&poll_n(&g, 10)).unwrap();
    for i in 10..13 {
        t.publish(Record::new(format!("order-{i}").as_bytes())).unwrap();
    }
    g.reject_batch(&poll_n(&g, 3), "bad").unwrap();
    g.close().unwrap();
    store
}

fn committed(dir: &Path) -> u64 {
    json(&["consumers", "list", p(dir), "orders"])["groups"][0]["committed"].as_u64().unwrap()
}

#[test]
fn consumers_list_is_the_consumers_table() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    assert_eq!(json(&["consumers", "list", p(tmp.path())]), json(&["consumers", p(tmp.path())]));
    assert_eq!(committed(tmp.path()), 13);
}

#[test]
fn consumers_reset_moves_a_group_to_each_target_and_a_dry_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(tmp.path());
    let dir = p(tmp.path());
    let before = tree(tmp.path());
    let v = json(&["consumers", "reset", dir, "orders", "billing", "--to-offset", "4", "--dry-run"]);
    assert_eq!((v["dry_run"].as_bool(), v["after"]["committed"].as_u64()), (Some(true), Some(4)));
    assert_eq!(v["after"]["unconsumed"].as_u64(), Some(9));
    assert_eq!(tree(tmp.path()), before, "a dry run writes nothing");
    assert_eq!(committed(tmp.path()), 13);
    let six = store.open_topic("orders").unwrap().read(6).unwrap().timestamp_us.to_string();
    for (flag, value, at) in [
        ("--to-offset", Some("4"), 4),
        ("--to-latest", None, 13),
        ("--to-earliest", None, 0),
        ("--to-datetime", Some(six.as_str()), 6),
    ] {
        let mut args = vec!["consumers", "reset", dir, "orders", "billing", flag];
        args.extend(value);
        let o = tidelog(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}\n{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("to {at} (")), "{}", text(&o));
        assert_eq!(committed(tmp.path()), at, "{args:?}");
    }
    // The group consumes from there.
    let g = store.open_topic("orders").unwrap().group("billing", quick_group()).unwrap();
    let got: Vec<u64> = poll_n(&g, 7).iter().map(|d| d.offset()).collect();
    assert_eq!(got, (6..13).collect::<Vec<_>>());
    // Exactly one target.
    let o = tidelog(&["consumers", "reset", dir, "orders", "billing"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = tidelog(&["consumers", "reset", dir, "orders", "billing", "--to-earliest", "--to-latest"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn consumers_reset_delete_and_dlq_purge_are_refused_while_the_group_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(tmp.path());
    let dir = p(tmp.path());
    let g = store.open_topic("orders").unwrap().group("billing", quick_group()).unwrap();
    for args in [
        vec!["consumers", "reset", dir, "orders", "billing", "--to-earliest"],
        vec!["consumers", "delete", dir, "orders", "billing", "--yes"],
        vec!["dlq", "purge", dir, "orders", "billing", "--all", "--yes"],
    ] {
        let o = tidelog(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("open in another process"), "{}", text(&o));
    }
    // A dry run reads without the lock.
    json(&["consumers", "reset", dir, "orders", "billing", "--to-earliest", "--dry-run"]);
    g.close().unwrap();
    assert_eq!(committed(tmp.path()), 13);
    assert_eq!(store.dead_letters("orders", "billing").unwrap().len(), 3);
}

#[test]
fn consumers_delete_needs_yes_and_removes_the_group_with_its_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let dir = p(tmp.path());
    let o = tidelog(&["consumers", "delete", dir, "orders", "billing"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(tmp.path().join("groups/orders/billing").is_dir());
    let v = json(&["consumers", "delete", dir, "orders", "billing", "--yes"]);
    assert_eq!(v["deleted"].as_bool(), Some(true));
    assert!(!tmp.path().join("groups/orders/billing").exists());
    assert!(json(&["consumers", dir])["groups"].as_array().unwrap().is_empty());
    let o = tidelog(&["consumers", "delete", dir, "orders", "billing", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no consumer group billing"), "{}", text(&o));
}

#[test]
fn dlq_purge_keeps_the_newest_or_purges_by_age_or_all_and_needs_yes() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let dir = p(tmp.path());
    let listed = || -> Vec<u64> {
        let v = json(&["dlq", "list", dir, "orders", "billing"]);
        v["dead_letters"].as_array().unwrap().iter().map(|d| d["dlq_offset"].as_u64().unwrap()).collect()
    };
    let o = tidelog(&["dlq", "purge", dir, "orders", "billing", "--all"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(listed(), [0, 1, 2]);
    let v = json(&["dlq", "purge", dir, "orders", "billing", "--keep", "2", "--yes"]);
    assert_eq!((v["purged"].as_u64(), v["purged_below"].as_u64()), (Some(1), Some(1)));
    assert_eq!(listed(), [1, 2]);
    let v = json(&["dlq", "purge", dir, "orders", "billing", "--older-than", "1d", "--yes"]);
    assert_eq!(v["purged"].as_u64(), Some(0));
    let o = tidelog(&["dlq", "purge", dir, "orders", "billing", "--older-than", "0s", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("purged 2 dead letters"), "{}", text(&o));
    assert!(listed().is_empty());
    for bad in [vec!["--all", "--keep", "1"], vec!["--older-than", "5w"], vec![]] {
        let mut args = vec!["dlq", "purge", dir, "orders", "billing", "--yes"];
        args.extend(bad);
        assert_eq!(tidelog(&args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn consumers_delete_can_keep_the_dead_letters_and_dlq_list_kept_shows_them() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let dir = p(tmp.path());
    let v = json(&["consumers", "delete", dir, "orders", "billing", "--yes", "--keep-dead-letters"]);
    assert!(v["kept"]["deleted_us"].as_u64().is_some(), "{v}");
    assert!(json(&["consumers", dir])["groups"].as_array().unwrap().is_empty());
    let v = json(&["dlq", "list", dir, "orders", "billing", "--kept"]);
    let sets = v["kept"].as_array().unwrap();
    assert_eq!(sets.len(), 1);
    let reasons: Vec<_> = sets[0]["dead_letters"].as_array().unwrap().iter().map(|d| d["reason"].clone()).collect();
    assert_eq!(reasons, ["bad", "bad", "bad"]);
    let o = tidelog(&["dlq", "list", dir, "orders", "billing", "--kept"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("kept from orders/billing deleted"), "{}", text(&o));
    // The group's own dead letters are gone with it.
    let o = tidelog(&["dlq", "list", dir, "orders", "billing"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
