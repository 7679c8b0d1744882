//! The demo's directory, and the rule that the demo deletes only what it created.
//!
//! The demo writes a marker file, [`MARKER`], into its directory before anything else. A
//! later run reuses a directory only if it is absent, empty, or holds that marker and nothing
//! but what the demo puts there ([`LEDGER`], [`STORE`], [`BALANCES`]); it then removes those and starts
//! over. Any other directory is refused, even one that holds nothing but a tidelog log: the
//! demo cannot tell a log it wrote from one somebody cares about without the marker.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tidelog::{Log, Options};

use crate::error::{CliError, CliResult};

/// The marker file: its presence says the demo created the directory.
pub const MARKER: &str = ".tidelog-demo";
/// The ledger log, inside the demo directory.
pub const LEDGER: &str = "ledger";
/// The store with a topic, consumer groups and a dead letter, inside the demo directory.
pub const STORE: &str = "store";
/// The snapshots of the balances projection, inside the demo directory.
pub const BALANCES: &str = "balances";

const MARKER_TEXT: &str = "This directory was created by `tidelog demo`, which deletes and rewrites its \
                           `ledger`, `store` and `balances` on the next run. Remove this file to keep them.\n";

/// Where the demo writes.
pub struct DemoDir {
    /// The directory given with `--dir`.
    pub root: PathBuf,
}

impl DemoDir {
    /// The ledger log's directory.
    pub fn ledger(&self) -> PathBuf {
        self.root.join(LEDGER)
    }

    /// The store's directory.
    pub fn store(&self) -> PathBuf {
        self.root.join(STORE)
    }

    /// The directory of the balances projection's snapshots.
    pub fn balances(&self) -> PathBuf {
        self.root.join(BALANCES)
    }
}

fn refuse(dir: &Path, why: String) -> CliError {
    CliError::Usage(format!(
        "{} does not look like a tidelog demo log: {why}; refusing to remove anything in it \
         (pick another --dir, or remove it yourself)",
        dir.display()
    ))
}

/// A demo log that another process still has open is not ours to delete.
fn check_not_in_use(log_dir: &Path) -> CliResult {
    if !log_dir.is_dir() {
        return Ok(());
    }
    // Small segments: should the directory hold no log after all, opening creates one.
    match Log::open(log_dir, Options::default().segment_bytes(1 << 20)) {
        Err(e @ tidelog::Error::Locked { .. }) => {
            Err(CliError::Log { doing: "removing the previous demo".into(), error: e })
        }
        // A damaged previous demo is removed all the same; closing only releases the lock.
        Ok(log) => {
            drop(log.close());
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Make `dir` ready for a fresh demo: create it (or reuse it if empty) and write the marker,
/// or remove what a previous demo left in it. Refuses, deleting nothing, anything else.
pub fn prepare(dir: &Path) -> CliResult<DemoDir> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(CliError::io(dir))?;
        }
        Err(e) => return Err(CliError::Io { path: dir.to_path_buf(), source: e }),
        Ok(m) if !m.is_dir() => {
            return Err(CliError::Usage(format!(
                "{} exists and is not a directory; refusing to touch it (pick another --dir)",
                dir.display()
            )));
        }
        Ok(_) => {
            let mut names = Vec::new();
            for entry in fs::read_dir(dir).map_err(CliError::io(dir))? {
                names.push(entry.map_err(CliError::io(dir))?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            if !names.is_empty() {
                if !names.iter().any(|n| n == MARKER) {
                    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
                    return Err(refuse(
                        dir,
                        format!(
                            "it holds {}{} but no {MARKER} marker (the demo writes one into every directory \
                             it creates)",
                            shown.join(", "),
                            if names.len() > 3 { ", ..." } else { "" }
                        ),
                    ));
                }
                let foreign: Vec<&str> = names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| ![MARKER, LEDGER, STORE, BALANCES].contains(n))
                    .collect();
                if !foreign.is_empty() {
                    return Err(refuse(dir, format!("besides the demo's files it holds {}", foreign.join(", "))));
                }
                let demo = DemoDir { root: dir.to_path_buf() };
                check_not_in_use(&demo.ledger())?;
                for part in [demo.ledger(), demo.store(), demo.balances()] {
                    match fs::remove_dir_all(&part) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(CliError::io(&part)(e)),
                        _ => {}
                    }
                }
            }
        }
    }
    let marker = dir.join(MARKER);
    fs::write(&marker, MARKER_TEXT).map_err(CliError::io(&marker))?;
    Ok(DemoDir { root: dir.to_path_buf() })
}
