//! The store commands of the `tidelog` binary: `tail [-f]`, `consumers`, `dlq list|redrive`,
//! on a store written through the library, with human and JSON output.

mod support;

#[path = "../../tests/consumer_support/mod.rs"]
mod consumer_support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use consumer_support::{open_store, poll_n, quick_group, tree};
use serde_json::Value;
use support::{p, text, tidelog};
use tidelog::{Record, Store};

/// Run with `--json`, expect success, parse the document.
fn json(args: &[&str]) -> Value {
    support::json(args, 0)
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

/// Run with `--json`, expecting exit code `code`; stdout parsed as one JSON document.
fn json_exit(args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tidelog(&all);
    assert_eq!(o.status.code(), Some(code), "{args:?}\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&o)))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tidelog consumers STORE` used to exit 1 and list nothing as soon as one group's state
/// was damaged, hiding every healthy group. Now the healthy groups are listed, the damaged
/// one gets an error naming its file, and the exit code still says that something is wrong.
#[test]
fn consumers_lists_the_healthy_groups_and_a_located_error_for_a_damaged_one() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    // Damage billing's state snapshot (`snapshots/*.snap` in its group directory).
    let group_dir = tmp.path().join("groups/orders/billing/snapshots");
    let mut damaged = Vec::new();
    for e in std::fs::read_dir(&group_dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "snap") {
            std::fs::write(&path, b"not a snapshot").unwrap();
            damaged.push(path);
        }
    }
    assert!(!damaged.is_empty(), "the group directory holds no file to damage");

    let o = tidelog(&["consumers", p(tmp.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().any(|l| l.contains("orders") && l.contains("audit")), "{out}");
    assert!(!out.contains("billing"), "{out}");
    assert!(stderr(&o).contains("orders/billing"), "{}", text(&o));
    assert!(damaged.iter().any(|d| stderr(&o).contains(p(d))), "the error must name the damaged file: {}", text(&o));

    let v = json_exit(&["consumers", p(tmp.path())], 1);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["group"], "audit");
    assert_eq!(groups[0]["unconsumed"], 20);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0]["topic"].as_str(), errors[0]["group"].as_str()), (Some("orders"), Some("billing")));
    assert_eq!(errors[0]["error"]["error"], "corruption");
    assert!(damaged.iter().any(|d| errors[0]["error"]["file"] == p(d)), "{v}");
}

/// `consumers` on a plain log used to answer "no consumer groups", as if it were an empty
/// store; every store command now says that the directory is a log and what reads it.
#[test]
fn store_commands_on_a_plain_log_say_that_it_is_a_log() {
    let tmp = tempfile::tempdir().unwrap();
    let log_dir = tmp.path().join("log");
    let log = tidelog::Log::open(&log_dir, tidelog::Options::default().segment_bytes(64 << 10)).unwrap();
    log.append(Record::new(b"x")).unwrap();
    log.close().unwrap();
    for args in [
        vec!["consumers", p(&log_dir)],
        vec!["tail", p(&log_dir), "orders"],
        vec!["dlq", "list", p(&log_dir), "orders", "billing"],
    ] {
        let o = tidelog(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", text(&o));
        assert!(stderr(&o).contains("is a log, not a store"), "{args:?}\n{}", text(&o));
        assert!(stderr(&o).contains(&format!("tidelog info {}", p(&log_dir))), "{}", text(&o));
    }
    // An empty store is still a store; a topic without groups has none.
    let store_dir = tmp.path().join("store");
    let store = open_store(&store_dir);
    let o = tidelog(&["consumers", p(&store_dir)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("has no topics: it is an empty store"), "{}", text(&o));
    store.topic("orders").unwrap();
    let o = tidelog(&["consumers", p(&store_dir)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("has no consumer groups"), "{}", text(&o));
    // A missing directory is no store (not "no log").
    let o = tidelog(&["consumers", p(&tmp.path().join("missing"))]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("no store at"), "{}", text(&o));
}

/// `info` on a store used to say that the directory holds no segment files; it then said that
/// it is a store, and which commands read it. `info` and `verify` now read a whole store
/// (`cli_store_inspection.rs`); `dump`, which prints one log's records, still says so.
#[test]
fn dump_on_a_store_says_that_it_is_a_store_and_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(tmp.path());
    let topic_dir = store.open_topic("orders").unwrap().dir().to_path_buf();
    let cmd = "dump";
    let o = tidelog(&[cmd, p(tmp.path())]);
    assert_eq!(o.status.code(), Some(2), "{cmd}\n{}", text(&o));
    let err = stderr(&o);
    assert!(err.contains("is a store (topics: orders), not a log"), "{cmd}: {err}");
    assert!(err.contains(&format!("tidelog consumers {}", p(tmp.path()))), "{cmd}: {err}");
    assert!(err.contains(&format!("tidelog info {}", p(&topic_dir))), "{cmd}: {err}");
    assert_eq!(json_exit(&[cmd, p(tmp.path())], 2)["error"], "not_found");
    // The topic's log, named in the message, is a log that `info` reads.
    assert_eq!(json(&["info", p(&topic_dir)])["records"], 20);
}

/// A group that does not exist used to get "no consumer group" from `dlq redrive` and a
/// different error from `dlq list`; it is one error now, from every command.
#[test]
fn an_unknown_group_is_the_same_error_from_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let want = "topic orders has no consumer group nope (groups: audit, billing)";
    for args in [
        vec!["dlq", "list", p(tmp.path()), "orders", "nope"],
        vec!["dlq", "redrive", p(tmp.path()), "orders", "nope", "--all"],
        vec!["dlq", "redrive", p(tmp.path()), "orders", "nope", "--offset", "0"],
    ] {
        let o = tidelog(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", text(&o));
        assert_eq!(stderr(&o).trim(), format!("tidelog: error: {want}"), "{args:?}");
        let v = json_exit(&args, 2);
        assert_eq!((v["error"].as_str(), v["message"].as_str()), (Some("not_found"), Some(want)), "{args:?}");
    }
    let o = tidelog(&["tail", p(tmp.path()), "nope"]);
    assert!(stderr(&o).contains("has no topic nope (topics: orders)"), "{}", text(&o));
}

/// `dlq redrive` used to demand `--all` in its usage error even though `--offset` was the
/// other way to name what to redrive. It takes exactly one of the two, redrives every
/// offset named, and redrives nothing if one of them is not a parked dead letter.
#[test]
fn dlq_redrive_takes_either_all_or_offsets_and_checks_every_offset_first() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let dir = p(tmp.path());
    let o = tidelog(&["dlq", "redrive", dir, "orders", "billing"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--all|--offset"), "{}", text(&o));
    let o = tidelog(&["dlq", "redrive", dir, "orders", "billing", "--all", "--offset", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", text(&o));

    // One bad offset among good ones: nothing is redriven.
    let o = tidelog(&["dlq", "redrive", dir, "orders", "billing", "--offset", "0", "--offset", "7"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("has no dead letter 7"), "{}", text(&o));
    let parked = json(&["dlq", "list", dir, "orders", "billing", "--parked"]);
    assert_eq!(parked["dead_letters"].as_array().unwrap().len(), 2);

    let v = json(&["dlq", "redrive", dir, "orders", "billing", "--offset", "1", "--offset", "0"]);
    assert_eq!(v["redriven"], serde_json::json!([0, 1]));
    let parked = json(&["dlq", "list", dir, "orders", "billing", "--parked"]);
    assert_eq!(parked["dead_letters"].as_array().unwrap().len(), 0);
    let o = tidelog(&["dlq", "redrive", dir, "orders", "billing", "--offset", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("dead letter 1 of orders/billing is redriven, not parked"), "{}", text(&o));
}

/// `--idle-exit -1` and `--idle-exit nan` used to be accepted (and meant "exit at once" and
/// who knows what); a number of seconds must be finite and not negative.
#[test]
fn tail_idle_exit_refuses_negative_and_non_finite_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    for bad in ["--idle-exit=-1", "--idle-exit=nan", "--idle-exit=inf", "--idle-exit=soon"] {
        let o = tidelog(&["tail", "-f", p(tmp.path()), "orders", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}\n{}", text(&o));
        assert!(stderr(&o).contains("seconds"), "{bad}\n{}", text(&o));
    }
    let o = tidelog(&["tail", "-f", p(tmp.path()), "orders", "--idle-exit", "0", "-n", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// `dump`, `tail` and `dlq list` show a record in one shape: the same JSON object (binary as
/// `{"hex": ...}` in every field) and the same human line (binary as `hex:`).
#[test]
fn dump_tail_and_dlq_show_a_record_in_the_same_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("bin").unwrap();
    let headers = [tidelog::Header { name: "kind", value: &[0xfe, 0x01] }];
    t.publish(Record::new(&[0xff, 0x00]).key(&[0x80]).headers(&headers)).unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let ds = poll_n(&g, 1);
    g.reject(&ds[0], "binary").unwrap();
    g.close().unwrap();
    let topic_dir = t.dir().to_path_buf();

    let from_dump = json(&["dump", p(&topic_dir)])["records"][0].clone();
    let o = tidelog(&["--json", "tail", p(tmp.path()), "bin"]);
    let from_tail: Value = serde_json::from_slice(&o.stdout).unwrap();
    let from_dlq = json(&["dlq", "list", p(tmp.path()), "bin", "g"])["dead_letters"][0]["record"].clone();
    assert_eq!(from_dump, from_tail);
    assert_eq!(from_dump, from_dlq);
    assert_eq!(from_dump["key"], serde_json::json!({ "hex": "80" }));
    assert_eq!(from_dump["headers"][0], serde_json::json!({ "name": "kind", "value": { "hex": "fe01" } }));
    assert_eq!(from_dump["payload"], serde_json::json!({ "hex": "ff00" }));
    assert_eq!(from_dump["payload_bytes"], 2);

    let line = |args: &[&str]| {
        let o = tidelog(args);
        String::from_utf8_lossy(&o.stdout).lines().find(|l| l.contains("key=")).unwrap().trim().to_owned()
    };
    let dump_line = line(&["dump", p(&topic_dir)]);
    assert!(dump_line.ends_with("key=hex:80  kind=hex:fe01  hex:ff00"), "{dump_line}");
    assert_eq!(line(&["tail", p(tmp.path()), "bin"]), dump_line);
    assert_eq!(line(&["dlq", "list", p(tmp.path()), "bin", "g"]), dump_line);
}

/// The `consumers` table's headings are the field names of its JSON rows, in order.
#[test]
fn consumers_table_headings_are_the_json_field_names() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fixture(tmp.path()));
    let v = json(&["consumers", p(tmp.path())]);
    let row = v["groups"][0].as_object().unwrap();
    let fields: Vec<&str> = row.keys().map(String::as_str).collect();
    let o = tidelog(&["consumers", p(tmp.path())]);
    let out = String::from_utf8_lossy(&o.stdout);
    let headings: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    let mut sorted = headings.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, fields, "serde_json sorts object keys");
    assert_eq!(headings[..2], ["topic", "group"]);
}
