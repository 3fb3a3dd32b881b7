//! The batcher every source writes its events through.
//!
//! Invariants:
//! - Events leave in the order they were pushed, in batches of at most [`BATCH`] events, over
//!   the bounded channel to the pipeline: a slow pipeline (a slow broker) blocks `push`/`flush`,
//!   which is the backpressure that keeps memory flat.
//! - [`Batcher::flush`] is cancellation safe: the batch is handed over only once the channel
//!   has room, so a flush dropped inside a `select!` (to answer a keepalive meanwhile) loses
//!   nothing and can simply be called again.

use crate::error::{Classify, ErrorClass};
use crate::model::event::{Batch, SourceEvent};
use tokio::sync::mpsc;

/// Events per batch: keeps channel overhead off the per-row path.
pub(crate) const BATCH: usize = 512;

/// The pipeline is gone (it stopped, and says why itself).
#[derive(Debug, thiserror::Error)]
#[error("the pipeline stopped")]
pub(crate) struct Closed;

impl Classify for Closed {
    fn class(&self) -> ErrorClass {
        // the pipeline's own error is the one that tells what happened
        ErrorClass::Transient
    }
}

pub(crate) struct Batcher {
    tx: mpsc::Sender<Batch>,
    batch: Batch,
    /// where the snapshot driver reports per-table progress
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl Batcher {
    pub(crate) fn new(tx: mpsc::Sender<Batch>) -> Batcher {
        Batcher {
            tx,
            batch: Vec::with_capacity(BATCH),
            metrics: None,
        }
    }

    /// A batcher whose source reports snapshot progress to `metrics`.
    pub(crate) fn with_metrics(
        tx: mpsc::Sender<Batch>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Batcher {
        Batcher {
            metrics: Some(metrics),
            ..Batcher::new(tx)
        }
    }

    /// The connector's metrics, if this batcher reports to them.
    pub(crate) fn metrics(&self) -> Option<std::sync::Arc<crate::metrics::Metrics>> {
        self.metrics.clone()
    }

    /// Add an event without sending (the caller flushes at its own boundaries).
    pub(crate) fn add(&mut self, ev: SourceEvent) {
        self.batch.push(ev);
    }

    /// The batch reached [`BATCH`] events and should be flushed.
    pub(crate) fn is_full(&self) -> bool {
        self.batch.len() >= BATCH
    }

    /// Add an event, sending the batch when it is full.
    pub(crate) async fn push(&mut self, ev: SourceEvent) -> Result<(), Closed> {
        self.add(ev);
        if self.is_full() {
            self.flush().await?;
        }
        Ok(())
    }

    /// Events waiting to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Hand the pending events to the pipeline if the channel has room now; `false` when it
    /// has none (nothing was sent). The per-transaction path: no timer, no waiting.
    pub(crate) fn try_flush(&mut self) -> Result<bool, Closed> {
        if self.batch.is_empty() {
            return Ok(true);
        }
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(std::mem::replace(
                    &mut self.batch,
                    Vec::with_capacity(BATCH),
                ));
                Ok(true)
            }
            Err(mpsc::error::TrySendError::Full(())) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(())) => Err(Closed),
        }
    }

    /// Hand the pending events to the pipeline (waits for room; cancellation safe).
    pub(crate) async fn flush(&mut self) -> Result<(), Closed> {
        if self.try_flush()? {
            return Ok(());
        }
        let permit = self.tx.reserve().await.map_err(|_| Closed)?;
        permit.send(std::mem::replace(
            &mut self.batch,
            Vec::with_capacity(BATCH),
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Marker;
    use crate::model::position::{Lsn, SourcePosition};

    fn ev(n: u64) -> SourceEvent {
        SourceEvent::Marker(Marker::Checkpoint {
            position: SourcePosition::Postgres { lsn: Lsn(n) },
            event_time_ms: 0,
        })
    }

    #[tokio::test]
    async fn batches_in_order_and_flush_is_cancel_safe() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut b = Batcher::new(tx);
        for n in 0..(BATCH as u64 + 3) {
            b.push(ev(n)).await.unwrap();
        }
        // the channel (depth 1) holds the first full batch: a flush must wait, and dropping
        // the waiting flush keeps the events
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), b.flush()).await;
        assert!(waited.is_err());
        assert!(!b.is_empty());
        assert_eq!(rx.recv().await.unwrap().len(), BATCH);
        b.flush().await.unwrap();
        let rest = rx.recv().await.unwrap();
        assert_eq!(rest.len(), 3);
        assert!(
            matches!(&rest[0], SourceEvent::Marker(Marker::Checkpoint { position: SourcePosition::Postgres { lsn }, .. }) if lsn.0 == BATCH as u64)
        );
        drop(rx);
        b.add(ev(1));
        assert!(b.flush().await.is_err());
    }
}
