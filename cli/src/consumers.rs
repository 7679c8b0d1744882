//! `tidelog consumers [list] STORE [TOPIC]`: every consumer group's position and lag, read
//! from its persisted state without taking its lock (so it works while consumers run). A
//! group whose state cannot be read is reported with a located error, and the others are
//! still shown. `tidelog consumers reset|delete STORE TOPIC GROUP`: move a group's position,
//! or delete it, while no process has it open.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use tidelog::{GroupLag, StartFrom, Store};

use crate::error::{CliError, CliResult, EXIT_DAMAGE, EXIT_USAGE};
use crate::locate::{existing_group, open_store, open_topic};
use crate::render;
use crate::time::{format_time_us, parse_time};
use crate::Ctx;

/// Arguments of `tidelog consumers`: a store (and topic) to list, or a subcommand.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ConsumersArgs {
    /// The store directory.
    #[arg(required = true)]
    pub dir: Option<PathBuf>,
    /// Only the groups of this topic.
    pub topic: Option<String>,
    #[command(subcommand)]
    pub command: Option<ConsumersCommand>,
}

/// `tidelog consumers` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConsumersCommand {
    /// Show the consumer groups: position, lag, in flight, retries, dead letters (the same as
    /// `tidelog consumers DIR [TOPIC]`).
    List {
        /// The store directory.
        dir: PathBuf,
        /// Only the groups of this topic.
        topic: Option<String>,
    },
    /// Move a group's position: every unfinished event of the old position (in flight,
    /// waiting for a retry) is dropped, and the group continues from the new one. Refused
    /// while any process has the group open (a running service calls `Group::reset`); there
    /// is no --force, because only the process that owns a group may write its state.
    Reset {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        #[command(flatten)]
        to: ResetTarget,
        /// Show the new position and lag, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a group: its state and its dead letters (or keep those, with
    /// --keep-dead-letters). Refused while any process has it open. Afterwards it no longer
    /// holds back `delete_consumed` retention.
    Delete {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// Really delete (the group's dead letters go with it, unless kept).
        #[arg(long)]
        yes: bool,
        /// Keep the group's dead letters: `dlq list --kept` shows them afterwards.
        #[arg(long)]
        keep_dead_letters: bool,
    },
}

/// Where `consumers reset` moves a group: exactly one.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The topic's first retained event.
    #[arg(long)]
    to_earliest: bool,
    /// The topic's end: only events published from now on.
    #[arg(long)]
    to_latest: bool,
    /// This topic offset (taken to the nearest end if outside the topic).
    #[arg(long, value_name = "N")]
    to_offset: Option<u64>,
    /// The first event at or after this time: RFC 3339 (`2026-11-26T06:00:00Z`), a date, or
    /// µs since the epoch.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    to_datetime: Option<u64>,
}

impl ResetTarget {
    fn start_from(&self) -> StartFrom {
        match (self.to_earliest, self.to_latest, self.to_offset, self.to_datetime) {
            (_, true, _, _) => StartFrom::Latest,
            (_, _, Some(o), _) => StartFrom::Offset(o),
            (_, _, _, Some(t)) => StartFrom::Time(t),
            _ => StartFrom::Earliest,
        }
    }

    fn describe(&self) -> String {
        match self.start_from() {
            StartFrom::Latest => "the latest offset".into(),
            StartFrom::Offset(o) => format!("offset {o}"),
            StartFrom::Time(t) => format!("the first event at or after {}", format_time_us(t)),
            _ => "the earliest offset".into(),
        }
    }
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

/// Run `tidelog consumers`.
pub fn run_consumers(ctx: Ctx, args: &ConsumersArgs) -> CliResult {
    match &args.command {
        None => match &args.dir {
            Some(dir) => run_list(ctx, dir, args.topic.as_deref()),
            None => Err(CliError::Usage("give the store directory, or a subcommand".into())),
        },
        Some(ConsumersCommand::List { dir, topic }) => run_list(ctx, dir, topic.as_deref()),
        Some(ConsumersCommand::Reset { dir, topic, group, to, dry_run }) => {
            run_reset(ctx, dir, topic, group, to, *dry_run)
        }
        Some(ConsumersCommand::Delete { dir, topic, group, yes, keep_dead_letters }) => {
            run_delete(ctx, dir, topic, group, *yes, *keep_dead_letters)
        }
    }
}

/// The error every command gives for a group that some process has open.
pub fn group_is_open(topic: &str, group: &str, api: &str) -> CliError {
    CliError::Usage(format!("group {topic}/{group} is open in another process; stop it, or use {api} from it"))
}

fn run_reset(ctx: Ctx, dir: &Path, topic: &str, group: &str, to: &ResetTarget, dry_run: bool) -> CliResult {
    let store = open_store(dir)?;
    let t = existing_group(&store, topic, group)?;
    let before = store.group_lag(topic, group).map_err(CliError::log(format!("reading group {topic}/{group}")))?;
    let after = if dry_run {
        t.preview_reset(group, to.start_from())
            .map_err(CliError::log(format!("working out the reset of {topic}/{group}")))?
    } else {
        t.reset_group(group, to.start_from()).map_err(|e| match e {
            tidelog::Error::GroupOpen { .. } => group_is_open(topic, group, "Group::reset"),
            e => CliError::log(format!("resetting group {topic}/{group}"))(e),
        })?;
        store.group_lag(topic, group).map_err(CliError::log(format!("reading group {topic}/{group}")))?
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = json!({
            "topic": topic,
            "group": group,
            "dry_run": dry_run,
            "before": LagRow::from(before),
            "after": LagRow::from(after),
        });
        return render::print_json(&mut out, &doc);
    }
    let verb = if dry_run { "would move" } else { "moved" };
    writeln!(
        out,
        "{verb} {topic}/{group} from committed {} to {} ({}): {} unconsumed, {} in flight and {} scheduled retries dropped{}",
        before.committed,
        after.committed,
        to.describe(),
        after.unconsumed,
        before.in_flight,
        before.scheduled_retries,
        if dry_run { " (dry run: nothing changed)" } else { "" }
    )?;
    Ok(())
}

fn run_delete(ctx: Ctx, dir: &Path, topic: &str, group: &str, yes: bool, keep: bool) -> CliResult {
    let store = open_store(dir)?;
    let t = existing_group(&store, topic, group)?;
    if !yes {
        let what = if keep { "its state (its dead letters are kept)" } else { "its state and dead letters" };
        return Err(CliError::Usage(format!("deleting {topic}/{group} removes {what} for good: add --yes")));
    }
    let map = |e| match e {
        tidelog::Error::GroupOpen { .. } => group_is_open(topic, group, "Group::close"),
        e => CliError::log(format!("deleting group {topic}/{group}"))(e),
    };
    let kept = match keep {
        true => Some(t.delete_group_keeping_dead_letters(group).map_err(map)?),
        false => {
            t.delete_group(group).map_err(map)?;
            None
        }
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        let kept = kept.map(|k| json!({ "deleted_us": k.deleted_us, "dir": k.dir.display().to_string() }));
        return render::print_json(&mut out, &json!({ "topic": topic, "group": group, "deleted": true, "kept": kept }));
    }
    writeln!(out, "deleted consumer group {topic}/{group}")?;
    if let Some(k) = kept {
        writeln!(out, "its dead letters are kept in {}; `tidelog dlq list --kept` shows them", k.dir.display())?;
    }
    Ok(())
}

/// List the groups. Exits 1 if a group's state is damaged, 2 if one could not be read for
/// another reason, after showing every group that could.
fn run_list(ctx: Ctx, dir: &Path, topic: Option<&str>) -> CliResult {
    let store = open_store(dir)?;
    let topics = match topic {
        Some(t) => {
            open_topic(&store, t)?;
            vec![t.to_owned()]
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
        let doc = json!({ "dir": dir.display().to_string(), "groups": rows, "errors": errors });
        render::print_json(&mut out, &doc)?;
    } else {
        print_table(&mut out, dir, topic, !topics.is_empty(), &rows)?;
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

fn print_table(out: &mut impl Write, dir: &Path, topic: Option<&str>, has_topics: bool, rows: &[LagRow]) -> CliResult {
    if rows.is_empty() {
        match topic {
            Some(t) => writeln!(out, "topic {t} of the store {} has no consumer groups", dir.display())?,
            None if !has_topics => {
                writeln!(out, "{} has no topics: it is an empty store, or not a store", dir.display())?
            }
            None => writeln!(out, "the store {} has no consumer groups", dir.display())?,
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
