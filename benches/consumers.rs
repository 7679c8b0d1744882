//! Consumer-group benchmarks: publish-to-consume latency (p50, p99, p99.9, max and a
//! histogram) in one process and across processes, and consume-plus-ack throughput.
//!
//! `cargo bench --bench consumers` runs the full sizes (about a minute; `-- latency` runs the
//! latency runs only, about 20 s, in four alternating rounds). Without `--bench`
//! (as `cargo test --benches` runs it) every workload runs tiny, so the benchmark cannot
//! rot. The cross-process runs start this same binary again as the publisher; they measure a
//! consumer woken through the topic's wake file, the same with the wake file unavailable (the
//! polling fallback), and a plain follower (`Log::wait_for`), each against the one-process
//! figure of the same run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use tidelog::{AckMode, GroupOptions, Options, Record, Store, StoreOptions};

const CHILD_ENV: &str = "TIDELOG_BENCH_PUBLISHER";

#[derive(Clone)]
struct Sizes {
    /// Events per latency run, in total over its rounds.
    latency_events: u64,
    /// The latency runs alternate in this many rounds, so that a burst of load on a shared
    /// machine does not fall on one of them only.
    latency_rounds: u64,
    /// Gap between two publishes in the latency runs.
    pace: Duration,
    throughput_events: u64,
    single_ack_events: u64,
    /// Groups opened at once in the group-cost run.
    groups: usize,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn store_options() -> StoreOptions {
    StoreOptions::default().topic(Options::default().segment_bytes(64 << 20))
}

/// Wait about `d` between publishes. A plain sleep, not a spin: on a small machine a
/// spinning publisher would take the core the consumer needs and measure the scheduler.
fn pace(d: Duration) {
    std::thread::sleep(d);
}

/// Publisher: `n` events `gap` apart, each carrying its wall-clock send time in ns.
fn publish_timed(topic: &tidelog::Topic, n: u64, gap: Duration) -> tidelog::Result<()> {
    for _ in 0..n {
        topic.publish(Record::new(&now_ns().to_le_bytes()))?;
        pace(gap);
    }
    Ok(())
}

/// Consume `n` events, recording publish-to-poll-return latency in ns.
fn consume_timed(group: &tidelog::Group, n: u64) -> tidelog::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| bench_err(&e.to_string()))?;
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < n && Instant::now() < deadline {
        let ds = group.poll(256, Duration::from_secs(2))?;
        let at = now_ns();
        for d in &ds {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d.payload()[..8]);
            h.record(at.saturating_sub(u64::from_le_bytes(b)).max(1)).map_err(|e| bench_err(&e.to_string()))?;
        }
        got += ds.len() as u64;
        group.ack_batch(&ds)?;
    }
    if got < n {
        return Err(bench_err(&format!("only {got} of {n} events arrived")));
    }
    Ok(h)
}

fn bench_err(msg: &str) -> tidelog::Error {
    tidelog::Error::InvalidOptions(format!("benchmark: {msg}"))
}

fn report_latency(name: &str, h: &Histogram<u64>) {
    let us = |v: u64| v as f64 / 1000.0;
    println!(
        "{name}: n={} p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        h.len(),
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.90)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    );
    // Histogram in power-of-two buckets from 1 µs.
    let total = h.len().max(1);
    let mut lo = 0u64;
    let mut hi = 1_000u64;
    while lo <= h.max() {
        let count = h.count_between(lo, hi.saturating_sub(1));
        if count > 0 {
            let bar = "#".repeat(((count * 50) / total).max(1) as usize);
            println!("  {:>9.1} .. {:>9.1} µs {:>8} {bar}", us(lo), us(hi), count);
        }
        lo = hi;
        hi = hi.saturating_mul(2);
    }
}

fn latency_in_process(dir: &Path, s: &Sizes) -> tidelog::Result<Histogram<u64>> {
    let store = Store::open(dir, store_options())?;
    let topic = store.topic("lat")?;
    let group = topic.group("g", GroupOptions::default().ack_mode(AckMode::Periodic(Duration::from_millis(10))))?;
    let consumer = {
        let group = group.clone();
        let n = s.latency_events;
        std::thread::spawn(move || consume_timed(&group, n))
    };
    // Let the consumer block in poll first.
    std::thread::sleep(Duration::from_millis(50));
    publish_timed(&topic, s.latency_events, s.pace)?;
    let h = consumer.join().map_err(|_| bench_err("consumer panicked"))??;
    Ok(h)
}

/// How the consumer in the other process learns of a publish.
#[derive(Clone, Copy, PartialEq)]
enum Across {
    /// The topic's wake file (the default).
    Wake,
    /// No wake file (a directory holds its name, so the writer cannot create it): polling.
    Poll,
}

/// Start this binary again as the publisher of `dir`'s topic `lat`.
fn spawn_publisher(dir: &Path, s: &Sizes) -> tidelog::Result<std::process::Child> {
    let exe = std::env::current_exe().map_err(|e| tidelog::Error::Io { path: "current_exe".into(), source: e })?;
    Command::new(exe)
        .env(CHILD_ENV, dir)
        .env("TIDELOG_BENCH_N", s.latency_events.to_string())
        .env("TIDELOG_BENCH_PACE_NS", (s.pace.as_nanos() as u64).to_string())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| tidelog::Error::Io { path: "child".into(), source: e })
}

fn wait_child(mut child: std::process::Child) -> tidelog::Result<()> {
    let status = child.wait().map_err(|e| tidelog::Error::Io { path: "child".into(), source: e })?;
    if !status.success() {
        return Err(bench_err("publisher process failed"));
    }
    Ok(())
}

fn latency_cross_process(dir: &Path, s: &Sizes, across: Across) -> tidelog::Result<Histogram<u64>> {
    if across == Across::Poll {
        std::fs::create_dir_all(dir.join("topics/lat/wake"))
            .map_err(|e| tidelog::Error::Io { path: dir.into(), source: e })?;
    }
    let store = Store::open(dir, store_options())?;
    let topic = store.topic("lat")?;
    let group = topic.group("g", GroupOptions::default().ack_mode(AckMode::Periodic(Duration::from_millis(10))))?;
    let child = spawn_publisher(dir, s)?;
    let h = consume_timed(&group, s.latency_events);
    wait_child(child)?;
    h
}

/// A plain follower (`Log::open_read_only`, `wait_for`, a cursor) of a log written by another
/// process: append-to-read latency.
fn latency_follower_cross_process(dir: &Path, s: &Sizes) -> tidelog::Result<Histogram<u64>> {
    let log_dir = dir.join("topics/lat");
    tidelog::Log::open(&log_dir, store_options().topic)?.close()?;
    let follower = tidelog::Log::open_read_only(&log_dir, store_options().topic)?;
    let child = spawn_publisher(dir, s)?;
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| bench_err(&e.to_string()))?;
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while next < s.latency_events && Instant::now() < deadline {
        if !follower.wait_for(next, Duration::from_secs(2))? {
            continue;
        }
        let at = now_ns();
        let mut cursor = follower.cursor(next);
        while let Some(r) = cursor.next()? {
            let mut b = [0u8; 8];
            b.copy_from_slice(&r.payload()[..8]);
            h.record(at.saturating_sub(u64::from_le_bytes(b)).max(1)).map_err(|e| bench_err(&e.to_string()))?;
            next = r.offset() + 1;
        }
    }
    wait_child(child)?;
    if next < s.latency_events {
        return Err(bench_err(&format!("the follower saw only {next} of {} records", s.latency_events)));
    }
    Ok(h)
}

fn report_ratio(name: &str, across: &Histogram<u64>, one: &Histogram<u64>) {
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    println!(
        "{name}: p50 {:.2}x, p99 {:.2}x the one-process figure of this run",
        q(across, 0.5) / q(one, 0.5).max(1.0),
        q(across, 0.99) / q(one, 0.99).max(1.0)
    );
}

/// The publisher process of the cross-process run.
fn child_publisher(dir: &Path) -> tidelog::Result<()> {
    let n: u64 = std::env::var("TIDELOG_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let gap: u64 = std::env::var("TIDELOG_BENCH_PACE_NS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let store = Store::open(dir, store_options())?;
    let topic = store.topic("lat")?;
    // Give the consumer a moment to block in poll.
    std::thread::sleep(Duration::from_millis(50));
    publish_timed(&topic, n, Duration::from_nanos(gap))
}

fn throughput(dir: &Path, name: &str, n: u64, consumers: usize, batch: usize, mode: AckMode) -> tidelog::Result<()> {
    let store = Store::open(dir, store_options())?;
    let topic = store.topic(name)?;
    let payload = [7u8; 100];
    let records: Vec<Record<'_>> = (0..1000).map(|_| Record::new(&payload)).collect();
    let mut published = 0;
    while published < n {
        let k = (n - published).min(1000) as usize;
        topic.publish_batch(&records[..k])?;
        published += k as u64;
    }
    let group = topic.group("g", GroupOptions::default().ack_mode(mode))?;
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..consumers {
        let g = group.clone();
        let done = done.clone();
        threads.push(std::thread::spawn(move || -> tidelog::Result<u64> {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let ds = g.poll(batch, Duration::from_millis(20))?;
                if ds.is_empty() {
                    continue;
                }
                n += ds.len() as u64;
                if batch == 1 {
                    g.ack(&ds[0])?;
                } else {
                    g.ack_batch(&ds)?;
                }
            }
            Ok(n)
        }));
    }
    while group.committed() < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in threads {
        total += t.join().map_err(|_| bench_err("consumer panicked"))??;
    }
    println!(
        "consume+ack {name}: {total} events, {consumers} consumer(s), batch {batch}, {mode:?}: {:.0} events/s ({elapsed:.2?})",
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Bytes allocated on disk under `dir` (what `du` counts).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// File descriptors this process holds (Linux; 0 elsewhere).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|rd| rd.count()).unwrap_or(0)
}

/// The cost of many groups: open `n` groups of one topic (each consumes one event), then
/// close them and open them all again. Reports time, disk and descriptors per group.
fn many_groups(dir: &Path, n: usize) -> tidelog::Result<()> {
    let store = Store::open(dir, store_options())?;
    let topic = store.topic("fan")?;
    topic.publish(Record::new(b"event"))?;
    let fds_before = open_descriptors();
    for round in ["create", "reopen"] {
        let t0 = Instant::now();
        let mut groups = Vec::with_capacity(n);
        for i in 0..n {
            let g = topic.group(&format!("g{i}"), GroupOptions::default())?;
            let ds = g.try_poll(1)?;
            g.ack_batch(&ds)?;
            groups.push(g);
        }
        let elapsed = t0.elapsed();
        let fds = open_descriptors().saturating_sub(fds_before);
        let disk = disk_bytes(&dir.join("groups"));
        println!(
            "{n} groups, {round} (open + consume one event each): {elapsed:.2?} ({:.0} µs per group), \
             {:.1} descriptors and {:.1} KiB on disk per group",
            elapsed.as_micros() as f64 / n as f64,
            fds as f64 / n as f64,
            disk as f64 / n as f64 / 1024.0
        );
        for g in groups {
            g.close()?;
        }
    }
    Ok(())
}

fn main() -> tidelog::Result<()> {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child_publisher(Path::new(&dir));
    }
    let full = std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench consumers -- latency`: the latency runs only (about 20 s).
    let latency_only = std::env::args().skip(1).any(|a| a == "latency");
    let s = if full {
        Sizes {
            latency_events: 20_000,
            latency_rounds: 4,
            pace: Duration::from_micros(200),
            throughput_events: 200_000,
            single_ack_events: 5_000,
            groups: 1_000,
        }
    } else {
        Sizes {
            latency_events: 200,
            latency_rounds: 1,
            pace: Duration::from_micros(200),
            throughput_events: 2_000,
            single_ack_events: 100,
            groups: 20,
        }
    };
    let tmp = tempfile::tempdir().map_err(|e| tidelog::Error::Io { path: "tempdir".into(), source: e })?;
    println!("tidelog consumer benchmarks ({})", if full { "full" } else { "smoke sizes; run with --bench" });
    let names = [
        "publish-to-consume latency, one process (blocking poll, woken by the publish)",
        "publish-to-consume latency, across processes (blocking poll, woken through the wake file)",
        "publish-to-consume latency, across processes (no wake file: polls 50 µs..1 ms)",
        "append-to-read latency, follower in another process (Log::wait_for, wake file)",
    ];
    let mut hs = Vec::new();
    for _ in names {
        hs.push(Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| bench_err(&e.to_string()))?);
    }
    let round = Sizes { latency_events: s.latency_events / s.latency_rounds, ..s.clone() };
    for r in 0..s.latency_rounds {
        let dir = |name: &str| tmp.path().join(format!("{name}-{r}"));
        let runs = [
            latency_in_process(&dir("lat-in"), &round)?,
            latency_cross_process(&dir("lat-x"), &round, Across::Wake)?,
            latency_cross_process(&dir("lat-xp"), &round, Across::Poll)?,
            latency_follower_cross_process(&dir("lat-f"), &round)?,
        ];
        for (h, run) in hs.iter_mut().zip(&runs) {
            h.add(run).map_err(|e| bench_err(&e.to_string()))?;
        }
    }
    for (name, h) in names.iter().zip(&hs) {
        report_latency(name, h);
    }
    let (one, woken, polled, follower) = (&hs[0], &hs[1], &hs[2], &hs[3]);
    report_ratio("across processes, woken", woken, one);
    report_ratio("across processes, polling", polled, one);
    report_ratio("follower across processes, woken", follower, one);
    if latency_only {
        return Ok(());
    }
    let durable = AckMode::Durable;
    let periodic = AckMode::Periodic(Duration::from_millis(10));
    let dir = tmp.path().join("tp");
    throughput(&dir, "durable-batch256", s.throughput_events, 1, 256, durable)?;
    throughput(&dir, "durable-4x64", s.throughput_events, 4, 64, durable)?;
    throughput(&dir, "periodic-batch256", s.throughput_events, 1, 256, periodic)?;
    throughput(&dir, "durable-single-ack", s.single_ack_events, 1, 1, durable)?;
    throughput(&dir, "durable-single-ack-4", s.single_ack_events, 4, 1, durable)?;
    throughput(&dir, "periodic-single-ack", s.throughput_events / 4, 1, 1, periodic)?;
    many_groups(&tmp.path().join("groups"), s.groups)?;
    Ok(())
}
