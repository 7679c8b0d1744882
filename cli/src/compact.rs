//! `tidelog compact DIR [TOPIC]`: key compaction of a log, of a store's topic, or of every
//! topic of a store; reports the bytes of segment files before and after.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tidelog::{CompactOptions, CompactReport, Log, Options, Store, StoreOptions};

use crate::error::{CliError, CliResult};
use crate::locate::open_topic;
use crate::progress::progress_bar;
use crate::render::{plural, size};
use crate::Ctx;

/// Arguments of `tidelog compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A log directory, or a store directory.
    pub dir: PathBuf,
    /// With a store: the topic to compact (every topic if omitted).
    pub topic: Option<String>,
    /// Roll the active segment first, so that its records are compacted too.
    #[arg(long)]
    pub roll: bool,
    /// Remove tombstones older than this many seconds (default 86400: one day).
    #[arg(long, value_name = "SECS", default_value_t = 86_400)]
    pub delete_retention: u64,
}

/// Compact what `args` names.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let opts =
        CompactOptions::default().roll_active(args.roll).delete_retention(Duration::from_secs(args.delete_retention));
    let targets = targets(&args.dir, args.topic.as_deref())?;
    let mut results = Vec::new();
    for (name, dir, log_opts) in targets {
        let log = Log::open(&dir, log_opts).map_err(CliError::log(format!("opening {}", dir.display())))?;
        let bar = progress_bar(ctx, 0, true, "compact");
        let report = log
            .compact_with_progress(&opts, &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .map_err(CliError::log(format!("compacting {}", dir.display())))?;
        bar.finish_and_clear();
        log.close().map_err(CliError::log(format!("closing {}", dir.display())))?;
        results.push((name, report));
    }
    let mut out = io::stdout().lock();
    if ctx.json {
        let items: Vec<_> = results.iter().map(|(name, r)| report_json(name.as_deref(), r)).collect();
        let doc = if args.topic.is_some() || results.len() == 1 && results[0].0.is_none() {
            items.into_iter().next().unwrap_or(json!({}))
        } else {
            json!({ "topics": items })
        };
        writeln!(out, "{doc}").map_err(CliError::Output)?;
        return Ok(());
    }
    for (name, r) in &results {
        let what = name.as_deref().map_or_else(|| args.dir.display().to_string(), |n| format!("topic {n}"));
        writeln!(
            out,
            "{what}: {} removed ({} tombstones) from {}; {} -> {} (dirty ratio was {:.2})",
            plural(r.records_removed, "record"),
            r.tombstones_removed,
            plural(r.segments_rewritten as u64, "segment"),
            size(r.bytes_before),
            size(r.bytes_after),
            r.dirty_ratio,
        )
        .map_err(CliError::Output)?;
    }
    Ok(())
}

fn report_json(topic: Option<&str>, r: &CompactReport) -> serde_json::Value {
    json!({
        "topic": topic,
        "records_removed": r.records_removed,
        "tombstones_removed": r.tombstones_removed,
        "segments_rewritten": r.segments_rewritten,
        "bytes_before": r.bytes_before,
        "bytes_after": r.bytes_after,
        "dirty_ratio": r.dirty_ratio,
    })
}

/// The logs to compact: (topic name, directory, options).
fn targets(dir: &Path, topic: Option<&str>) -> CliResult<Vec<(Option<String>, PathBuf, Options)>> {
    let as_store = Store::open(dir, StoreOptions::default().create_if_missing(false));
    let store = match as_store {
        Ok(s) if !s.topic_names().unwrap_or_default().is_empty() => s,
        Err(tidelog::Error::NotFound { .. }) => {
            return Err(CliError::NotFound(format!("no log or store at {}", dir.display())));
        }
        _ => {
            if let Some(t) = topic {
                return Err(CliError::Usage(format!("{} is a log, not a store: it has no topic {t}", dir.display())));
            }
            return Ok(vec![(None, dir.to_path_buf(), Options::default())]);
        }
    };
    let names = match topic {
        Some(t) => vec![open_topic(&store, t)?.name().to_owned()],
        None => store.topic_names().map_err(CliError::log("listing topics"))?,
    };
    let mut out = Vec::new();
    for n in names {
        let t = open_topic(&store, &n)?;
        out.push((Some(n), t.dir().to_path_buf(), store.options().topic.clone()));
    }
    Ok(out)
}
