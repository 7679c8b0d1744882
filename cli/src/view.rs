//! `tidelog view list|query|lag|rebuild DIR [TOPIC] [VIEW]`: the read views of a log (in
//! `DIR.views/`) or of a store's topic (in `STORE/views/TOPIC/`), from their definition
//! files. `query` and `lag` only read (they work while the application keeps the views
//! current); `rebuild` builds a new generation of a built-in view beside the live one and
//! swaps it in, which a view open in another process refuses. Views with user functions are
//! listed, and reported as needing the application for the rest.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;
use tidelog::{AggregateState, Log, Options, StoredView, ViewAnswer, ViewLag, ViewMode, ViewOptions, Views};

use crate::error::{CliError, CliResult};
use crate::locate::{open_store, open_topic};
use crate::progress::progress_bar;
use crate::render::{self, count, duration, rate};
use crate::Ctx;

/// Arguments of `tidelog view`.
#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    #[command(subcommand)]
    pub command: ViewCommand,
}

/// Where the views are, and which.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// A log directory (its views are in `DIR.views/`) or a store directory.
    pub dir: PathBuf,
    /// For a store: the topic. For a log: the view.
    #[arg(value_name = "TOPIC|VIEW")]
    pub first: Option<String>,
    /// For a store: the view.
    #[arg(value_name = "VIEW")]
    pub second: Option<String>,
}

impl Target {
    /// The names given after the directory, in order.
    fn names(&self) -> Vec<String> {
        self.first.iter().chain(&self.second).cloned().collect()
    }
}

/// `tidelog view` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ViewCommand {
    /// List the views: name, kind, definition version, generation, checkpoint.
    List(Target),
    /// Show a view's groups (count, sum, min, max, average) and the position they reflect.
    Query {
        #[command(flatten)]
        target: Target,
        /// Only this group (for an index: the value whose records to list).
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// The answer as of this offset (the records below it) instead of now.
        #[arg(long, value_name = "OFFSET")]
        as_of: Option<u64>,
    },
    /// How far each view's checkpoint is behind the log, in records and time.
    Lag(Target),
    /// Rebuild a built-in view from the log beside the live one, then swap it in.
    Rebuild {
        #[command(flatten)]
        target: Target,
        /// Also check that the rebuilt state equals the old one at the same position.
        #[arg(long)]
        verify: bool,
    },
}

/// The views directory and the log of what the command line names, and the view asked for.
struct Located {
    views_dir: PathBuf,
    /// A read-only follower of the log (or topic).
    log: Log,
    view: Option<String>,
}

/// Every (views directory, log) the target names: one log, one topic, or every topic.
fn locate(target: &Target) -> CliResult<Vec<Located>> {
    let dir = &target.dir;
    let names = target.names();
    if let Ok(log) = Log::open_read_only(dir, Options::default()) {
        if names.len() > 1 {
            return Err(CliError::Usage(format!("{} is a log: name one view, not a topic and a view", dir.display())));
        }
        let views_dir = Views::open(log.clone()).dir().to_path_buf();
        return Ok(vec![Located { views_dir, log, view: names.first().cloned() }]);
    }
    let store = open_store(dir)?;
    let topics = match names.first() {
        Some(t) => vec![t.clone()],
        None => store.topic_names().map_err(CliError::log("listing the topics"))?,
    };
    let mut out = Vec::new();
    for t in topics {
        let topic = open_topic(&store, &t)?;
        let views = Views::for_topic_read_only(&topic).map_err(CliError::log(format!("opening topic {t}")))?;
        out.push(Located {
            views_dir: views.dir().to_path_buf(),
            log: views.log().clone(),
            view: names.get(1).cloned(),
        });
    }
    Ok(out)
}

fn stored(at: &Located) -> CliResult<Vec<StoredView>> {
    let all = Views::stored_in(&at.views_dir)
        .map_err(CliError::log(format!("reading the views in {}", at.views_dir.display())))?;
    match &at.view {
        None => Ok(all),
        Some(v) => match all.into_iter().find(|s| &s.name == v) {
            Some(s) => Ok(vec![s]),
            None => Err(CliError::NotFound(format!("no view {v} in {}", at.views_dir.display()))),
        },
    }
}

fn one_view(target: &Target) -> CliResult<(Located, StoredView)> {
    let mut located = locate(target)?;
    if located.len() != 1 || located[0].view.is_none() {
        return Err(CliError::Usage("name the view: `DIR VIEW` for a log, `DIR TOPIC VIEW` for a store".into()));
    }
    let at = located.remove(0);
    let s = stored(&at)?.remove(0);
    Ok((at, s))
}

#[derive(Serialize)]
struct ListRow {
    views_dir: String,
    name: String,
    kind: &'static str,
    definition: String,
    version: u32,
    generation: u64,
    checkpoint: u64,
    needs_application: bool,
}

/// Run `tidelog view`.
pub fn run(ctx: Ctx, args: &ViewArgs) -> CliResult {
    match &args.command {
        ViewCommand::List(t) => list(ctx, t),
        ViewCommand::Query { target, group, as_of } => query(ctx, target, group.as_deref(), *as_of),
        ViewCommand::Lag(t) => lag(ctx, t),
        ViewCommand::Rebuild { target, verify } => rebuild(ctx, target, *verify),
    }
}

fn list(ctx: Ctx, target: &Target) -> CliResult {
    let mut rows = Vec::new();
    for at in locate(target)? {
        for s in stored(&at)? {
            let checkpoint = durable_position(&at, &s)?;
            rows.push(ListRow {
                views_dir: at.views_dir.display().to_string(),
                definition: s.describe(),
                kind: s.kind,
                version: s.version,
                generation: s.generation,
                checkpoint,
                needs_application: !s.is_builtin(),
                name: s.name,
            });
        }
    }
    print_views(
        ctx,
        target,
        &rows,
        |r| &r.name,
        |out, w| {
            writeln!(out, "{:<w$}  {:>7}  {:>10}  {:>12}  definition", "view", "version", "generation", "checkpoint")?;
            for r in &rows {
                let note = if r.needs_application { "  (needs the application)" } else { "" };
                writeln!(
                    out,
                    "{:<w$}  {:>7}  {:>10}  {:>12}  {}{note}",
                    r.name, r.version, r.generation, r.checkpoint, r.definition
                )?;
            }
            Ok(())
        },
    )
}

/// Print `rows` as `{"views": rows}` in JSON, or for humans with `table`, given the width of
/// the name column; says so when there are none.
fn print_views<R: Serialize>(
    ctx: Ctx,
    target: &Target,
    rows: &[R],
    name: impl Fn(&R) -> &str,
    table: impl FnOnce(&mut io::StdoutLock<'static>, usize) -> CliResult,
) -> CliResult {
    let mut out = io::stdout().lock();
    if ctx.json {
        return render::print_json(&mut out, &json!({ "views": rows }));
    }
    if rows.is_empty() {
        writeln!(out, "no views in {}", target.dir.display())?;
        return Ok(());
    }
    let w = rows.iter().map(|r| name(r).len()).max().unwrap_or(0).max(4);
    table(&mut out, w)
}

#[derive(Serialize)]
struct GroupRow {
    group: String,
    records: u64,
    values: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    average: Option<f64>,
}

fn rows_of(s: &AggregateState, only: Option<&str>) -> Vec<GroupRow> {
    s.iter()
        .filter(|(g, _)| only.is_none_or(|o| o.as_bytes() == *g))
        .map(|(g, st)| GroupRow {
            group: String::from_utf8_lossy(g).into_owned(),
            records: st.records,
            values: st.values,
            sum: st.sum,
            min: st.min,
            max: st.max,
            average: st.average(),
        })
        .collect()
}

fn query(ctx: Ctx, target: &Target, group: Option<&str>, as_of: Option<u64>) -> CliResult {
    let (at, s) = one_view(target)?;
    if s.kind == "index" {
        return query_index(ctx, &at, &s, group, as_of);
    }
    let def = s.builtin_definition().map_err(CliError::log(format!("opening view {}", s.name)))?;
    let views = Views::open_in(at.log.clone(), &at.views_dir);
    let doing = format!("querying view {}", s.name);
    let view = views.aggregate(def, ViewOptions::default().mode(ViewMode::ReadOnly)).map_err(CliError::log(&doing))?;
    let answer: ViewAnswer<Vec<GroupRow>> = match as_of {
        Some(offset) => view.query_as_of(offset, |st| rows_of(st, group)),
        None => view.query(|st| rows_of(st, group)),
    }
    .map_err(CliError::log(&doing))?;
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = json!({ "view": s.name, "position": answer.position, "groups": answer.value });
        return render::print_json(&mut out, &doc);
    }
    writeln!(out, "view {} ({}), as of position {}", s.name, s.describe(), answer.position)?;
    let w = answer.value.iter().map(|r| r.group.len()).max().unwrap_or(0).max(5);
    writeln!(
        out,
        "{:<w$}  {:>10}  {:>14}  {:>12}  {:>12}  {:>12}",
        "group", "records", "sum", "min", "max", "average"
    )?;
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
    for r in &answer.value {
        writeln!(
            out,
            "{:<w$}  {:>10}  {:>14}  {:>12}  {:>12}  {:>12}",
            r.group,
            r.records,
            if r.values > 0 { format!("{}", r.sum) } else { "-".into() },
            num(r.min),
            num(r.max),
            num(r.average.map(|a| (a * 1000.0).round() / 1000.0))
        )?;
    }
    Ok(())
}

/// An index answers which records carry a value: `--group` names it.
fn query_index(ctx: Ctx, at: &Located, s: &StoredView, value: Option<&str>, as_of: Option<u64>) -> CliResult {
    let Some(value) = value else {
        return Err(CliError::Usage(format!("view {} is an index: name the value with --group VALUE", s.name)));
    };
    if as_of.is_some() {
        return Err(CliError::Usage(format!("view {} is an index: it has no answers as of an offset", s.name)));
    }
    let doing = format!("querying index {}", s.name);
    let views = Views::open_in(at.log.clone(), &at.views_dir);
    let index = views.open_stored_index(&s.name).map_err(CliError::log(&doing))?;
    let offsets = index.offsets(value.as_bytes()).map_err(CliError::log(&doing))?;
    let position = index.position();
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = json!({ "view": s.name, "position": position, "value": value, "offsets": offsets });
        return render::print_json(&mut out, &doc);
    }
    writeln!(out, "view {} ({}), as of position {}", s.name, s.describe(), position)?;
    let shown: Vec<String> = offsets.iter().take(20).map(u64::to_string).collect();
    let more = if offsets.len() > 20 { format!(", ... ({} more)", offsets.len() - 20) } else { String::new() };
    writeln!(out, "{value}: {} at offsets {}{more}", render::plural(offsets.len() as u64, "record"), shown.join(", "))?;
    Ok(())
}

/// The position a view reached durably: an aggregate's newest snapshot; an index's files and
/// the records after them (it is rebuilt from them at each open).
fn durable_position(at: &Located, s: &StoredView) -> CliResult<u64> {
    let doing = || format!("reading view {}", s.name);
    if s.kind == "index" {
        let views = Views::open_in(at.log.clone(), &at.views_dir);
        return Ok(views.open_stored_index(&s.name).map_err(CliError::log(doing()))?.position());
    }
    s.checkpoint_position().map_err(CliError::log(doing()))
}

#[derive(Serialize)]
struct LagRow {
    name: String,
    checkpoint: u64,
    log_next_offset: u64,
    lag_records: u64,
    lag_seconds: f64,
}

fn lag(ctx: Ctx, target: &Target) -> CliResult {
    let mut rows = Vec::new();
    for at in locate(target)? {
        for s in stored(&at)? {
            let checkpoint = durable_position(&at, &s)?;
            let l = ViewLag::measure(&at.log, checkpoint);
            rows.push(LagRow {
                name: s.name,
                checkpoint,
                log_next_offset: l.log_next_offset,
                lag_records: l.records,
                lag_seconds: l.time.as_secs_f64(),
            });
        }
    }
    print_views(
        ctx,
        target,
        &rows,
        |r| &r.name,
        |out, w| {
            writeln!(
                out,
                "{:<w$}  {:>12}  {:>12}  {:>12}  {:>10}",
                "view", "checkpoint", "log_end", "lag_records", "lag_time"
            )?;
            for r in &rows {
                let t = duration(std::time::Duration::from_secs_f64(r.lag_seconds));
                writeln!(
                    out,
                    "{:<w$}  {:>12}  {:>12}  {:>12}  {:>10}",
                    r.name, r.checkpoint, r.log_next_offset, r.lag_records, t
                )?;
            }
            writeln!(out, "\ncheckpoint: the newest snapshot; a running view may be ahead of it in its process.")?;
            Ok(())
        },
    )
}

fn rebuild(ctx: Ctx, target: &Target, verify: bool) -> CliResult {
    let (at, s) = one_view(target)?;
    rebuild_one(ctx, &at, &s, verify)
}

/// Rebuild every built-in view of the log at DIR, or of a store's topic (every topic without
/// one), from the log (`tidelog replay --views`). Index views are passed over (each open
/// checks and rebuilds their files); views of user functions need the application and are
/// reported, not rebuilt. Returns the number of views rebuilt.
pub fn rebuild_all(ctx: Ctx, dir: &std::path::Path, topic: Option<&str>) -> CliResult<usize> {
    let target = Target { dir: dir.to_path_buf(), first: topic.map(str::to_owned), second: None };
    let mut rebuilt = 0;
    for at in locate(&target)? {
        for s in stored(&at)? {
            if s.kind == "index" {
                continue;
            }
            if !s.is_builtin() {
                writeln!(
                    io::stdout().lock(),
                    "view {} uses a function of the application's: it is rebuilt by the application, not here",
                    s.name
                )?;
                continue;
            }
            rebuild_one(ctx, &at, &s, false)?;
            rebuilt += 1;
        }
    }
    Ok(rebuilt)
}

fn rebuild_one(ctx: Ctx, at: &Located, s: &StoredView, verify: bool) -> CliResult {
    if s.kind == "index" {
        return Err(CliError::Usage(format!(
            "view {} is an index: each open checks its per-segment files and builds again any that is \
             missing, damaged or stale, so there is nothing to rebuild by hand",
            s.name
        )));
    }
    let doing = format!("rebuilding view {}", s.name);
    let def = s.builtin_definition().map_err(CliError::log(&doing))?;
    let views = Views::open_in(at.log.clone(), &at.views_dir);
    // The view is opened inline: nothing runs in the background; the log is only read.
    let view = views.aggregate(def, ViewOptions::default().mode(ViewMode::Inline)).map_err(CliError::log(&doing))?;
    let bar = progress_bar(ctx, at.log.next_offset(), false, "rebuild");
    let report = view
        .rebuild(verify, |position, end| {
            bar.set_length(end);
            bar.set_position(position);
        })
        .map_err(CliError::log(&doing))?;
    bar.finish_and_clear();
    view.stop().map_err(CliError::log(&doing))?;
    let per_sec = render::per_sec(report.records as f64, report.build_time);
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = json!({
            "view": s.name,
            "generation": report.generation,
            "replaced": report.replaced,
            "position": report.position,
            "records": report.records,
            "seconds": report.build_time.as_secs_f64(),
            "records_per_sec": per_sec,
            "same_as_replaced": report.same_as_replaced,
        });
        return render::print_json(&mut out, &doc);
    }
    writeln!(
        out,
        "rebuilt view {} at position {}: generation {} replaces {}; {} records in {} ({} records/s)",
        s.name,
        report.position,
        report.generation,
        report.replaced,
        count(report.records),
        duration(report.build_time),
        rate(per_sec)
    )?;
    match report.same_as_replaced {
        Some(true) => writeln!(out, "verified: the rebuilt state equals the replaced one at that position")?,
        Some(false) => writeln!(out, "WARNING: the rebuilt state differs from the replaced one at that position")?,
        None => {}
    }
    Ok(())
}
