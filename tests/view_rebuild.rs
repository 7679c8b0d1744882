//! Rebuilding views: on demand beside the live generation, which keeps answering; and on
//! open when the definition's version changed. Built-in views reopen from their stored
//! definition; those with user functions say they need the application.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidelog::{
    Error, GroupBy, Header, Log, Options, Record, ValueOf, View, ViewDefinition, ViewMode, ViewOptions, ViewStatus,
    Views,
};

fn fill(log: &Log, n: u64) {
    for i in 0..n {
        let v = (i % 10).to_string();
        let status = if i % 3 == 0 { "paid" } else { "open" };
        let h = [Header { name: "qty", value: v.as_bytes() }, Header { name: "status", value: status.as_bytes() }];
        log.append(Record::new(b"{}").key(format!("cart-{}", i % 7).as_bytes()).headers(&h)).unwrap();
    }
}

fn qty_by_cart(version: u32) -> ViewDefinition {
    ViewDefinition::aggregate("qty", version, GroupBy::Key, ValueOf::Header("qty".into()))
}

#[test]
fn a_rebuild_on_demand_swaps_in_an_identical_state_and_the_old_one_answers_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    fill(&log, 20_000);
    let views = Views::open(log.clone());
    let view = views.aggregate(qty_by_cart(1), ViewOptions::default()).unwrap();
    let before = view.query_at_least(20_000, Duration::from_secs(10), |s| s.clone()).unwrap();
    let old_generation = view.generation();
    let done = Arc::new(AtomicBool::new(false));
    let answered = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut answers = 0u64;
            while !done.load(Ordering::Acquire) {
                let a = view.query(|s| s.get(b"cart-0").map(|g| g.records)).unwrap();
                assert!(a.value.is_some());
                answers += 1;
            }
            answers
        });
        let mut calls = 0;
        let report = view.rebuild(true, |_, _| calls += 1).unwrap();
        done.store(true, Ordering::Release);
        assert!(calls > 0);
        assert_eq!(report.replaced, old_generation);
        assert_eq!(report.generation, view.generation());
        assert_eq!(report.same_as_replaced, Some(true));
        assert_eq!(report.records, 20_000);
        reader.join().unwrap()
    });
    assert!(answered > 0);
    let after = view.query(|s| s.clone()).unwrap();
    assert_eq!(after.value, before.value);
    assert_eq!(after.position, 20_000);
    // Only the new generation's files are left.
    let gens: Vec<_> = std::fs::read_dir(view.dir())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.starts_with("gen-").then_some(n)
        })
        .collect();
    assert_eq!(gens, vec![format!("gen-{:020}", report_generation(&views))]);
}

fn report_generation(views: &Views) -> u64 {
    views.stored().unwrap().iter().find(|s| s.name == "qty").unwrap().generation
}

#[test]
fn a_new_definition_version_is_built_beside_the_old_one_and_swapped_in_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    fill(&log, 1_000);
    {
        let views = Views::open(log.clone());
        let v1 = views.aggregate(qty_by_cart(1), ViewOptions::default().mode(ViewMode::Inline)).unwrap();
        assert_eq!(v1.generation(), 1);
        v1.stop().unwrap();
    }
    // Version 2 counts by status instead: the stored generation cannot be continued.
    let v2_def = ViewDefinition::aggregate("qty", 2, GroupBy::Header("status".into()), ValueOf::Nothing);
    let views = Views::open(log.clone());
    let v2 = views.aggregate(v2_def, ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    assert_eq!(v2.generation(), 2);
    let paid = v2.query(|s| s.get(b"paid").map(|g| g.records)).unwrap();
    assert_eq!((paid.value, paid.position), (Some(334), 1_000));
    let stored = views.stored().unwrap();
    assert_eq!((stored[0].version, stored[0].generation), (2, 2));
    assert_eq!(stored[0].describe(), "aggregate by header:status of none");
}

#[test]
fn a_stored_builtin_view_reopens_from_its_file_and_a_user_function_view_needs_the_application() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    fill(&log, 100);
    {
        let views = Views::open(log.clone());
        views.aggregate(qty_by_cart(1), ViewOptions::default()).unwrap().stop().unwrap();
        let by_len = ViewDefinition::aggregate(
            "by-len",
            1,
            GroupBy::function("payload-length", |r| Some(r.payload().len().to_string().into_bytes())),
            ValueOf::Nothing,
        );
        views.aggregate(by_len, ViewOptions::default()).unwrap().stop().unwrap();
    }
    let views = Views::open(log.clone());
    let qty = views.open_stored("qty", ViewOptions::default()).unwrap();
    assert_eq!(qty.wait_for_position(100, Duration::from_secs(10)).unwrap(), 100);
    assert!(matches!(views.open_stored("by-len", ViewOptions::default()), Err(Error::ViewNeedsApplication { .. })));
    assert!(matches!(views.open_stored("nope", ViewOptions::default()), Err(Error::UnknownView { .. })));
    assert!(matches!(views.open_stored("qty", ViewOptions::default()), Err(Error::ViewAlreadyOpen { .. })));
}

/// A fold whose `apply` reads a process-wide counter: not deterministic, so a state rebuilt
/// from the same records differs from the live one.
#[derive(Clone)]
struct Drifting;

static DRIFT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl tidelog::Projection for Drifting {
    type State = u64;
    fn name(&self) -> &str {
        "drifting"
    }
    fn fingerprint(&self) -> u64 {
        1
    }
    fn initial(&self) -> u64 {
        0
    }
    fn apply(&self, state: &mut u64, _: &tidelog::RecordView<'_>) -> Result<(), tidelog::BoxError> {
        *state += DRIFT.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn snapshot(&self, state: &u64, out: &mut Vec<u8>) -> Result<(), tidelog::BoxError> {
        out.extend_from_slice(&state.to_le_bytes());
        Ok(())
    }
    fn restore(&self, payload: &[u8]) -> Result<u64, tidelog::BoxError> {
        Ok(u64::from_le_bytes(payload.try_into()?))
    }
}

#[test]
fn the_determinism_check_of_a_rebuild_catches_a_fold_that_is_not_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    fill(&log, 100);
    let views = Views::open(log.clone());
    let def = ViewDefinition::fold("drifting", 1, "Drifting");
    let view = views.projection(def, Drifting, ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    let report = view.rebuild(true, |_, _| {}).unwrap();
    assert_eq!(report.same_as_replaced, Some(false));
    // Without the check nothing is compared.
    assert_eq!(view.rebuild(false, |_, _| {}).unwrap().same_as_replaced, None);
}

/// Held closed by the test until it has queried the view during the build.
static GATE: AtomicBool = AtomicBool::new(false);

#[test]
fn an_async_view_of_a_new_version_answers_from_the_old_generation_until_the_new_one_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    fill(&log, 300);
    let v1 = ViewDefinition::aggregate("orders", 1, GroupBy::Header("status".into()), ValueOf::Nothing);
    {
        let views = Views::open(log.clone());
        views.aggregate(v1, ViewOptions::default()).unwrap().stop().unwrap();
    }
    // Version 2 takes its value from a function that waits for the gate: its build cannot
    // finish before the test has looked.
    let v2 = ViewDefinition::aggregate(
        "orders",
        2,
        GroupBy::Key,
        ValueOf::function("qty-after-the-gate", |r| {
            while !GATE.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(r.header("qty").map(|q| std::str::from_utf8(q).unwrap().parse().unwrap()))
        }),
    );
    let views = Views::open(log.clone());
    let view = views.aggregate(v2, ViewOptions::default()).unwrap();
    assert_eq!(view.status(), ViewStatus::Rebuilding { generation: 2 });
    assert_eq!(view.generation(), 1);
    // The old generation answers (groups by status), and follows the log.
    let at = log.append(Record::new(b"{}").headers(&[Header { name: "status", value: b"paid" }])).unwrap();
    let paid = view.query_at_least(at + 1, Duration::from_secs(10), |s| s.get(b"paid").map(|g| g.records)).unwrap();
    assert_eq!(paid.value, Some(101));

    GATE.store(true, Ordering::Release);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while view.status() != ViewStatus::Running {
        assert!(std::time::Instant::now() < deadline, "the new generation was never swapped in");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(view.generation(), 2);
    let cart =
        view.query_at_least(at + 1, Duration::from_secs(10), |s| s.get(b"cart-0").map(|g| (g.records, g.sum))).unwrap();
    assert_eq!(cart.value.map(|(n, _)| n), Some(43));
    let stored = views.stored().unwrap();
    assert_eq!((stored[0].version, stored[0].generation), (2, 2));
}
