//! The sequenceId lease kept ahead of the ids, off the delivery path.
//!
//! Storing a lease is an fsync (file state) or a broker round trip (Kafka state): ~8 ms
//! typically, over 100 ms at times on a busy disk. Done inline when the ids reach the stored
//! lease, it held every record behind it once per [`LEASE_MS`](crate::model::sequence::LEASE_MS)
//! (the stall that doubled the tail latency). So the next lease is stored on a thread of its
//! own once the current one is half spent, and the ids use it when that store has ended.
//!
//! Invariants:
//! - An id is only issued below a lease that was durably stored before it
//!   ([`SequenceGen::extend`] only after the store returned `Ok`).
//! - At most one store of a lease runs at a time: when the ids reach the stored lease while a
//!   renewal is still on its way, the renewal is waited for before the synchronous store.
//! - A failed renewal is an error of the next id, as a failed synchronous store is.

use crate::checkpoint::store::{blocking, Store, StoreError};
use crate::model::sequence::{SequenceGen, SequenceId};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;

/// A lease being stored on its own thread.
struct Renewal {
    lease: i64,
    done: Receiver<Result<(), StoreError>>,
}

pub(crate) struct LeaseKeeper {
    store: Arc<Store>,
    renewal: Option<Renewal>,
}

impl LeaseKeeper {
    pub(crate) fn new(store: Arc<Store>) -> LeaseKeeper {
        LeaseKeeper {
            store,
            renewal: None,
        }
    }

    /// The next id: takes up a renewal that has ended, starts one that is due, and stores a
    /// lease inline only when the ids caught up with the stored one first.
    pub(crate) fn next(&mut self, seq: &mut SequenceGen) -> Result<SequenceId, StoreError> {
        let now = crate::model::time::now_ms();
        self.take_up(seq)?;
        if self.renewal.is_none() {
            if let Some(lease) = seq.renewal_due(now) {
                self.start(lease);
            }
        }
        let (store, renewal) = (&self.store, &mut self.renewal);
        seq.next_with(now, |lease| {
            if let Some(r) = renewal.take() {
                // the store of the renewal is slower than the ids: wait for it (one store at a time)
                blocking(|| r.done.recv()).unwrap_or(Ok(()))?;
            }
            store.save_lease(lease)
        })
    }

    /// Extend `seq` by a renewal that has been stored.
    fn take_up(&mut self, seq: &mut SequenceGen) -> Result<(), StoreError> {
        let Some(r) = &self.renewal else {
            return Ok(());
        };
        match r.done.try_recv() {
            Err(TryRecvError::Empty) => return Ok(()),
            Ok(Ok(())) => seq.extend(r.lease),
            Ok(Err(e)) => {
                self.renewal = None;
                return Err(e);
            }
            // the thread ended without an answer (it panicked, and said so): not stored
            Err(TryRecvError::Disconnected) => {}
        }
        self.renewal = None;
        Ok(())
    }

    /// Store `lease` on a thread of its own (inline when no thread can be started).
    fn start(&mut self, lease: i64) {
        let (tx, done) = sync_channel(1);
        let store = self.store.clone();
        let spawned = std::thread::Builder::new()
            .name("rowstream-lease".into())
            .spawn(move || {
                let _ = tx.send(store.save_lease(lease));
            });
        if spawned.is_ok() {
            self.renewal = Some(Renewal { lease, done });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sequence::LEASE_MS;

    #[test]
    fn the_lease_is_stored_ahead_and_ids_stay_below_it() {
        let d = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(d.path()).unwrap());
        let mut seq = SequenceGen::resume(0);
        let mut keeper = LeaseKeeper::new(store.clone());
        let first = keeper.next(&mut seq).unwrap();
        // the first id stored a lease inline; the next one is due at once only when half spent
        let stored = store.load_lease().unwrap();
        assert!(stored > first.ms && stored <= first.ms + LEASE_MS);
        // force a due renewal and let it end
        let mut seq = SequenceGen::resume(0);
        seq.extend(crate::model::time::now_ms() + 1);
        keeper.next(&mut seq).unwrap_or_else(|e| panic!("{e}"));
        let r = keeper.renewal.take().expect("a renewal was started");
        assert_eq!(r.done.recv().unwrap().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(store.load_lease().unwrap(), r.lease);
    }
}
