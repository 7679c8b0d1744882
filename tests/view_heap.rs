//! An aggregate view's heap grows with its distinct groups, not with the records it applied:
//! measured with a counting allocator, per group of a 16-byte name (the figure
//! `docs/views.md` gives), and unchanged when four times the records fall into the same
//! groups.
//!
//! This file installs a counting global allocator for its whole test binary; it holds a
//! single test so that no other test allocates while it measures.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::current;
use tidelog::{GroupBy, Header, Log, Options, Record, ValueOf, ViewDefinition, ViewMode, ViewOptions, Views};

/// Heap bytes held by an inline aggregate view (group by key, sum of a header) over a new log
/// of `records` records in `groups` groups, once it has applied them all.
fn heap_of_view(records: u64, groups: u64) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(16 << 20)).unwrap();
    for i in 0..records {
        let key = format!("group-{:010}", i % groups);
        let h = [Header { name: "n", value: b"3" }];
        log.append(Record::new(b"x").key(key.as_bytes()).headers(&h)).unwrap();
    }
    let views = Views::open(log.clone());
    let before = current();
    let def = ViewDefinition::aggregate("sum", 1, GroupBy::Key, ValueOf::Header("n".into()));
    let view = views.aggregate(def, ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    assert_eq!(view.query(|s| s.len()).unwrap().value as u64, groups);
    let held = current().saturating_sub(before);
    drop(view);
    drop(views);
    held
}

#[test]
fn an_aggregate_views_heap_grows_with_its_groups_and_not_with_its_records() {
    let small = heap_of_view(40_000, 1_000);
    let more_records = heap_of_view(160_000, 1_000);
    let more_groups = heap_of_view(40_000, 10_000);
    let per_group = (more_groups - small) as f64 / 9_000.0;
    eprintln!("view heap: {small} B (1,000 groups), {more_records} B (4x the records), {more_groups} B (10,000 groups): {per_group:.0} B per group");
    assert!(more_records.abs_diff(small) < 16 << 10, "{small} B grew to {more_records} B with the records");
    assert!(per_group < 250.0, "{per_group:.0} B per group of a 16-byte name");
}
