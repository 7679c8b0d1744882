//! `tidelog verify DIR`: validate every record and index entry; report everything recovery
//! would repair or refuse (damaged stretches, missing records, a torn tail, index files to
//! rebuild), and exit 1 if a record is damaged or missing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tidelog::{Damage, Location, Log, VerifyReport};

use crate::error::{CliError, CliResult, EXIT_DAMAGE};
use crate::locate::{is_store, open_log_for_inspection, Inspected};
use crate::progress;
use crate::render::{self, plural, size};
use crate::Ctx;

/// Arguments of `tidelog verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory, or a store directory (every topic's and group's log).
    pub dir: PathBuf,
}

/// One damaged stretch; the human output's labels are these field names.
#[derive(Debug, Serialize)]
struct DamageRow {
    file: String,
    /// Byte position of the first invalid frame.
    position: u64,
    /// Where valid records resume (or the segment's written bytes end); `None` for damage
    /// that stopped the open (nothing past it was scanned).
    end: Option<u64>,
    /// The offset the log expected at `position`; `None` when unknown.
    offset: Option<u64>,
    kind: &'static str,
    problem: String,
}

/// Records no file holds.
#[derive(Debug, Serialize)]
struct MissingRow {
    log: String,
    /// The first offset missing.
    offset: u64,
}

/// A torn tail: bytes the next writer's open zeroes.
#[derive(Debug, Serialize)]
struct TornTailRow {
    file: String,
    position: u64,
    bytes: u64,
    /// The offsets the repair drops, `[dropped_from, dropped_to)`: none was acknowledged as
    /// durable.
    dropped_from: u64,
    dropped_to: u64,
    dropped_records: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    dir: String,
    /// How the log was opened; after a damaged open, the open's located error (see
    /// `Inspected::json_fields`).
    #[serde(flatten)]
    open: serde_json::Value,
    /// No record is damaged or missing (a torn tail or an index to rebuild does not count).
    pub intact: bool,
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    elapsed_s: f64,
    damage: Vec<DamageRow>,
    missing: Vec<MissingRow>,
    torn_tail: Option<TornTailRow>,
    indexes_to_rebuild: Vec<String>,
}

fn damage_row(d: &Damage) -> DamageRow {
    DamageRow {
        file: d.file.display().to_string(),
        position: d.position,
        end: Some(d.end),
        offset: Some(d.offset),
        kind: d.kind.name(),
        problem: d.kind.to_string(),
    }
}

fn missing_row(l: &Location) -> Option<MissingRow> {
    match l {
        Location::Log { dir, offset } => Some(MissingRow { log: dir.display().to_string(), offset: *offset }),
        _ => None,
    }
}

/// The damage that stopped the default open (the log was then opened up to it): its place
/// from the open report, its kind from the open's error.
fn open_damage_row(log: &Log, inspected: &Inspected) -> Option<DamageRow> {
    let (file, position) = log.open_report().damage.clone()?;
    let kind = match &inspected.damaged_open {
        Some(CliError::Log { error: tidelog::Error::Corruption { kind, .. }, .. }) => Some(kind),
        _ => None,
    };
    Some(DamageRow {
        file: file.display().to_string(),
        position,
        end: None,
        offset: None,
        kind: kind.map_or("damage", |k| k.name()),
        problem: kind.map_or_else(|| "found while opening".to_owned(), ToString::to_string),
    })
}

fn report(dir: &str, log: &Log, inspected: &Inspected, v: &VerifyReport, elapsed_s: f64) -> Report {
    let mut damage: Vec<DamageRow> = open_damage_row(log, inspected).into_iter().collect();
    damage.extend(v.damage.iter().map(damage_row));
    let torn_tail = v.torn_tail.as_ref().map(|t| TornTailRow {
        file: t.file.display().to_string(),
        position: t.position,
        bytes: t.bytes,
        dropped_from: t.dropped.start,
        dropped_to: t.dropped.end,
        dropped_records: t.dropped.end - t.dropped.start,
    });
    Report {
        dir: dir.to_owned(),
        open: inspected.json_fields(),
        intact: v.is_intact() && inspected.damaged_open.is_none() && damage.is_empty(),
        segments: v.segments,
        records: v.records,
        bytes: v.bytes,
        elapsed_s,
        damage,
        missing: v.missing.iter().filter_map(missing_row).collect(),
        torn_tail,
        indexes_to_rebuild: v.indexes_to_rebuild.iter().map(|p| p.display().to_string()).collect(),
    }
}

/// Open the log in `dir` for inspection and verify it: the report, and whether the open
/// stopped at damage (for the human output).
pub(crate) fn verify_log(ctx: Ctx, dir: &Path, what: &str) -> CliResult<(Report, Inspected)> {
    let inspected = open_log_for_inspection(dir)?;
    let log = &inspected.log;
    let total: u64 = log.segments().iter().map(|s| s.bytes).sum();
    let bar = progress::progress_bar(ctx, total, true, what);
    let started = Instant::now();
    let v = log.verify(|done| bar.set_position(done));
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let report = report(&dir.display().to_string(), log, &inspected, &v, elapsed.as_secs_f64());
    Ok((report, inspected))
}

/// Run `tidelog verify`: a log, or every log of a store (`verify_store`).
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    if is_store(&args.dir) {
        return crate::verify_store::run(ctx, &args.dir);
    }
    let (report, inspected) = verify_log(ctx, &args.dir, "verify")?;
    let mut out = io::stdout().lock();
    if ctx.json {
        render::print_json(&mut out, &report)?;
    } else {
        inspected.warn();
        print_human(&mut out, &report, inspected.damaged_open.is_some())?;
    }
    if report.intact {
        Ok(())
    } else {
        Err(CliError::Reported(EXIT_DAMAGE))
    }
}

pub(crate) fn print_human(out: &mut impl Write, r: &Report, up_to_damage: bool) -> CliResult {
    let elapsed = std::time::Duration::from_secs_f64(r.elapsed_s);
    let scanned = format!("{}, {}", plural(r.segments, "segment"), plural(r.records, "record"));
    if r.intact {
        writeln!(
            out,
            "ok: {} intact: {scanned}, {} verified in {} ({}/s)",
            r.dir,
            size(r.bytes),
            render::duration(elapsed),
            size(render::per_sec(r.bytes as f64, elapsed) as u64),
        )?;
    } else {
        let mut what = Vec::new();
        if !r.damage.is_empty() || r.missing.is_empty() {
            what.push(plural(r.damage.len() as u64, "damaged place"));
        }
        if !r.missing.is_empty() {
            what.push(format!("{} missing", plural(r.missing.len() as u64, "range of records")));
        }
        let scope = if up_to_damage { "up to the damage" } else { "validated" };
        writeln!(out, "DAMAGED: {} in {} ({scanned} {scope})", what.join(" and "), r.dir)?;
    }
    for d in &r.damage {
        writeln!(out)?;
        let end = match d.end {
            Some(end) => {
                format!("byte {end} ({} damaged; records resume there or the data ends)", size(end - d.position))
            }
            None => "not scanned: the log was opened up to this damage".to_owned(),
        };
        let offset = match d.offset {
            Some(o) => format!("{o} (the record expected at this position)"),
            None => "-".to_owned(),
        };
        render::fields(
            out,
            "  ",
            &[
                ("file", d.file.clone()),
                ("position", format!("byte {}", d.position)),
                ("end", end),
                ("offset", offset),
                ("kind", d.kind.to_owned()),
                ("problem", d.problem.clone()),
            ],
        )?;
    }
    for m in &r.missing {
        writeln!(out)?;
        writeln!(out, "missing records (no segment file holds them):")?;
        render::fields(out, "  ", &[("log", m.log.clone()), ("offset", format!("{} (the first missing)", m.offset))])?;
    }
    if let Some(t) = &r.torn_tail {
        writeln!(out)?;
        writeln!(
            out,
            "torn tail: not a failure; the next writer's open zeroes it, losing nothing acknowledged as durable"
        )?;
        let dropped = if t.dropped_records == 0 {
            "no record (stray bytes only)".to_owned()
        } else {
            format!("{}, offsets [{}, {})", plural(t.dropped_records, "record"), t.dropped_from, t.dropped_to)
        };
        render::fields(
            out,
            "  ",
            &[
                ("file", t.file.clone()),
                ("position", format!("byte {}", t.position)),
                ("bytes", plural(t.bytes, "byte")),
                ("dropped_records", dropped),
            ],
        )?;
    }
    if !r.indexes_to_rebuild.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "indexes_to_rebuild: not a failure; index files are derived data, the next writer's open \
             rebuilds them (reads stay correct meanwhile, only slower)"
        )?;
        for p in &r.indexes_to_rebuild {
            writeln!(out, "  {p}")?;
        }
    }
    Ok(())
}
