use tidelog::*;
#[test]
fn smoke_append_reopen_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let opts = Options::default().segment_bytes(64 * 1024).index_interval_bytes(256);
    let log = Log::open(&dir, opts.clone()).unwrap();
    for i in 0..5000u64 {
        let p = format!("payload-{i}");
        let k = format!("k{}", i % 7);
        assert_eq!(log.append(Record::new(p.as_bytes()).key(k.as_bytes())).unwrap(), i);
    }
    assert!(log.segments().len() > 3);
    for i in (0..5000u64).step_by(37) {
        assert_eq!(log.read(i).unwrap().payload, format!("payload-{i}").into_bytes());
    }
    let mut c = log.cursor(0);
    let mut n = 0;
    while let Some(r) = c.next().unwrap() {
        assert_eq!(r.offset(), n);
        n += 1;
    }
    assert_eq!(n, 5000);
    log.close().unwrap();
    let log = Log::open(&dir, opts.clone()).unwrap();
    assert!(log.open_report().clean_shutdown, "{:?}", log.open_report());
    assert_eq!(log.open_report().scanned_bytes, 0);
    assert_eq!(log.next_offset(), 5000);
    assert_eq!(log.read(4999).unwrap().payload, b"payload-4999");
    assert_eq!(log.append(Record::new(b"x")).unwrap(), 5000);
    drop(log);
    let log = Log::open(&dir, opts).unwrap();
    assert_eq!(log.next_offset(), 5001);
    let t = log.read(2500).unwrap().timestamp_us;
    let o = log.offset_for_time(t).unwrap().unwrap();
    assert!(o <= 2500);
    assert!(log.verify(|_| {}).damage.is_empty());
}
