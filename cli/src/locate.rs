//! Opening what the command line names: a log, a store, a topic, a group. Nothing here
//! creates anything. When a directory holds the other kind of thing (a store where a log is
//! expected, or the reverse), the error says so and which command reads it; a missing topic
//! or group is one error, the same from every command.

use std::path::Path;

use tidelog::{Log, Options, Store, StoreOptions, Topic};

use crate::error::{CliError, CliResult};

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
                "{d} is a store (topics: {}), not a log: `tidelog consumers {d}` shows its groups, \
                 `tidelog tail {d} TOPIC` a topic's events{}",
                names(&topics),
                topic_log.map_or_else(String::new, |t| format!("; each topic is a log (`tidelog info {t}`)")),
            )))
        }
        Err(e) => Err(CliError::Log { doing, error: e }),
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
