//! Durable pipeline state in `state.dir`: the resume position, per-table snapshot state, and the
//! sequenceId lease.
//!
//! Invariants:
//! - Every write is atomic: write a temp file, fsync it, rename over the old one, fsync the
//!   directory. A crash leaves either the old or the new state, never a torn one.
//! - The state only changes by folding released markers (see `tracker`), so what it names was
//!   delivered to Kafka before it was written.
//! - `state.json` names its source (type, database, slot); starting against another source with
//!   the same directory is refused rather than silently resuming from a foreign position.

use crate::error::{Classify, ErrorClass};
use crate::event::{Marker, SnapshotStep};
use crate::position::SourcePosition;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            // a disk that fails a write is not something a retry loop should hide
            StoreError::Io { .. } => ErrorClass::Fatal,
            StoreError::Unusable { .. } | StoreError::Corrupt { .. } => ErrorClass::Setup,
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
    /// Fold a released marker. Returns whether anything changed. A checkpoint behind the
    /// stored position is refused (logged): positions only move forward.
    pub(crate) fn apply(&mut self, m: &Marker) -> bool {
        match m {
            Marker::Checkpoint {
                position,
                event_time_ms,
            } => {
                if let Some(cur) = &self.position {
                    match position.cmp_in_log(cur) {
                        Some(std::cmp::Ordering::Less) => {
                            tracing::warn!(stored = %cur, offered = %position, "a checkpoint behind the stored position was refused");
                            return false;
                        }
                        _ if cur == position => return false,
                        _ => {}
                    }
                }
                self.position = Some(position.clone());
                if *event_time_ms >= 0 {
                    self.event_time_ms = *event_time_ms;
                }
                true
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
                *t != before
            }
        }
    }
}

pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Open (creating it) a state directory, and prove it writable before anything else
    /// happens: a run must not create a slot it then cannot record.
    pub(crate) fn open(dir: &Path) -> Result<Store, StoreError> {
        let unusable = |err| StoreError::Unusable {
            dir: dir.to_path_buf(),
            err,
        };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        let probe = dir.join(".write-probe");
        std::fs::write(&probe, b"").map_err(unusable)?;
        let _ = std::fs::remove_file(&probe);
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    fn io(&self, e: std::io::Error) -> StoreError {
        StoreError::Io {
            dir: self.dir.clone(),
            err: e,
        }
    }

    pub(crate) fn load(&self) -> Result<Option<State>, StoreError> {
        let path = self.dir.join("state.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { path, err: e }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    pub(crate) fn save(&self, state: &State) -> Result<(), StoreError> {
        let body =
            serde_json::to_vec_pretty(state).map_err(|e| self.io(std::io::Error::other(e)))?;
        self.write_atomic("state.json", &body)
    }

    /// The sequenceId lease: no id at or above this ms was ever issued... below it may have been.
    pub(crate) fn load_lease(&self) -> Result<i64, StoreError> {
        match std::fs::read_to_string(self.dir.join("sequence.lease")) {
            Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.io(e)),
        }
    }

    pub(crate) fn save_lease(&self, ms: i64) -> Result<(), StoreError> {
        self.write_atomic("sequence.lease", ms.to_string().as_bytes())
    }

    fn write_atomic(&self, name: &str, body: &[u8]) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let dst = self.dir.join(name);
        (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dst)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })()
        .map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::Lsn;

    #[test]
    fn save_load_and_fold() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.load().unwrap(), None);
        let mut st = State {
            version: 1,
            source_id: "postgres:shop:rs".into(),
            ..Default::default()
        };
        let p = SourcePosition::Postgres { lsn: Lsn(99) };
        assert!(st.apply(&Marker::Checkpoint {
            position: p.clone(),
            event_time_ms: 5
        }));
        assert!(!st.apply(&Marker::Checkpoint {
            position: p.clone(),
            event_time_ms: 5
        }));
        // positions only move forward
        assert!(!st.apply(&Marker::Checkpoint {
            position: SourcePosition::Postgres { lsn: Lsn(98) },
            event_time_ms: 6
        }));
        assert_eq!(st.position, Some(p.clone()));
        let snap = |fence: Option<SourcePosition>, step| Marker::Snapshot {
            table: "public.t".into(),
            fence,
            step,
        };
        assert!(st.apply(&snap(
            Some(p.clone()),
            SnapshotStep::At(serde_json::Value::Null)
        )));
        assert_eq!(st.tables["public.t"].resume, Some(Resume::default()));
        assert!(st.apply(&snap(None, SnapshotStep::At(serde_json::json!(8)))));
        assert_eq!(st.tables["public.t"].snapshot_from, Some(p.clone()));
        assert!(st.apply(&snap(None, SnapshotStep::Done)));
        // a fresh state starts streaming at the first snapshot's point
        let mut fresh = State::default();
        let f = SourcePosition::Postgres { lsn: Lsn(7) };
        fresh.apply(&snap(
            Some(f.clone()),
            SnapshotStep::At(serde_json::Value::Null),
        ));
        assert_eq!(fresh.position, Some(f));
        assert_eq!(st.tables["public.t"].resume, None);
        // a state written before `resume` existed reads as complete
        let old: TableState = serde_json::from_str(r#"{"snapshot_from":null}"#).unwrap();
        assert_eq!(old.resume, None);
        s.save(&st).unwrap();
        assert_eq!(s.load().unwrap(), Some(st));
        s.save_lease(123).unwrap();
        assert_eq!(s.load_lease().unwrap(), 123);
        std::fs::write(d.path().join("state.json"), b"{").unwrap();
        assert!(matches!(s.load(), Err(StoreError::Corrupt { .. })));
    }
}
