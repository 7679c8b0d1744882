//! Aggregate views: count, sum, min, max and average per group, in async and inline mode,
//! with read-your-writes bounds and failures that stop only the view.

use std::time::Duration;

use tidelog::{
    Error, GroupBy, Header, Log, Options, Record, ValueOf, View, ViewDefinition, ViewMode, ViewOptions, ViewStatus,
    Views,
};

const WAIT: Duration = Duration::from_secs(10);

fn order(views: &Views, customer: &str, product: &str, amount: &str) -> u64 {
    let headers = [Header { name: "product", value: product.as_bytes() }];
    let payload = format!("{{\"customer\":\"{customer}\",\"amount\":{amount}}}");
    views.append(Record::new(payload.as_bytes()).key(customer.as_bytes()).headers(&headers)).unwrap()
}

fn revenue() -> ViewDefinition {
    ViewDefinition::aggregate("revenue", 1, GroupBy::Header("product".into()), ValueOf::JsonField("amount".into()))
}

#[test]
fn an_inline_aggregate_answers_each_group_before_the_append_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    let views = Views::open(log);
    let view = views.aggregate(revenue(), ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    order(&views, "c1", "apple", "3");
    order(&views, "c2", "apple", "5.5");
    let last = order(&views, "c1", "pear", "2");
    let a = view.query(|s| *s.get(b"apple").unwrap()).unwrap();
    assert_eq!(a.position, last + 1);
    assert_eq!((a.value.records, a.value.sum, a.value.min, a.value.max), (2, 8.5, Some(3.0), Some(5.5)));
    assert_eq!(a.value.average(), Some(4.25));
    let groups = view.query(|s| s.iter().map(|(g, st)| (g.to_vec(), st.records)).collect::<Vec<_>>()).unwrap();
    assert_eq!(groups.value, vec![(b"apple".to_vec(), 2), (b"pear".to_vec(), 1)]);
}

#[test]
fn an_async_view_reads_your_write_when_asked_for_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    let views = Views::open(log);
    let by_customer = ViewDefinition::aggregate("by-customer", 1, GroupBy::Key, ValueOf::JsonField("amount".into()));
    let view = views.aggregate(by_customer, ViewOptions::default()).unwrap();
    let mut last = 0;
    for i in 0..500 {
        last = order(&views, if i % 2 == 0 { "c1" } else { "c2" }, "apple", &i.to_string());
    }
    let a = view.query_at_least(last + 1, WAIT, |s| s.get(b"c1").copied()).unwrap();
    assert!(a.position > last);
    let c1 = a.value.unwrap();
    assert_eq!((c1.records, c1.sum), (250, (0..500).step_by(2).sum::<u64>() as f64));
    assert_eq!(view.lag().records, 0);
}

#[test]
fn a_bound_the_view_does_not_reach_in_time_is_a_typed_not_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    let views = Views::open(log);
    let view = views.aggregate(revenue(), ViewOptions::default()).unwrap();
    let at = order(&views, "c1", "apple", "1");
    // Nothing will ever be appended at `at + 5`: the bound cannot be reached.
    match view.query_at_least(at + 5, Duration::from_millis(50), |s| s.len()) {
        Err(Error::ViewNotUpToBound { view, position, bound }) => {
            assert_eq!((view.as_str(), bound), ("revenue", at + 5));
            assert!(position <= at + 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_value_that_is_not_a_number_stops_the_view_at_its_offset_and_the_log_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    let views = Views::open(log.clone());
    let inline = views.aggregate(revenue(), ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    let def = ViewDefinition::aggregate("count", 1, GroupBy::All, ValueOf::Nothing);
    let counter = views.aggregate(def, ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    order(&views, "c1", "apple", "1");
    let bad = order(&views, "c1", "apple", "\"lots\"");
    let after = order(&views, "c1", "apple", "2");
    assert_eq!(after, bad + 1);
    match inline.status() {
        ViewStatus::Failed { offset, cause } => {
            assert_eq!(offset, bad);
            assert!(cause.contains("amount"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(inline.query(|s| s.len()), Err(Error::ProjectionStopped { position, .. }) if position == bad));
    // The other view and the log go on.
    assert_eq!(counter.query(|s| s.get(b"").unwrap().records).unwrap().value, 3);
    assert_eq!(log.next_offset(), after + 1);
}

#[test]
fn an_async_view_whose_function_panics_reports_the_failure_and_the_log_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    let views = Views::open(log.clone());
    let def = ViewDefinition::aggregate(
        "fragile",
        1,
        GroupBy::All,
        ValueOf::function("panics-on-boom", |r| {
            assert_ne!(r.payload(), b"boom", "a bug in the application's value function");
            Ok(Some(1.0))
        }),
    );
    let view = views.aggregate(def, ViewOptions::default()).unwrap();
    views.append(Record::new(b"fine")).unwrap();
    let boom = views.append(Record::new(b"boom")).unwrap();
    match view.wait_for_position(boom + 1, WAIT) {
        Err(Error::ProjectionStopped { cause: Some(cause), .. }) => assert!(cause.contains("panicked"), "{cause}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(view.status(), ViewStatus::Failed { .. }));
    assert!(matches!(view.query(|s| s.len()), Err(Error::ProjectionStopped { .. })));
    assert_eq!(views.append(Record::new(b"after")).unwrap(), boom + 1);
}
