//! `tidelog dlq list|redrive STORE TOPIC GROUP`: a consumer group's dead letters.

use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::{json, Value};
use tidelog::{DeadLetter, DeadLetterStatus, GroupOptions};

use crate::error::{CliError, CliResult};
use crate::locate::{existing_group, open_store};
use crate::render::{self, plural, RecordRef, RecordStyle};
use crate::time::format_time_us;
use crate::Ctx;

/// Arguments of `tidelog dlq`.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// `tidelog dlq` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List a group's dead letters with their origin, attempts, reason and status.
    List {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// Only dead letters still parked (redrivable).
        #[arg(long)]
        parked: bool,
    },
    /// Deliver dead letters to their group again: every parked one (--all), or the ones named
    /// (--offset, repeatable). The group must not be open in another process (its lock is
    /// needed); a running service calls `Group::redrive` instead.
    Redrive {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        #[command(flatten)]
        which: Which,
    },
}

/// Which dead letters to redrive: all parked ones, or those named; exactly one of the two.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// Every parked dead letter.
    #[arg(long)]
    all: bool,
    /// A dead letter to redrive, by its dead-letter offset (`dlq_offset` in `dlq list`);
    /// repeatable. Every one named must be parked, or nothing is redriven.
    #[arg(long = "offset", value_name = "DLQ_OFFSET")]
    offset: Vec<u64>,
}

fn dead_letter_json(d: &DeadLetter) -> Value {
    json!({
        "dlq_offset": d.dlq_offset,
        "status": d.status.as_str(),
        "topic": d.topic,
        "group": d.group,
        "source_offset": d.source_offset,
        "attempts": d.attempts,
        "cause": d.cause.as_str(),
        "reason": d.reason,
        "first_failure_us": d.first_failure_us,
        "last_failure_us": d.last_failure_us,
        "dead_lettered_us": d.dead_lettered_us,
        "dead_lettered": format_time_us(d.dead_lettered_us),
        "redrive_of": d.redrive_of,
        "record": render::record_json(&RecordRef::from(&d.record), RecordStyle::default()),
    })
}

/// One dead letter for humans: its fields by their JSON names, then the record's line.
fn dead_letter_lines(d: &DeadLetter) -> String {
    let mut head = format!(
        "dlq_offset={}  status={}  source_offset={}  attempts={}  cause={}  dead_lettered={}  reason={}",
        d.dlq_offset,
        d.status.as_str(),
        d.source_offset,
        d.attempts,
        d.cause.as_str(),
        format_time_us(d.dead_lettered_us),
        render::bytes_text(d.reason.as_bytes()),
    );
    if let Some(r) = d.redrive_of {
        head.push_str(&format!("  redrive_of={r}"));
    }
    format!("{head}\n  {}", render::record_line(&RecordRef::from(&d.record), RecordStyle::default()))
}

/// Run `tidelog dlq list|redrive`.
pub fn run_dlq(ctx: Ctx, args: &DlqArgs) -> CliResult {
    match &args.command {
        DlqCommand::List { dir, topic, group, parked } => {
            let store = open_store(dir)?;
            existing_group(&store, topic, group)?;
            let mut dls = store
                .dead_letters(topic, group)
                .map_err(CliError::log(format!("reading the dead letters of {topic}/{group}")))?;
            if *parked {
                dls.retain(|d| d.status == DeadLetterStatus::Parked);
            }
            let mut out = io::stdout().lock();
            if ctx.json {
                let doc = json!({
                    "topic": topic,
                    "group": group,
                    "dead_letters": dls.iter().map(dead_letter_json).collect::<Vec<_>>(),
                });
                return render::print_json(&mut out, &doc);
            }
            if dls.is_empty() {
                writeln!(out, "no {}dead letters for {topic}/{group}", if *parked { "parked " } else { "" })?;
                return Ok(());
            }
            for d in &dls {
                writeln!(out, "{}", dead_letter_lines(d))?;
            }
            Ok(())
        }
        DlqCommand::Redrive { dir, topic, group, which } => {
            let store = open_store(dir)?;
            let t = existing_group(&store, topic, group)?;
            let g = t.group(group, GroupOptions::default()).map_err(|e| match e {
                tidelog::Error::Locked { .. } => CliError::Usage(format!(
                    "group {topic}/{group} is open in another process; stop it, or redrive from it with Group::redrive"
                )),
                e => CliError::log(format!("opening group {topic}/{group}"))(e),
            })?;
            let dls =
                g.dead_letters().map_err(CliError::log(format!("listing the dead letters of {topic}/{group}")))?;
            let parked: Vec<u64> =
                dls.iter().filter(|d| d.status == DeadLetterStatus::Parked).map(|d| d.dlq_offset).collect();
            let chosen = if which.all {
                let n =
                    g.redrive_all().map_err(CliError::log(format!("redriving the dead letters of {topic}/{group}")))?;
                if n != parked.len() as u64 {
                    return Err(CliError::Mismatch(format!("{} were parked, {n} redriven", parked.len())));
                }
                parked
            } else {
                // Check every named one first, so that a bad one redrives nothing.
                for o in &which.offset {
                    match dls.iter().find(|d| d.dlq_offset == *o) {
                        None => {
                            return Err(CliError::NotFound(format!("{topic}/{group} has no dead letter {o}")));
                        }
                        Some(d) if d.status != DeadLetterStatus::Parked => {
                            return Err(CliError::Usage(format!(
                                "dead letter {o} of {topic}/{group} is {}, not parked: only parked ones can be redriven",
                                d.status.as_str()
                            )));
                        }
                        Some(_) => {}
                    }
                }
                let mut named = which.offset.clone();
                named.sort_unstable();
                named.dedup();
                for o in &named {
                    g.redrive(*o).map_err(CliError::log(format!("redriving dead letter {o} of {topic}/{group}")))?;
                }
                named
            };
            g.close().map_err(CliError::log(format!("closing group {topic}/{group}")))?;
            let mut out = io::stdout().lock();
            if ctx.json {
                return render::print_json(&mut out, &json!({ "topic": topic, "group": group, "redriven": chosen }));
            }
            writeln!(
                out,
                "redriven {} of {topic}/{group}; the group delivers them again on its next poll",
                plural(chosen.len() as u64, "dead letter")
            )?;
            Ok(())
        }
    }
}
