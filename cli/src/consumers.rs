//! `tidelog consumers STORE [TOPIC]`: every consumer group's position and lag, read from its
//! persisted state without taking its lock (so it works while consumers run). A group whose
//! state cannot be read is reported with a located error, and the others are still shown.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;
use tidelog::{GroupLag, Store};

use crate::error::{CliError, CliResult, EXIT_DAMAGE, EXIT_USAGE};
use crate::locate::{open_store, open_topic};
use crate::render;
use crate::Ctx;

/// Arguments of `tidelog consumers`.
#[derive(Debug, clap::Args)]
pub struct ConsumersArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// Only the groups of this topic.
    pub topic: Option<String>,
}

/// One group's line; the table's headings are these field names.
#[derive(Serialize)]
struct LagRow {
    topic: String,
    group: String,
    committed: u64,
    first_offset: u64,
    end_offset: u64,
    unconsumed: u64,
    in_flight: u64,
    scheduled_retries: u64,
    held_back: u64,
    redriven: u64,
    dead_letters: u64,
    lost_to_retention: u64,
}

impl From<GroupLag> for LagRow {
    fn from(l: GroupLag) -> LagRow {
        LagRow {
            topic: l.topic,
            group: l.group,
            committed: l.committed,
            first_offset: l.first_offset,
            end_offset: l.end_offset,
            unconsumed: l.unconsumed,
            in_flight: l.in_flight,
            scheduled_retries: l.scheduled_retries,
            held_back: l.held_back,
            redriven: l.redriven,
            dead_letters: l.dead_letters,
            lost_to_retention: l.lost_to_retention,
        }
    }
}

/// A topic or group that could not be read.
struct Failure {
    topic: String,
    group: Option<String>,
    error: CliError,
}

/// The lag of every group of `topics`, and what could not be read.
fn collect(store: &Store, topics: &[String]) -> (Vec<LagRow>, Vec<Failure>) {
    let (mut rows, mut failures) = (Vec::new(), Vec::new());
    for t in topics {
        let groups = match store.group_names(t) {
            Ok(g) => g,
            Err(e) => {
                let error = CliError::log(format!("listing the groups of topic {t}"))(e);
                failures.push(Failure { topic: t.clone(), group: None, error });
                continue;
            }
        };
        for g in groups {
            match store.group_lag(t, &g) {
                Ok(lag) => rows.push(LagRow::from(lag)),
                Err(e) => {
                    let error = CliError::log(format!("reading consumer group {t}/{g}"))(e);
                    failures.push(Failure { topic: t.clone(), group: Some(g), error });
                }
            }
        }
    }
    (rows, failures)
}

/// Run `tidelog consumers`. Exits 1 if a group's state is damaged, 2 if one could not be
/// read for another reason, after showing every group that could.
pub fn run_consumers(ctx: Ctx, args: &ConsumersArgs) -> CliResult {
    let store = open_store(&args.dir)?;
    let topics = match &args.topic {
        Some(t) => {
            open_topic(&store, t)?;
            vec![t.clone()]
        }
        None => store.topic_names().map_err(CliError::log("listing the topics"))?,
    };
    let (rows, failures) = collect(&store, &topics);
    let mut out = io::stdout().lock();
    if ctx.json {
        let errors: Vec<_> = failures
            .iter()
            .map(|f| json!({ "topic": f.topic, "group": f.group, "error": f.error.to_json() }))
            .collect();
        let doc = json!({ "dir": args.dir.display().to_string(), "groups": rows, "errors": errors });
        render::print_json(&mut out, &doc)?;
    } else {
        print_table(&mut out, args, !topics.is_empty(), &rows)?;
        out.flush()?;
        for f in &failures {
            // `eprintln!` would panic if stderr is a closed pipe; ignore that instead.
            let _ = writeln!(io::stderr(), "tidelog: error: {}", f.error);
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    // Damage is the more important news when both kinds of failure occur.
    let damaged = failures.iter().any(|f| f.error.exit_code() == EXIT_DAMAGE);
    Err(CliError::Reported(if damaged { EXIT_DAMAGE } else { EXIT_USAGE }))
}

fn print_table(out: &mut impl Write, args: &ConsumersArgs, has_topics: bool, rows: &[LagRow]) -> CliResult {
    if rows.is_empty() {
        match &args.topic {
            Some(t) => writeln!(out, "topic {t} of the store {} has no consumer groups", args.dir.display())?,
            None if !has_topics => {
                writeln!(out, "{} has no topics: it is an empty store, or not a store", args.dir.display())?
            }
            None => writeln!(out, "the store {} has no consumer groups", args.dir.display())?,
        }
        return Ok(());
    }
    let topic_w = rows.iter().map(|r| r.topic.len()).max().unwrap_or(0).max("topic".len());
    let group_w = rows.iter().map(|r| r.group.len()).max().unwrap_or(0).max("group".len());
    writeln!(
        out,
        "{:<topic_w$}  {:<group_w$}  {:>9}  {:>12}  {:>10}  {:>10}  {:>9}  {:>17}  {:>9}  {:>8}  {:>12}  {:>17}",
        "topic",
        "group",
        "committed",
        "first_offset",
        "end_offset",
        "unconsumed",
        "in_flight",
        "scheduled_retries",
        "held_back",
        "redriven",
        "dead_letters",
        "lost_to_retention"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<topic_w$}  {:<group_w$}  {:>9}  {:>12}  {:>10}  {:>10}  {:>9}  {:>17}  {:>9}  {:>8}  {:>12}  {:>17}",
            r.topic,
            r.group,
            r.committed,
            r.first_offset,
            r.end_offset,
            r.unconsumed,
            r.in_flight,
            r.scheduled_retries,
            r.held_back,
            r.redriven,
            r.dead_letters,
            r.lost_to_retention
        )?;
    }
    if rows.iter().any(|r| r.lost_to_retention > 0) {
        writeln!(out, "\nlost_to_retention: events deleted by size or age retention before the group consumed them.")?;
    }
    Ok(())
}
