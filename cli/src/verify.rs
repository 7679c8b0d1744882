//! `tidelog verify DIR`: validate every record; exit 1 with a located report on damage.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tidelog::{CorruptionKind, Damage};

use crate::error::{CliError, CliResult, EXIT_DAMAGE};
use crate::locate::open_log;
use crate::progress;
use crate::render::{self, plural, size};
use crate::Ctx;

/// Arguments of `tidelog verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    pub dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct DamageRow {
    file: String,
    position: u64,
    offset: u64,
    kind: &'static str,
    problem: String,
}

#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    intact: bool,
    segments: u64,
    records: u64,
    bytes: u64,
    elapsed_s: f64,
    damage: Vec<DamageRow>,
}

/// A stable machine-readable name for each kind of damage.
fn kind_name(kind: &CorruptionKind) -> &'static str {
    match kind {
        CorruptionKind::ChecksumMismatch { .. } => "checksum_mismatch",
        CorruptionKind::OffsetMismatch { .. } => "offset_mismatch",
        CorruptionKind::BadLength { .. } => "bad_length",
        CorruptionKind::BadMagic => "bad_magic",
        CorruptionKind::BadField(_) => "bad_field",
        CorruptionKind::IncompleteBatch => "incomplete_batch",
        CorruptionKind::MissingData => "missing_data",
        _ => "other",
    }
}

fn damage_row(d: &Damage) -> DamageRow {
    DamageRow {
        file: d.file.display().to_string(),
        position: d.position,
        offset: d.offset,
        kind: kind_name(&d.kind),
        problem: d.kind.to_string(),
    }
}

/// Run `tidelog verify`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    // Damage that stops the open (e.g. in a sealed segment without a usable index) is a
    // located `Corruption` error: `CliError::exit_code` maps it to 1 like damage found below.
    let log = open_log(&args.dir)?;
    let total: u64 = log.segments().iter().map(|s| s.bytes).sum();
    let bar = progress::progress_bar(ctx, total, true, "verify");
    let started = Instant::now();
    let v = log.verify(|done| bar.set_position(done));
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let report = Report {
        dir: args.dir.display().to_string(),
        intact: v.damage.is_empty(),
        segments: v.segments,
        records: v.records,
        bytes: v.bytes,
        elapsed_s: elapsed.as_secs_f64(),
        damage: v.damage.iter().map(damage_row).collect(),
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        render::print_json(&mut out, &report)?;
    } else if report.intact {
        writeln!(
            out,
            "ok: {} intact: {}, {}, {} verified in {} ({}/s)",
            report.dir,
            plural(report.segments, "segment"),
            plural(report.records, "record"),
            size(report.bytes),
            render::duration(elapsed),
            size(render::per_sec(report.bytes as f64, elapsed) as u64),
        )?;
    } else {
        writeln!(
            out,
            "DAMAGED: {} in {} ({} scanned, {} validated)",
            plural(report.damage.len() as u64, "damaged place"),
            report.dir,
            plural(report.segments, "segment"),
            plural(report.records, "record"),
        )?;
        for d in &report.damage {
            writeln!(out)?;
            writeln!(out, "  file      {}", d.file)?;
            writeln!(out, "  position  byte {}", d.position)?;
            writeln!(out, "  offset    {} (valid records of this segment end before it)", d.offset)?;
            writeln!(out, "  kind      {}", d.kind)?;
            writeln!(out, "  problem   {}", d.problem)?;
        }
        writeln!(out)?;
        writeln!(out, "records after each damaged place in the same segment were not checked")?;
    }
    if report.intact {
        Ok(())
    } else {
        Err(CliError::Reported(EXIT_DAMAGE))
    }
}
