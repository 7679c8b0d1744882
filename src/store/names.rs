//! Topic and group names, and the directories named after them.

use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Longest topic or group name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Check a topic or group name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`, `_` or
/// `-`, and not `.` or `..`. `kind` names what is being named in the error
/// ([`Error::InvalidName`]).
///
/// ```
/// use tidelog::validate_name;
/// assert!(validate_name("topic", "orders.eu-west_1").is_ok());
/// for bad in ["", ".", "..", "a/b", "a/../b", "a\0b", "café", &"x".repeat(201)] {
///     assert!(validate_name("topic", bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let err = |reason| Err(Error::InvalidName { kind, name: name.to_owned(), reason });
    if name.is_empty() {
        return err("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return err("longer than 200 bytes");
    }
    if name == "." || name == ".." {
        return err("`.` and `..` are reserved");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return err("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

/// The valid names of the subdirectories of `dir`, sorted; none if `dir` does not exist.
pub(crate) fn list_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.at(dir)?;
        if !entry.file_type().at(dir)?.is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            if validate_name("topic", name).is_ok() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Create `dir` (and its parents) if missing, and make the new entry durable.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).at(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::io::fs::fsync_dir(parent)?;
        }
    }
    Ok(())
}
