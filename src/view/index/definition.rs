//! What a secondary index is, as data: its name, the version of its definition, what it
//! indexes ([`IndexBy`]) and whether it keeps its values ordered.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::record::RecordView;

/// A user function giving the value a record is indexed under (`None`: the record is not
/// indexed).
pub type IndexFn = Arc<dyn Fn(&RecordView<'_>) -> Option<Vec<u8>> + Send + Sync>;

/// What an index maps to the records that carry it.
#[derive(Clone)]
#[non_exhaustive]
pub enum IndexBy {
    /// The record's key; records without a key are not indexed.
    Key,
    /// The value of the named header (its first occurrence); records without it are not
    /// indexed.
    Header(String),
    /// A user function of the record (for instance a field of a JSON payload), with a label
    /// that names it in the index files' fingerprint.
    Function {
        /// Names the function; part of the definition's fingerprint.
        label: String,
        /// The function.
        f: IndexFn,
    },
}

impl fmt::Debug for IndexBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl IndexBy {
    /// Index by a user function, named `label`.
    pub fn function(
        label: impl Into<String>,
        f: impl Fn(&RecordView<'_>) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> IndexBy {
        IndexBy::Function { label: label.into(), f: Arc::new(f) }
    }

    /// Short description: `key`, `header:NAME`, `fn:LABEL`.
    pub fn describe(&self) -> String {
        match self {
            IndexBy::Key => "key".into(),
            IndexBy::Header(h) => format!("header:{h}"),
            IndexBy::Function { label, .. } => format!("fn:{label}"),
        }
    }

    /// The value `rec` is indexed under, if any.
    pub(crate) fn extract<'r>(&self, rec: &RecordView<'r>) -> Option<Cow<'r, [u8]>> {
        match self {
            IndexBy::Key => rec.key().map(Cow::Borrowed),
            IndexBy::Header(name) => rec.header(name).map(Cow::Borrowed),
            IndexBy::Function { f, .. } => f(rec).map(Cow::Owned),
        }
    }
}

/// The definition of a secondary index over one log.
///
/// Its files are named after `name`; its fingerprint (name, version, what it indexes and
/// whether it is ordered) is stored in every file, and a file built by another definition is
/// never used: it is rebuilt. Bump `version` whenever a user function changes what it
/// returns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IndexDefinition {
    /// 1 to 200 bytes of `[A-Za-z0-9._-]`, unique among the indexes of one log.
    pub name: String,
    /// The definition's version.
    pub version: u32,
    /// What is indexed.
    pub by: IndexBy,
    /// True if the values are kept in byte order, so that the index answers ranges of values
    /// ([`IndexView::range`](crate::IndexView::range)); otherwise they are kept by hash.
    pub ordered: bool,
}

impl IndexDefinition {
    /// An index by `by`, kept by hash (lookups of one value).
    pub fn new(name: impl Into<String>, version: u32, by: IndexBy) -> IndexDefinition {
        IndexDefinition { name: name.into(), version, by, ordered: false }
    }

    /// The same index with its values kept in byte order (range queries).
    pub fn ordered(mut self) -> IndexDefinition {
        self.ordered = true;
        self
    }

    /// Check the name (it names files).
    pub fn validate(&self) -> Result<()> {
        crate::store::validate_name("index", &self.name)?;
        if self.name.starts_with('.') {
            return Err(crate::Error::InvalidName {
                kind: "index",
                name: self.name.clone(),
                reason: "must not start with `.`",
            });
        }
        Ok(())
    }

    /// A fingerprint of the definition: files of another fingerprint are rebuilt.
    pub fn fingerprint(&self) -> u64 {
        let order = if self.ordered { "ordered" } else { "hashed" };
        crate::projection::fingerprint_of(
            format!("tidelog index {} v{} {} {order}", self.name, self.version, self.by.describe()).as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_every_part_of_the_definition() {
        let base = IndexDefinition::new("by-user", 1, IndexBy::Header("user".into()));
        let others = [
            IndexDefinition::new("by-user2", 1, IndexBy::Header("user".into())),
            IndexDefinition::new("by-user", 2, IndexBy::Header("user".into())),
            IndexDefinition::new("by-user", 1, IndexBy::Header("usr".into())),
            IndexDefinition::new("by-user", 1, IndexBy::Key),
            IndexDefinition::new("by-user", 1, IndexBy::function("user", |_| None)),
            base.clone().ordered(),
        ];
        for o in &others {
            assert_ne!(o.fingerprint(), base.fingerprint(), "{o:?}");
        }
        assert_eq!(base.fingerprint(), base.clone().fingerprint());
    }

    #[test]
    fn names_that_cannot_name_files_are_refused() {
        for bad in ["", ".hidden", "a/b", "..", "a b"] {
            assert!(IndexDefinition::new(bad, 1, IndexBy::Key).validate().is_err(), "{bad:?}");
        }
        IndexDefinition::new("by.key-1_x", 1, IndexBy::Key).validate().unwrap();
    }
}
