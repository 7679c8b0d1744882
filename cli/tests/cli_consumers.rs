//! The store commands of the `tidelog` binary: `tail [-f]`, `consumers`, `dlq list|redrive`,
//! on a store written through the library, with human and JSON output.

#[path = "../../tests/consumer_support/mod.rs"]
mod consumer_support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use consumer_support::{open_store, poll_n, quick_group, tree};
use serde_json::Value;
use tidelog::{Record, Store};

fn tidelog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidelog")).args(args).output().expect("run the tidelog binary")
}

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tidelog(&all);
    assert_eq!(o.status.code(), Some(0), "{args:?}\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&o)))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A store with topic `orders` (20 events), group `billing` (10 acked, 2 rejected, 1 nacked
/// for an hour, 2 in flight when closed), group `audit` (nothing consumed).
fn fixture(dir: &Path) -> Store {
    let store = open_store(dir);
    let t = store.topic("orders").unwrap();
    for i in 0..20 {
        t.publish(Record::new(format!("order-{i}").as_bytes()).key(format!("c{}", i % 3).as_bytes())).unwrap();
    }
    let billing = t.group("billing", quick_group()).unwrap();
    let ds = poll_n(&billing, 15);
    billing.ack_batch(&ds[..10]).unwrap();
    billing.reject(&ds[10], "bad currency").unwrap();
    billing.reject(&ds[11], "bad\ncustomer").unwrap();
    billing.nack_after(&ds[12], Duration::from_secs(3600), "bank down").unwrap();
    billing.close().unwrap();
    t.group("audit", quick_group()).unwrap().close().unwrap();
    store
}

#[test]
fn consumers_reports_every_group() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = fixture(tmp.path());
    let v = json(&["consumers", p(tmp.path())]);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let audit = &groups[0];
    assert_eq!(
        (audit["group"].as_str(), audit["committed"].as_u64(), audit["unconsumed"].as_u64()),
        (Some("audit"), Some(0), Some(20))
    );
    let b = &groups[1];
    assert_eq!(b["group"], "billing");
    assert_eq!(b["committed"], 12, "10 acked, 2 dead-lettered");
    assert_eq!(b["end_offset"], 20);
    assert_eq!(b["unconsumed"], 8);
    assert_eq!(b["in_flight"], 2);
    assert_eq!(b["scheduled_retries"], 1);
    assert_eq!(b["dead_letters"], 2);
    assert_eq!(b["lost_to_retention"], 0);
    let o = tidelog(&["consumers", p(tmp.path())]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("billing") && out.contains("audit") && out.contains("committed"), "{out}");
    // One topic only.
    assert_eq!(json(&["consumers", p(tmp.path()), "orders"])["groups"].as_array().unwrap().len(), 2);
}

#[test]
fn tail_prints_the_last_events_and_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = fixture(tmp.path());
    let o = tidelog(&["tail", p(tmp.path()), "orders", "-n", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("order-17") && lines[2].contains("order-19") && lines[2].contains("key=c1"), "{out}");
    let o = tidelog(&["--json", "tail", p(tmp.path()), "orders", "--from", "5", "--limit", "2"]);
    let recs: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0]["offset"].as_u64(), recs[0]["payload"].as_str()), (Some(5), Some("order-5")));
    assert_eq!(recs[1]["key"], "c0");
}

#[test]
fn tail_follow_prints_events_as_they_are_published() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["--json", "tail", "-f", p(tmp.path()), "orders", "--from", "20", "--idle-exit", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = store.topic("orders").unwrap();
    for i in 0..3 {
        t.publish(Record::new(format!("live-{i}").as_bytes())).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = Instant::now();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    // It exits by itself once idle for 3 s.
    assert!(t0.elapsed() < Duration::from_secs(10));
    let payloads: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(payloads, vec!["live-0", "live-1", "live-2"]);
}

#[test]
fn dlq_list_and_redrive() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(tmp.path());
    let v = json(&["dlq", "list", p(tmp.path()), "orders", "billing"]);
    let dls = v["dead_letters"].as_array().unwrap();
    assert_eq!(dls.len(), 2);
    assert_eq!(dls[0]["reason"], "bad currency");
    assert_eq!(dls[0]["cause"], "rejected");
    assert_eq!(dls[0]["status"], "parked");
    assert_eq!(dls[0]["source_offset"], 10);
    assert_eq!(dls[0]["record"]["payload"], "order-10");
    let o = tidelog(&["dlq", "list", p(tmp.path()), "orders", "billing"]);
    let human = String::from_utf8_lossy(&o.stdout);
    assert!(human.contains("bad\\ncustomer"), "control characters must be escaped: {human}");

    // Redrive one; the next poll of the group delivers it.
    let v = json(&["dlq", "redrive", p(tmp.path()), "orders", "billing", "--offset", "1"]);
    assert_eq!(v["redriven"], serde_json::json!([1]));
    let v = json(&["dlq", "list", p(tmp.path()), "orders", "billing", "--parked"]);
    assert_eq!(v["dead_letters"].as_array().unwrap().len(), 1);
    // While the group is open here, the CLI cannot take it: a clear usage error.
    let g = store.topic("orders").unwrap().group("billing", quick_group()).unwrap();
    let o = tidelog(&["dlq", "redrive", p(tmp.path()), "orders", "billing", "--all"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("open in another process"), "{}", text(&o));
    let ds = g.poll(10, Duration::from_secs(1)).unwrap();
    let redriven: Vec<_> = ds.iter().filter(|d| d.redriven_from().is_some()).collect();
    assert_eq!(redriven.len(), 1);
    assert_eq!(redriven[0].payload(), b"order-11");
    g.close().unwrap();
    // Redrive everything left; a second time there is nothing.
    assert_eq!(
        json(&["dlq", "redrive", p(tmp.path()), "orders", "billing", "--all"])["redriven"],
        serde_json::json!([0])
    );
    assert_eq!(
        json(&["dlq", "redrive", p(tmp.path()), "orders", "billing", "--all"])["redriven"],
        serde_json::json!([])
    );
    // Redriving a dead letter that is not parked fails.
    let o = tidelog(&["dlq", "redrive", p(tmp.path()), "orders", "billing", "--offset", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn bad_input_is_an_error_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = fixture(&tmp.path().join("s"));
    let before = tree(tmp.path());
    let s = tmp.path().join("s");
    let missing = tmp.path().join("missing");
    let cases: Vec<Vec<&str>> = vec![
        vec!["consumers", p(&missing)],
        vec!["tail", p(&missing), "orders"],
        vec!["tail", p(&s), "nope"],
        vec!["tail", p(&s), "../s"],
        vec!["tail", p(&s), "a/../b"],
        vec!["consumers", p(&s), ".."],
        vec!["dlq", "list", p(&s), "orders", "nope"],
        vec!["dlq", "list", p(&s), "orders", "../x"],
        vec!["dlq", "redrive", p(&s), "orders", "nope", "--all"],
        vec!["dlq", "redrive", p(&s), "orders", "billing"],
    ];
    for args in cases {
        let o = tidelog(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", text(&o));
        let mut with_json = vec!["--json"];
        with_json.extend(args.iter().copied());
        let o = tidelog(&with_json);
        assert_eq!(o.status.code(), Some(2));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", text(&o)));
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    assert_eq!(tree(tmp.path()), before, "a failed command created something");
}
