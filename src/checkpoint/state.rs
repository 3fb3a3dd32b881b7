//! What the state is: the resume position, per-table snapshot state and how a stored state
//! folds the markers the tracker releases ([`State`]); what a store holds when it opens
//! ([`Loaded`]); and what can go wrong storing it ([`StoreError`]). Both backends
//! (`store`'s file backend, `kafka`) build on this file; it knows neither.
//!
//! Invariants:
//! - The state only changes by folding released markers ([`State::apply`]), so what it names
//!   was delivered to Kafka before it was written.
//! - Positions only move forward: a checkpoint behind the stored position is an error, never
//!   stored and never skipped past quietly.

use crate::error::{Classify, ErrorClass};
use crate::model::event::{Marker, SnapshotStep};
use crate::model::position::SourcePosition;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    // the causes are part of the text (not `source`s), so a printed chain says them once
    #[error("state dir {dir}: {err}")]
    Io { dir: PathBuf, err: std::io::Error },
    #[error("state dir {dir} cannot be created or written: {err}\n  fix: set state.dir to a directory rowstream can create and write")]
    Unusable { dir: PathBuf, err: std::io::Error },
    #[error(
        "state file {path} is not valid ({err}); move it away to start over (this re-snapshots)"
    )]
    Corrupt {
        path: PathBuf,
        err: serde_json::Error,
    },
    /// The Kafka state topics could not be written or read (the broker may be back later).
    #[error("state in Kafka: {0}")]
    Kafka(String),
    /// A delivered checkpoint lies before the stored one: positions only move forward, so
    /// something labelled a position wrongly; stopping keeps the stored position (no change is
    /// lost, some may be sent again) instead of skipping or re-reading a stretch of the log.
    #[error("the source position went backwards: {offered} was delivered after {stored} was stored\n  fix: this is a bug in rowstream (report it with the log); the stored position is kept, so the next start resumes from it and nothing is lost")]
    Backwards { stored: String, offered: String },
    #[error("another process claimed connector `{connector}` ({by}); this one stops so that only one advances its position\n  fix: run each connector (state.connector) in one process at a time")]
    Fenced { connector: String, by: String },
}

impl StoreError {
    /// Is `e` (or one of its causes) a claim by another process ([`StoreError::Fenced`])?
    pub(crate) fn is_fenced(e: &crate::error::Error) -> bool {
        e.chain().any(|c| {
            matches!(
                c.downcast_ref::<StoreError>(),
                Some(StoreError::Fenced { .. })
            )
        })
    }
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            // a disk that fails a write is not something a retry loop should hide
            StoreError::Io { .. } | StoreError::Backwards { .. } => ErrorClass::Fatal,
            StoreError::Unusable { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Fenced { .. } => ErrorClass::Setup,
            StoreError::Kafka(_) => ErrorClass::Transient,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableState {
    /// Changes committed before this position are covered by the table's snapshot.
    pub(crate) snapshot_from: Option<SourcePosition>,
    /// Set while the table's snapshot is unfinished: where it resumes. Absent: complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resume: Option<Resume>,
}

/// Where an unfinished snapshot resumes: after `cursor` (the source's own, `null` = the start).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Resume {
    pub(crate) cursor: serde_json::Value,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) version: u32,
    /// `postgres:<db>:<slot>`; guards against reusing a directory for another source.
    pub(crate) source_id: String,
    /// Resume after this position; None until the first checkpoint.
    pub(crate) position: Option<SourcePosition>,
    /// Commit time (ms) of `position`.
    pub(crate) event_time_ms: i64,
    /// Tables whose snapshot started (complete unless `resume` is set), by pattern name.
    pub(crate) tables: BTreeMap<String, TableState>,
    /// Set (not stored) when this run resumes the state on another server of the same
    /// replication topology than the one that wrote it (MySQL failover by GTID): its id.
    #[serde(skip)]
    pub(crate) moved_from: Option<String>,
}

impl State {
    /// The state of a source nothing was delivered from yet (the current format version).
    pub(crate) fn fresh(source_id: String) -> State {
        State {
            version: 1,
            source_id,
            event_time_ms: -1,
            ..Default::default()
        }
    }

    /// Fold a released marker. Returns whether anything changed. A checkpoint behind the
    /// stored position is an error: positions only move forward, and one that seems to go back
    /// was labelled wrongly (storing it would resume in the wrong place, refusing it quietly
    /// would let the stored position fall behind for good).
    pub(crate) fn apply(&mut self, m: &Marker) -> Result<bool, StoreError> {
        match m {
            Marker::Checkpoint {
                position,
                event_time_ms,
            } => {
                if let Some(cur) = &self.position {
                    match position.cmp_in_log(cur) {
                        Some(std::cmp::Ordering::Less) => {
                            return Err(StoreError::Backwards {
                                stored: cur.to_string(),
                                offered: position.to_string(),
                            });
                        }
                        _ if cur == position => return Ok(false),
                        _ => {}
                    }
                }
                self.position = Some(position.clone());
                if *event_time_ms >= 0 {
                    self.event_time_ms = *event_time_ms;
                }
                Ok(true)
            }
            Marker::Snapshot { table, fence, step } => {
                // nothing stored yet: the stream starts at the snapshot's point, also after a
                // crash in the middle of the snapshot
                if self.position.is_none() {
                    self.position = fence.clone();
                }
                let t = self.tables.entry(table.clone()).or_default();
                let before = t.clone();
                if let Some(f) = fence {
                    t.snapshot_from = Some(f.clone());
                }
                t.resume = match step {
                    SnapshotStep::At(c) => Some(Resume { cursor: c.clone() }),
                    SnapshotStep::Done => None,
                };
                Ok(*t != before)
            }
        }
    }
}

/// What a store holds when it opens (the Kafka backend reads it all at once).
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) state: Option<Vec<u8>>,
    pub(crate) lease: i64,
    /// schema history entries, one JSON document each
    pub(crate) history: Vec<Vec<u8>>,
}
