//! Opening what the command line names: a log, a store, a topic, a group. Nothing here
//! creates anything. When a directory holds the other kind of thing (a store where a log is
//! expected, or the reverse), the error says so and which command reads it; a missing topic
//! or group is one error, the same from every command.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Value};

use tidelog::{Log, Options, RecoveryMode, Store, StoreOptions, Topic};

use crate::error::{CliError, CliResult, EXIT_DAMAGE};

/// At most this many names are listed in an error.
const NAMES_SHOWN: usize = 5;

fn names(list: &[String]) -> String {
    let mut s = list.iter().take(NAMES_SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > NAMES_SHOWN {
        s.push_str(", ...");
    }
    s
}

/// The topics of the store in `dir`, if `dir` is a store with at least one topic.
fn store_topics(dir: &Path) -> Option<(Store, Vec<String>)> {
    let store = Store::open(dir, StoreOptions::default().create_if_missing(false)).ok()?;
    let topics = store.topic_names().ok()?;
    (!topics.is_empty()).then_some((store, topics))
}

/// True if `dir` is a store: it has a `topics/` directory and is not itself a log.
pub fn is_store(dir: &Path) -> bool {
    dir.join("topics").is_dir() && Log::open_read_only(dir, Options::default()).is_err()
}

/// One log of a store: a topic's, or one of a consumer group's (its state log, its dead
/// letters).
#[derive(Debug, Clone)]
pub struct StoreLog {
    /// The topic.
    pub topic: String,
    /// The group, for a group's log.
    pub group: Option<String>,
    /// The log's directory.
    pub dir: std::path::PathBuf,
    /// The directory relative to the store (`topics/orders`, `groups/orders/billing/state`):
    /// how commands name the log.
    pub name: String,
}

/// Every log of `store`, topic by topic: the topic's log, then each group's logs (the
/// directories under the group's directory that hold segment files).
pub fn store_logs(store: &Store) -> CliResult<Vec<StoreLog>> {
    let mut logs = Vec::new();
    let listing = |doing: String| CliError::log(doing);
    for topic in store.topic_names().map_err(listing("listing the topics".into()))? {
        let t = open_topic(store, &topic)?;
        logs.push(StoreLog {
            topic: topic.clone(),
            group: None,
            dir: t.dir().to_path_buf(),
            name: relative(store, t.dir()),
        });
        for group in store.group_names(&topic).map_err(listing(format!("listing the groups of {topic}")))? {
            let gdir = store.dir().join("groups").join(&topic).join(&group);
            let mut subs: Vec<_> = std::fs::read_dir(&gdir)
                .map_err(CliError::io(&gdir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() && holds_segments(p))
                .collect();
            subs.sort();
            for dir in subs {
                let name = relative(store, &dir);
                logs.push(StoreLog { topic: topic.clone(), group: Some(group.clone()), dir, name });
            }
        }
    }
    Ok(logs)
}

fn relative(store: &Store, dir: &Path) -> String {
    dir.strip_prefix(store.dir()).unwrap_or(dir).display().to_string()
}

/// True if `dir` holds a segment data file (`{20 digits}.log`).
fn holds_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_suffix(".log").is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
            })
        })
    })
}

/// Open the log in `dir` read-only. A store is named as such, with the commands that read it.
pub fn open_log(dir: &Path) -> CliResult<Log> {
    let doing = format!("opening {}", dir.display());
    match Log::open_read_only(dir, Options::default()) {
        Ok(log) => Ok(log),
        Err(e @ tidelog::Error::NotFound { .. }) => {
            let Some((store, topics)) = store_topics(dir) else {
                return Err(CliError::Log { doing, error: e });
            };
            let topic_log = store.open_topic(&topics[0]).map(|t| t.dir().display().to_string()).ok();
            let d = dir.display();
            Err(CliError::NotFound(format!(
                "{d} is a store (topics: {}), not a log: `tidelog info {d}` and `tidelog verify {d}` read \
                 the whole store, `tidelog consumers {d}` shows its groups, `tidelog replay {d} TOPIC` a \
                 topic's records{}",
                names(&topics),
                topic_log.map_or_else(String::new, |t| format!("; each topic is a log (`tidelog info {t}`)")),
            )))
        }
        Err(e) => Err(CliError::Log { doing, error: e }),
    }
}

/// A log opened for inspection (`info`, `verify`, `dump`).
pub struct Inspected {
    /// The log: whole, or (when `damaged_open` is set) read-only up to the damage.
    pub log: Log,
    /// Why the default open failed (a located `Corruption`), when the log was then opened
    /// with [`RecoveryMode::ReadOnlyUpToDamage`] to show what is readable.
    pub damaged_open: Option<CliError>,
}

/// Open the log in `dir` read-only for inspection. When damage stops the default open, the
/// log is opened again with [`RecoveryMode::ReadOnlyUpToDamage`] (read-only: nothing is
/// repaired), so that what precedes the damage can be shown; `damaged_open` then holds the
/// located error. Any other failure, or a second failure, is the default open's error.
pub fn open_log_for_inspection(dir: &Path) -> CliResult<Inspected> {
    match open_log(dir) {
        Ok(log) => Ok(Inspected { log, damaged_open: None }),
        Err(e @ CliError::Log { error: tidelog::Error::Corruption { .. }, .. }) => {
            let opts = Options::default().recovery(RecoveryMode::ReadOnlyUpToDamage);
            match Log::open_read_only(dir, opts) {
                Ok(log) => Ok(Inspected { log, damaged_open: Some(e) }),
                Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

impl Inspected {
    /// Human output: say on stderr why the default open failed (the located error) and that
    /// what follows was opened read-only up to the damage.
    pub fn warn(&self) {
        if let Some(e) = &self.damaged_open {
            // Nothing sensible is left to do if stderr fails.
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "tidelog: error: {e}");
            let _ = writeln!(
                err,
                "tidelog: opened read-only up to the damage instead (nothing was repaired): showing what is readable"
            );
        }
    }

    /// JSON fields for the command's report: `opened` (`default` or `read_only_up_to_damage`)
    /// and, after a damaged open, the located error's fields (`error`, `file` and `position`
    /// or `log` and `offset`, `corruption`, ...), as in any error document.
    pub fn json_fields(&self) -> Value {
        match &self.damaged_open {
            None => json!({ "opened": "default" }),
            Some(e) => {
                let mut v = e.to_json();
                v["opened"] = json!("read_only_up_to_damage");
                v
            }
        }
    }

    /// The command's result once its report is printed: exit 1 after a damaged open.
    pub fn result(&self) -> CliResult {
        match self.damaged_open {
            Some(_) => Err(CliError::Reported(EXIT_DAMAGE)),
            None => Ok(()),
        }
    }
}

/// Open the store in `dir`. A log is named as such, with the commands that read it.
pub fn open_store(dir: &Path) -> CliResult<Store> {
    let store = match Store::open(dir, StoreOptions::default().create_if_missing(false)) {
        Err(tidelog::Error::NotFound { .. }) => {
            return Err(CliError::NotFound(format!("no store at {} (the directory does not exist)", dir.display())));
        }
        other => other.map_err(CliError::log(format!("opening the store {}", dir.display())))?,
    };
    let no_topics = store.topic_names().map_or(true, |t| t.is_empty());
    if no_topics && Log::open_read_only(dir, Options::default()).is_ok() {
        let d = dir.display();
        return Err(CliError::NotFound(format!(
            "{d} is a log, not a store: it has no topics or consumer groups; \
             `tidelog info {d}`, `tidelog dump {d}` and `tidelog verify {d}` read it"
        )));
    }
    Ok(store)
}

/// The existing topic `name` of `store`.
pub fn open_topic(store: &Store, name: &str) -> CliResult<Topic> {
    tidelog::validate_name("topic", name).map_err(CliError::log(format!("opening topic {name}")))?;
    match store.open_topic(name) {
        Err(tidelog::Error::NotFound { .. }) => {
            let topics = store.topic_names().unwrap_or_default();
            Err(CliError::NotFound(format!(
                "the store {} has no topic {name}{}",
                store.dir().display(),
                if topics.is_empty() { String::new() } else { format!(" (topics: {})", names(&topics)) }
            )))
        }
        other => other.map_err(CliError::log(format!("opening topic {name}"))),
    }
}

/// Check that `topic` of `store` has the consumer group `group`; the one error every command
/// gives for a group that does not exist.
pub fn existing_group(store: &Store, topic: &str, group: &str) -> CliResult<Topic> {
    let t = open_topic(store, topic)?;
    tidelog::validate_name("group", group).map_err(CliError::log(format!("opening group {topic}/{group}")))?;
    let groups = store.group_names(topic).map_err(CliError::log(format!("listing the groups of {topic}")))?;
    if !groups.iter().any(|g| g == group) {
        return Err(CliError::NotFound(format!(
            "topic {topic} has no consumer group {group}{}",
            if groups.is_empty() { String::new() } else { format!(" (groups: {})", names(&groups)) }
        )));
    }
    Ok(t)
}
