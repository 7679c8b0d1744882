//! `tidelog backup`, driven as a user would, while a writer in another process appends.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{json, p, text, tidelog};
use tidelog::{Log, Options, Record, Store, StoreOptions};

#[test]
fn backup_of_a_store_while_another_process_publishes_is_a_prefix_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    Store::open(&store_dir, StoreOptions::default()).unwrap().topic("events").unwrap();
    let mut publisher = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["publish", p(&store_dir), "events"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..400_000u64 {
            writeln!(stdin, "line-{i}").unwrap();
        }
    });
    let follower = Log::open_read_only(store_dir.join("topics/events"), Options::default()).unwrap();
    while !follower.wait_for(10_000, std::time::Duration::from_secs(30)).unwrap() {}
    let dest = tmp.path().join("copy");
    let v = json(&["backup", p(&store_dir), p(&dest)], 0);
    feeder.join().unwrap();
    assert!(publisher.wait().unwrap().success());
    let logs = v["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["log"], "topics/events");
    let next = logs[0]["next_offset"].as_u64().unwrap();
    assert!(next >= 10_000);
    assert_eq!(json(&["verify", p(&dest.join("topics/events"))], 0)["intact"], true);
    let copy = Log::open_read_only(dest.join("topics/events"), Options::default()).unwrap();
    assert_eq!(copy.next_offset(), next);
    for (i, rec) in copy.iter(0).enumerate() {
        assert_eq!(rec.unwrap().payload(), format!("line-{i}").as_bytes());
    }
    let o = tidelog(&["backup", p(&store_dir), p(&dest)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not an empty directory"), "{}", text(&o));
}

#[test]
fn backup_of_a_log_copies_every_record_and_says_up_to_which_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("log");
    let log = Log::open(&src, Options::default().segment_bytes(8192)).unwrap();
    for i in 0..500u32 {
        log.append(Record::new(&i.to_le_bytes())).unwrap();
    }
    let dest = tmp.path().join("copy");
    let o = tidelog(&["backup", p(&src), p(&dest)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("500 records in 1 log"), "{out}");
    assert!(out.contains("opened and verified intact"), "{out}");
    let copy = Log::open_read_only(&dest, Options::default()).unwrap();
    assert_eq!(copy.next_offset(), 500);
    assert!(copy.segments().len() > 2);
}
