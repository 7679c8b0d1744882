//! Keeping an index view up with its log: the records appended since, segments sealed since
//! (their entries are written to a file and mapped, their memory freed), segments retention
//! removed (dropped), segments compaction rewrote (built again), and files of segments that
//! no longer exist (removed when a writer opens the view).

use std::iter::Peekable;

use crate::error::{Error, Result};
use crate::io::{fs as fsutil, storage};
use crate::log::SegmentInfo;
use crate::segment::paths::{parse_view_index_name, view_index_path};
use crate::view::index::memory::MemIndex;
use crate::view::index::query::SegIndex;
use crate::view::index::sealed::{file_bytes, write_file, Builder, SealedFile, SegIdent};
use crate::view::index::{IndexReport, Inner};

/// The view's segments and the position they are current through.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Oldest first, one per segment of the log.
    segs: Vec<SegEntry>,
    /// Every record below it is indexed.
    pub position: u64,
    /// The log's first offset when the view last caught up (retention moves it).
    first: u64,
    pub report: IndexReport,
    /// The last catch-up failed: the position it started from, and why. Cleared by the
    /// next one that succeeds.
    pub failed: Option<(u64, String)>,
}

#[derive(Debug)]
struct SegEntry {
    base: u64,
    /// Set once the segment is complete (no longer the active one): what it was built from.
    ident: Option<SegIdent>,
    index: SegIndex,
}

impl State {
    pub fn oldest_first(&self) -> impl Iterator<Item = (u64, &SegIndex)> {
        self.segs.iter().map(|e| (e.base, &e.index))
    }

    pub fn newest_first(&self) -> impl Iterator<Item = (u64, &SegIndex)> {
        self.segs.iter().rev().map(|e| (e.base, &e.index))
    }

    pub fn in_memory(&self) -> usize {
        self.segs.iter().filter(|e| matches!(e.index, SegIndex::Memory { .. })).count()
    }
}

impl SegEntry {
    /// True if this entry still describes the segment `id` (compaction rewrites a sealed
    /// segment under the same base; the active segment only grows).
    fn describes(&self, id: SegIdent) -> bool {
        self.base == id.base_offset && self.ident.is_none_or(|mine| mine == id)
    }
}

fn ident_of(info: &SegmentInfo) -> SegIdent {
    SegIdent {
        base_offset: info.base_offset,
        next_offset: info.next_offset,
        end_pos: info.bytes,
        max_timestamp_us: info.max_timestamp_us,
    }
}

impl Inner {
    fn builder(&self) -> Builder {
        Builder {
            definition: self.checked.fingerprint,
            definition_version: self.def.version,
            ordered: self.opts.ordered,
        }
    }

    /// Catch up if the log moved since the view last did (appends, retention).
    pub(super) fn current(&self) -> Result<()> {
        let (position, first) = {
            let st = self.state.read();
            (st.position, st.first)
        };
        if self.log.next_offset() != position || self.log.first_offset() != first {
            self.catch_up()?;
        }
        Ok(())
    }

    pub(super) fn catch_up(&self) -> Result<u64> {
        if self.log.is_read_only() {
            self.log.refresh()?;
        }
        let mut st = self.state.write();
        let infos = self.log.segments();
        let first = self.log.first_offset();
        let old = std::mem::take(&mut st.segs).into_iter().peekable();
        match self.sync(old, &infos, &mut st.report) {
            Ok(segs) => {
                st.segs = segs;
                st.position = infos.last().map_or_else(|| self.log.next_offset(), |s| s.next_offset);
                st.first = first;
                st.failed = None;
                Ok(st.position)
            }
            Err(e) => {
                // Nothing half-done is served: the next query starts over (valid files are
                // used again, so that costs the active segment's records).
                st.failed = Some((st.position, e.to_string()));
                st.position = 0;
                st.first = u64::MAX;
                Err(e)
            }
        }
    }

    /// The entries for the segments `infos`, reusing those of `old` that still describe
    /// their segment.
    fn sync(
        &self,
        mut old: Peekable<impl Iterator<Item = SegEntry>>,
        infos: &[SegmentInfo],
        report: &mut IndexReport,
    ) -> Result<Vec<SegEntry>> {
        let mut segs = Vec::with_capacity(infos.len());
        let mut wrote = false;
        for (i, info) in infos.iter().enumerate() {
            let complete = i + 1 < infos.len();
            let id = ident_of(info);
            // Entries of segments before this one are of segments retention removed.
            while old.next_if(|e| e.base < id.base_offset).is_some() {}
            let mut entry = match old.next_if(|e| e.describes(id)) {
                Some(e) => e,
                None => {
                    old.next_if(|e| e.base == id.base_offset);
                    self.open_segment(id, complete, report)
                }
            };
            if let SegIndex::Memory { mem, read_to } = &mut entry.index {
                if !self.read_records(mem, read_to, id)? {
                    continue; // removed by retention meanwhile
                }
            }
            if complete {
                entry.ident = Some(id);
                if matches!(entry.index, SegIndex::Memory { .. }) {
                    wrote |= self.seal(&mut entry, id, report)?;
                }
            }
            segs.push(entry);
        }
        if wrote {
            // IMPORTANT: the renamed files are durable only after this.
            fsutil::fsync_dir(self.log.dir())?;
        }
        Ok(segs)
    }

    /// A segment new to the view: its valid file if it is complete and has one, else
    /// entries in memory, to be read from its first record.
    fn open_segment(&self, id: SegIdent, complete: bool, report: &mut IndexReport) -> SegEntry {
        let base = id.base_offset;
        if complete {
            let path = view_index_path(self.log.dir(), base, &self.def.name);
            if let Some(f) = SealedFile::open(&path, id, self.builder()) {
                report.files_used += 1;
                return SegEntry { base, ident: Some(id), index: SegIndex::File(f) };
            }
            if path.exists() {
                report.files_rebuilt += 1;
            }
        }
        SegEntry { base, ident: None, index: SegIndex::Memory { mem: MemIndex::new(self.opts.ordered), read_to: base } }
    }

    /// Index the records of segment `id` from `read_to` to its end. False if the segment
    /// was removed (retention) before they could be read.
    fn read_records(&self, mem: &mut MemIndex, read_to: &mut u64, id: SegIdent) -> Result<bool> {
        if *read_to >= id.next_offset {
            return Ok(true);
        }
        let mut cursor = self.log.cursor(*read_to);
        // Stop at the segment's end without asking for more (on a read-only log, asking past
        // the end would refresh it).
        while cursor.position() < id.next_offset {
            let rec = match cursor.next() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(Error::OffsetOutOfRange { first, .. }) if first > *read_to => return Ok(false),
                Err(e) => return Err(e),
            };
            let offset = rec.offset();
            if offset >= id.next_offset {
                break;
            }
            if let Some(v) = self.checked.value_of(&rec) {
                // Relative offsets fit in u32: a segment spans fewer than 2^32 offsets.
                mem.add(&v, (offset - id.base_offset) as u32);
            }
        }
        *read_to = id.next_offset;
        Ok(true)
    }

    /// A complete segment indexed in memory: a writer writes its file and maps it (freeing
    /// the memory); a read-only handle maps the file if the writer's view wrote it since.
    /// Returns whether a file was written.
    fn seal(&self, entry: &mut SegEntry, id: SegIdent, report: &mut IndexReport) -> Result<bool> {
        let SegIndex::Memory { mem, .. } = &entry.index else { return Ok(false) };
        let path = view_index_path(self.log.dir(), id.base_offset, &self.def.name);
        let mut wrote = false;
        if !self.log.is_read_only() {
            write_file(&path, &file_bytes(mem, id, self.builder()))?;
            report.files_written += 1;
            wrote = true;
        }
        if let Some(f) = SealedFile::open(&path, id, self.builder()) {
            entry.index = SegIndex::File(f);
        }
        Ok(wrote)
    }

    /// Remove this index's files of segments that no longer exist, and temporary files
    /// left by an interrupted write. Returns how many were removed.
    pub(super) fn remove_stray_files(&self) -> Result<u64> {
        let dir = self.log.dir();
        let infos = self.log.segments();
        // Only complete segments have files.
        let complete: Vec<u64> = infos.iter().take(infos.len().saturating_sub(1)).map(|s| s.base_offset).collect();
        let mut removed = 0;
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stray = match parse_view_index_name(name) {
                Some((base, index)) => index == self.def.name && complete.binary_search(&base).is_err(),
                None => is_own_tmp(name, &self.def.name),
            };
            if stray {
                storage::remove(&entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            fsutil::fsync_dir(dir)?;
        }
        Ok(removed)
    }
}

/// True for a temporary file of index `index` (`{base:020}.{index}.vindex.{pid}-{n}.tmp`).
fn is_own_tmp(name: &str, index: &str) -> bool {
    name.strip_suffix(".tmp")
        .and_then(|s| s.rsplit_once('.'))
        .and_then(|(stem, _)| parse_view_index_name(stem))
        .is_some_and(|(_, n)| n == index)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_this_indexs_temporary_files_are_its_own() {
        assert!(super::is_own_tmp("00000000000000000007.by-key.vindex.123-4.tmp", "by-key"));
        assert!(!super::is_own_tmp("00000000000000000007.by-key.vindex.123-4.tmp", "by-user"));
        assert!(!super::is_own_tmp("00000000000000000007.by-key.vindex", "by-key"));
        assert!(!super::is_own_tmp("00000000000000000007.keyindex.tmp", "by-key"));
    }
}
