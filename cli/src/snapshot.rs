//! `tidelog snapshot list|verify|prune DIR` for a snapshot directory (a projection's, or a
//! consumer group's `groups/TOPIC/GROUP/snapshots`), and `tidelog snapshot create STORE TOPIC
//! GROUP`, which writes a consumer group's state snapshot. A projection's snapshots hold
//! state that only the program defining the projection can compute, so the binary cannot
//! create them: `create` applies to consumer groups only.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde_json::{json, Value};
use tidelog::{GroupOptions, SnapshotDir, SnapshotInfo, SnapshotRetention};

use crate::error::{CliError, CliResult, EXIT_DAMAGE};
use crate::locate::{existing_group, open_store};
use crate::progress;
use crate::render::{self, plural, size};
use crate::time::format_time_us;
use crate::Ctx;

/// Verifying at least this many bytes of snapshots draws a progress bar (when one may be
/// drawn).
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// Arguments of `tidelog snapshot`.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

/// `tidelog snapshot` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// List the snapshots of a directory: position, projection name, fingerprint, size,
    /// records applied, last record's time, file time. Damaged files are listed as such.
    List {
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// Check every snapshot's header, lengths and checksum, and that its position is the one
    /// its file name says; report each damaged file with the byte where the damage is. Exit
    /// 1 if one is damaged.
    Verify {
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// Remove old snapshots: keep the newest K, and optionally the oldest of each of the
    /// newest M stretches of N offsets. Takes the directory's lock (fails while a runner
    /// writes there); refuses (exit 1) if any snapshot is damaged.
    Prune {
        /// The snapshot directory.
        dir: PathBuf,
        /// Newest snapshots to keep (at least 1).
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
        keep_latest: u64,
        /// Width of a stretch of offsets for spaced snapshots (with --keep-spaced).
        #[arg(long, value_name = "N", default_value_t = 0, requires = "keep_spaced")]
        spacing: u64,
        /// Stretches that keep their oldest snapshot (with --spacing).
        #[arg(long, value_name = "M", default_value_t = 0, requires = "spacing")]
        keep_spaced: u64,
    },
    /// Write a consumer group's state snapshot now (what the group does every
    /// `snapshot_every` changes and at close): the group's state log is then replayed only
    /// from it, and the state-log segments below it are removed. Applies to consumer groups
    /// only: a projection's state is computed by the program that defines it. The group must
    /// not be open in another process.
    Create {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
    },
}

/// One snapshot file: its facts, or why it cannot be read.
struct Entry {
    position: u64,
    path: PathBuf,
    file_bytes: u64,
    modified_us: Option<u64>,
    info: Result<SnapshotInfo, tidelog::Error>,
}

impl Entry {
    /// The damage, if any: an unreadable file, or a position other than its name says.
    fn damage(&self) -> Option<Value> {
        match &self.info {
            Err(tidelog::Error::Corruption { location: tidelog::Location::File { path, position }, kind }) => {
                Some(json!({
                    "file": path.display().to_string(),
                    "position": position,
                    "corruption": kind.name(),
                    "detail": kind.to_string(),
                }))
            }
            Err(e) => Some(json!({ "file": self.path.display().to_string(), "detail": e.to_string() })),
            Ok(info) if info.position != self.position => Some(json!({
                "file": self.path.display().to_string(),
                // The header's position field (docs/format.md, "Projection snapshot file").
                "position": 16,
                "corruption": "position_mismatch",
                "detail": format!("the header says position {}, the file name {}", info.position, self.position),
            })),
            Ok(_) => None,
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "position": self.position,
            "file": self.path.display().to_string(),
            "file_bytes": self.file_bytes,
            "modified_us": self.modified_us,
            "modified": self.modified_us.map(format_time_us),
        });
        if let Ok(i) = &self.info {
            v["name"] = json!(i.name);
            v["fingerprint"] = json!(format!("{:016x}", i.fingerprint));
            v["records"] = json!(i.records);
            v["last_offset"] = json!(i.last_offset);
            v["last_timestamp_us"] = json!(i.last_timestamp_us);
            v["payload_bytes"] = json!(i.payload_bytes);
        }
        v["damage"] = self.damage().unwrap_or(Value::Null);
        v
    }

    fn line(&self) -> String {
        let head = format!("{:>20}  {:>10}", self.position, size(self.file_bytes));
        let written = self.modified_us.map_or_else(|| "-".to_owned(), format_time_us);
        match (&self.info, self.damage()) {
            (Ok(i), None) => format!(
                "{head}  {}  fingerprint={:016x}  records={}  last_record={}  written={written}",
                render::bytes_text(i.name.as_bytes()),
                i.fingerprint,
                i.records,
                if i.last_offset.is_some() { format_time_us(i.last_timestamp_us) } else { "-".to_owned() },
            ),
            (_, Some(d)) => format!("{head}  DAMAGED: {}", d["detail"].as_str().unwrap_or("damaged")),
            (Err(e), None) => format!("{head}  DAMAGED: {e}"),
        }
    }
}

/// The snapshot files of `dir`, read and checked; `bar` advances by each file's bytes.
fn entries(dir: &Path, mut on_file: impl FnMut(u64)) -> CliResult<Vec<Entry>> {
    if !dir.is_dir() {
        return Err(CliError::NotFound(format!("no snapshot directory at {}", dir.display())));
    }
    let files = SnapshotDir::open_read_only(dir)
        .files()
        .map_err(CliError::log(format!("listing the snapshots of {}", dir.display())))?;
    let mut out = Vec::with_capacity(files.len());
    for (position, path) in files {
        let meta = std::fs::metadata(&path).map_err(CliError::io(&path))?;
        let modified_us = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let info = SnapshotDir::read_info(&path);
        on_file(meta.len());
        out.push(Entry { position, path, file_bytes: meta.len(), modified_us, info });
    }
    Ok(out)
}

/// Total bytes of the snapshot files in `dir` (for the progress bar's length).
fn total_bytes(dir: &Path) -> u64 {
    SnapshotDir::open_read_only(dir)
        .files()
        .map(|f| f.iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Leftover `.snap.tmp` files: writes interrupted before their rename, never snapshots (the
/// next writer open removes them).
fn leftovers(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".snap.tmp"))
        .collect();
    v.sort();
    v
}

/// Run `tidelog snapshot ...`.
pub fn run(ctx: Ctx, args: &SnapshotArgs) -> CliResult {
    match &args.command {
        SnapshotCommand::List { dir } => list(ctx, dir),
        SnapshotCommand::Verify { dir } => verify(ctx, dir),
        SnapshotCommand::Prune { dir, keep_latest, spacing, keep_spaced } => {
            let retention = SnapshotRetention::default()
                .keep_latest(usize::try_from(*keep_latest).unwrap_or(usize::MAX))
                .spaced(*spacing, usize::try_from(*keep_spaced).unwrap_or(usize::MAX));
            prune(ctx, dir, &retention)
        }
        SnapshotCommand::Create { dir, topic, group } => create(ctx, dir, topic, group),
    }
}

fn list(ctx: Ctx, dir: &Path) -> CliResult {
    let list = entries(dir, |_| {})?;
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = json!({
            "dir": dir.display().to_string(),
            "snapshots": list.iter().map(Entry::json).collect::<Vec<_>>(),
            "leftovers": leftovers(dir),
        });
        return render::print_json(&mut out, &doc);
    }
    if list.is_empty() {
        writeln!(out, "no snapshots in {}", dir.display())?;
        return Ok(());
    }
    writeln!(out, "{:>20}  {:>10}  name", "position", "size")?;
    for e in &list {
        writeln!(out, "{}", e.line())?;
    }
    let damaged = list.iter().filter(|e| e.damage().is_some()).count() as u64;
    write!(out, "-- {}", plural(list.len() as u64, "snapshot"))?;
    if damaged > 0 {
        write!(out, ", {damaged} damaged (`tidelog snapshot verify` locates the damage)")?;
    }
    writeln!(out)?;
    Ok(())
}

fn verify(ctx: Ctx, dir: &Path) -> CliResult {
    let total = total_bytes(dir);
    let bar = if total >= PROGRESS_MIN_BYTES {
        progress::progress_bar(ctx, total, true, "verify")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let list = entries(dir, |n| bar.inc(n))?;
    bar.finish_and_clear();
    let damaged: Vec<Value> = list.iter().filter_map(Entry::damage).collect();
    let left = leftovers(dir);
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = json!({
            "dir": dir.display().to_string(),
            "snapshots": list.len(),
            "intact": list.len() - damaged.len(),
            "damaged": damaged,
            "leftovers": left,
        });
        render::print_json(&mut out, &doc)?;
    } else {
        for d in &damaged {
            let at = d["position"].as_u64().map_or_else(String::new, |p| format!(" at byte {p}"));
            writeln!(
                out,
                "damaged: {}{at}: {}",
                d["file"].as_str().unwrap_or("?"),
                d["detail"].as_str().unwrap_or("?")
            )?;
        }
        for l in &left {
            writeln!(out, "note: {l} is an interrupted write (not a snapshot; the next writer removes it)")?;
        }
        let intact = (list.len() - damaged.len()) as u64;
        writeln!(out, "{} of {} intact in {}", intact, plural(list.len() as u64, "snapshot"), dir.display())?;
    }
    if damaged.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported(EXIT_DAMAGE))
    }
}

fn prune(ctx: Ctx, dir: &Path, retention: &SnapshotRetention) -> CliResult {
    let list = entries(dir, |_| {})?;
    if let Some(e) = list.iter().find(|e| e.damage().is_some()) {
        let message = format!(
            "{} is damaged; nothing was pruned (pruning could leave no usable snapshot): see `tidelog snapshot verify {}`",
            e.path.display(),
            dir.display()
        );
        if ctx.json {
            let doc = json!({ "error": "damaged", "message": message, "exit_code": EXIT_DAMAGE, "damage": e.damage() });
            render::print_json(&mut io::stdout().lock(), &doc)?;
        } else {
            // Nothing sensible is left to do if stderr fails.
            let _ = writeln!(io::stderr(), "tidelog: error: {message}");
        }
        return Err(CliError::Reported(EXIT_DAMAGE));
    }
    let Some(newest) = list.last().map(|e| e.position) else {
        return finish_prune(ctx, dir, &[], 0);
    };
    let writer = SnapshotDir::open(dir).map_err(|e| match e {
        tidelog::Error::Locked { .. } => CliError::Usage(format!(
            "{} is in use by a writer (a projection runner or a group); try again once it stops",
            dir.display()
        )),
        e => CliError::log(format!("opening {} to prune it", dir.display()))(e),
    })?;
    let removed = writer
        .prune(newest, retention)
        .map_err(CliError::log(format!("pruning the snapshots of {}", dir.display())))?;
    let kept = list.len() - removed.len();
    finish_prune(ctx, dir, &removed, kept as u64)
}

fn finish_prune(ctx: Ctx, dir: &Path, removed: &[PathBuf], kept: u64) -> CliResult {
    let mut out = io::stdout().lock();
    if ctx.json {
        let removed: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        return render::print_json(
            &mut out,
            &json!({ "dir": dir.display().to_string(), "removed": removed, "kept": kept }),
        );
    }
    for p in removed {
        writeln!(out, "removed {}", p.display())?;
    }
    writeln!(out, "-- {} removed, {} kept", plural(removed.len() as u64, "snapshot"), kept)?;
    Ok(())
}

/// Write a fresh snapshot of a closed consumer group by opening and closing it.
pub fn create(ctx: Ctx, dir: &Path, topic: &str, group: &str) -> CliResult {
    let store = open_store(dir)?;
    let t = existing_group(&store, topic, group)?;
    let g = t.group(group, GroupOptions::default()).map_err(|e| match e {
        tidelog::Error::Locked { .. } => CliError::Usage(format!(
            "group {topic}/{group} is open in another process; it writes its snapshots itself (every \
             snapshot_every changes and at close)"
        )),
        e => CliError::log(format!("opening group {topic}/{group}"))(e),
    })?;
    // Closing a group writes its snapshot, removes the older one and the state-log segments
    // below it.
    g.close().map_err(CliError::log(format!("writing the snapshot of {topic}/{group}")))?;
    let snap_dir = store.dir().join("groups").join(topic).join(group).join("snapshots");
    let list = entries(&snap_dir, |_| {})?;
    let Some(newest) = list.last() else {
        return Err(CliError::Mismatch(format!("no snapshot in {} after closing the group", snap_dir.display())));
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        return render::print_json(&mut out, &json!({ "topic": topic, "group": group, "snapshot": newest.json() }));
    }
    writeln!(out, "wrote the snapshot of {topic}/{group}:")?;
    writeln!(out, "{}", newest.line())?;
    Ok(())
}
