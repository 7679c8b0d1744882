//! `tidelog mirror run|translate|map`: copy a store topic into a Kafka topic and follow it;
//! hand a consumer group over to Kafka; show the offset map (the `kafka` feature).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use serde_json::json;
use tidelog::kafka::{translate_group, Mirror, MirrorOptions, OffsetMap};

use crate::error::{CliError, CliResult};
use crate::locate::open_store;
use crate::Ctx;

/// Arguments of `tidelog mirror`.
#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    #[command(subcommand)]
    pub command: MirrorCommand,
}

/// Where the mirror writes: the Kafka cluster and topic, and the mirror's name.
#[derive(Debug, clap::Args)]
pub struct Destination {
    /// Kafka bootstrap servers (host:port[,host:port...]).
    #[arg(long)]
    pub brokers: String,
    /// The Kafka topic.
    #[arg(long = "to")]
    pub kafka_topic: String,
    /// The mirror's name: its tidelog consumer group and offset-map directory (default
    /// kafka-mirror.<kafka topic>).
    #[arg(long)]
    pub name: Option<String>,
    /// An extra librdkafka property, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `tidelog mirror` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MirrorCommand {
    /// Mirror a topic into Kafka and follow it (until killed: a restart resumes exactly after
    /// what the Kafka topic holds), or only up to its current end (--once).
    Run {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        #[command(flatten)]
        to: Destination,
        /// Partitions when the Kafka topic is created (default 1, one total order).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor when the Kafka topic is created (default: the broker's).
        #[arg(long)]
        replication: Option<i32>,
        /// The source id written in each record's tidelog.source header (default: the store
        /// directory's path, '#', the topic).
        #[arg(long)]
        source_id: Option<String>,
        /// Continue into a Kafka topic whose last record came from another source.
        #[arg(long)]
        force: bool,
        /// Mirror what the topic holds now, wait for the broker's acknowledgements, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Commit, for a Kafka consumer group, the offsets where a tidelog consumer group stands,
    /// so a service moves from tidelog to Kafka without skipping or re-reading. Stop the
    /// service first; the mirror must have passed the group's position.
    Translate {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The tidelog consumer group.
        group: String,
        #[command(flatten)]
        to: Destination,
        /// The Kafka consumer group to commit for.
        #[arg(long)]
        kafka_group: String,
        /// Print the offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a mirror's offset map: runs of tidelog offsets and where they are in Kafka.
    Map {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The Kafka topic.
        #[arg(long = "to")]
        kafka_topic: String,
        /// The mirror's name (default kafka-mirror.<kafka topic>).
        #[arg(long)]
        name: Option<String>,
    },
}

fn options(to: &Destination) -> CliResult<MirrorOptions> {
    let mut o = MirrorOptions::new(&to.brokers, &to.kafka_topic);
    if let Some(n) = &to.name {
        o = o.name(n);
    }
    for kv in &to.set {
        let (k, v) = kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--set {kv:?}: expected KEY=VALUE")))?;
        o = o.set(k, v);
    }
    Ok(o)
}

/// Run `tidelog mirror`.
pub fn run(ctx: Ctx, args: &MirrorArgs) -> CliResult<()> {
    let mut out = io::stdout().lock();
    match &args.command {
        MirrorCommand::Run { dir, topic, to, partitions, replication, source_id, force, once } => {
            let store = open_store(dir)?;
            let mut o = options(to)?.force(*force);
            if let Some(p) = partitions {
                o = o.partitions(*p);
            }
            if let Some(r) = replication {
                o = o.replication(*r);
            }
            if let Some(s) = source_id {
                o = o.source_id(s);
            }
            let doing = format!("mirroring {topic} into kafka topic {}", to.kafka_topic);
            let mut m = Mirror::open(&store, topic, o).map_err(CliError::log(&doing))?;
            let r = m.resumed().clone();
            let m_source = m.source_id().to_string();
            if !ctx.json {
                writeln!(
                    out,
                    "mirroring {topic} into {} ({} partition(s)) from offset {} (source {}; {} record(s) found in the \
                     destination beyond the offset map)",
                    to.kafka_topic,
                    r.partitions,
                    r.from,
                    m.source_id(),
                    r.recovered
                )
                .map_err(CliError::Output)?;
                out.flush().map_err(CliError::Output)?;
            }
            let report = if *once {
                m.catch_up().map_err(CliError::log(&doing))?
            } else {
                m.run(&AtomicBool::new(false)).map_err(CliError::log(&doing))?
            };
            m.close().map_err(CliError::log(&doing))?;
            if ctx.json {
                let v = json!({
                    "topic": topic, "kafka_topic": to.kafka_topic, "source": m_source, "resumed_from": r.from,
                    "partitions": r.partitions, "recovered": r.recovered, "mirrored": report.mirrored,
                    "already_there": report.already_there, "position": report.position,
                });
                writeln!(out, "{v}").map_err(CliError::Output)?;
            } else {
                writeln!(out, "mirrored {} record(s); position {}", report.mirrored, report.position)
                    .map_err(CliError::Output)?;
            }
        }
        MirrorCommand::Translate { dir, topic, group, to, kafka_group, dry_run } => {
            let store = open_store(dir)?;
            let o = options(to)?;
            let doing = format!("translating group {group} of {topic} to kafka group {kafka_group}");
            let t = translate_group(&store, topic, group, &o, kafka_group, *dry_run).map_err(CliError::log(&doing))?;
            if ctx.json {
                let parts: Vec<_> =
                    t.partitions.iter().map(|p| json!({"partition": p.partition, "offset": p.kafka_offset})).collect();
                let v = json!({
                    "group": group, "kafka_group": kafka_group, "committed": t.committed, "done_above": t.done_above,
                    "partitions": parts, "unmapped": t.unmapped, "committed_to_kafka": t.committed_to_kafka,
                });
                writeln!(out, "{v}").map_err(CliError::Output)?;
            } else {
                writeln!(out, "tidelog group {group} is at offset {}", t.committed).map_err(CliError::Output)?;
                for p in &t.partitions {
                    writeln!(out, "  {} partition {}: offset {}", to.kafka_topic, p.partition, p.kafka_offset)
                        .map_err(CliError::Output)?;
                }
                for p in &t.unmapped {
                    writeln!(out, "  {} partition {p}: no mirrored record, nothing committed", to.kafka_topic)
                        .map_err(CliError::Output)?;
                }
                if t.done_above > 0 {
                    writeln!(
                        out,
                        "note: {} event(s) after the position were already done in tidelog; Kafka consumers read them \
                         again",
                        t.done_above
                    )
                    .map_err(CliError::Output)?;
                }
                let what = if t.committed_to_kafka { "committed for" } else { "dry run, nothing committed for" };
                writeln!(out, "{what} kafka group {kafka_group}").map_err(CliError::Output)?;
            }
        }
        MirrorCommand::Map { dir, topic, kafka_topic, name } => {
            let store = open_store(dir)?;
            let mut o = MirrorOptions::new("", kafka_topic);
            if let Some(n) = name {
                o = o.name(n);
            }
            let path = o.offset_map_path(&store, topic);
            let map = OffsetMap::load(&path).map_err(CliError::log(format!("reading {}", path.display())))?;
            if ctx.json {
                let runs: Vec<_> = map
                    .runs()
                    .map(|r| {
                        json!({"tidelog_start": r.tidelog_start, "partition": r.partition,
                               "kafka_start": r.kafka_start, "len": r.len})
                    })
                    .collect();
                writeln!(out, "{}", json!({"path": path.display().to_string(), "end": map.end(), "runs": runs}))
                    .map_err(CliError::Output)?;
            } else {
                writeln!(out, "{} (mirrored up to offset {})", path.display(), map.end()).map_err(CliError::Output)?;
                for r in map.runs() {
                    writeln!(
                        out,
                        "  tidelog {}..{} -> partition {} offsets {}..{}",
                        r.tidelog_start,
                        r.tidelog_start + r.len as u64,
                        r.partition,
                        r.kafka_start,
                        r.kafka_start + r.len as i64
                    )
                    .map_err(CliError::Output)?;
                }
            }
        }
    }
    Ok(())
}
