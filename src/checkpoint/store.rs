//! Durable pipeline state: the resume position, per-table snapshot state, the sequenceId lease
//! and the MySQL schema history, in `state.dir` (`state.backend = "file"`) or in compacted
//! Kafka topics (`"kafka"`, see `checkpoint::kafka`). [`Store`] is the one face of both.
//!
//! Invariants:
//! - Every write is atomic and durable before it returns: file: write a temp file, fsync it,
//!   rename over the old one, fsync the directory (a crash leaves the old or the new state,
//!   never a torn one); Kafka: the broker acknowledged the record. Called from async code, a
//!   write blocks its own task only ([`blocking`]): the runtime's other tasks run on.
//! - The state only changes by folding released markers (see `tracker`), so what it names was
//!   delivered to Kafka before it was written.
//! - `state.json` names its source (type, database, slot); starting against another source with
//!   the same directory is refused rather than silently resuming from a foreign position.

pub(crate) use super::state::{Loaded, State, StoreError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The transactional.id of a connector's producer (`kafka.exactly_once`): derived from its
/// name, so a restarted or second process fences the older one.
pub(crate) fn transactional_id(cfg: &crate::config::Config) -> Option<String> {
    cfg.kafka.exactly_once.then(|| {
        format!(
            "rowstream-{}",
            cfg.state.connector.as_deref().unwrap_or_default()
        )
    })
}

pub(crate) struct Store {
    backend: Backend,
}

enum Backend {
    File {
        dir: PathBuf,
    },
    Kafka {
        kafka: Box<super::kafka::KafkaState>,
        /// what was last stored (this process is the connector's only writer)
        latest: std::sync::Mutex<Loaded>,
    },
}

/// Run blocking store I/O from async code without stalling the runtime's other tasks.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

const HISTORY_FILE: &str = "schema-history.jsonl";

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
            backend: Backend::File {
                dir: dir.to_path_buf(),
            },
        })
    }

    /// The store `state.backend` names. Kafka: the connector is claimed (see
    /// `checkpoint::kafka`), so open it once per process.
    pub(crate) async fn open_for(cfg: &crate::config::Config) -> Result<Store, StoreError> {
        match cfg.state.backend {
            crate::config::StateBackend::File => Store::open(&cfg.state.dir),
            crate::config::StateBackend::Kafka => {
                let (kafka, loaded) = super::kafka::KafkaState::open(cfg).await?;
                Ok(Store {
                    backend: Backend::Kafka {
                        kafka: Box::new(kafka),
                        latest: std::sync::Mutex::new(loaded),
                    },
                })
            }
        }
    }

    /// The stored state, read without writing to it or claiming anything (`verify`, while
    /// rowstream runs). File: `state.dir/state.json`, the directory left alone if missing.
    pub(crate) async fn peek(cfg: &crate::config::Config) -> Result<Option<State>, StoreError> {
        let (bytes, path) = match cfg.state.backend {
            crate::config::StateBackend::File => {
                let path = cfg.state.dir.join("state.json");
                match std::fs::read(&path) {
                    Ok(b) => (b, path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => {
                        return Err(StoreError::Io {
                            dir: cfg.state.dir.clone(),
                            err: e,
                        })
                    }
                }
            }
            crate::config::StateBackend::Kafka => {
                match super::kafka::KafkaState::peek(cfg).await? {
                    Some(b) => (b, PathBuf::from(&cfg.state.topic)),
                    None => return Ok(None),
                }
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt { path, err: e })
    }

    /// Where the state lives (for logs).
    pub(crate) fn describe(&self) -> String {
        match &self.backend {
            Backend::File { dir } => dir.display().to_string(),
            Backend::Kafka { kafka, .. } => kafka.describe(),
        }
    }

    /// Kafka backend: where a state record goes (topic, partition, key), for a transactional
    /// producer that writes it with the records it covers (`kafka.exactly_once`).
    pub(crate) fn state_record(&self) -> Option<(String, i32, String)> {
        match &self.backend {
            Backend::Kafka { kafka, .. } => Some(kafka.state_record()),
            Backend::File { .. } => None,
        }
    }

    /// A state stored by someone else on this store's behalf (a committed transaction).
    pub(crate) fn remember(&self, state: &State) {
        if let (Some(mut g), Ok(body)) = (self.latest(), serde_json::to_vec(state)) {
            g.state = Some(body);
        }
    }

    /// An error if another process took this connector over (Kafka backend).
    pub(crate) fn fenced(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Kafka { kafka, .. } => kafka.fenced().map_or(Ok(()), Err),
            Backend::File { .. } => Ok(()),
        }
    }

    fn latest(&self) -> Option<std::sync::MutexGuard<'_, Loaded>> {
        match &self.backend {
            Backend::Kafka { latest, .. } => Some(latest.lock().unwrap_or_else(|e| e.into_inner())),
            Backend::File { .. } => None,
        }
    }

    fn io(&self, e: std::io::Error) -> StoreError {
        StoreError::Io {
            dir: match &self.backend {
                Backend::File { dir } => dir.clone(),
                Backend::Kafka { .. } => PathBuf::new(),
            },
            err: e,
        }
    }

    pub(crate) fn load(&self) -> Result<Option<State>, StoreError> {
        let (bytes, path) = match &self.backend {
            Backend::File { dir } => {
                let path = dir.join("state.json");
                match std::fs::read(&path) {
                    Ok(b) => (b, path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(self.io(e)),
                }
            }
            Backend::Kafka { kafka, latest } => {
                let g = latest.lock().unwrap_or_else(|e| e.into_inner());
                match &g.state {
                    Some(b) => (b.clone(), PathBuf::from(kafka.describe())),
                    None => return Ok(None),
                }
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt { path, err: e })
    }

    pub(crate) fn save(&self, state: &State) -> Result<(), StoreError> {
        let body =
            serde_json::to_vec_pretty(state).map_err(|e| self.io(std::io::Error::other(e)))?;
        match &self.backend {
            Backend::File { .. } => self.write_atomic("state.json", &body),
            Backend::Kafka { kafka, .. } => {
                blocking(|| kafka.save_state(&body))?;
                if let Some(mut g) = self.latest() {
                    g.state = Some(body);
                }
                Ok(())
            }
        }
    }

    /// The sequenceId lease: no id at or above this ms was ever issued... below it may have been.
    pub(crate) fn load_lease(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::File { dir } => match std::fs::read_to_string(dir.join("sequence.lease")) {
                Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(self.io(e)),
            },
            Backend::Kafka { latest, .. } => {
                Ok(latest.lock().unwrap_or_else(|e| e.into_inner()).lease)
            }
        }
    }

    pub(crate) fn save_lease(&self, ms: i64) -> Result<(), StoreError> {
        match &self.backend {
            Backend::File { .. } => self.write_atomic("sequence.lease", ms.to_string().as_bytes()),
            Backend::Kafka { kafka, .. } => {
                blocking(|| kafka.save_lease(ms))?;
                if let Some(mut g) = self.latest() {
                    g.lease = g.lease.max(ms);
                }
                Ok(())
            }
        }
    }

    /// The schema history entries, oldest first (a torn last line of the file is skipped by
    /// the reader: the DDL is replayed).
    pub(crate) fn history(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::File { dir } => match std::fs::read(dir.join(HISTORY_FILE)) {
                Ok(b) => Ok(b
                    .split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
                Err(e) => Err(self.io(e)),
            },
            Backend::Kafka { latest, .. } => Ok(latest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .history
                .clone()),
        }
    }

    /// Append schema history entries in order, made durable together (`key` names each
    /// uniquely: position and table).
    pub(crate) fn history_append(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::File { dir } => {
                let mut lines = Vec::new();
                for (_, entry) in entries {
                    lines.extend_from_slice(entry);
                    lines.push(b'\n');
                }
                blocking(|| -> std::io::Result<()> {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(HISTORY_FILE))?;
                    f.write_all(&lines)?;
                    f.sync_data()
                })
                .map_err(|e| self.io(e))
            }
            Backend::Kafka { kafka, .. } => blocking(|| kafka.history_append(entries)),
        }
    }

    /// Forget the whole schema history.
    pub(crate) fn history_reset(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::File { dir } => match std::fs::remove_file(dir.join(HISTORY_FILE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(e)),
                _ => Ok(()),
            },
            Backend::Kafka { kafka, .. } => blocking(|| kafka.history_reset()),
        }
    }

    fn write_atomic(&self, name: &str, body: &[u8]) -> Result<(), StoreError> {
        let Backend::File { dir } = &self.backend else {
            return Err(self.io(std::io::Error::other("not a file store")));
        };
        let tmp = dir.join(format!(".{name}.tmp"));
        let dst = dir.join(name);
        // an fsync here takes 8 ms typically and over 100 ms at times on a busy disk: never on
        // a runtime thread the stream or the delivery path may be waiting for
        blocking(|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dst)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .map_err(|e| self.io(e))
    }
}

/// `rowstream migrate-state`: copy the file state of `state.dir` into the Kafka state topics
/// of `state.connector` (claiming it). Refuses a connector that already has a state in Kafka
/// unless `force`, and a directory without a state.
pub(crate) async fn migrate(
    cfg: &crate::config::Config,
    force: bool,
) -> Result<String, crate::error::Error> {
    use crate::error::Error;
    if cfg.state.backend != crate::config::StateBackend::Kafka {
        return Err(Error::setup(
            "migrate-state writes to the Kafka state topics, and this config has state.backend = \"file\"",
            "set state.backend = \"kafka\" and state.connector in the config (state.dir still names the directory to read)",
        ));
    }
    let dir = &cfg.state.dir;
    if !dir.join("state.json").exists() {
        return Err(Error::setup(
            format!("{} holds no state.json", dir.display()),
            "point state.dir at the directory `rowstream run` used",
        ));
    }
    let file = Store::open(dir)?;
    let state = file.load()?.unwrap_or_default();
    let lease = file.load_lease()?;
    let history = file.history()?;
    let kafka = Store::open_for(cfg).await?;
    if kafka.load()?.is_some() && !force {
        return Err(Error::setup(
            format!(
                "connector `{}` already has a state in {}",
                cfg.state.connector.as_deref().unwrap_or(""),
                kafka.describe()
            ),
            "pick another state.connector, or pass --force to replace it",
        ));
    }
    kafka.save(&state)?;
    kafka.save_lease(lease)?;
    kafka.history_reset()?;
    // a history key only has to be unique per entry: its place in the file
    let entries: Vec<(String, Vec<u8>)> = (history.iter().enumerate())
        .map(|(i, entry)| (format!("migrated/{i:08}"), entry.clone()))
        .collect();
    kafka.history_append(&entries)?;
    Ok(format!(
        "moved the state of {} (position {}, {} table(s), {} schema history entries) to {}",
        dir.display(),
        state
            .position
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "none".into()),
        state.tables.len(),
        history.len(),
        kafka.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::state::{Resume, TableState};
    use crate::error::{Classify, ErrorClass};
    use crate::model::event::{Marker, SnapshotStep};
    use crate::model::position::Lsn;
    use crate::model::position::SourcePosition;

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
        assert!(st
            .apply(&Marker::Checkpoint {
                position: p.clone(),
                event_time_ms: 5
            })
            .unwrap());
        assert!(!st
            .apply(&Marker::Checkpoint {
                position: p.clone(),
                event_time_ms: 5
            })
            .unwrap());
        // positions only move forward: one that goes back stops the run, naming both
        let e = st
            .apply(&Marker::Checkpoint {
                position: SourcePosition::Postgres { lsn: Lsn(98) },
                event_time_ms: 6,
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::Backwards { .. }));
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert!(
            e.to_string()
                .contains("lsn 0/62 was delivered after lsn 0/63 was stored"),
            "{e}"
        );
        assert_eq!(st.position, Some(p.clone()));
        let snap = |fence: Option<SourcePosition>, step| Marker::Snapshot {
            table: "public.t".into(),
            fence,
            step,
        };
        assert!(st
            .apply(&snap(
                Some(p.clone()),
                SnapshotStep::At(serde_json::Value::Null)
            ))
            .unwrap());
        assert_eq!(st.tables["public.t"].resume, Some(Resume::default()));
        assert!(st
            .apply(&snap(None, SnapshotStep::At(serde_json::json!(8))))
            .unwrap());
        assert_eq!(st.tables["public.t"].snapshot_from, Some(p.clone()));
        assert!(st.apply(&snap(None, SnapshotStep::Done)).unwrap());
        // a fresh state starts streaming at the first snapshot's point
        let mut fresh = State::default();
        let f = SourcePosition::Postgres { lsn: Lsn(7) };
        fresh
            .apply(&snap(
                Some(f.clone()),
                SnapshotStep::At(serde_json::Value::Null),
            ))
            .unwrap();
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
