//! `tidelog info STORE`: one row per topic (records, offsets, sizes, how its last writer left
//! it) and one per consumer group (position, what is left to consume, dead letters, the size
//! of its files). A part that cannot be read is reported with its located error; the others
//! are still shown.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use tidelog::{Log, Options};

use crate::disk;
use crate::error::{CliError, CliResult, EXIT_DAMAGE, EXIT_USAGE};
use crate::info::shutdown_name;
use crate::locate::open_store;
use crate::render::{self, size};
use crate::topics::{print_rows, row, TopicRow};
use crate::Ctx;

/// One topic; the table's headings are these field names.
#[derive(Debug, Serialize)]
struct TopicInfo {
    #[serde(flatten)]
    topic: TopicRow,
    /// How the topic's last writer left it (as `shutdown` in `tidelog info LOG`).
    shutdown: &'static str,
}

/// One consumer group; the table's headings are these field names.
#[derive(Debug, Serialize)]
struct GroupInfo {
    topic: String,
    group: String,
    committed: u64,
    end_offset: u64,
    unconsumed: u64,
    dead_letters: u64,
    /// Space the group's files take on disk (state log, snapshots, dead letters).
    bytes_on_disk: u64,
}

/// Run `tidelog info` on the store in `dir`.
pub fn run(ctx: Ctx, dir: &Path) -> CliResult {
    let store = open_store(dir)?;
    let names = store.topic_names().map_err(CliError::log("listing the topics"))?;
    let (mut topics, mut groups, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for name in &names {
        let t = match row(&store, name) {
            Ok(t) => t,
            Err(e) => {
                failures.push((name.clone(), None, e));
                continue;
            }
        };
        let shutdown = match Log::open_read_only(store.dir().join("topics").join(name), Options::default()) {
            Ok(log) => shutdown_name(&log),
            Err(_) => "unknown",
        };
        for g in &t.groups {
            let gdir = store.dir().join("groups").join(name).join(g);
            match store.group_lag(name, g) {
                Ok(l) => groups.push(GroupInfo {
                    topic: name.clone(),
                    group: g.clone(),
                    committed: l.committed,
                    end_offset: l.end_offset,
                    unconsumed: l.unconsumed,
                    dead_letters: l.dead_letters,
                    bytes_on_disk: disk::allocated_bytes(&gdir).map_err(CliError::io(&gdir))?,
                }),
                Err(e) => failures.push((
                    name.clone(),
                    Some(g.clone()),
                    CliError::log(format!("reading consumer group {name}/{g}"))(e),
                )),
            }
        }
        topics.push(TopicInfo { topic: t, shutdown });
    }
    let mut out = io::stdout().lock();
    if ctx.json {
        let errors: Vec<_> =
            failures.iter().map(|(t, g, e)| json!({ "topic": t, "group": g, "error": e.to_json() })).collect();
        let doc = json!({ "dir": dir.display().to_string(), "topics": topics, "groups": groups, "errors": errors });
        render::print_json(&mut out, &doc)?;
    } else {
        print_tables(&mut out, dir, &topics, &groups)?;
        out.flush()?;
        for (_, _, e) in &failures {
            // `eprintln!` would panic if stderr is a closed pipe; ignore that instead.
            let _ = writeln!(io::stderr(), "tidelog: error: {e}");
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    let damaged = failures.iter().any(|(_, _, e)| e.exit_code() == EXIT_DAMAGE);
    Err(CliError::Reported(if damaged { EXIT_DAMAGE } else { EXIT_USAGE }))
}

fn print_tables(out: &mut impl Write, dir: &Path, topics: &[TopicInfo], groups: &[GroupInfo]) -> CliResult {
    writeln!(
        out,
        "store {}: {} and {}\n",
        dir.display(),
        render::plural(topics.len() as u64, "topic"),
        render::plural(groups.len() as u64, "consumer group")
    )?;
    let rows: Vec<&TopicRow> = topics.iter().map(|t| &t.topic).collect();
    print_rows(out, &rows, "shutdown", |i| topics[i].shutdown.to_owned())?;
    if groups.is_empty() {
        return Ok(());
    }
    let tw = groups.iter().map(|g| g.topic.len()).max().unwrap_or(0).max("topic".len());
    let gw = groups.iter().map(|g| g.group.len()).max().unwrap_or(0).max("group".len());
    writeln!(
        out,
        "\n{:<tw$}  {:<gw$}  {:>12}  {:>12}  {:>12}  {:>12}  {:>13}",
        "topic", "group", "committed", "end_offset", "unconsumed", "dead_letters", "bytes_on_disk"
    )?;
    for g in groups {
        writeln!(
            out,
            "{:<tw$}  {:<gw$}  {:>12}  {:>12}  {:>12}  {:>12}  {:>13}",
            g.topic,
            g.group,
            g.committed,
            g.end_offset,
            g.unconsumed,
            g.dead_letters,
            size(g.bytes_on_disk)
        )?;
    }
    Ok(())
}
