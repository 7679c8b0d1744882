//! Topic and group names: only `[A-Za-z0-9._-]{1,200}`, never `.` or `..`. A bad name is a
//! typed error and creates nothing, inside or outside the store directory.

mod consumer_support;

use consumer_support::{open_store, quick_group, tree};
use tidelog::{validate_name, Error, MAX_NAME_LEN};

fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        ".".into(),
        "..".into(),
        "/".into(),
        "a/b".into(),
        "a/../b".into(),
        "../escape".into(),
        "/abs".into(),
        "a\\b".into(),
        "a\0b".into(),
        "\0".into(),
        "café".into(),
        "топик".into(),
        "日本".into(),
        "emoji😀".into(),
        "with space".into(),
        "tab\t".into(),
        "new\nline".into(),
        "star*".into(),
        "colon:".into(),
        "x".repeat(MAX_NAME_LEN + 1),
        "é".repeat(101),
    ]
}

#[test]
fn bad_topic_names_are_typed_errors_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = open_store(&dir);
    let outside_before = tree(tmp.path());
    for name in bad_names() {
        match store.topic(&name) {
            Err(Error::InvalidName { kind, name: got, .. }) => {
                assert_eq!(kind, "topic");
                assert_eq!(got, name);
            }
            other => panic!("topic {name:?} accepted or wrong error: {other:?}"),
        }
        assert!(matches!(store.open_topic(&name), Err(Error::InvalidName { .. })));
        assert!(matches!(store.group_names(&name), Err(Error::InvalidName { .. })));
        assert!(matches!(store.group_lag(&name, "g"), Err(Error::InvalidName { .. })));
        assert!(matches!(store.dead_letters(&name, "g"), Err(Error::InvalidName { .. })));
    }
    assert_eq!(tree(tmp.path()), outside_before, "a bad name created something");
    assert!(store.topic_names().unwrap().is_empty());
}

#[test]
fn bad_group_names_are_typed_errors_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = open_store(&dir);
    let topic = store.topic("t").unwrap();
    let before = tree(tmp.path());
    for name in bad_names() {
        match topic.group(&name, quick_group()) {
            Err(Error::InvalidName { kind, .. }) => assert_eq!(kind, "group"),
            other => panic!("group {name:?} accepted or wrong error: {other:?}"),
        }
        assert!(matches!(store.group_lag("t", &name), Err(Error::InvalidName { .. })));
    }
    assert_eq!(tree(tmp.path()), before, "a bad group name created something");
    assert!(topic.group_names().unwrap().is_empty());
}

#[test]
fn edge_of_the_allowed_names_work() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let long = "x".repeat(MAX_NAME_LEN);
    for name in ["a", "...", ".hidden", "a..b", "-", "_", "Orders.EU-west_1", "0", long.as_str()] {
        validate_name("topic", name).unwrap();
        let t = store.topic(name).unwrap();
        assert_eq!(t.name(), name);
        assert_eq!(t.publish(tidelog::Record::new(b"x")).unwrap(), 0);
        let g = t.group(name, quick_group()).unwrap();
        assert_eq!(g.poll(1, std::time::Duration::from_secs(1)).unwrap().len(), 1);
        assert!(t.dir().starts_with(tmp.path()));
    }
    let mut names = store.topic_names().unwrap();
    names.sort();
    assert_eq!(names.len(), 9);
    // Everything lives under the store's two directories.
    for p in tree(tmp.path()) {
        assert!(p.starts_with("topics") || p.starts_with("groups"), "{p}");
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<tidelog::Store>();
    check::<tidelog::Topic>();
    check::<tidelog::Group>();
    check::<tidelog::Delivery>();
    check::<tidelog::GroupLag>();
    check::<tidelog::DeadLetter>();
}
