//! `tidelog`: inspect, verify and try out tidelog logs and stores. A thin layer over the
//! library's public API: one module per command, and shared modules for what they have in
//! common (`render` shows things, `locate` opens what the command line names, `error` says
//! why a command failed).
//!
//! Exit codes: 0 success, 1 damage found (or a read-back check failed), 2 usage or I/O error.

mod backup;
mod bench;
mod compact;
mod consumers;
mod demo;
mod disk;
mod dlq;
mod dump;
mod erase;
mod error;
#[cfg(feature = "kafka")]
mod import;
mod info;
mod info_store;
mod jsonl;
mod locate;
#[cfg(feature = "kafka")]
mod mirror;
mod progress;
mod publish;
mod render;
mod replay;
mod snapshot;
mod stream;
mod tail;
mod time;
mod topics;
mod verify;
mod verify_store;
mod view;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Settings every command sees.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Print one JSON document on stdout instead of human-readable text.
    pub json: bool,
}

/// Inspect, verify and try out tidelog event logs.
#[derive(Debug, Parser)]
#[command(name = "tidelog", version)]
#[command(after_help = "Exit codes: 0 success, 1 damage found, 2 usage or I/O error.")]
struct Cli {
    /// Print one machine-readable JSON document on stdout (errors too) and no progress bars.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a realistic event stream, replay and check it, follow the tail, reopen; leave a
    /// store with a topic, consumer groups and a dead letter to explore.
    Demo(demo::Args),
    /// Show the segments of a log: offsets, sizes, time ranges.
    Info(info::Args),
    /// Print records, filtered by offset, time, key and headers.
    Dump(dump::Args),
    /// Check every record and index entry: report damage (with its extent), missing records, a
    /// torn tail and index files to rebuild; exit 1 if a record is damaged or missing.
    Verify(verify::Args),
    /// Measure append, replay and read throughput in a temporary directory.
    Bench(bench::Args),
    /// Print a store topic's last events; with -f, follow new ones as they are published.
    Tail(tail::TailArgs),
    /// Show the consumer groups of a store: position, lag, in flight, retries, dead letters.
    Consumers(consumers::ConsumersArgs),
    /// List or redrive a consumer group's dead letters.
    Dlq(dlq::DlqArgs),
    /// Print one stream's events (the records of one key) with versions, offsets, times and
    /// decoded state envelopes (op, before, after).
    #[command(override_usage = "tidelog stream [OPTIONS] LOG KEY\n       tidelog stream [OPTIONS] STORE TOPIC KEY")]
    Stream(stream::Args),
    /// List, verify, prune snapshot directories; create a consumer group's state snapshot.
    Snapshot(snapshot::SnapshotArgs),
    /// Write records in offset order to stdout for another program: JSON Lines, raw
    /// payloads or length-prefixed frames; by offset or time, key and headers; paced or
    /// following (-f).
    Replay(replay::Args),
    /// Append records from stdin to a store's topic: one per line, or length-prefixed frames
    /// (--framed); synced at the end.
    Publish(publish::Args),
    /// List, create or delete the topics of a store.
    Topics(topics::Args),
    /// Copy a log or a whole store consistently while its writers run; the copy is opened
    /// and verified before it appears at DEST.
    Backup(backup::Args),
    /// Key compaction: keep the newest record of each key in a log, a store topic, or every topic.
    Compact(compact::Args),
    /// Erase every record of a key from a store topic (segments, indexes, dead letters).
    Erase(erase::Args),
    /// List, query, measure the lag of, or rebuild the read views of a log or topic.
    View(view::ViewArgs),
    /// Mirror a topic into a Kafka topic and follow it; hand a consumer group over to Kafka
    /// (the `kafka` feature).
    #[cfg(feature = "kafka")]
    Mirror(mirror::MirrorArgs),
    /// Follow a Kafka topic into a store topic, resuming exactly where the topic stands (the
    /// `kafka` feature).
    #[cfg(feature = "kafka")]
    Import(import::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit with code 2 (clap's convention), --help and --version with 0.
            // With --json anywhere on the line, a usage error is reported as JSON too.
            let wants_json = std::env::args_os().any(|a| a == "--json");
            if wants_json && e.use_stderr() {
                let msg = e.render().to_string();
                let v = serde_json::json!({ "error": "usage", "message": msg.trim(), "exit_code": error::EXIT_USAGE });
                let _ = writeln!(io::stdout().lock(), "{v}");
                return ExitCode::from(error::EXIT_USAGE);
            }
            e.exit()
        }
    };
    let ctx = Ctx { json: cli.json };
    let result = match &cli.command {
        Command::Demo(args) => demo::run(ctx, args),
        Command::Info(args) => info::run(ctx, args),
        Command::Dump(args) => dump::run(ctx, args),
        Command::Verify(args) => verify::run(ctx, args),
        Command::Bench(args) => bench::run(ctx, args),
        Command::Tail(args) => tail::run_tail(ctx, args),
        Command::Consumers(args) => consumers::run_consumers(ctx, args),
        Command::Dlq(args) => dlq::run_dlq(ctx, args),
        Command::Stream(args) => stream::run(ctx, args),
        Command::Snapshot(args) => snapshot::run(ctx, args),
        Command::Replay(args) => replay::run(ctx, args),
        Command::Publish(args) => publish::run(ctx, args),
        Command::Topics(args) => topics::run(ctx, args),
        Command::Backup(args) => backup::run(ctx, args),
        Command::Compact(args) => compact::run(ctx, args),
        Command::Erase(args) => erase::run(ctx, args),
        Command::View(args) => view::run(ctx, args),
        #[cfg(feature = "kafka")]
        Command::Mirror(args) => mirror::run(ctx, args),
        #[cfg(feature = "kafka")]
        Command::Import(args) => import::run(ctx, args),
    };
    match result {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        // The reader of our output went away (`tidelog dump ... | head`): nothing to say.
        Err(e) if e.is_broken_pipe() => ExitCode::from(error::EXIT_OK),
        Err(CliError::Reported(code)) => ExitCode::from(code),
        Err(e) => {
            if ctx.json {
                let mut out = io::stdout().lock();
                // Nothing sensible is left to do if stdout fails too.
                let _ = writeln!(out, "{}", e.to_json());
            } else {
                // `eprintln!` would panic if stderr is a closed pipe; ignore that instead.
                let _ = writeln!(io::stderr(), "tidelog: error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
