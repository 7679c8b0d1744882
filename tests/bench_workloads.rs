//! Every benchmark workload (`benches/workloads/mod.rs`), run tiny and checked, so the benchmark
//! code cannot rot (STYLE.md, habit 11): if a workload stops doing what its benchmark claims
//! to measure, this fails.

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use std::collections::HashMap;

use tidelog::{Log, Options};
use workloads::{PAYLOAD_LARGE, PAYLOAD_SMALL};

const N: u64 = 1_000;

/// Small segments, so that the tiny runs still roll and read across sealed segments.
fn small_segments() -> Options {
    workloads::append_options().segment_bytes(32 << 10).index_interval_bytes(512)
}

#[test]
fn appends_are_replayed_exactly() {
    for len in [PAYLOAD_SMALL, PAYLOAD_LARGE] {
        for batch in [1usize, 64] {
            let tmp = tempfile::tempdir().unwrap();
            let log = workloads::fill_log(&tmp.path().join("log"), N, len, batch, small_segments()).unwrap();
            assert_eq!(log.next_offset(), N);
            // A second round continues the stamps where the first stopped.
            assert_eq!(workloads::append_n(&log, N + 7, len, batch).unwrap(), N + 7);
            let total = 2 * N + 7;
            assert!(log.segments().len() > 2, "the workload must cross segments");
            let (count, sum) = workloads::replay_all(&log).unwrap();
            assert_eq!(count, total, "len {len} batch {batch}");
            assert_eq!(sum, workloads::expected_checksum(0, total, len), "len {len} batch {batch}");
            // Replay sees the same after a clean reopen.
            log.close().unwrap();
            let log = Log::open(tmp.path().join("log"), small_segments()).unwrap();
            assert_eq!(workloads::replay_all(&log).unwrap(), (count, sum));
        }
    }
}

#[test]
fn checksum_notices_a_different_log() {
    // The replay checksum is order- and content-sensitive, so equality above means something.
    let a = workloads::expected_checksum(0, N, PAYLOAD_SMALL);
    assert_ne!(a, workloads::expected_checksum(1, N, PAYLOAD_SMALL));
    assert_ne!(a, workloads::expected_checksum(0, N - 1, PAYLOAD_SMALL));
    assert_ne!(a, workloads::expected_checksum(0, N, PAYLOAD_SMALL + 1));
}

#[test]
fn random_reads_find_the_offsets_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let log = workloads::fill_log(&tmp.path().join("log"), N, PAYLOAD_SMALL, 64, small_segments()).unwrap();
    for seed in 0..5 {
        assert_eq!(workloads::random_reads(&log, N, seed).unwrap(), N);
    }
}

#[test]
fn time_lookups_find_a_record_at_or_before_each_sampled_time() {
    let tmp = tempfile::tempdir().unwrap();
    let log = workloads::fill_log(&tmp.path().join("log"), N, PAYLOAD_SMALL, 1, small_segments()).unwrap();
    let times = workloads::sample_times(&log, 200, 3).unwrap();
    assert_eq!(times.len(), 200);
    // Every sampled time is some record's timestamp, so every lookup finds one.
    assert_eq!(workloads::time_lookups(&log, &times).unwrap(), 200);
    for &t in &times {
        let off = log.offset_for_time(t).unwrap().unwrap();
        assert!(log.read(off).unwrap().timestamp_us >= t);
        if off > 0 {
            assert!(log.read(off - 1).unwrap().timestamp_us < t, "offset_for_time must return the first match");
        }
    }
    let last = log.read(N - 1).unwrap().timestamp_us;
    assert_eq!(workloads::time_lookups(&log, &[last + 1]).unwrap(), 0);
}

#[test]
fn durable_append_from_threads_loses_and_reorders_nothing() {
    for threads in [1usize, 4] {
        let tmp = tempfile::tempdir().unwrap();
        let log = Log::open(tmp.path().join("log"), workloads::durable_options().segment_bytes(64 << 10)).unwrap();
        // 1,003 does not divide by 4: the remainder must be appended too.
        let n = N + 3;
        assert_eq!(workloads::durable_append(&log, threads, n, PAYLOAD_SMALL).unwrap(), n);
        assert_eq!(log.next_offset(), n);
        // Each thread's records appear complete and in its own order.
        let mut next_seq: HashMap<u64, u64> = HashMap::new();
        for r in log.iter(0) {
            let s = workloads::stamp_of(&r.unwrap().payload);
            let seq = next_seq.entry(s >> 32).or_insert(0);
            assert_eq!(s & 0xFFFF_FFFF, *seq, "thread {} out of order", s >> 32);
            *seq += 1;
        }
        assert_eq!(next_seq.len(), threads);
        assert_eq!(next_seq.values().sum::<u64>(), n);
        // Always mode: everything acknowledged is durable, so a reopen after a drop (no
        // explicit close) sees it all.
        drop(log);
        let log = Log::open(tmp.path().join("log"), workloads::durable_options().segment_bytes(64 << 10)).unwrap();
        assert_eq!(workloads::replay_all(&log).unwrap().0, n);
    }
}

#[test]
fn clean_open_scans_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log");
    let n = workloads::build_clean_log(&path, 512 << 10, PAYLOAD_LARGE, small_segments()).unwrap();
    assert!(n * workloads::frame_bytes(PAYLOAD_LARGE) as u64 >= 512 << 10);
    for _ in 0..3 {
        let log = workloads::clean_open(&path, small_segments()).unwrap();
        let report = log.open_report();
        assert!(report.clean_shutdown, "{report:?}");
        assert_eq!(report.scanned_bytes, 0);
        assert_eq!(log.next_offset(), n);
        assert!(log.segments().len() > 4);
        drop(log);
    }
    let log = workloads::clean_open(&path, small_segments()).unwrap();
    assert_eq!(workloads::replay_all(&log).unwrap(), (n, workloads::expected_checksum(0, n, PAYLOAD_LARGE)));
}

#[test]
fn baselines_write_the_bytes_of_log_frames() {
    let tmp = tempfile::tempdir().unwrap();
    for len in [PAYLOAD_SMALL, PAYLOAD_LARGE] {
        let frame = workloads::frame_bytes(len);
        assert_eq!(frame % 8, 0);
        assert!(frame >= tidelog::RECORD_HEADER_LEN + len && frame < tidelog::RECORD_HEADER_LEN + len + 8);

        // Buffered file: every frame reaches the file.
        let path = tmp.path().join(format!("buf-{len}"));
        let mut w = workloads::baseline_file(&path).unwrap();
        assert_eq!(workloads::baseline_buffered_file_write(&mut w, N, len).unwrap(), N * frame as u64);
        drop(w);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), N as usize * frame);
        check_frames(&bytes, len);

        // Maps, file-backed and anonymous.
        let mut map = workloads::baseline_mmap_file(&tmp.path().join(format!("map-{len}")), N, len).unwrap();
        assert_eq!(workloads::baseline_mmap_copy(&mut map, N, len), N * frame as u64);
        check_frames(&map, len);
        let mut anon = workloads::baseline_mmap_anon(N, len).unwrap();
        assert_eq!(workloads::baseline_mmap_copy(&mut anon, N, len), N * frame as u64);
        check_frames(&anon, len);
    }
}

/// Frames `i` of `bytes` carry the payload length and stamp `i`.
fn check_frames(bytes: &[u8], len: usize) {
    let frame = workloads::frame_bytes(len);
    for (i, f) in bytes.chunks_exact(frame).enumerate() {
        let flen = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(flen, tidelog::RECORD_HEADER_LEN + len);
        assert_eq!(workloads::stamp_of(&f[tidelog::RECORD_HEADER_LEN..]), i as u64);
    }
}
