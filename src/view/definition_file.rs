//! The view definition file, `view.def`: which definition a view's directory holds and which
//! generation of its state answers queries. Layout (little-endian; `docs/format.md`):
//!
//! | at | bytes | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `TLVIEWD\0` |
//! | 8 | 2 | format version ([`VIEW_DEFINITION_VERSION`]) |
//! | 10 | 1 | kind: 1 aggregate, 2 fold, 3 index |
//! | 11 | 1 | group tag: 0 all, 1 key, 2 header, 3 JSON field, 4 function |
//! | 12 | 1 | value tag: 0 nothing, 2 header, 3 JSON field, 4 function |
//! | 13 | 1 | flags: bit 0 an ordered index; other bits 0 |
//! | 14 | 2 | name length `n` |
//! | 16 | 4 | definition version |
//! | 20 | 4 | group text length `g` |
//! | 24 | 4 | value text length `v` |
//! | 28 | 4 | reserved, 0 |
//! | 32 | 8 | generation: the state directory that answers queries |
//! | 40 | 8 | definition fingerprint |
//! | 48 | n + g + v | name, group text, value text (UTF-8) |
//! | 48+n+g+v | 4 | CRC-32 of every byte before it |
//!
//! A fold stores its label as the group text with tag 4. The file is replaced atomically
//! (tmp, fsync, rename, directory fsync): rewriting it is how a rebuilt generation is swapped
//! in.

use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::{le_u16, le_u32, le_u64, put_u16, put_u32, put_u64};
use crate::view::definition::{group_field, value_field, GroupBy, ValueOf, ViewDefinition, ViewKind};
use crate::view::definition::{VIEW_MAX_FIELD_LEN, VIEW_MAX_NAME_LEN};

/// Version of the view definition file's layout.
pub const VIEW_DEFINITION_VERSION: u16 = 1;

const MAGIC: &[u8; 8] = b"TLVIEWD\0";
const VERSION_AT: usize = 8;
const KIND_AT: usize = VERSION_AT + 2;
const GROUP_TAG_AT: usize = KIND_AT + 1;
const VALUE_TAG_AT: usize = GROUP_TAG_AT + 1;
const FLAGS_AT: usize = VALUE_TAG_AT + 1;
const NAME_LEN_AT: usize = FLAGS_AT + 1;
const DEF_VERSION_AT: usize = NAME_LEN_AT + 2;
const GROUP_LEN_AT: usize = DEF_VERSION_AT + 4;
const VALUE_LEN_AT: usize = GROUP_LEN_AT + 4;
const GENERATION_AT: usize = VALUE_LEN_AT + 8;
const FINGERPRINT_AT: usize = GENERATION_AT + 8;
const TEXT_AT: usize = FINGERPRINT_AT + 8;
const _: () = assert!(TEXT_AT == 48);
const CRC_LEN: usize = 4;

const KIND_AGGREGATE: u8 = 1;
const KIND_FOLD: u8 = 2;
const KIND_INDEX: u8 = 3;
const TAG_ALL_OR_NOTHING: u8 = 0;
const TAG_KEY: u8 = 1;
const TAG_HEADER: u8 = 2;
const TAG_JSON: u8 = 3;
const TAG_FUNCTION: u8 = 4;
/// Flag: an index that keeps its values in byte order (`IndexOptions::ordered`).
pub(crate) const FLAG_ORDERED: u8 = 1;

/// A view's definition file as read from disk: what the view computes (without any user
/// function: only its label), and the generation of its state that answers queries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredView {
    /// The view's name.
    pub name: String,
    /// The definition's version.
    pub version: u32,
    /// The state directory that answers queries (`gen-{generation:020}`).
    pub generation: u64,
    /// The definition's fingerprint ([`ViewDefinition::fingerprint`]).
    pub fingerprint: u64,
    /// `aggregate`, `fold` or `index`.
    pub kind: &'static str,
    /// How it groups (`key`, `header:NAME`, `json:PATH`, `fn:LABEL`, `all`).
    pub group_by: String,
    /// Which value it takes (`none`, `header:NAME`, `json:PATH`, `fn:LABEL`).
    pub value: String,
    /// The view's directory (holding `view.def`).
    pub dir: PathBuf,
    /// For an index: whether it keeps its values in byte order.
    pub ordered: bool,
    kind_tag: u8,
    group: (u8, String),
    value_parts: (u8, String),
}

impl StoredView {
    /// The definition, if it holds no user function (the definition file alone can then
    /// rebuild it); otherwise `Error::ViewNeedsApplication`.
    pub fn builtin_definition(&self) -> Result<ViewDefinition> {
        let needs = || Error::ViewNeedsApplication { view: self.name.clone(), kind: self.describe() };
        let group = match &self.group {
            (TAG_ALL_OR_NOTHING, _) => GroupBy::All,
            (TAG_KEY, _) => GroupBy::Key,
            (TAG_HEADER, s) => GroupBy::Header(s.clone()),
            (TAG_JSON, s) => GroupBy::JsonField(s.clone()),
            _ => return Err(needs()),
        };
        let value = match &self.value_parts {
            (TAG_ALL_OR_NOTHING, _) => ValueOf::Nothing,
            (TAG_HEADER, s) => ValueOf::Header(s.clone()),
            (TAG_JSON, s) => ValueOf::JsonField(s.clone()),
            _ => return Err(needs()),
        };
        let kind = match self.kind_tag {
            KIND_AGGREGATE => ViewKind::Aggregate { group_by: group, value },
            KIND_INDEX => ViewKind::Index { by: group },
            _ => return Err(needs()),
        };
        Ok(ViewDefinition { name: self.name.clone(), version: self.version, kind })
    }

    /// The directory of the generation that answers queries.
    pub fn state_dir(&self) -> PathBuf {
        crate::view::layout::ViewDir::from_path(&self.dir).generation_dir(self.generation)
    }

    /// The position of the newest valid snapshot of the generation that answers queries
    /// (0 if none): what the view covers durably, and where it restarts after a crash. A
    /// view kept current by a running process may be ahead of it in that process's memory.
    pub fn checkpoint_position(&self) -> Result<u64> {
        let dir = crate::projection::SnapshotDir::open_read_only(self.state_dir());
        for (position, path) in dir.files()?.into_iter().rev() {
            if crate::projection::SnapshotDir::read_info(&path).is_ok() {
                return Ok(position);
            }
        }
        Ok(0)
    }

    /// True if the definition file alone can rebuild this view.
    pub fn is_builtin(&self) -> bool {
        self.builtin_definition().is_ok()
    }

    /// E.g. `aggregate by header:product of json:amount`.
    pub fn describe(&self) -> String {
        match self.kind {
            "aggregate" => format!("aggregate by {} of {}", self.group_by, self.value),
            "index" => format!("index of {}", self.group_by),
            _ => format!("fold {}", self.group.1),
        }
    }
}

fn group_tag(g: &GroupBy) -> u8 {
    match g {
        GroupBy::All => TAG_ALL_OR_NOTHING,
        GroupBy::Key => TAG_KEY,
        GroupBy::Header(_) => TAG_HEADER,
        GroupBy::JsonField(_) => TAG_JSON,
        GroupBy::Function { .. } => TAG_FUNCTION,
    }
}

fn value_tag(v: &ValueOf) -> u8 {
    match v {
        ValueOf::Nothing => TAG_ALL_OR_NOTHING,
        ValueOf::Header(_) => TAG_HEADER,
        ValueOf::JsonField(_) => TAG_JSON,
        ValueOf::Function { .. } => TAG_FUNCTION,
    }
}

/// The bytes of the definition file for `def` at `generation`. The definition must have
/// passed [`ViewDefinition::validate`].
pub(crate) fn encode(def: &ViewDefinition, generation: u64, flags: u8) -> Vec<u8> {
    let (kind, gtag, group, vtag, value) = match &def.kind {
        ViewKind::Aggregate { group_by, value } => {
            (KIND_AGGREGATE, group_tag(group_by), group_field(group_by), value_tag(value), value_field(value))
        }
        ViewKind::Fold { label } => (KIND_FOLD, TAG_FUNCTION, label.as_str(), TAG_ALL_OR_NOTHING, ""),
        ViewKind::Index { by } => (KIND_INDEX, group_tag(by), group_field(by), TAG_ALL_OR_NOTHING, ""),
    };
    let mut b = vec![0u8; TEXT_AT];
    b[..8].copy_from_slice(MAGIC);
    put_u16(&mut b, VERSION_AT, VIEW_DEFINITION_VERSION);
    b[KIND_AT] = kind;
    b[GROUP_TAG_AT] = gtag;
    b[VALUE_TAG_AT] = vtag;
    b[FLAGS_AT] = flags;
    put_u16(&mut b, NAME_LEN_AT, def.name.len() as u16);
    put_u32(&mut b, DEF_VERSION_AT, def.version);
    put_u32(&mut b, GROUP_LEN_AT, group.len() as u32);
    put_u32(&mut b, VALUE_LEN_AT, value.len() as u32);
    put_u64(&mut b, GENERATION_AT, generation);
    put_u64(&mut b, FINGERPRINT_AT, def.fingerprint());
    b.extend_from_slice(def.name.as_bytes());
    b.extend_from_slice(group.as_bytes());
    b.extend_from_slice(value.as_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decode a definition file read from `path`; every failure is located in the file.
pub(crate) fn decode(path: &Path, b: &[u8]) -> Result<StoredView> {
    let bad = |at: usize, kind| Error::corrupt(path, at as u64, kind);
    if b.len() < TEXT_AT + CRC_LEN {
        return Err(bad(0, CorruptionKind::BadLength { len: b.len() as u64, available: b.len() as u64 }));
    }
    if &b[..8] != MAGIC || le_u16(b, VERSION_AT) != VIEW_DEFINITION_VERSION {
        return Err(bad(0, CorruptionKind::BadMagic));
    }
    let (n, g, v) =
        (le_u16(b, NAME_LEN_AT) as usize, le_u32(b, GROUP_LEN_AT) as usize, le_u32(b, VALUE_LEN_AT) as usize);
    // Lengths are checked against their limits before any arithmetic uses them.
    if n == 0 || n > VIEW_MAX_NAME_LEN || g > VIEW_MAX_FIELD_LEN || v > VIEW_MAX_FIELD_LEN {
        return Err(bad(NAME_LEN_AT, CorruptionKind::BadField("text length")));
    }
    let end = TEXT_AT + n + g + v;
    if b.len() != end + CRC_LEN {
        return Err(bad(
            NAME_LEN_AT,
            CorruptionKind::BadLength { len: (end + CRC_LEN) as u64, available: b.len() as u64 },
        ));
    }
    let (got, expected) = (crc32fast::hash(&b[..end]), le_u32(b, end));
    if got != expected {
        return Err(bad(end, CorruptionKind::ChecksumMismatch { got, expected }));
    }
    let text = |at: usize, len: usize| {
        std::str::from_utf8(&b[at..at + len]).map(str::to_owned).map_err(|_| bad(at, CorruptionKind::BadField("text")))
    };
    let name = text(TEXT_AT, n)?;
    let group = (b[GROUP_TAG_AT], text(TEXT_AT + n, g)?);
    let value = (b[VALUE_TAG_AT], text(TEXT_AT + n + g, v)?);
    let kind = match b[KIND_AT] {
        KIND_AGGREGATE => "aggregate",
        KIND_FOLD => "fold",
        KIND_INDEX => "index",
        _ => return Err(bad(KIND_AT, CorruptionKind::BadField("kind"))),
    };
    if group.0 > TAG_FUNCTION {
        return Err(bad(GROUP_TAG_AT, CorruptionKind::BadField("group tag")));
    }
    if value.0 > TAG_FUNCTION || value.0 == TAG_KEY {
        return Err(bad(VALUE_TAG_AT, CorruptionKind::BadField("value tag")));
    }
    if b[FLAGS_AT] & !FLAG_ORDERED != 0 {
        return Err(bad(FLAGS_AT, CorruptionKind::BadField("flags")));
    }
    let describe = |(tag, s): &(u8, String), none: &str| match *tag {
        TAG_ALL_OR_NOTHING => none.to_owned(),
        TAG_KEY => "key".to_owned(),
        TAG_HEADER => format!("header:{s}"),
        TAG_JSON => format!("json:{s}"),
        _ => format!("fn:{s}"),
    };
    Ok(StoredView {
        name,
        version: le_u32(b, DEF_VERSION_AT),
        generation: le_u64(b, GENERATION_AT),
        fingerprint: le_u64(b, FINGERPRINT_AT),
        kind,
        group_by: describe(&group, "all"),
        value: describe(&value, "none"),
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        ordered: b[FLAGS_AT] & FLAG_ORDERED != 0,
        kind_tag: b[KIND_AT],
        group,
        value_parts: value,
    })
}

/// Read the definition file at `path`; `None` if there is none. Files larger than any valid
/// definition are refused before being read whole.
pub(crate) fn read(path: &Path) -> Result<Option<StoredView>> {
    const MAX: u64 = (TEXT_AT + VIEW_MAX_NAME_LEN + 2 * VIEW_MAX_FIELD_LEN + CRC_LEN) as u64;
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX => {
            return Err(Error::corrupt(path, 0, CorruptionKind::BadLength { len: m.len(), available: MAX }));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(path, &bytes).map(Some)
}

/// Write the definition file for `def` at `generation`, atomically.
pub(crate) fn write(path: &Path, def: &ViewDefinition, generation: u64) -> Result<PathBuf> {
    write_with_flags(path, def, generation, 0)
}

/// [`write`] with flags (an index's order).
pub(crate) fn write_with_flags(path: &Path, def: &ViewDefinition, generation: u64, flags: u8) -> Result<PathBuf> {
    crate::io::fs::atomic_write(path, &encode(def, generation, flags))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Vec<ViewDefinition> {
        vec![
            ViewDefinition::aggregate(
                "revenue",
                3,
                GroupBy::Header("product".into()),
                ValueOf::JsonField("a.b".into()),
            ),
            ViewDefinition::aggregate("all", 1, GroupBy::All, ValueOf::Nothing),
            ViewDefinition::aggregate("k", 1, GroupBy::Key, ValueOf::Header("qty".into())),
            ViewDefinition::fold("balances", 2, "balances-v2"),
            ViewDefinition::index("by-customer", 1, GroupBy::JsonField("customer".into())),
        ]
    }

    #[test]
    fn definitions_round_trip_through_their_file() {
        let p = Path::new("view.def");
        for def in defs() {
            let stored = decode(p, &encode(&def, 7, FLAG_ORDERED)).unwrap();
            assert!(stored.ordered);
            assert_eq!((stored.name.as_str(), stored.version, stored.generation), (def.name.as_str(), def.version, 7));
            assert_eq!(stored.fingerprint, def.fingerprint());
            assert_eq!(stored.describe(), def.kind.describe());
            match &def.kind {
                ViewKind::Fold { .. } => {
                    assert!(matches!(stored.builtin_definition(), Err(Error::ViewNeedsApplication { .. })))
                }
                _ => assert_eq!(stored.builtin_definition().unwrap(), def),
            }
        }
    }

    #[test]
    fn a_damaged_definition_file_is_refused_with_its_location() {
        let p = Path::new("view.def");
        let good = encode(&defs()[0], 1, 0);
        for bit in 0..good.len() * 8 {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            match decode(p, &b) {
                Err(Error::Corruption { location: crate::Location::File { path, .. }, .. }) => {
                    assert_eq!(path, p)
                }
                other => panic!("bit {bit}: {other:?}"),
            }
        }
        for len in 0..good.len() {
            assert!(decode(p, &good[..len]).is_err(), "cut at {len}");
        }
    }
}
