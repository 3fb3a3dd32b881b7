//! `sequenceId` generation (spec §4.6): a 13-digit ms clock reading and a 6-digit counter,
//! strictly increasing within a pipeline and across its restarts.
//!
//! Invariants:
//! - Ids are strictly increasing: the ms part follows the wall clock but never goes back; within
//!   one ms the counter counts up, and past 999999 the ms part steps ahead of the clock.
//! - Across restarts: before issuing an id with ms ≥ the persisted lease, the lease is pushed
//!   [`LEASE_MS`] ahead and stored (fsync'd). A restart starts at or above the stored lease, so it
//!   cannot reissue an id whatever happened after the last checkpoint.
//! - The caller may store the next lease ahead of time, off the delivery path
//!   ([`SequenceGen::renewal_due`], then [`SequenceGen::extend`] once it is stored): an id is
//!   only ever issued below a lease that was stored before it.
//! - Where the lease is stored is the caller's business (`checkpoint::store`): this module
//!   depends on nothing but the clock.

use std::fmt;

/// How far ahead the stored lease runs; one small fsync per this many ms of ids.
pub(crate) const LEASE_MS: i64 = 10_000;

/// How long before the lease runs out a renewal is due (stored ahead of time by the caller).
pub(crate) const RENEW_AHEAD_MS: i64 = LEASE_MS / 2;

/// The envelope's `sequenceId`: a 13-digit ms clock reading and a 6-digit counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SequenceId {
    pub(crate) ms: i64,
    pub(crate) counter: u32,
}

impl fmt::Display for SequenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:013}{:06}", self.ms, self.counter)
    }
}

pub(crate) struct SequenceGen {
    ms: i64,
    counter: u32,
    lease: i64,
}

impl SequenceGen {
    /// Resume after whatever a previous run may have issued, given the stored `lease`.
    pub(crate) fn resume(lease: i64) -> SequenceGen {
        SequenceGen {
            ms: lease.max(0) - 1,
            counter: 999_999,
            lease,
        }
    }

    /// The next id at wall-clock `now`; calls `persist` when the lease must move.
    pub(crate) fn next_with<E>(
        &mut self,
        now: i64,
        persist: impl FnOnce(i64) -> Result<(), E>,
    ) -> Result<SequenceId, E> {
        if now > self.ms {
            self.ms = now;
            self.counter = 0;
        } else if self.counter >= 999_999 {
            self.ms += 1;
            self.counter = 0;
        } else {
            self.counter += 1;
        }
        if self.ms >= self.lease {
            let lease = self.ms + LEASE_MS;
            persist(lease)?;
            self.lease = lease;
        }
        Ok(SequenceId {
            ms: self.ms,
            counter: self.counter,
        })
    }

    /// The lease to store ahead of time, when the current one runs out within
    /// [`RENEW_AHEAD_MS`] of `now` (and has not run out yet). Storing it is the caller's (off the delivery path); only
    /// [`SequenceGen::extend`] lets ids rely on it.
    pub(crate) fn renewal_due(&self, now: i64) -> Option<i64> {
        // at the lease itself the next id stores one anyway (synchronously)
        let at = now.max(self.ms);
        (at < self.lease && at + RENEW_AHEAD_MS >= self.lease).then_some(at + LEASE_MS)
    }

    /// A lease the caller has stored (durably) may be relied on from now on.
    pub(crate) fn extend(&mut self, stored: i64) {
        self.lease = self.lease.max(stored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::store::Store;

    #[test]
    fn strictly_increasing_and_restart_safe() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let mut g = SequenceGen::resume(store.load_lease().unwrap());
        let mut last = None;
        for now in [1000, 1000, 1000, 999, 1001, 1001] {
            let id = g.next_with(now, |l| store.save_lease(l)).unwrap();
            assert!(Some(id) > last, "{id:?} after {last:?}");
            last = Some(id);
        }
        assert_eq!(last.unwrap().to_string(), "0000000001001000001");
        // counter overflow steps the ms part
        g.counter = 999_999;
        let id = g.next_with(1001, |l| store.save_lease(l)).unwrap();
        assert_eq!((id.ms, id.counter), (1002, 0));
        // a restart with the clock behind never reissues
        let mut g2 = SequenceGen::resume(store.load_lease().unwrap());
        let id2 = g2.next_with(500, |l| store.save_lease(l)).unwrap();
        assert!(id2 > id, "{id2:?} <= {id:?}");
        assert!(id2.ms >= 1000 + LEASE_MS);
    }

    #[test]
    fn a_lease_stored_ahead_spares_the_synchronous_store() {
        let mut g = SequenceGen::resume(0);
        let mut stored = vec![];
        g.next_with(1000, |l| {
            stored.push(l);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(stored, [1000 + LEASE_MS]);
        // not due while more than RENEW_AHEAD_MS of the lease are left
        assert_eq!(g.renewal_due(1000 + LEASE_MS - RENEW_AHEAD_MS - 1), None);
        let due = g.renewal_due(1000 + LEASE_MS - RENEW_AHEAD_MS).unwrap();
        assert_eq!(due, 1000 + 2 * LEASE_MS - RENEW_AHEAD_MS);
        // until it is stored and extended, ids at the old lease still store synchronously
        g.extend(due);
        let id = g
            .next_with(1000 + LEASE_MS + 1, |l| {
                stored.push(l);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(
            stored.len(),
            1,
            "no synchronous store below an extended lease"
        );
        assert_eq!(id.ms, 1000 + LEASE_MS + 1);
        // an older lease never shortens the current one
        g.extend(5);
        assert_eq!(g.lease, due);
    }
}
