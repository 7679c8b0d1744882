//! Stage 3: open every segment's data file, trust a sealed index or validate the segment,
//! and find damaged or missing segments (and whether their damage lies past the durable
//! point).

use super::*;

/// A segment before the active one, as loaded.
pub(super) enum Loaded {
    /// Its sealed index files are valid: trusted without a scan.
    Sealed { id: SegmentId, file: File, map_len: usize, sidx: SealedIndex, info: SealInfo },
    /// Validated whole; its sealed index files are to be (re)written.
    Scanned {
        id: SegmentId,
        file: File,
        map_len: usize,
        map: Arc<SegmentMap>,
        entries: Vec<IndexEntry>,
        end: ScanState,
    },
}

impl Loaded {
    pub(super) fn next_offset(&self) -> u64 {
        match self {
            Loaded::Sealed { info, .. } => info.next_offset,
            Loaded::Scanned { end, .. } => end.next_offset,
        }
    }
}

/// Damage found in a segment before the active one (or segments missing).
pub(super) struct SealedDamage {
    /// Index of the first damaged or missing segment in the list of bases.
    pub(super) at: usize,
    pub(super) location: Location,
    pub(super) kind: CorruptionKind,
    /// The damaged segment's valid prefix, when its header could be read: with
    /// `ReadOnlyUpToDamage` it stays readable, with `Salvage` it becomes the active segment.
    pub(super) prefix: Option<ActiveCandidate>,
    /// For damaged or missing records (not a damaged header): the first offset lost and the
    /// byte position where the search for later durable marks starts.
    pub(super) first_lost: Option<(u64, usize)>,
}

/// The segment that will be the active one (or the end of a read-only log): opened and mapped
/// read-only for examination.
pub(super) struct ActiveCandidate {
    pub(super) id: SegmentId,
    pub(super) file: File,
    pub(super) file_len: u64,
    pub(super) capacity: u64,
    pub(super) map: Arc<SegmentMap>,
}

pub(super) struct LoadedLog {
    pub(super) sealed: Vec<Loaded>,
    /// The last segment, if every segment before it loaded intact.
    pub(super) active: Option<ActiveCandidate>,
    pub(super) damage: Option<SealedDamage>,
    pub(super) scanned_bytes: u64,
}

pub(super) fn map_len_of(file_len: u64) -> usize {
    usize::try_from(file_len.min(MAX_SEGMENT_BYTES)).unwrap_or(usize::MAX)
}

pub(super) fn open_candidate(dir: &Path, base: u64, writable: bool) -> Result<ActiveCandidate> {
    let (id, file, file_len, capacity) = segment::open_data_file(dir, base, writable)?;
    let map = SegmentMap::map_ro(&file, map_len_of(file_len), 0).at(&id.paths.data)?;
    Ok(ActiveCandidate { id, file, file_len, capacity, map })
}

/// The location and kind of a corruption error, if it is one.
pub(super) fn as_damage(e: Error) -> Result<(Location, CorruptionKind)> {
    match e {
        Error::Corruption { location, kind } => Ok((location, kind)),
        other => Err(other),
    }
}

pub(super) fn load(dir: &Path, opts: &Options, found: &Discovered, writable: bool) -> Result<LoadedLog> {
    let interval = opts.index_interval_bytes as usize;
    let bases = &found.bases;
    let mut out = LoadedLog { sealed: Vec::new(), active: None, damage: None, scanned_bytes: 0 };
    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        if is_last {
            match open_candidate(dir, base, writable) {
                Ok(c) => out.active = Some(c),
                Err(e) => {
                    let (location, kind) = as_damage(e)?;
                    out.damage = Some(SealedDamage { at: i, location, kind, prefix: None, first_lost: None });
                }
            }
            break;
        }
        let want = bases[i + 1];
        let (id, file, file_len, _) = match segment::open_data_file(dir, base, false) {
            Ok(x) => x,
            Err(e) => {
                let (location, kind) = as_damage(e)?;
                out.damage = Some(SealedDamage { at: i, location, kind, prefix: None, first_lost: None });
                break;
            }
        };
        let map_len = map_len_of(file_len);
        // A segment with a valid sealed index that ends where the next begins needs no scan.
        let mut recorded_end = id.sparse.map(|s| s.next_offset);
        if let Some((sidx, info)) = segment::open_sealed_index(&id, file_len) {
            if info.next_offset == want {
                out.sealed.push(Loaded::Sealed { id, file, map_len, sidx, info });
                continue;
            }
            recorded_end = Some(info.next_offset);
        }
        // No usable index: validate the segment whole (its index is rebuilt at apply).
        let map = SegmentMap::map_ro(&file, map_len, 0).at(&id.paths.data)?;
        let mut end = ScanState::at_start(base);
        let mut entries = Vec::new();
        let stop = segment::scan_frames(&map, base, &mut end, interval, &mut entries, None);
        out.scanned_bytes += end.pos as u64;
        if end.next_offset != want {
            let first_lost = match &stop {
                _ if end.next_offset > want => None,
                ScanStop::Invalid { bad_pos, bad_offset, .. } => Some((*bad_offset, *bad_pos + 8)),
                ScanStop::End => Some((end.next_offset, end.pos)),
            };
            let (location, kind) = if end.next_offset > want {
                let at = Location::File { path: id.paths.data.clone(), position: end.pos as u64 };
                (at, CorruptionKind::BadField("segment overlaps the next"))
            } else {
                match stop {
                    ScanStop::Invalid { bad_pos, kind, .. } => {
                        (Location::File { path: id.paths.data.clone(), position: bad_pos as u64 }, kind)
                    }
                    // The file's records end before the end its sealed index or header
                    // records: they are missing from this file, where they should be.
                    ScanStop::End if recorded_end.is_some_and(|e| e > end.next_offset) => (
                        Location::File { path: id.paths.data.clone(), position: end.pos as u64 },
                        CorruptionKind::MissingData,
                    ),
                    // The file ends where it says it does, but the next segment starts later:
                    // the records in between are in no file.
                    ScanStop::End => {
                        (Location::Log { dir: dir.to_path_buf(), offset: end.next_offset }, CorruptionKind::MissingData)
                    }
                }
            };
            let prefix = ActiveCandidate { id, file, file_len, capacity: file_len, map };
            out.damage = Some(SealedDamage { at: i, location, kind, prefix: Some(prefix), first_lost });
            break;
        }
        out.sealed.push(Loaded::Scanned { id, file, map_len, map, entries, end });
    }
    // Every segment the checkpoint vouches for must be there: one named by the checkpoint
    // beyond the last segment means segments at the end are missing. What is there stays
    // readable up to them.
    if out.damage.is_none() {
        if let Some(c) = found.ckpt.valid() {
            if bases.last().is_none_or(|&l| c.segment_base > l) {
                let location = Location::Log { dir: dir.to_path_buf(), offset: c.segment_base };
                let prefix = out.active.take();
                out.damage = Some(SealedDamage {
                    at: bases.len(),
                    location,
                    kind: CorruptionKind::MissingData,
                    prefix,
                    first_lost: None,
                });
            }
        }
    }
    Ok(out)
}

/// True if the records a damaged segment before the last lost were never made durable: the
/// checkpoint does not vouch for them, and no valid frame after the damage (in that segment
/// or a later one) carries a durable mark past them.
pub(super) fn sealed_damage_is_torn(dir: &Path, d: &SealedDamage, ckpt: Option<Checkpoint>, bases: &[u64]) -> bool {
    let (Some((lost, search_from)), Some(prefix)) = (d.first_lost, d.prefix.as_ref()) else { return false };
    let mut durable = ckpt.map_or(0, |c| c.next_offset);
    if lost < durable {
        return false;
    }
    if let Some(m) = segment::durable_mark_after(&prefix.map, &prefix.file, search_from, lost) {
        durable = durable.max(m);
    }
    for &base in &bases[(d.at + 1).min(bases.len())..] {
        match open_candidate(dir, base, false) {
            Ok(c) => {
                if let Some(m) = segment::durable_mark_after(&c.map, &c.file, SEGMENT_HEADER_LEN, 0) {
                    durable = durable.max(m);
                }
            }
            // A later segment that cannot be read proves nothing either way; be safe.
            Err(_) => return false,
        }
    }
    lost >= durable
}
