//! `tidelog verify STORE`: every log of a store (each topic's, each consumer group's state
//! and dead-letter logs) verified as `tidelog verify` verifies one, and each group's state
//! read back. One row per log; exit 1 if any part is damaged.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{CliError, CliResult, EXIT_DAMAGE, EXIT_USAGE};
use crate::locate::{open_store, store_logs, StoreLog};
use crate::render::{self, plural, size};
use crate::verify::{print_human, verify_log, Report};
use crate::Ctx;

/// A log or a group state that could not be checked at all.
struct Failure {
    what: String,
    topic: String,
    group: Option<String>,
    error: CliError,
}

/// Run `tidelog verify` on the store in `dir`.
pub fn run(ctx: Ctx, dir: &Path) -> CliResult {
    let store = open_store(dir)?;
    let logs = store_logs(&store)?;
    let mut checked: Vec<(&StoreLog, Report, bool)> = Vec::new();
    let mut failures = Vec::new();
    for l in &logs {
        match verify_log(ctx, &l.dir, &l.name) {
            Ok((report, inspected)) => checked.push((l, report, inspected.damaged_open.is_some())),
            Err(error) => {
                failures.push(Failure { what: l.name.clone(), topic: l.topic.clone(), group: l.group.clone(), error })
            }
        }
    }
    // Each group's state, read back as `consumers` reads it.
    let mut groups: Vec<(&str, &str)> =
        logs.iter().filter_map(|l| l.group.as_deref().map(|g| (l.topic.as_str(), g))).collect();
    groups.dedup();
    for (topic, group) in groups {
        if let Err(e) = store.group_lag(topic, group) {
            let error = CliError::log(format!("reading the state of consumer group {topic}/{group}"))(e);
            let what = format!("groups/{topic}/{group}");
            failures.push(Failure { what, topic: topic.to_owned(), group: Some(group.to_owned()), error });
        }
    }
    let intact = failures.is_empty() && checked.iter().all(|(_, r, _)| r.intact);
    let mut out = io::stdout().lock();
    if ctx.json {
        let rows: Vec<Value> = checked
            .iter()
            .map(|(l, r, _)| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                v["log"] = json!(l.name);
                v["topic"] = json!(l.topic);
                v["group"] = json!(l.group);
                v
            })
            .collect();
        let errors: Vec<Value> = failures
            .iter()
            .map(|f| json!({ "log": f.what, "topic": f.topic, "group": f.group, "error": f.error.to_json() }))
            .collect();
        render::print_json(
            &mut out,
            &json!({ "dir": dir.display().to_string(), "intact": intact, "logs": rows, "errors": errors }),
        )?;
    } else {
        print_table(&mut out, dir, &checked, intact)?;
        for (l, r, up_to_damage) in checked.iter().filter(|(_, r, _)| !r.intact) {
            writeln!(out, "\n{}:", l.name)?;
            print_human(&mut out, r, *up_to_damage)?;
        }
        out.flush()?;
        for f in &failures {
            // `eprintln!` would panic if stderr is a closed pipe; ignore that instead.
            let _ = writeln!(io::stderr(), "tidelog: error: {}", f.error);
        }
    }
    if intact {
        return Ok(());
    }
    let damaged =
        checked.iter().any(|(_, r, _)| !r.intact) || failures.iter().any(|f| f.error.exit_code() == EXIT_DAMAGE);
    Err(CliError::Reported(if damaged { EXIT_DAMAGE } else { EXIT_USAGE }))
}

fn print_table(out: &mut impl Write, dir: &Path, rows: &[(&StoreLog, Report, bool)], intact: bool) -> CliResult {
    let records: u64 = rows.iter().map(|(_, r, _)| r.records).sum();
    let bytes: u64 = rows.iter().map(|(_, r, _)| r.bytes).sum();
    let head = if intact { "ok" } else { "DAMAGED" };
    writeln!(
        out,
        "{head}: store {}: {} verified, {}, {}",
        dir.display(),
        plural(rows.len() as u64, "log"),
        plural(records, "record"),
        size(bytes)
    )?;
    let w = rows.iter().map(|(l, _, _)| l.name.len()).max().unwrap_or(0).max("log".len());
    writeln!(out, "\n{:<w$}  {:<7}  {:>8}  {:>12}  {:>10}", "log", "intact", "segments", "records", "bytes")?;
    for (l, r, _) in rows {
        writeln!(
            out,
            "{:<w$}  {:<7}  {:>8}  {:>12}  {:>10}",
            l.name,
            if r.intact { "yes" } else { "NO" },
            r.segments,
            render::count(r.records),
            size(r.bytes)
        )?;
    }
    Ok(())
}
