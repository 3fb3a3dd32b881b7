//! The one committer, for both delivery modes: fold the markers the tracker released (each
//! one's records all acknowledged by Kafka) into the state, then make that state durable the
//! mode's way.
//!
//! - At least once ([`commit`]): the state is saved by the store (`state.dir` or the Kafka state
//!   topic) after the records it covers were acknowledged; a crash after the records and
//!   before the save sends them again.
//! - Exactly once (`kafka.exactly_once`, the pipeline's transactions): [`fold`] only; the caller
//!   writes the folded state as a record of the open Kafka transaction, so records and position
//!   become visible together.
//!
//! Invariants: a process fenced by a newer claim folds nothing (its position must not advance);
//! markers fold in release order, and a position behind the stored one is an error
//! (`StoreError::Backwards`), never skipped.
use super::state::{State, StoreError};
use super::store::Store;
use super::tracker::Tracker;

/// Fold every released marker into `state`; whether it changed.
pub(crate) fn fold(
    tracker: &Tracker,
    store: &Store,
    state: &mut State,
) -> Result<bool, StoreError> {
    store.fenced()?;
    let mut changed = false;
    for m in tracker.drain_ready() {
        changed |= state.apply(&m)?;
    }
    Ok(changed)
}

/// At least once: fold, and save the state when it changed; whether it did.
pub(crate) fn commit(
    tracker: &Tracker,
    store: &Store,
    state: &mut State,
) -> Result<bool, StoreError> {
    let changed = fold(tracker, store, state)?;
    if changed {
        store.save(state)?;
    }
    Ok(changed)
}
