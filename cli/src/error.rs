//! Why a command failed, and the exit code that says so.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Exit code: everything went well.
pub const EXIT_OK: u8 = 0;
/// Exit code: damage was found (verify failed, or a command hit corrupted bytes).
pub const EXIT_DAMAGE: u8 = 1;
/// Exit code: bad usage or an I/O error (missing directory, not a log, ...).
pub const EXIT_USAGE: u8 = 2;

/// Why a command failed. `main` prints it (as text on stderr, or as JSON on stdout with
/// `--json`) and exits with [`CliError::exit_code`].
#[derive(Debug)]
pub enum CliError {
    /// A tidelog operation failed; `doing` says what the command was doing.
    Log { doing: String, error: tidelog::Error },
    /// An argument that clap accepted but that makes no sense (e.g. an unparsable time).
    Usage(String),
    /// The directory, topic or group named on the command line does not exist, or is not
    /// what the command works on (a log where a store is expected, or the reverse).
    NotFound(String),
    /// An I/O error outside the log itself (the demo directory, the bench baseline file).
    Io { path: PathBuf, source: io::Error },
    /// Writing the command's output failed (e.g. stdout closed).
    Output(io::Error),
    /// The demo or the bench read back something other than what it wrote.
    Mismatch(String),
    /// The command already printed its report (e.g. verify found damage); exit with this code.
    Reported(u8),
}

impl CliError {
    /// Wrap a tidelog error with what the command was doing.
    pub fn log(doing: impl Into<String>) -> impl FnOnce(tidelog::Error) -> CliError {
        let doing = doing.into();
        move |error| CliError::Log { doing, error }
    }

    /// Wrap an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }

    /// 1 for damage, 2 for usage and I/O problems.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Log { error, .. } if error.is_corruption() => EXIT_DAMAGE,
            CliError::Mismatch(_) => EXIT_DAMAGE,
            CliError::Reported(code) => *code,
            _ => EXIT_USAGE,
        }
    }

    /// True if stdout went away (a reader like `head` exited): not worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// A machine-readable form of the error.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "error": self.kind_name(),
            "message": self.to_string(),
            "exit_code": self.exit_code(),
        });
        if let CliError::Log { error: tidelog::Error::Corruption { location, kind }, .. } = self {
            match location {
                tidelog::Location::File { path, position } => {
                    v["file"] = serde_json::json!(path.display().to_string());
                    v["position"] = serde_json::json!(position);
                }
                tidelog::Location::Log { dir, offset } => {
                    v["log"] = serde_json::json!(dir.display().to_string());
                    v["offset"] = serde_json::json!(offset);
                }
                _ => {}
            }
            v["corruption"] = serde_json::json!(kind.name());
            v["detail"] = serde_json::json!(kind.to_string());
        }
        v
    }

    fn kind_name(&self) -> &'static str {
        match self {
            CliError::Log { error, .. } => match error {
                tidelog::Error::Corruption { .. } => "corruption",
                tidelog::Error::NotFound { .. } => "not_found",
                tidelog::Error::NotADirectory { .. } => "not_a_directory",
                tidelog::Error::Locked { .. } => "locked",
                tidelog::Error::Io { .. } => "io",
                tidelog::Error::OffsetOutOfRange { .. } => "offset_out_of_range",
                tidelog::Error::InvalidOptions(_) => "invalid_options",
                tidelog::Error::TopicInUse { .. } => "in_use",
                _ => "log",
            },
            CliError::Usage(_) => "usage",
            CliError::NotFound(_) => "not_found",
            CliError::Io { .. } => "io",
            CliError::Output(_) => "output",
            CliError::Mismatch(_) => "mismatch",
            CliError::Reported(_) => "reported",
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Log { doing, error } => {
                write!(f, "{doing}: ")?;
                match error {
                    // Spelled out rather than `Display` so that paths print without quotes
                    // and the hint says what the directory should hold.
                    tidelog::Error::Corruption { location: tidelog::Location::File { path, position }, kind } => {
                        write!(f, "corruption in {} at byte {position}: {kind}", path.display())
                    }
                    tidelog::Error::Corruption { location: tidelog::Location::Log { dir, offset }, kind } => {
                        write!(f, "corruption in the log {} at offset {offset}: {kind}", dir.display())
                    }
                    tidelog::Error::NotFound { path } => write!(
                        f,
                        "no log at {} (the directory does not exist or holds no segment files)",
                        path.display()
                    ),
                    tidelog::Error::NotADirectory { path } => {
                        write!(f, "{} is not a directory (expected a log directory)", path.display())
                    }
                    tidelog::Error::Locked { path } => {
                        write!(f, "the log at {} is in use by another writer", path.display())
                    }
                    tidelog::Error::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
                    tidelog::Error::TopicInUse { topic, holder, path } => write!(
                        f,
                        "topic {topic} is in use: {holder} holds it (the lock of {}); stop it and try again",
                        path.display()
                    ),
                    other => write!(f, "{other}"),
                }
            }
            CliError::Usage(msg) | CliError::NotFound(msg) => write!(f, "{msg}"),
            CliError::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
            CliError::Output(e) => write!(f, "cannot write output: {e}"),
            CliError::Mismatch(msg) => write!(f, "read-back check failed: {msg}"),
            CliError::Reported(code) => write!(f, "failed (exit code {code})"),
        }
    }
}

impl From<io::Error> for CliError {
    /// Bare I/O errors in the commands come from writing their output.
    fn from(e: io::Error) -> CliError {
        CliError::Output(e)
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
