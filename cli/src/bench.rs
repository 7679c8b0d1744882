//! `tidelog bench`: a quick throughput table, measured in a temporary directory that is
//! removed afterwards. For careful measurements use `cargo bench` (criterion).

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use tidelog::{Durability, Log, Options, Record};

use crate::error::{CliError, CliResult};
use crate::render::{self, count, per_sec, rate};
use crate::Ctx;

/// Segment size for the bench logs: large enough that rolling is rare, small enough that the
/// reservations of a few logs do not fill a small disk.
const SEGMENT_BYTES: u64 = 32 << 20;
/// Records per batch in the batched workload.
const BATCH: usize = 64;
/// Threads in the concurrent durable workload.
const DURABLE_THREADS: u64 = 4;

/// Arguments of `tidelog bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Parent directory for the temporary bench directory (default: the system temp dir).
    /// Choose it to measure a particular file system.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Records per workload (the durable workloads use 1/50 of it, at least 100 and at most 2,000).
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub records: u64,
    /// Payload bytes per record.
    #[arg(long = "payload", value_name = "BYTES", default_value_t = 256)]
    pub payload_bytes: usize,
}

/// A directory removed (with everything in it) when dropped, also on errors.
struct TempDir(PathBuf);

impl TempDir {
    fn create(parent: &Path) -> CliResult<TempDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!("tidelog-bench-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).map_err(CliError::io(&path))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless and the OS cleans the temp dir.
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Serialize)]
struct Row {
    workload: &'static str,
    records: u64,
    seconds: f64,
    records_per_sec: f64,
    mib_per_sec: f64,
    /// Throughput relative to the buffered `File` baseline.
    vs_baseline: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    records: u64,
    payload_bytes: usize,
    rows: Vec<Row>,
}

/// Measures each workload and prints its row as soon as it is known.
struct Table<'a, W: Write> {
    out: &'a mut W,
    human: bool,
    payload_bytes: usize,
    baseline_bytes_per_sec: f64,
    rows: Vec<Row>,
}

impl<W: Write> Table<'_, W> {
    fn add(&mut self, workload: &'static str, records: u64, d: Duration) -> CliResult {
        let bytes_per_sec = per_sec((records * self.payload_bytes as u64) as f64, d);
        if self.rows.is_empty() {
            self.baseline_bytes_per_sec = bytes_per_sec;
        }
        let vs_baseline =
            if self.baseline_bytes_per_sec > 0.0 { bytes_per_sec / self.baseline_bytes_per_sec } else { 0.0 };
        let row = Row {
            workload,
            records,
            seconds: d.as_secs_f64(),
            records_per_sec: per_sec(records as f64, d),
            mib_per_sec: bytes_per_sec / (1024.0 * 1024.0),
            vs_baseline,
        };
        if self.human {
            writeln!(
                self.out,
                "{:<34} {:>9} {:>9.3} {:>15} {:>11.1} {:>11}",
                row.workload,
                count(row.records),
                row.seconds,
                rate(row.records_per_sec),
                row.mib_per_sec,
                ratio(row.vs_baseline)
            )?;
            self.out.flush()?;
        }
        self.rows.push(row);
        Ok(())
    }
}

/// `0.85x`, with more digits for ratios far below one (durable appends).
fn ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{r:.4}x")
    }
}

fn open(dir: &Path, durability: Durability) -> CliResult<Log> {
    let opts = Options::default().segment_bytes(SEGMENT_BYTES).durability(durability);
    Log::open(dir, opts).map_err(CliError::log(format!("opening {}", dir.display())))
}

fn append_all(log: &Log, payload: &[u8], records: u64, batch: usize) -> CliResult<Duration> {
    let recs = vec![Record::new(payload); batch];
    let started = Instant::now();
    let mut left = records;
    while left > 0 {
        let n = (batch as u64).min(left) as usize;
        log.append_batch(&recs[..n]).map_err(CliError::log("appending"))?;
        left -= n as u64;
    }
    Ok(started.elapsed())
}

/// Run `tidelog bench`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = TempDir::create(&parent)?;
    let n = args.records;
    let durable_n = (n / 50).clamp(100, 2_000).min(n);
    // Incompressible-looking bytes, so no layer below can cheat on them.
    let payload: Vec<u8> =
        (0..args.payload_bytes as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();

    let mut out = io::stdout().lock();
    if !ctx.json {
        writeln!(
            out,
            "tidelog bench: {} records of {} payload bytes in {} (removed afterwards)",
            count(n),
            args.payload_bytes,
            tmp.0.display()
        )?;
        writeln!(out, "durable workloads use {} records and fsync before each append returns\n", count(durable_n))?;
        writeln!(
            out,
            "{:<34} {:>9} {:>9} {:>15} {:>11} {:>11}",
            "workload", "records", "seconds", "records_per_sec", "mib_per_sec", "vs_baseline"
        )?;
    }
    let mut table = Table {
        out: &mut out,
        human: !ctx.json,
        payload_bytes: args.payload_bytes,
        baseline_bytes_per_sec: 0.0,
        rows: Vec::new(),
    };

    // Baseline: the same payload bytes through a buffered std::fs::File, no fsync (like
    // Durability::None, whose appends land in the page cache).
    let path = tmp.0.join("baseline.bin");
    let started = Instant::now();
    let file = File::create(&path).map_err(CliError::io(&path))?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    for _ in 0..n {
        w.write_all(&payload).map_err(CliError::io(&path))?;
    }
    w.flush().map_err(CliError::io(&path))?;
    drop(w);
    table.add("baseline: buffered File write", n, started.elapsed())?;
    fs::remove_file(&path).map_err(CliError::io(&path))?;

    let dir_a = tmp.0.join("append-1");
    let log = open(&dir_a, Durability::None)?;
    let d = append_all(&log, &payload, n, 1)?;
    table.add("append, batch 1", n, d)?;

    let dir_b = tmp.0.join("append-64");
    let log_b = open(&dir_b, Durability::None)?;
    let d = append_all(&log_b, &payload, n, BATCH)?;
    table.add("append, batch 64", n, d)?;
    log_b.close().map_err(CliError::log("closing"))?;
    fs::remove_dir_all(&dir_b).map_err(CliError::io(&dir_b))?;

    let started = Instant::now();
    let mut cursor = log.cursor(log.first_offset());
    let (mut seen, mut sum) = (0u64, 0u64);
    while let Some(rec) = cursor.next().map_err(CliError::log("replaying"))? {
        sum = sum.wrapping_add(rec.payload().len() as u64 + u64::from(rec.payload().first().copied().unwrap_or(0)));
        seen += 1;
    }
    black_box(sum);
    table.add("replay, checksums verified", seen, started.elapsed())?;
    if seen != n {
        return Err(CliError::Mismatch(format!("appended {n} records, replayed {seen}")));
    }

    let mut x = 0x2545_f491_4f6c_dd1du64;
    let started = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = log.read_with(x % n, |r| r.payload().len()).map_err(CliError::log("reading"))?;
        black_box(len);
    }
    table.add("random read by offset", n, started.elapsed())?;
    log.close().map_err(CliError::log("closing"))?;
    fs::remove_dir_all(&dir_a).map_err(CliError::io(&dir_a))?;

    let dir_c = tmp.0.join("durable-1");
    let log = open(&dir_c, Durability::Always)?;
    let d = append_all(&log, &payload, durable_n, 1)?;
    table.add("durable append, 1 thread", durable_n, d)?;
    log.close().map_err(CliError::log("closing"))?;

    let dir_d = tmp.0.join("durable-4");
    let log = open(&dir_d, Durability::Always)?;
    let per_thread = durable_n.div_ceil(DURABLE_THREADS);
    let started = Instant::now();
    let handles: Vec<_> = (0..DURABLE_THREADS)
        .map(|t| {
            let log = log.clone();
            let payload = payload.clone();
            let mine = per_thread.min(durable_n.saturating_sub(t * per_thread));
            thread::spawn(move || -> Result<(), tidelog::Error> {
                for _ in 0..mine {
                    log.append(Record::new(&payload))?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        match h.join() {
            Ok(r) => r.map_err(CliError::log("appending"))?,
            Err(_) => return Err(CliError::Mismatch("an appender thread panicked".into())),
        }
    }
    let d = started.elapsed();
    table.add("durable append, 4 threads", log.next_offset(), d)?;
    log.close().map_err(CliError::log("closing"))?;

    let report =
        Report { dir: tmp.0.display().to_string(), records: n, payload_bytes: args.payload_bytes, rows: table.rows };
    if ctx.json {
        return render::print_json(&mut out, &report);
    }
    Ok(())
}
