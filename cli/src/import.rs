//! `tidelog import STORE TOPIC --brokers B --from KAFKA_TOPIC`: follow a Kafka topic into a
//! store topic (the `kafka` feature).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use serde_json::json;
use tidelog::kafka::{Import, ImportOptions};

use crate::error::{CliError, CliResult};
use crate::locate::open_store;
use crate::Ctx;

/// Arguments of `tidelog import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    pub dir: PathBuf,
    /// The topic to append to (created if missing).
    pub topic: String,
    /// Kafka bootstrap servers (host:port[,host:port...]).
    #[arg(long)]
    pub brokers: String,
    /// The Kafka topic to import.
    #[arg(long = "from")]
    pub kafka_topic: String,
    /// Import only this partition (repeatable; default every partition).
    #[arg(long = "partition")]
    pub partitions: Vec<i32>,
    /// An extra librdkafka property, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Import what the Kafka topic holds now and exit, instead of following it.
    #[arg(long)]
    pub once: bool,
}

/// Run `tidelog import`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult<()> {
    let store = open_store(&args.dir)?;
    let mut o = ImportOptions::new(&args.brokers, &args.kafka_topic);
    if !args.partitions.is_empty() {
        o = o.partitions(args.partitions.iter().copied());
    }
    for kv in &args.set {
        let (k, v) = kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--set {kv:?}: expected KEY=VALUE")))?;
        o = o.set(k, v);
    }
    let doing = format!("importing kafka topic {} into {}", args.kafka_topic, args.topic);
    let mut imp = Import::open(&store, &args.topic, o).map_err(CliError::log(&doing))?;
    let mut out = io::stdout().lock();
    if !ctx.json {
        let from: Vec<String> = imp.positions().iter().map(|(p, o)| format!("{p}@{o}")).collect();
        writeln!(out, "importing {} into {} from partition@offset {}", args.kafka_topic, args.topic, from.join(" "))
            .map_err(CliError::Output)?;
        out.flush().map_err(CliError::Output)?;
    }
    let report = if args.once {
        imp.catch_up().map_err(CliError::log(&doing))?
    } else {
        imp.run(&AtomicBool::new(false)).map_err(CliError::log(&doing))?
    };
    if ctx.json {
        let v = json!({"topic": args.topic, "kafka_topic": args.kafka_topic, "imported": report.imported,
                        "positions": report.positions});
        writeln!(out, "{v}").map_err(CliError::Output)?;
    } else {
        writeln!(out, "imported {} record(s)", report.imported).map_err(CliError::Output)?;
    }
    Ok(())
}
