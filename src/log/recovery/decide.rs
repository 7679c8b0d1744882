//! The recovery policy in one place: the decision table from (recovery mode, finding) to what
//! open does.

use super::*;

/// What open found, classified for [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Every segment is there and every record validates.
    Intact,
    /// Bytes past the durable point that are not whole valid batches: a write torn by a crash.
    /// Nothing acknowledged is lost by cutting them.
    TornTail,
    /// The active segment is damaged below the durable point, or cut short below it.
    DamagedTail,
    /// A segment before the active one is damaged (its header, its records, or fewer records
    /// than where the next segment begins), or segments the checkpoint vouches for are missing.
    DamagedSealed,
}

/// What open does about a [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Open as found.
    Proceed,
    /// Zero the torn bytes and open.
    RepairTail,
    /// Fail the open with the located damage; nothing on disk changes.
    Fail,
    /// Open read-only, ending just before the damage.
    ReadOnly,
    /// Cut the log at the damage, keep the bytes cut away beside the log, and open writable.
    Salvage,
}

/// The recovery policy, in one place: for each recovery mode and finding, what open does. A
/// read-only handle never writes, so it never repairs or salvages: it stops where the valid
/// data stops (a writer may still be writing past it) or opens up to the damage.
pub(crate) fn decide(mode: RecoveryMode, finding: Finding, read_only: bool) -> Action {
    use Finding::{DamagedSealed, DamagedTail, Intact, TornTail};
    let action = match (finding, mode) {
        (Intact, _) => Action::Proceed,
        (TornTail, _) => Action::RepairTail,
        (DamagedTail | DamagedSealed, RecoveryMode::TruncateTornTail) => Action::Fail,
        (DamagedTail | DamagedSealed, RecoveryMode::ReadOnlyUpToDamage) => Action::ReadOnly,
        (DamagedTail | DamagedSealed, RecoveryMode::Salvage) => Action::Salvage,
    };
    match (action, read_only) {
        (Action::RepairTail, true) => Action::Proceed,
        (Action::Salvage, true) => Action::ReadOnly,
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cell of the decision table, written out: a change to the policy must change this
    /// test too.
    #[test]
    fn the_recovery_decision_table() {
        use Action::{Fail, Proceed, ReadOnly, RepairTail};
        use Finding::*;
        let modes = [RecoveryMode::TruncateTornTail, RecoveryMode::ReadOnlyUpToDamage, RecoveryMode::Salvage];
        let salvage = Action::Salvage;
        let table: [(Finding, [Action; 3], [Action; 3]); 4] = [
            // finding        writer: default, read-only-up-to-damage, salvage   read-only handle
            (Intact, [Proceed, Proceed, Proceed], [Proceed, Proceed, Proceed]),
            (TornTail, [RepairTail, RepairTail, RepairTail], [Proceed, Proceed, Proceed]),
            (DamagedTail, [Fail, ReadOnly, salvage], [Fail, ReadOnly, ReadOnly]),
            (DamagedSealed, [Fail, ReadOnly, salvage], [Fail, ReadOnly, ReadOnly]),
        ];
        for (finding, writer, reader) in table {
            for (i, mode) in modes.iter().enumerate() {
                assert_eq!(decide(*mode, finding, false), writer[i], "writer, {mode:?}, {finding:?}");
                assert_eq!(decide(*mode, finding, true), reader[i], "read-only, {mode:?}, {finding:?}");
            }
        }
    }
}
