//! Settling by topic offset instead of by [`Delivery`](crate::Delivery): a consumer that
//! kept only the offsets of what it was given (or a tool acting for it) acks, nacks,
//! rejects or releases them. The offset must be delivered by this opening of the group now.

use super::settle::Claim;
use super::{Core, GroupInner};
use crate::consumer::state::{ItemId, Status};
use crate::error::{Error, Result};

impl GroupInner {
    /// The claim of the current delivery of topic event `offset`: its lease is current, or
    /// it expired and nobody has been given the event since (as for a delivery).
    /// [`Error::NotDelivered`] otherwise.
    fn claim_offset(&self, core: &Core, offset: u64) -> Result<Claim> {
        let id = ItemId::Topic(offset);
        let not_delivered = || Error::NotDelivered { group: self.holder.label().to_owned(), offset };
        let e = core.state.entries.get(&id).ok_or_else(not_delivered)?;
        let lease = match e.status {
            Status::InFlight { lease, .. } => lease,
            Status::Scheduled { .. } => e.expired_lease.ok_or_else(not_delivered)?,
            Status::Held => return Err(not_delivered()),
        };
        Ok(Claim { id, lease, offset, attempt: e.attempts })
    }

    /// The claims of the current deliveries of `offsets`; [`Error::NotDelivered`] for the
    /// first that is not delivered, before anything changes.
    pub(super) fn claims_at(&self, core: &Core, offsets: &[u64]) -> Result<Vec<Claim>> {
        offsets.iter().map(|o| self.claim_offset(core, *o)).collect()
    }
}
