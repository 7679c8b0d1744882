//! `tidelog topics list|create|delete STORE [NAME]`: the topics of a store.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;
use tidelog::{Options, Store, StoreOptions};

use crate::disk;
use crate::error::{CliError, CliResult};
use crate::locate::{open_store, open_topic};
use crate::render::{self, plural, size};
use crate::Ctx;

/// Arguments of `tidelog topics`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TopicsCommand,
}

/// `tidelog topics` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TopicsCommand {
    /// List the topics with their records, bytes, segments and consumer groups.
    List {
        /// The store directory.
        dir: PathBuf,
    },
    /// Create a topic (and the store, if the directory does not exist yet).
    Create {
        /// The store directory.
        dir: PathBuf,
        /// The new topic's name (ASCII letters, digits, `.`, `_`, `-`).
        name: String,
        /// Bytes reserved per segment file of the topic (its first segment; later ones get
        /// the size the writer opens the store with).
        #[arg(long, value_name = "BYTES", default_value_t = Options::default().segment_bytes)]
        segment_bytes: u64,
    },
    /// Delete a topic with its records and consumer groups. Asks first unless --yes; refused
    /// while a writer or a consumer group holds the topic.
    Delete {
        /// The store directory.
        dir: PathBuf,
        /// The topic to delete.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// One topic; the table's headings are these field names.
#[derive(Debug, Serialize)]
pub(crate) struct TopicRow {
    pub topic: String,
    pub records: u64,
    pub first_offset: u64,
    pub next_offset: u64,
    pub segments: u64,
    pub bytes_used: u64,
    pub bytes_on_disk: u64,
    pub groups: Vec<String>,
}

/// The row of topic `name`.
pub(crate) fn row(store: &Store, name: &str) -> CliResult<TopicRow> {
    let topic = open_topic(store, name)?;
    let segments = topic.segments().map_err(CliError::log(format!("reading topic {name}")))?;
    let groups = store.group_names(name).map_err(CliError::log(format!("listing the groups of {name}")))?;
    Ok(TopicRow {
        topic: name.to_owned(),
        records: segments.iter().map(|s| s.records).sum(),
        first_offset: topic.first_offset(),
        next_offset: topic.next_offset(),
        segments: segments.len() as u64,
        bytes_used: segments.iter().map(|s| s.bytes).sum(),
        bytes_on_disk: disk::allocated_bytes(topic.dir()).map_err(CliError::io(topic.dir()))?,
        groups,
    })
}

/// Run `tidelog topics`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let mut out = io::stdout().lock();
    match &args.command {
        TopicsCommand::List { dir } => {
            let store = open_store(dir)?;
            let names = store.topic_names().map_err(CliError::log("listing the topics"))?;
            let rows = names.iter().map(|n| row(&store, n)).collect::<CliResult<Vec<_>>>()?;
            if ctx.json {
                return render::print_json(&mut out, &json!({ "dir": dir.display().to_string(), "topics": rows }));
            }
            print_table(&mut out, &rows)
        }
        TopicsCommand::Create { dir, name, segment_bytes } => {
            tidelog::validate_name("topic", name).map_err(CliError::log(format!("creating topic {name}")))?;
            let opts = StoreOptions::default().topic(Options::default().segment_bytes(*segment_bytes));
            let store =
                Store::open(dir, opts).map_err(CliError::log(format!("opening the store {}", dir.display())))?;
            if store.open_topic(name).is_ok() {
                return Err(CliError::Usage(format!("the store {} already has a topic {name}", dir.display())));
            }
            store.topic(name).map_err(CliError::log(format!("creating topic {name}")))?;
            if ctx.json {
                return render::print_json(&mut out, &row(&store, name)?);
            }
            writeln!(out, "created topic {name} in {} ({} segments)", dir.display(), size(*segment_bytes))?;
            Ok(())
        }
        TopicsCommand::Delete { dir, name, yes } => {
            let store = open_store(dir)?;
            let r = row(&store, name)?;
            if !yes && !confirm(&r)? {
                return Err(CliError::Usage(format!("topic {name} was not deleted")));
            }
            store.delete_topic(name).map_err(CliError::log(format!("deleting topic {name}")))?;
            if ctx.json {
                return render::print_json(&mut out, &json!({ "deleted": r }));
            }
            writeln!(
                out,
                "deleted topic {name}: {} and {}",
                plural(r.records, "record"),
                plural(r.groups.len() as u64, "consumer group")
            )?;
            Ok(())
        }
    }
}

/// Ask on the terminal; without one, refuse (a script passes --yes).
fn confirm(r: &TopicRow) -> CliResult<bool> {
    if !io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "deleting topic {} needs confirmation: pass --yes (standard input is not a terminal)",
            r.topic
        )));
    }
    let mut err = io::stderr().lock();
    write!(
        err,
        "delete topic {} with {} ({}) and {}? [y/N] ",
        r.topic,
        plural(r.records, "record"),
        size(r.bytes_on_disk),
        plural(r.groups.len() as u64, "consumer group")
    )
    .and_then(|()| err.flush())
    .map_err(CliError::io("standard error"))?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer).map_err(CliError::io("standard input"))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn print_table(out: &mut impl Write, rows: &[TopicRow]) -> CliResult {
    if rows.is_empty() {
        writeln!(out, "no topics")?;
        return Ok(());
    }
    let refs: Vec<&TopicRow> = rows.iter().collect();
    print_rows(
        out,
        &refs,
        "groups",
        |i| {
            if rows[i].groups.is_empty() {
                "-".to_owned()
            } else {
                rows[i].groups.join(", ")
            }
        },
    )
}

/// The topics table (`topics list`, `info STORE`): the row fields, then one more column
/// (`last_heading`, the value of row `i` from `last(i)`).
pub(crate) fn print_rows(
    out: &mut impl Write,
    rows: &[&TopicRow],
    last_heading: &str,
    last: impl Fn(usize) -> String,
) -> CliResult {
    let w = rows.iter().map(|r| r.topic.len()).max().unwrap_or(0).max("topic".len());
    writeln!(
        out,
        "{:<w$}  {:>12}  {:>12}  {:>12}  {:>8}  {:>10}  {:>13}  {last_heading}",
        "topic", "records", "first_offset", "next_offset", "segments", "bytes_used", "bytes_on_disk"
    )?;
    for (i, r) in rows.iter().enumerate() {
        writeln!(
            out,
            "{:<w$}  {:>12}  {:>12}  {:>12}  {:>8}  {:>10}  {:>13}  {}",
            r.topic,
            render::count(r.records),
            r.first_offset,
            r.next_offset,
            r.segments,
            size(r.bytes_used),
            size(r.bytes_on_disk),
            last(i)
        )?;
    }
    Ok(())
}
