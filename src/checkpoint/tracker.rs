//! In-order tracking of delivered records → safe markers.
//!
//! Records are grouped into *segments*: every record belongs to the segment open when it was
//! sent; a [`Marker`] closes the open segment. A closed segment whose records are all delivered,
//! and whose predecessors are all released, releases its marker. So a marker is released only
//! after Kafka acknowledged every record sent before it, whatever order the acks arrive in.
//!
//! Invariants:
//! - Markers are released in the order they were added, never ahead of an undelivered record.
//! - A failed delivery poisons the tracker: its segment never completes, nothing after it is
//!   released, and [`Tracker::failure`] reports the error. Lost records therefore cannot be
//!   skipped over by a later checkpoint.
//! - Segment ids are contiguous, so the delivery callback finds its segment in O(1).

use crate::model::event::Marker;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Why a record was not delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// retrying cannot help (the broker refuses this record for good); the message names the fix
    pub(crate) permanent: bool,
}

impl Failure {
    /// A failure that a restart may get past (timeouts, an unreachable broker).
    pub(crate) fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            permanent: false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Default)]
struct Segment {
    pending: u64,
    marker: Option<Marker>,
    closed: bool,
}

struct Inner {
    /// id of `segs[0]`
    base: u64,
    segs: VecDeque<Segment>,
    failure: Option<Failure>,
    in_flight: u64,
    /// the last delivery report, or when records started waiting for one
    progress: std::time::Instant,
}

pub(crate) struct Tracker {
    inner: Mutex<Inner>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        let mut segs = VecDeque::new();
        segs.push_back(Segment::default());
        Tracker {
            inner: Mutex::new(Inner {
                base: 0,
                segs,
                failure: None,
                in_flight: 0,
                progress: std::time::Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a panic while holding the lock cannot leave the counters half-written; keep going
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a record about to be sent; returns the id its delivery report must carry.
    pub(crate) fn begin(&self) -> u64 {
        let mut g = self.lock();
        if g.in_flight == 0 {
            g.progress = std::time::Instant::now();
        }
        g.in_flight += 1;
        let id = g.base + g.segs.len() as u64 - 1;
        if let Some(s) = g.segs.back_mut() {
            s.pending += 1;
        }
        id
    }

    /// Undo a `begin` whose record was never handed to the producer.
    pub(crate) fn cancel(&self, id: u64) {
        self.delivered(id, Ok(()));
    }

    /// A delivery report for a record of segment `id`.
    pub(crate) fn delivered(&self, id: u64, result: Result<(), Failure>) {
        let mut g = self.lock();
        g.progress = std::time::Instant::now();
        match result {
            Ok(()) => {
                g.in_flight = g.in_flight.saturating_sub(1);
                let idx = id.wrapping_sub(g.base) as usize;
                if let Some(s) = g.segs.get_mut(idx) {
                    s.pending = s.pending.saturating_sub(1);
                }
            }
            Err(e) => {
                if g.failure.is_none() {
                    g.failure = Some(e);
                }
            }
        }
    }

    /// Close the open segment with `marker`.
    pub(crate) fn mark(&self, marker: Marker) {
        let mut g = self.lock();
        if let Some(s) = g.segs.back_mut() {
            s.marker = Some(marker);
            s.closed = true;
        }
        g.segs.push_back(Segment::default());
    }

    /// Markers now safe, in order.
    pub(crate) fn drain_ready(&self) -> Vec<Marker> {
        let mut g = self.lock();
        let mut out = Vec::new();
        if g.failure.is_some() {
            return out;
        }
        while g.segs.len() > 1 {
            let front = &g.segs[0];
            if !(front.closed && front.pending == 0) {
                break;
            }
            if let Some(seg) = g.segs.pop_front() {
                g.base += 1;
                if let Some(m) = seg.marker {
                    out.push(m);
                }
            }
        }
        out
    }

    pub(crate) fn failure(&self) -> Option<Failure> {
        self.lock().failure.clone()
    }

    /// How long records have waited with no delivery report at all (`None`: nothing waits).
    /// A broker that is down shows here long before librdkafka gives up on a record.
    pub(crate) fn stalled_for(&self) -> Option<std::time::Duration> {
        let g = self.lock();
        (g.in_flight > 0).then(|| g.progress.elapsed())
    }

    /// Records sent and not yet acknowledged.
    pub(crate) fn in_flight(&self) -> u64 {
        self.lock().in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::position::{Lsn, SourcePosition};

    fn cp(n: u64) -> Marker {
        Marker::Checkpoint {
            position: SourcePosition::Postgres { lsn: Lsn(n) },
            event_time_ms: n as i64,
        }
    }

    #[test]
    fn releases_in_order_after_all_acks() {
        let t = Tracker::new();
        let a = t.begin();
        let b = t.begin();
        t.mark(cp(1));
        let c = t.begin();
        t.mark(cp(2));
        t.mark(cp(3)); // empty segment
        assert!(t.drain_ready().is_empty());
        t.delivered(c, Ok(())); // later segment acked first: nothing released
        assert!(t.drain_ready().is_empty());
        t.delivered(a, Ok(()));
        assert!(t.drain_ready().is_empty());
        t.delivered(b, Ok(()));
        assert_eq!(t.drain_ready(), vec![cp(1), cp(2), cp(3)]);
        assert_eq!(t.in_flight(), 0);
        // the open segment is still usable
        let d = t.begin();
        t.mark(cp(4));
        t.delivered(d, Ok(()));
        assert_eq!(t.drain_ready(), vec![cp(4)]);
    }

    #[test]
    fn failure_blocks_everything_after() {
        let t = Tracker::new();
        let a = t.begin();
        t.mark(cp(1));
        let b = t.begin();
        t.mark(cp(2));
        t.delivered(b, Ok(()));
        t.delivered(a, Err(Failure::transient("broker down")));
        assert!(t.drain_ready().is_empty());
        assert_eq!(t.failure(), Some(Failure::transient("broker down")));
    }
}
