//! What a view is, as data: [`ViewDefinition`] (name, version, kind), the [`GroupBy`] and
//! [`ValueOf`] extractors of an aggregate. A definition made only of built-in extractors can
//! be stored in the view's definition file and rebuilt without the application's code (the
//! `tidelog view rebuild` command does); one that holds a user function records only its
//! label, and needs the application to be opened.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::projection::BoxError;
use crate::record::RecordView;

/// Longest view name, in bytes (the same rules as topic names).
pub const VIEW_MAX_NAME_LEN: usize = crate::store::MAX_NAME_LEN;
/// Longest header name, JSON field path or function label in a definition, in bytes.
pub const VIEW_MAX_FIELD_LEN: usize = 1024;

/// A user function giving a record's group (`None`: the record belongs to no group and is
/// passed over).
pub type GroupFn = Arc<dyn Fn(&RecordView<'_>) -> Option<Vec<u8>> + Send + Sync>;
/// A user function giving a record's numeric value (`Ok(None)`: the record has none and
/// only counts; `Err`: the view stops at this record).
pub type ValueFn = Arc<dyn Fn(&RecordView<'_>) -> std::result::Result<Option<f64>, BoxError> + Send + Sync>;

/// How an aggregate view groups records.
#[derive(Clone)]
#[non_exhaustive]
pub enum GroupBy {
    /// One group for every record (its name is empty).
    All,
    /// The record's key; records without a key are passed over.
    Key,
    /// The value of the named header; records without it are passed over.
    Header(String),
    /// A field of the payload read as JSON, by a dotted path (`"customer.id"`): a string's
    /// contents, or the literal text of a number, `true`, `false` or `null`. Records whose
    /// payload is not a JSON object holding the field are passed over.
    JsonField(String),
    /// A user function, with a label that names it in the definition file.
    Function {
        /// Stored in the definition file; the function itself is not.
        label: String,
        /// The function.
        f: GroupFn,
    },
}

impl fmt::Debug for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupBy::All => write!(f, "All"),
            GroupBy::Key => write!(f, "Key"),
            GroupBy::Header(h) => write!(f, "Header({h:?})"),
            GroupBy::JsonField(p) => write!(f, "JsonField({p:?})"),
            GroupBy::Function { label, .. } => write!(f, "Function({label:?})"),
        }
    }
}

impl PartialEq for GroupBy {
    /// Functions compare by label: the definition file cannot tell two functions apart
    /// otherwise, and the version is what says that a function changed.
    fn eq(&self, other: &GroupBy) -> bool {
        match (self, other) {
            (GroupBy::All, GroupBy::All) | (GroupBy::Key, GroupBy::Key) => true,
            (GroupBy::Header(a), GroupBy::Header(b)) | (GroupBy::JsonField(a), GroupBy::JsonField(b)) => a == b,
            (GroupBy::Function { label: a, .. }, GroupBy::Function { label: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl GroupBy {
    /// Group by a user function, named `label` in the definition file.
    pub fn function(
        label: impl Into<String>,
        f: impl Fn(&RecordView<'_>) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> GroupBy {
        GroupBy::Function { label: label.into(), f: Arc::new(f) }
    }

    /// True if the definition file alone can rebuild it.
    pub fn is_builtin(&self) -> bool {
        !matches!(self, GroupBy::Function { .. })
    }

    /// Short description: `all`, `key`, `header:NAME`, `json:PATH`, `fn:LABEL`.
    pub fn describe(&self) -> String {
        match self {
            GroupBy::All => "all".into(),
            GroupBy::Key => "key".into(),
            GroupBy::Header(h) => format!("header:{h}"),
            GroupBy::JsonField(p) => format!("json:{p}"),
            GroupBy::Function { label, .. } => format!("fn:{label}"),
        }
    }
}

/// Which number an aggregate view takes from each record.
#[derive(Clone)]
#[non_exhaustive]
pub enum ValueOf {
    /// None: the view only counts records.
    Nothing,
    /// The named header's value, read as a decimal number in UTF-8 (`"12"`, `"-3.5"`,
    /// `"1e3"`). A record without the header only counts; one whose header is not a
    /// number stops the view at that record.
    Header(String),
    /// A JSON number field of the payload, by a dotted path. A record without the field (or
    /// whose field is `null`) only counts; one whose field is not a number stops the view.
    JsonField(String),
    /// A user function, with a label that names it in the definition file.
    Function {
        /// Stored in the definition file; the function itself is not.
        label: String,
        /// The function.
        f: ValueFn,
    },
}

impl fmt::Debug for ValueOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueOf::Nothing => write!(f, "Nothing"),
            ValueOf::Header(h) => write!(f, "Header({h:?})"),
            ValueOf::JsonField(p) => write!(f, "JsonField({p:?})"),
            ValueOf::Function { label, .. } => write!(f, "Function({label:?})"),
        }
    }
}

impl PartialEq for ValueOf {
    /// Functions compare by label (see [`GroupBy`]'s `eq`).
    fn eq(&self, other: &ValueOf) -> bool {
        match (self, other) {
            (ValueOf::Nothing, ValueOf::Nothing) => true,
            (ValueOf::Header(a), ValueOf::Header(b)) | (ValueOf::JsonField(a), ValueOf::JsonField(b)) => a == b,
            (ValueOf::Function { label: a, .. }, ValueOf::Function { label: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl ValueOf {
    /// Take the value from a user function, named `label` in the definition file.
    pub fn function(
        label: impl Into<String>,
        f: impl Fn(&RecordView<'_>) -> std::result::Result<Option<f64>, BoxError> + Send + Sync + 'static,
    ) -> ValueOf {
        ValueOf::Function { label: label.into(), f: Arc::new(f) }
    }

    /// True if the definition file alone can rebuild it.
    pub fn is_builtin(&self) -> bool {
        !matches!(self, ValueOf::Function { .. })
    }

    /// Short description: `none`, `header:NAME`, `json:PATH`, `fn:LABEL`.
    pub fn describe(&self) -> String {
        match self {
            ValueOf::Nothing => "none".into(),
            ValueOf::Header(h) => format!("header:{h}"),
            ValueOf::JsonField(p) => format!("json:{p}"),
            ValueOf::Function { label, .. } => format!("fn:{label}"),
        }
    }
}

/// What a view computes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ViewKind {
    /// Per group: count, sum, min, max and average of a value (see
    /// [`AggregateView`](crate::AggregateView)).
    Aggregate {
        /// How records are grouped.
        group_by: GroupBy,
        /// The number taken from each record.
        value: ValueOf,
    },
    /// A user-defined fold through the [`Projection`](crate::Projection) trait. Only the
    /// label is stored: the application opens it.
    Fold {
        /// Names the fold in the definition file.
        label: String,
    },
    /// A secondary index: value (extracted like a group) to offsets, kept per segment.
    Index {
        /// What is indexed.
        by: GroupBy,
    },
}

impl ViewKind {
    /// `aggregate`, `fold` or `index`.
    pub fn name(&self) -> &'static str {
        match self {
            ViewKind::Aggregate { .. } => "aggregate",
            ViewKind::Fold { .. } => "fold",
            ViewKind::Index { .. } => "index",
        }
    }

    /// True if the definition file alone can rebuild it (no user function).
    pub fn is_builtin(&self) -> bool {
        match self {
            ViewKind::Aggregate { group_by, value } => group_by.is_builtin() && value.is_builtin(),
            ViewKind::Fold { .. } => false,
            ViewKind::Index { by } => by.is_builtin(),
        }
    }

    /// Short description, e.g. `aggregate by header:product of json:amount`.
    pub fn describe(&self) -> String {
        match self {
            ViewKind::Aggregate { group_by, value } => {
                format!("aggregate by {} of {}", group_by.describe(), value.describe())
            }
            ViewKind::Fold { label } => format!("fold {label}"),
            ViewKind::Index { by } => format!("index of {}", by.describe()),
        }
    }
}

/// A view's definition: its name (unique among the views of one log), the version of its
/// definition (bump it when what the view computes changes: the view is then rebuilt beside
/// the old one), and its kind.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ViewDefinition {
    /// 1 to [`VIEW_MAX_NAME_LEN`] bytes of `[A-Za-z0-9._-]`, not starting with `.`.
    pub name: String,
    /// The definition's version.
    pub version: u32,
    /// What the view computes.
    pub kind: ViewKind,
}

impl ViewDefinition {
    /// An aggregate view.
    pub fn aggregate(name: impl Into<String>, version: u32, group_by: GroupBy, value: ValueOf) -> ViewDefinition {
        ViewDefinition { name: name.into(), version, kind: ViewKind::Aggregate { group_by, value } }
    }

    /// A user fold, named `label` in the definition file.
    pub fn fold(name: impl Into<String>, version: u32, label: impl Into<String>) -> ViewDefinition {
        ViewDefinition { name: name.into(), version, kind: ViewKind::Fold { label: label.into() } }
    }

    /// A secondary index.
    pub fn index(name: impl Into<String>, version: u32, by: GroupBy) -> ViewDefinition {
        ViewDefinition { name: name.into(), version, kind: ViewKind::Index { by } }
    }

    /// Check the name and the lengths of the fields the definition file stores.
    pub fn validate(&self) -> Result<()> {
        // The same rules as topic names (at most VIEW_MAX_NAME_LEN bytes, checked below).
        crate::store::validate_name("view", &self.name)?;
        let fields: Vec<&str> = match &self.kind {
            ViewKind::Aggregate { group_by, value } => vec![group_field(group_by), value_field(value)],
            ViewKind::Fold { label } => vec![label],
            ViewKind::Index { by } => vec![group_field(by)],
        };
        if let Some(f) = fields.iter().find(|f| f.len() > VIEW_MAX_FIELD_LEN) {
            return Err(Error::InvalidOptions(format!(
                "view {:?}: a field of {} bytes is longer than {VIEW_MAX_FIELD_LEN} bytes",
                self.name,
                f.len()
            )));
        }
        Ok(())
    }

    /// A fingerprint of everything the definition file stores (snapshots of another
    /// definition are never used).
    pub fn fingerprint(&self) -> u64 {
        crate::projection::fingerprint_of(
            format!("tidelog view {} v{} {}", self.name, self.version, self.kind.describe()).as_bytes(),
        )
    }
}

/// The text a group extractor stores (empty for those without one).
pub(crate) fn group_field(g: &GroupBy) -> &str {
    match g {
        GroupBy::All | GroupBy::Key => "",
        GroupBy::Header(s) | GroupBy::JsonField(s) | GroupBy::Function { label: s, .. } => s,
    }
}

/// The text a value extractor stores (empty for those without one).
pub(crate) fn value_field(v: &ValueOf) -> &str {
    match v {
        ValueOf::Nothing => "",
        ValueOf::Header(s) | ValueOf::JsonField(s) | ValueOf::Function { label: s, .. } => s,
    }
}
