//! Rewriting one sealed segment without some of its records, beside the old one, with no
//! lock of the log held: the segment builder writes the records kept (offsets, timestamps and
//! contents unchanged) and its index files under temporary names, fsynced.

use std::path::Path;

use crate::error::Result;
use crate::format::SEGMENT_HEADER_LEN;
use crate::record::RecordView;
use crate::segment::builder::{discard_build, BuiltSegment, SegmentBuilder};
use crate::segment::Segment;

/// What a rewrite produced.
pub(crate) struct Rewritten {
    pub built: BuiltSegment,
    /// Records not copied.
    pub removed: u64,
    /// Tombstones among them.
    pub tombstones_removed: u64,
}

/// Rewrite sealed segment `seg` of the log in `dir`, keeping the records for which `keep` is
/// true. `None` if every record is kept (nothing is written then). A failed rewrite removes
/// what it wrote (best effort: a writer's open removes leftovers too).
pub(crate) fn rewrite(
    dir: &Path,
    seg: &Segment,
    interval: u32,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
) -> Result<Option<Rewritten>> {
    let mut builder: Option<SegmentBuilder> = None;
    let (mut removed, mut tombstones_removed) = (0u64, 0u64);
    let result = (|| {
        // Records kept before the first removed one are copied once a removal is seen.
        for r in seg.records_from(SEGMENT_HEADER_LEN, seg.base_offset) {
            let (rec, _) = r?;
            if keep(&rec) {
                if let Some(b) = builder.as_mut() {
                    b.push(&rec)?;
                }
                continue;
            }
            removed += 1;
            tombstones_removed += u64::from(rec.is_tombstone());
            if builder.is_none() {
                let mut b = SegmentBuilder::new(dir, seg.base_offset, seg.created_us, interval)?;
                for r in seg.records_from(SEGMENT_HEADER_LEN, seg.base_offset) {
                    let (kept, _) = r?;
                    if kept.offset() >= rec.offset() {
                        break;
                    }
                    b.push(&kept)?;
                }
                builder = Some(b);
            }
        }
        match builder.take() {
            Some(b) => Ok(Some(b.finish(seg.next_offset())?)),
            None => Ok(None),
        }
    })();
    match result {
        Ok(Some(built)) => Ok(Some(Rewritten { built, removed, tombstones_removed })),
        Ok(None) => Ok(None),
        Err(e) => {
            drop(builder);
            let _ = discard_build(&seg.paths);
            Err(e)
        }
    }
}
