//! Competing consumers across processes: consume-and-ack throughput of one remote member
//! process against four, sharing a group whose owner is this process (which does not
//! consume; it serves the members). Each event costs the member `WORK` of processing (a
//! sleep, standing in for the handler's I/O), acked in batches of the poll.
//!
//! `cargo bench --bench members` runs the full sizes; without `--bench` (as `cargo test
//! --benches` runs it) every workload runs tiny, so the benchmark cannot rot. The members
//! are this same binary started again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tidelog::{AckMode, GroupOptions, Options, Record, Store, StoreOptions};

const CHILD_ENV: &str = "TIDELOG_BENCH_MEMBER";
const WORK_ENV: &str = "TIDELOG_BENCH_MEMBER_WORK_US";

fn store_options() -> StoreOptions {
    StoreOptions::default().topic(Options::default().segment_bytes(64 << 20))
}

fn group_options() -> GroupOptions {
    GroupOptions::default().ack_mode(AckMode::Durable).max_outstanding(100_000)
}

fn err(msg: &str) -> tidelog::Error {
    tidelog::Error::Io { path: PathBuf::from("bench"), source: std::io::Error::other(msg.to_owned()) }
}

/// A member process: join, then poll up to 64, work, ack the batch, until `stop` exists.
fn member(dir: &Path) -> tidelog::Result<()> {
    let work = Duration::from_micros(std::env::var(WORK_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(0));
    let store = Store::open(dir, store_options())?;
    let g = store.open_topic("t")?.join_group("g", group_options())?;
    while !dir.join("stop").exists() {
        let ds = g.poll(64, Duration::from_millis(20))?;
        if ds.is_empty() {
            continue;
        }
        if !work.is_zero() {
            std::thread::sleep(work * ds.len() as u32);
        }
        g.ack_batch(&ds)?;
    }
    g.close()
}

/// Events consumed and acked per second by `members` member processes.
fn run(root: &Path, n: u64, members: usize, work: Duration) -> tidelog::Result<f64> {
    let dir = root.join(format!("m{members}-w{}", work.as_micros()));
    let store = Store::open(&dir, store_options())?;
    let topic = store.topic("t")?;
    let payload = [7u8; 100];
    let records: Vec<Record<'_>> = (0..1000).map(|_| Record::new(&payload)).collect();
    let mut published = 0;
    while published < n {
        let k = (n - published).min(1000) as usize;
        topic.publish_batch(&records[..k])?;
        published += k as u64;
    }
    let owner = topic.join_group("g", group_options())?;
    let exe = std::env::current_exe().map_err(|e| tidelog::Error::Io { path: "exe".into(), source: e })?;
    let mut children: Vec<Child> = (0..members)
        .map(|_| {
            Command::new(&exe)
                .env(CHILD_ENV, &dir)
                .env(WORK_ENV, work.as_micros().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| tidelog::Error::Io { path: exe.clone(), source: e })
        })
        .collect::<tidelog::Result<_>>()?;
    // Timed from the first event settled, so that process start-up is not counted.
    while owner.committed() == 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (t0, c0) = (Instant::now(), owner.committed());
    while owner.committed() < n {
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = t0.elapsed();
    std::fs::write(dir.join("stop"), b"").map_err(|e| tidelog::Error::Io { path: dir.clone(), source: e })?;
    for c in &mut children {
        let ok = c.wait().map(|s| s.success()).unwrap_or(false);
        if !ok {
            return Err(err("a member process failed"));
        }
    }
    let rate = (n - c0) as f64 / elapsed.as_secs_f64();
    println!(
        "consume+ack, {members} member process(es), {}µs work per event: {:.0} events/s ({} events, {elapsed:.2?})",
        work.as_micros(),
        rate,
        n - c0
    );
    owner.close()?;
    Ok(rate)
}

fn main() -> tidelog::Result<()> {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return member(Path::new(&dir));
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 50_000 } else { 1_000 };
    let tmp = tempfile::tempdir().map_err(|e| tidelog::Error::Io { path: "tempdir".into(), source: e })?;
    println!("tidelog member benchmarks ({})", if full { "full" } else { "smoke sizes; run with --bench" });
    for work in [Duration::ZERO, Duration::from_micros(50)] {
        let one = run(tmp.path(), n, 1, work)?;
        let four = run(tmp.path(), n, 4, work)?;
        println!("  four members vs one, {}µs work: {:.2}×", work.as_micros(), four / one);
    }
    Ok(())
}
