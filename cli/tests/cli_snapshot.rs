//! `tidelog snapshot list|verify|prune|create`: snapshot directories of projections and
//! consumer groups listed, checked (damage located by file and byte, exit 1), pruned by a
//! retention, and a consumer group's snapshot written on demand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tidelog::{BoxError, GroupOptions, Log, Options, Projection, Record, RecordView, SnapshotDir, Store, StoreOptions};

fn tidelog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidelog")).args(args).output().expect("run the tidelog binary")
}

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn json(args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tidelog(&all);
    assert_eq!(o.status.code(), Some(code), "{args:?}\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&o)))
}

/// Counts records.
struct Count;

impl Projection for Count {
    type State = u64;
    fn name(&self) -> &str {
        "count"
    }
    fn fingerprint(&self) -> u64 {
        7
    }
    fn initial(&self) -> u64 {
        0
    }
    fn apply(&self, state: &mut u64, _: &RecordView<'_>) -> Result<(), BoxError> {
        *state += 1;
        Ok(())
    }
    fn snapshot(&self, state: &u64, out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(&state.to_le_bytes());
        Ok(())
    }
    fn restore(&self, b: &[u8]) -> Result<u64, BoxError> {
        Ok(u64::from_le_bytes(b.try_into()?))
    }
}

/// A snapshot directory with snapshots of `Count` at positions 10, 20, ..., 60.
fn snapshots(root: &Path) -> PathBuf {
    let log = Log::open(root.join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    for i in 0..60u64 {
        log.append(Record::new(format!("{i}").as_bytes())).unwrap();
    }
    let dir = root.join("snaps");
    let snaps = SnapshotDir::open(&dir).unwrap();
    for position in (10..=60).step_by(10) {
        snaps.save(&log, &Count, &position, position, position).unwrap();
    }
    dir
}

fn positions(list: &Value) -> Vec<u64> {
    list["snapshots"].as_array().unwrap().iter().map(|s| s["position"].as_u64().unwrap()).collect()
}

#[test]
fn list_shows_position_name_fingerprint_and_size_of_each_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = snapshots(tmp.path());
    let list = json(&["snapshot", "list", p(&dir)], 0);
    assert_eq!(positions(&list), [10, 20, 30, 40, 50, 60]);
    let s = &list["snapshots"][0];
    assert_eq!(
        (s["name"].as_str(), s["fingerprint"].as_str(), s["records"].as_u64()),
        (Some("count"), Some("0000000000000007"), Some(10))
    );
    assert_eq!(s["payload_bytes"].as_u64(), Some(8));
    assert!(s["file_bytes"].as_u64().unwrap() > 8 && s["modified_us"].as_u64().is_some());
    let o = tidelog(&["snapshot", "list", p(&dir)]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("-- 6 snapshots"), "{}", text(&o));
    let o = tidelog(&["snapshot", "list", p(&tmp.path().join("none"))]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn verify_locates_a_damaged_snapshot_by_file_and_byte_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = snapshots(tmp.path());
    let ok = json(&["snapshot", "verify", p(&dir)], 0);
    assert_eq!((ok["intact"].as_u64(), ok["damaged"].as_array().map(Vec::len)), (Some(6), Some(0)));
    // A flipped payload bit: the checksum fails.
    let victim = dir.join(format!("{:020}.snap", 30));
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() - 6;
    bytes[at] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    // A valid snapshot under another position's name.
    std::fs::copy(dir.join(format!("{:020}.snap", 10)), dir.join(format!("{:020}.snap", 70))).unwrap();
    let report = json(&["snapshot", "verify", p(&dir)], 1);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 2, "{report}");
    assert_eq!(damaged[0]["file"].as_str(), Some(p(&victim)));
    assert_eq!(damaged[0]["corruption"].as_str(), Some("checksum_mismatch"));
    assert!(damaged[0]["position"].as_u64().is_some());
    assert_eq!(damaged[1]["corruption"].as_str(), Some("position_mismatch"));
    let o = tidelog(&["snapshot", "verify", p(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("damaged: {} at byte", victim.display())),
        "{}",
        text(&o)
    );
    // Pruning a directory with damage is refused: it could leave no usable snapshot.
    json(&["snapshot", "prune", p(&dir), "--keep-latest", "1"], 1);
    assert_eq!(SnapshotDir::open_read_only(&dir).files().unwrap().len(), 7, "nothing was removed");
}

#[test]
fn prune_keeps_the_newest_and_the_spaced_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = snapshots(tmp.path());
    let r = json(&["snapshot", "prune", p(&dir), "--keep-latest", "2", "--spacing", "20", "--keep-spaced", "1"], 0);
    assert_eq!(r["kept"].as_u64(), Some(3), "{r}");
    assert_eq!(
        positions(&json(&["snapshot", "list", p(&dir)], 0)),
        [40, 50, 60],
        "the newest two and the oldest of the newest older stretch"
    );
    json(&["snapshot", "prune", p(&dir), "--keep-latest", "1"], 0);
    assert_eq!(positions(&json(&["snapshot", "list", p(&dir)], 0)), [60]);
    // A runner holding the directory: prune waits its turn instead of racing it.
    let held = SnapshotDir::open(&dir).unwrap();
    let o = tidelog(&["snapshot", "prune", p(&dir), "--keep-latest", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("in use"), "{}", text(&o));
    drop(held);
    let o = tidelog(&["snapshot", "prune", p(&dir), "--keep-latest", "0"]);
    assert_eq!(o.status.code(), Some(2), "K of 0 is a usage error: {}", text(&o));
}

#[test]
fn create_writes_a_consumer_groups_snapshot_when_no_process_holds_the_group() {
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let store =
        Store::open(&store_dir, StoreOptions::default().topic(Options::default().segment_bytes(1 << 20))).unwrap();
    let topic = store.topic("orders").unwrap();
    for i in 0..5 {
        topic.publish(Record::new(format!("{i}").as_bytes())).unwrap();
    }
    let group = topic.group("billing", GroupOptions::default()).unwrap();
    for d in group.poll(5, std::time::Duration::from_secs(1)).unwrap() {
        group.ack(&d).unwrap();
    }
    // Open in this process: its lock is held, the command says so and changes nothing.
    let o = tidelog(&["snapshot", "create", p(&store_dir), "orders", "billing"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("open in another process"), "{}", text(&o));
    group.close().unwrap();
    let snaps = store_dir.join("groups/orders/billing/snapshots");
    let before = SnapshotDir::open_read_only(&snaps).files().unwrap();
    for (_, path) in &before {
        std::fs::remove_file(path).unwrap();
    }
    let r = json(&["snapshot", "create", p(&store_dir), "orders", "billing"], 0);
    let written = r["snapshot"]["position"].as_u64().unwrap();
    assert_eq!(r["snapshot"]["name"].as_str(), Some("consumer-group"), "{r}");
    let after = SnapshotDir::open_read_only(&snaps).files().unwrap();
    assert_eq!(after.iter().map(|f| f.0).collect::<Vec<_>>(), [written]);
    json(&["snapshot", "verify", p(&snaps)], 0);
    // The group opens from it with its acks.
    let group = topic.group("billing", GroupOptions::default()).unwrap();
    assert_eq!(group.committed(), 5);
    let o = tidelog(&["snapshot", "create", p(&store_dir), "orders", "nobody"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
