//! What distinguishes one secondary index from another beyond its [`ViewDefinition`]
//! (`ViewKind::Index { by }`: name, version, what is indexed): whether it keeps its values
//! ordered. Both go into the fingerprint stored in every index file.

use crate::error::{Error, Result};
use crate::record::RecordView;
use crate::view::definition::{GroupBy, ViewDefinition, ViewKind};
use crate::view::extract::group_of;

/// How a secondary index keeps its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexOptions {
    /// True if values are kept in byte order, so that the index answers ranges of values
    /// ([`IndexView::range`](crate::IndexView::range)); otherwise by hash (lookups of one
    /// value, slightly faster).
    pub ordered: bool,
}

impl IndexOptions {
    /// Set [`IndexOptions::ordered`].
    pub fn ordered(mut self, ordered: bool) -> IndexOptions {
        self.ordered = ordered;
        self
    }
}

/// An index definition, checked: what it indexes, and its fingerprint.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub by: GroupBy,
    pub fingerprint: u64,
}

/// Check that `def` is a valid index definition and compute the fingerprint its files carry
/// (the definition's own, with the order: a file of another definition or version, or built
/// with the other order, is never used).
pub(crate) fn check(def: &ViewDefinition, opts: IndexOptions) -> Result<Checked> {
    def.validate()?;
    let ViewKind::Index { by } = &def.kind else {
        return Err(Error::InvalidOptions(format!(
            "view {:?} is {}, not a secondary index",
            def.name,
            def.kind.describe()
        )));
    };
    let order = if opts.ordered { "ordered" } else { "hashed" };
    let fingerprint =
        crate::projection::fingerprint_of(format!("tidelog index {:016x} {order}", def.fingerprint()).as_bytes());
    Ok(Checked { by: by.clone(), fingerprint })
}

impl Checked {
    /// The value `rec` is indexed under, if any.
    pub fn value_of<'r>(&self, rec: &RecordView<'r>) -> Option<std::borrow::Cow<'r, [u8]>> {
        group_of(&self.by, rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_every_part_of_the_definition() {
        let base = ViewDefinition::index("by-user", 1, GroupBy::Header("user".into()));
        let fp = |d: &ViewDefinition, o: IndexOptions| check(d, o).unwrap().fingerprint;
        let others = [
            ViewDefinition::index("by-user2", 1, GroupBy::Header("user".into())),
            ViewDefinition::index("by-user", 2, GroupBy::Header("user".into())),
            ViewDefinition::index("by-user", 1, GroupBy::Header("usr".into())),
            ViewDefinition::index("by-user", 1, GroupBy::Key),
            ViewDefinition::index("by-user", 1, GroupBy::function("user", |_| None)),
        ];
        let hashed = fp(&base, IndexOptions::default());
        for o in &others {
            assert_ne!(fp(o, IndexOptions::default()), hashed, "{o:?}");
        }
        assert_ne!(fp(&base, IndexOptions::default().ordered(true)), hashed);
        assert_eq!(fp(&base.clone(), IndexOptions::default()), hashed);
    }

    #[test]
    fn names_that_cannot_name_files_and_other_kinds_of_view_are_refused() {
        for bad in ["", "a/b", "..", "a b"] {
            assert!(check(&ViewDefinition::index(bad, 1, GroupBy::Key), IndexOptions::default()).is_err(), "{bad:?}");
        }
        let fold = ViewDefinition::fold("by-key", 1, "f");
        assert!(matches!(check(&fold, IndexOptions::default()), Err(Error::InvalidOptions(_))));
        check(&ViewDefinition::index("by.key-1_x", 1, GroupBy::Key), IndexOptions::default()).unwrap();
    }
}
