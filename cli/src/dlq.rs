//! `tidelog dlq list|redrive|purge STORE TOPIC GROUP`: a consumer group's dead letters.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tidelog::{DeadLetter, DeadLetterStatus, GroupOptions, PurgeDeadLetters};

use crate::error::{CliError, CliResult};
use crate::locate::{existing_group, open_store, open_topic};
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
        /// The dead letters kept from deleted groups of this name (`consumers delete
        /// --keep-dead-letters`), instead of the group's own; the group need not exist.
        #[arg(long)]
        kept: bool,
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
    /// Purge dead letters, oldest first: every one (--all), those older than an age
    /// (--older-than), or all but the newest N (--keep). Purged ones are no longer listed
    /// nor redrivable, and whole dead-letter segments below them are deleted. A redriven
    /// dead letter not settled yet stops the purge below it. The group must not be open in
    /// another process; a running service calls `Group::purge_dead_letters`.
    Purge {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        #[command(flatten)]
        which: PurgeWhich,
        /// Really purge (purged dead letters cannot be brought back).
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters to purge: exactly one rule.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct PurgeWhich {
    /// Every dead letter.
    #[arg(long)]
    all: bool,
    /// Those dead-lettered longer ago than this: a number with a unit, `s`, `m`, `h` or `d`
    /// (`90s`, `12h`, `7d`), or plain seconds.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<std::time::Duration>,
    /// All but the newest N.
    #[arg(long, value_name = "N")]
    keep: Option<u64>,
}

impl PurgeWhich {
    fn rule(&self) -> PurgeDeadLetters {
        match (self.older_than, self.keep) {
            (Some(age), _) => PurgeDeadLetters::OlderThan(age),
            (_, Some(n)) => PurgeDeadLetters::KeepNewest(n),
            _ => PurgeDeadLetters::All,
        }
    }
}

/// Parse an age: a number of seconds, or a number with a unit `s`, `m`, `h` or `d`.
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => return Err(format!("`{s}`: the unit must be s, m, h or d")),
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("`{s}` is not an age like 90s, 12h or 7d"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}` is not an age ≥ 0"));
    }
    std::time::Duration::try_from_secs_f64(n * scale).map_err(|_| format!("`{s}` is too long"))
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

/// `dlq list --kept`: the dead letters kept from deleted groups named `group`, by deletion.
fn list_kept(ctx: Ctx, dir: &Path, topic: &str, group: &str, parked: bool) -> CliResult {
    let store = open_store(dir)?;
    let t = open_topic(&store, topic)?;
    tidelog::validate_name("group", group).map_err(CliError::log(format!("naming group {topic}/{group}")))?;
    let sets = t.kept_dead_letters().map_err(CliError::log(format!("listing the kept dead letters of {topic}")))?;
    let mut found = Vec::new();
    for k in sets.into_iter().filter(|k| k.group == group) {
        let mut dls = t
            .read_kept_dead_letters(&k)
            .map_err(CliError::log(format!("reading the dead letters kept in {}", k.dir.display())))?;
        if parked {
            dls.retain(|d| d.status == DeadLetterStatus::Parked);
        }
        found.push((k, dls));
    }
    let mut out = io::stdout().lock();
    if ctx.json {
        let kept: Vec<Value> = found
            .iter()
            .map(|(k, dls)| {
                json!({
                    "deleted_us": k.deleted_us,
                    "deleted": format_time_us(k.deleted_us),
                    "dir": k.dir.display().to_string(),
                    "dead_letters": dls.iter().map(dead_letter_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        return render::print_json(&mut out, &json!({ "topic": topic, "group": group, "kept": kept }));
    }
    if found.is_empty() {
        writeln!(out, "no dead letters kept from deleted groups {topic}/{group}")?;
    }
    for (k, dls) in &found {
        writeln!(
            out,
            "kept from {topic}/{group} deleted {} ({}):",
            format_time_us(k.deleted_us),
            plural(dls.len() as u64, "dead letter")
        )?;
        for d in dls {
            writeln!(out, "{}", dead_letter_lines(d))?;
        }
    }
    Ok(())
}

/// Run `tidelog dlq list|redrive|purge`.
pub fn run_dlq(ctx: Ctx, args: &DlqArgs) -> CliResult {
    match &args.command {
        DlqCommand::List { dir, topic, group, parked, kept: true } => list_kept(ctx, dir, topic, group, *parked),
        DlqCommand::List { dir, topic, group, parked, kept: false } => {
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
        DlqCommand::Purge { dir, topic, group, which, yes } => {
            let store = open_store(dir)?;
            let t = existing_group(&store, topic, group)?;
            if !yes {
                return Err(CliError::Usage(format!(
                    "purging dead letters of {topic}/{group} cannot be undone: add --yes"
                )));
            }
            let report = t.purge_dead_letters(group, which.rule()).map_err(|e| match e {
                tidelog::Error::GroupOpen { .. } => {
                    crate::consumers::group_is_open(topic, group, "Group::purge_dead_letters")
                }
                e => CliError::log(format!("purging the dead letters of {topic}/{group}"))(e),
            })?;
            let mut out = io::stdout().lock();
            if ctx.json {
                let doc = json!({
                    "topic": topic,
                    "group": group,
                    "purged": report.purged,
                    "purged_below": report.purged_below,
                    "segments_removed": report.segments_removed,
                });
                return render::print_json(&mut out, &doc);
            }
            writeln!(
                out,
                "purged {} of {topic}/{group} (every dead letter below dlq_offset {} is gone; {} removed)",
                plural(report.purged, "dead letter"),
                report.purged_below,
                plural(report.segments_removed as u64, "segment")
            )?;
            Ok(())
        }
        DlqCommand::Redrive { dir, topic, group, which } => {
            let store = open_store(dir)?;
            let t = existing_group(&store, topic, group)?;
            let g = t.group(group, GroupOptions::default()).map_err(|e| match e {
                tidelog::Error::Locked { .. } => crate::consumers::group_is_open(topic, group, "Group::redrive"),
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

#[cfg(test)]
mod tests {
    use super::parse_age;
    use std::time::Duration;

    #[test]
    fn ages_take_a_unit_or_plain_seconds_and_refuse_the_rest() {
        assert_eq!(parse_age("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "d", "-1d", "5w", "nanh", "infd", "1e300d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
