//! `tidelog backup DIR DEST`: a consistent copy of a log or a whole store, taken while its
//! writers run (`Log::backup`, `Store::backup`; what the copy holds is in
//! `docs/durability.md`). DEST must not exist or be empty.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use tidelog::BackupReport;

use crate::error::{CliError, CliResult};
use crate::locate::{is_store, open_log, open_store};
use crate::render::{self, plural, size};
use crate::Ctx;

/// Arguments of `tidelog backup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log or store directory to copy.
    pub dir: PathBuf,
    /// Where the copy goes: a directory that does not exist yet, or an empty one.
    pub dest: PathBuf,
}

/// One copied log; the table's headings are these field names.
#[derive(Debug, Serialize)]
struct LogRow {
    log: String,
    first_offset: u64,
    next_offset: u64,
    records: u64,
    segments: u64,
    bytes: u64,
}

fn row(dest: &Path, r: &BackupReport) -> LogRow {
    let rel = r.dir.strip_prefix(dest).map_or_else(|_| r.dir.display().to_string(), |p| p.display().to_string());
    LogRow {
        log: if rel.is_empty() { ".".to_owned() } else { rel },
        first_offset: r.first_offset,
        next_offset: r.next_offset,
        records: r.records,
        segments: r.segments,
        bytes: r.bytes,
    }
}

fn refused(e: tidelog::Error, dest: &Path) -> CliError {
    match e {
        tidelog::Error::BackupDestinationNotEmpty { .. } => CliError::Usage(format!(
            "{} exists and is not an empty directory: a backup goes into a new or empty directory",
            dest.display()
        )),
        e => CliError::log(format!("backing up into {}", dest.display()))(e),
    }
}

/// Run `tidelog backup`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let (rows, files) = if is_store(&args.dir) {
        let store = open_store(&args.dir)?;
        let r = store.backup(&args.dest).map_err(|e| refused(e, &args.dest))?;
        (r.logs.iter().map(|l| row(&args.dest, l)).collect::<Vec<_>>(), r.files)
    } else {
        // Read-only: a writer in another process goes on appending meanwhile.
        let log = open_log(&args.dir)?;
        let r = log.backup(&args.dest).map_err(|e| refused(e, &args.dest))?;
        (vec![row(&args.dest, &r)], 0)
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = json!({
            "dir": args.dir.display().to_string(),
            "dest": args.dest.display().to_string(),
            "logs": rows,
            "files": files,
        });
        return render::print_json(&mut out, &doc);
    }
    let records: u64 = rows.iter().map(|r| r.records).sum();
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    writeln!(
        out,
        "backed up {} to {}: {} in {}, {} of records{}; opened and verified intact",
        args.dir.display(),
        args.dest.display(),
        plural(records, "record"),
        plural(rows.len() as u64, "log"),
        size(bytes),
        if files > 0 { format!(", {}", plural(files, "snapshot file")) } else { String::new() },
    )?;
    let w = rows.iter().map(|r| r.log.len()).max().unwrap_or(0).max("log".len());
    writeln!(
        out,
        "\n{:<w$}  {:>12}  {:>12}  {:>12}  {:>8}  {:>10}",
        "log", "first_offset", "next_offset", "records", "segments", "bytes"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<w$}  {:>12}  {:>12}  {:>12}  {:>8}  {:>10}",
            r.log,
            r.first_offset,
            r.next_offset,
            render::count(r.records),
            r.segments,
            size(r.bytes)
        )?;
    }
    Ok(())
}
