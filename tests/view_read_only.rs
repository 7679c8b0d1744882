//! A read-only process queries views another process keeps current, through a read-only
//! follower of the log and the views' files; it follows a rebuild the writer swaps in. Also:
//! as-of queries by offset and by time, and views of a store's topic.

use std::time::Duration;

use tidelog::{
    Error, GroupBy, Header, Log, Options, Record, RunnerOptions, SnapshotRetention, Store, StoreOptions, ValueOf, View,
    ViewDefinition, ViewMode, ViewOptions, Views,
};

fn revenue() -> ViewDefinition {
    ViewDefinition::aggregate("revenue", 1, GroupBy::Header("product".into()), ValueOf::JsonField("amount".into()))
}

fn sale(product: &str, amount: u64) -> (Vec<u8>, String) {
    (format!("{{\"amount\":{amount}}}").into_bytes(), product.to_owned())
}

fn append(views: &Views, product: &str, amount: u64) -> u64 {
    let (payload, product) = sale(product, amount);
    let h = [Header { name: "product", value: product.as_bytes() }];
    views.append(Record::new(&payload).headers(&h)).unwrap()
}

#[test]
fn a_read_only_open_answers_from_the_writers_files_and_follows_its_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let writer = Views::open(Log::open(&dir, Options::default().segment_bytes(1 << 20)).unwrap());
    let live = writer
        .aggregate(revenue(), ViewOptions::default().runner(RunnerOptions::default().checkpoint_every_records(10)))
        .unwrap();
    for i in 0..100 {
        append(&writer, if i % 2 == 0 { "apple" } else { "pear" }, i);
    }
    live.wait_for_position(100, Duration::from_secs(10)).unwrap();

    let follower = Log::open_read_only(&dir, Options::default()).unwrap();
    let reader = Views::open(follower);
    let ro = reader.aggregate(revenue(), ViewOptions::default().mode(ViewMode::ReadOnly)).unwrap();
    let a = ro.query(|s| s.get(b"apple").map(|g| g.sum)).unwrap();
    assert_eq!((a.value, a.position), (Some((0..100).step_by(2).sum::<u64>() as f64), 100));
    assert!(matches!(ro.rebuild(false, |_, _| {}), Err(Error::ReadOnly)));

    // The writer goes on and rebuilds; the reader sees both.
    let last = append(&writer, "apple", 1000);
    live.rebuild(false, |_, _| {}).unwrap();
    let a = ro.query_at_least(last + 1, Duration::from_secs(10), |s| s.get(b"apple").map(|g| g.records)).unwrap();
    assert_eq!(a.value, Some(51));
    assert_eq!(ro.generation(), live.generation());

    // A read-only open of another definition is refused rather than served stale.
    let other = ViewDefinition::aggregate("revenue", 2, GroupBy::Key, ValueOf::Nothing);
    let reader2 = Views::open(Log::open_read_only(&dir, Options::default()).unwrap());
    assert!(matches!(
        reader2.aggregate(other, ViewOptions::default().mode(ViewMode::ReadOnly)),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn as_of_queries_answer_from_snapshots_and_the_records_up_to_the_offset_or_time() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
    let views = Views::open(log.clone());
    let runner =
        RunnerOptions::default().checkpoint_every_records(7).retention(SnapshotRetention::default().spaced(20, 100));
    let view = views.aggregate(revenue(), ViewOptions::default().mode(ViewMode::Inline).runner(runner)).unwrap();
    let mut times = Vec::new();
    for i in 0..100 {
        let at = append(&views, "apple", i);
        times.push(log.read(at).unwrap().timestamp_us());
    }
    for offset in [0u64, 1, 13, 50, 99, 100] {
        let a = view.query_as_of(offset, |s| s.get(b"apple").map(|g| (g.records, g.sum))).unwrap();
        let want = (offset > 0).then(|| (offset, (0..offset).sum::<u64>() as f64));
        assert_eq!((a.value, a.position), (want, offset), "as of {offset}");
    }
    let t = times[41];
    let a = view.query_as_of_time(t, |s| s.get(b"apple").map(|g| g.records)).unwrap();
    // Every record stamped at or before t: at least the first 42.
    let n = times.iter().filter(|&&x| x <= t).count() as u64;
    assert_eq!(a.value, Some(n));
    assert!(matches!(view.query_as_of(101, |_| ()), Err(Error::OffsetOutOfRange { .. })));
}

#[test]
fn a_topics_views_live_in_the_store_and_appends_through_them_publish_to_the_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store"), StoreOptions::default()).unwrap();
    let orders = store.topic("orders").unwrap();
    let views = Views::for_topic(&orders).unwrap();
    assert_eq!(views.dir(), store.views_dir("orders"));
    let view = views.aggregate(revenue(), ViewOptions::default().mode(ViewMode::Inline)).unwrap();
    let at = append(&views, "apple", 5);
    assert_eq!(orders.next_offset(), at + 1);
    assert_eq!(view.query(|s| s.len()).unwrap().value, 1);
    assert_eq!(Views::stored_in(&store.views_dir("orders")).unwrap()[0].name, "revenue");
    assert_eq!(views.lags(), vec![("revenue".to_owned(), view.lag())]);
}

#[test]
fn an_async_view_over_a_read_only_follower_keeps_up_with_the_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let writer = Log::open(&dir, Options::default().segment_bytes(1 << 20)).unwrap();
    let follower = Log::open_read_only(&dir, Options::default()).unwrap();
    // The view's files are this process's own: another directory than the writer's views.
    let views = Views::open_in(follower, tmp.path().join("follower-views"));
    let view = views.aggregate(revenue(), ViewOptions::default()).unwrap();
    let mut last = 0;
    for i in 0..200 {
        let (payload, product) = sale("apple", i);
        let h = [Header { name: "product", value: product.as_bytes() }];
        last = writer.append(Record::new(&payload).headers(&h)).unwrap();
    }
    let a = view.query_at_least(last + 1, Duration::from_secs(10), |s| s.get(b"apple").map(|g| g.records)).unwrap();
    assert_eq!(a.value, Some(200));
}
