//! Hand-written SVG bar charts: horizontal bars grouped by workload, log scale when the values
//! span more than a factor of 20.

use std::fmt::Write as _;
use std::path::Path;

use crate::bench::{Row, BULK_CHUNKS};
use crate::report::si;
use crate::stores::Kind;
use crate::Result;

struct Bar {
    label: String,
    value: f64,
    colour: &'static str,
    /// Shown after the value (tidelog's ratio against this bar).
    extra: String,
}

struct Group {
    title: String,
    bars: Vec<Bar>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn colour(store: &str) -> &'static str {
    match store.strip_suffix(" (used)") {
        Some("tidelog") => "#ffc078",
        Some("mmap") => "#f783ac",
        Some(base) => Kind::parse(base).map_or("#adb5bd", Kind::colour),
        None => Kind::parse(store).map_or("#adb5bd", Kind::colour),
    }
}

/// Compact tick label: 1k, 10k, 1M, 0.1, ...
fn tick(v: f64) -> String {
    let (d, suffix) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    // Shortest form: 0.01, 0.5, 10, 1.5.
    let n = format!("{}", (d * 1000.0).round() / 1000.0);
    format!("{n}{suffix}")
}

fn chart(title: &str, subtitle: &str, unit: &str, groups: &[Group], fmt: &dyn Fn(f64) -> String) -> String {
    const W: f64 = 1120.0;
    const X0: f64 = 170.0;
    const BW: f64 = 590.0;
    const BAR: f64 = 15.0;
    const GAP: f64 = 4.0;
    const HEAD: f64 = 22.0;
    let values: Vec<f64> = groups.iter().flat_map(|g| g.bars.iter().map(|b| b.value)).filter(|v| *v > 0.0).collect();
    let max = values.iter().copied().fold(0.0, f64::max).max(1e-9);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min).min(max);
    let log = max / min > 20.0;
    let (lo, hi) = if log {
        (10f64.powf(min.log10().floor()), 10f64.powf(max.log10().ceil()))
    } else {
        let step = 10f64.powf((max / 5.0).log10().floor());
        let hi = ((max / step).ceil() * step).max(step);
        (0.0, hi)
    };
    let x = |v: f64| -> f64 {
        let f = if log { (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()) } else { v / hi };
        X0 + BW * f.clamp(0.0, 1.0)
    };
    let body: f64 = groups.iter().map(|g| HEAD + g.bars.len() as f64 * (BAR + GAP)).sum();
    let top = 58.0;
    let h = top + body + 40.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="24" font-size="16" font-weight="bold">{}</text>
<text x="12" y="42" fill="#555">{}</text>
"##,
        esc(title),
        esc(&format!("{subtitle}{}", if log { " — log scale" } else { "" }))
    );
    // Grid lines and their labels.
    let ticks: Vec<f64> = if log {
        let mut t = Vec::new();
        let mut v = lo;
        while v <= hi * 1.0001 {
            t.push(v);
            v *= 10.0;
        }
        t
    } else {
        (0..=5).map(|i| hi * i as f64 / 5.0).collect()
    };
    for t in ticks {
        let gx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            top + body,
            top + body + 16.0,
            esc(&format!("{}{unit}", tick(t)))
        );
    }
    let mut y = top;
    for g in groups {
        let _ = writeln!(s, r#"<text x="12" y="{:.1}" font-weight="bold">{}</text>"#, y + 15.0, esc(&g.title));
        y += HEAD;
        for b in &g.bars {
            let bx = x(b.value);
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{X0}" y="{y:.1}" width="{:.1}" height="{BAR}" fill="{}"/><text x="{:.1}" y="{:.1}" fill="#222">{}</text>"##,
                X0 - 6.0,
                y + 11.5,
                esc(&b.label),
                (bx - X0).max(1.0),
                b.colour,
                bx + 5.0,
                y + 11.5,
                esc(&format!("{}{}", fmt(b.value), b.extra))
            );
            y += BAR + GAP;
        }
    }
    s.push_str("</svg>\n");
    s
}

fn groups(rows: &[Row], workloads: &[String], scale: f64) -> Vec<Group> {
    workloads
        .iter()
        .filter_map(|w| {
            let bars: Vec<Bar> = rows
                .iter()
                .filter(|r| r.workload == *w)
                .map(|r| Bar {
                    label: if r.durable == Some(false) { format!("{} †", r.store) } else { r.store.clone() },
                    value: r.value * scale,
                    colour: colour(&r.store),
                    extra: match r.tidelog_ratio {
                        Some(x) => {
                            let cmp = if x >= 1.0 {
                                format!("tidelog {x:.2}× better")
                            } else {
                                format!("tidelog {:.2}× worse", 1.0 / x)
                            };
                            if r.durable == Some(false) {
                                format!(" · ({cmp}; not like-for-like)")
                            } else {
                                format!(" · {cmp}")
                            }
                        }
                        None => String::new(),
                    },
                })
                .collect();
            (!bars.is_empty()).then(|| Group { title: (*w).to_string(), bars })
        })
        .collect()
}

/// File name, title, subtitle, tick unit, workloads, scale applied to values, value formatter.
type ChartSpec<'a> = (&'a str, &'a str, String, &'a str, Vec<String>, f64, &'a dyn Fn(f64) -> String);

/// The workloads of `rows` whose names pass `keep`, in the order of the rows (so that
/// `--charts-from` also draws runs saved with other workload names).
fn named(rows: &[Row], keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in rows {
        if keep(&r.workload) && !v.contains(&r.workload) {
            v.push(r.workload.clone());
        }
    }
    v
}

/// Write `compare-{bulk,bulk-b64,read,durable,reopen,disk}.svg` into `dir`. Returns the files
/// written.
pub fn write_all(rows: &[Row], dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let rate = |v: f64| format!("{}/s", si(v).trim_end());
    let ms = |v: f64| if v < 10.0 { format!("{v:.2} ms") } else { format!("{v:.0} ms") };
    let mb = |v: f64| format!("{v:.0} MB");
    let dagger = "; † = not durable at the measured point";
    let big = BULK_CHUNKS[BULK_CHUNKS.len() - 1];
    let small = BULK_CHUNKS[0];
    let specs: [ChartSpec<'_>; 6] = [
        (
            "compare-bulk.svg",
            "Bulk append",
            format!("records/s, higher is better; chunks of {big} records, one sync at the end{dagger}"),
            "/s",
            named(rows, |w| w.starts_with("bulk-") && !w.ends_with(&format!("-b{small}"))),
            1.0,
            &rate,
        ),
        (
            "compare-bulk-b64.svg",
            "Bulk append, small chunks",
            format!("records/s, higher is better; chunks of {small} records, one sync at the end{dagger}"),
            "/s",
            named(rows, |w| w.starts_with("bulk-") && w.ends_with(&format!("-b{small}"))),
            1.0,
            &rate,
        ),
        (
            "compare-durable.svg",
            "Durable append (1 and 4 threads) and append + consumer position",
            format!("records/s, higher is better; every step durable before the next{dagger}"),
            "/s",
            named(rows, |w| w.starts_with("durable-") || w == "position"),
            1.0,
            &rate,
        ),
        (
            "compare-read.svg",
            "Replay and random reads by offset",
            "records/s, higher is better; page cache warm".into(),
            "/s",
            named(rows, |w| w.starts_with("replay-") || w.starts_with("random-")),
            1.0,
            &rate,
        ),
        (
            "compare-reopen.svg",
            "Reopen",
            "ms to open and read the last record, lower is better".into(),
            " ms",
            named(rows, |w| w == "reopen"),
            1.0,
            &ms,
        ),
        (
            "compare-disk.svg",
            "Bytes on disk after the bulk load",
            "MB (sum of file sizes; (used): bytes written where space is preallocated), lower is better".into(),
            " MB",
            named(rows, |w| w.starts_with("disk-")),
            1e-6,
            &mb,
        ),
    ];
    let mut written = Vec::new();
    for (file, title, sub, unit, workloads, scale, fmt) in specs {
        let g = groups(rows, &workloads, scale);
        if g.is_empty() {
            continue;
        }
        std::fs::write(dir.join(file), chart(title, &sub, unit, &g, fmt))?;
        written.push(dir.join(file).display().to_string());
    }
    Ok(written)
}
