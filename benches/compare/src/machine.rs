//! The machine and revision a run was made on.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Facts printed with the results.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs available.
    pub cores: usize,
    /// Total memory.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// `df -T` of the data directory (file system type and device).
    pub filesystem: String,
    /// UTC date and time of the run.
    pub date: String,
    /// `git rev-parse --short HEAD` of the repository.
    pub git_rev: String,
    /// Files modified in the working tree (`git status --porcelain`, tracked only).
    pub git_dirty: Vec<String>,
    /// SQLite library version.
    pub sqlite: String,
    /// Peer crate versions (pinned in Cargo.toml).
    pub crates: String,
    /// `/proc/loadavg` when the run started (other work on the machine skews results).
    pub load_at_start: String,
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cmd(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
}

impl Machine {
    /// Collect the facts; `data_dir` is where the stores live.
    pub fn collect(data_dir: &Path) -> Machine {
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let df = cmd("df", &["-T", &data_dir.to_string_lossy()]);
        let fs_line = df.lines().last().unwrap_or("unknown").split_whitespace().collect::<Vec<_>>();
        let filesystem = match fs_line.as_slice() {
            [dev, ty, ..] => format!("{ty} on {dev} (mounted at {})", fs_line.last().unwrap_or(&"?")),
            _ => "unknown".into(),
        };
        let mem_kb: f64 = proc_field("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let status = cmd("git", &["-C", repo, "status", "--porcelain", "--untracked-files=no"]);
        Machine {
            cpu: proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            memory: format!("{:.1} GiB", mem_kb / 1024.0 / 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            filesystem,
            date: cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            git_rev: cmd("git", &["-C", repo, "rev-parse", "--short", "HEAD"]),
            git_dirty: status
                .lines()
                .filter(|l| !l.is_empty() && *l != "unknown")
                .map(|l| l.trim().to_string())
                .collect(),
            sqlite: rusqlite::version().to_string(),
            crates: "rusqlite 0.43.0 (bundled), fjall 2.11.2, commitlog 0.2.0, memmap2 0.9.12".into(),
            load_at_start: loadavg(),
        }
    }
}
