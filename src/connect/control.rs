//! The vocabulary the runtime and its HTTP face share: what a connector is asked to be
//! ([`Target`]), the connector as REST sees and steers it ([`Control`]), the running pipeline's
//! handles, the connectors a process runs ([`Admin`]), and the requests REST hands to a worker
//! ([`ConfigChange`], [`Steer`]).
//!
//! Invariants: this file holds state and its accessors, no I/O and no policy: `run` and
//! `worker` act on it, `http` reads and steers it; it imports nothing of `connect`.

use crate::checkpoint::store::Store;
use crate::checkpoint::tracker::Tracker;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::source::SnapshotRequest;
use axum::http::StatusCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// What the connector is asked to be (REST: pause, resume, stop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Running,
    Paused,
    Stopped,
}

impl Target {
    /// The target Kafka Connect's state name stands for (`RUNNING`, `PAUSED`, `STOPPED`).
    pub(crate) fn parse(state: &str) -> Option<Target> {
        [Target::Running, Target::Paused, Target::Stopped]
            .into_iter()
            .find(|t| t.state().name() == state)
    }

    /// The state a connector held at this target is in.
    pub(crate) fn state(self) -> ConnectorState {
        match self {
            Target::Running => ConnectorState::Running,
            Target::Paused => ConnectorState::Paused,
            Target::Stopped => ConnectorState::Stopped,
        }
    }
}

/// A connector's state, as Kafka Connect names it in its status (`RUNNING`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum ConnectorState {
    /// not started yet, or (as another worker sees it) its worker is gone
    Unassigned,
    Running,
    Paused,
    Stopped,
    /// stopped by an error that needs a person (a restart over REST tries again)
    Failed,
    /// a restart was asked for and is under way
    Restarting,
}

impl ConnectorState {
    /// Kafka Connect's name of the state.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ConnectorState::Unassigned => "UNASSIGNED",
            ConnectorState::Running => "RUNNING",
            ConnectorState::Paused => "PAUSED",
            ConnectorState::Stopped => "STOPPED",
            ConnectorState::Failed => "FAILED",
            ConnectorState::Restarting => "RESTARTING",
        }
    }
}

impl std::fmt::Display for ConnectorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The connector as REST sees and steers it: its config, the target it is asked for and a
/// restart count (each increment restarts it), and the state it is in.
pub(crate) struct Control {
    pub(crate) name: String,
    pub(crate) cfg: Config,
    /// the process running it (Connect's `worker_id`)
    pub(crate) worker_id: String,
    pub(crate) wanted: watch::Sender<(Target, u64)>,
    /// Kafka Connect's state (RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED) and the error
    state: std::sync::Mutex<(ConnectorState, Option<String>)>,
    pub(crate) store: std::sync::OnceLock<Arc<Store>>,
    /// held while the store is being opened ([`Control::open_store`]): one claim per process
    opening: tokio::sync::Mutex<()>,
    /// the running pipeline's handles (between runs: none)
    handles: std::sync::Mutex<Option<Handles>>,
    /// counters kept across runs
    pub(crate) metrics: Arc<Metrics>,
    /// told of every state change (a worker publishes the new state at once)
    pub(crate) state_changed: Arc<tokio::sync::Notify>,
}

impl Control {
    pub(crate) fn new(cfg: Config, worker_id: String) -> Control {
        Control {
            name: cfg
                .state
                .connector
                .clone()
                .unwrap_or_else(|| "rowstream".into()),
            cfg,
            worker_id,
            wanted: watch::channel((Target::Running, 0)).0,
            state: std::sync::Mutex::new((ConnectorState::Unassigned, None)),
            store: Default::default(),
            opening: Default::default(),
            handles: Default::default(),
            metrics: Default::default(),
            state_changed: Default::default(),
        }
    }

    /// The running pipeline's handles, if a run is under way.
    pub(crate) fn handles(&self) -> Option<Handles> {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_handles(&self, h: Option<Handles>) {
        *self.handles.lock().unwrap_or_else(|e| e.into_inner()) = h;
    }

    pub(crate) fn target(&self) -> Target {
        self.wanted.borrow().0
    }

    /// Ask for `target` (pause, resume, stop).
    pub(crate) fn set_target(&self, target: Target) {
        self.wanted.send_modify(|w| w.0 = target);
    }

    /// Restart the pipeline (from the stored position).
    pub(crate) fn restart(&self) {
        self.wanted.send_modify(|w| w.1 += 1);
    }

    pub(crate) fn state(&self) -> (ConnectorState, Option<String>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Follow what the connector is asked for.
    pub(crate) fn wanted(&self) -> watch::Receiver<(Target, u64)> {
        self.wanted.subscribe()
    }

    pub(crate) fn set_state(&self, state: ConnectorState, trace: Option<String>) {
        self.metrics
            .up
            .store((state == ConnectorState::Running) as i64, Ordering::Relaxed);
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (state, trace);
        self.state_changed.notify_one();
    }

    /// The connector's state store, once opened.
    pub(crate) fn store(&self) -> Option<&Arc<Store>> {
        self.store.get()
    }

    /// The connector's state store, opened (with the Kafka backend: claimed) the first time it
    /// is needed: by the first run, or by a KIP-875 offsets call on a connector that has been
    /// STOPPED since it was created, which otherwise holds no client at all.
    pub(crate) async fn open_store(
        &self,
    ) -> Result<Arc<Store>, crate::checkpoint::state::StoreError> {
        let _one = self.opening.lock().await;
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        let s = Arc::new(Store::open_for(&self.cfg).await?);
        let _ = self.store.set(s.clone());
        Ok(s)
    }
}

/// The running pipeline's handles.
#[derive(Clone)]
pub(crate) struct Handles {
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) snapshots: mpsc::Sender<SnapshotRequest>,
}

/// What the endpoints read: the connectors this process runs (their config, state, controls
/// and the current run's handles), by name, and the token changing calls need.
#[derive(Clone, Default)]
pub(crate) struct Admin {
    connectors: Arc<Mutex<std::collections::BTreeMap<String, Arc<Control>>>>,
    /// a worker's every connector, wherever it runs, with its config as submitted and its
    /// stored target
    known: Arc<Mutex<std::collections::BTreeMap<String, Known>>>,
    /// the last status record of connectors running on other workers of the group, with
    /// when it was read
    remote: Arc<Mutex<std::collections::BTreeMap<String, (serde_json::Value, Instant)>>>,
    /// distributed: the ids of the workers the group has as members, and when the list was
    /// asked for (None: not known yet, or not distributed)
    members: Arc<Mutex<Option<Members>>>,
    pub(crate) token: Option<String>,
    /// the Kafka cluster's id (`GET /`), once a worker has asked the cluster for it
    pub(crate) cluster_id: Arc<std::sync::OnceLock<String>>,
    /// A worker takes connector configs over REST (create, replace, delete); `run` does not.
    pub(crate) changes: Option<mpsc::Sender<ConfigChange>>,
}

/// The ids of a group's members, and when the list was asked for.
type Members = (std::collections::BTreeSet<String>, Instant);

/// A connector as every worker of a group knows it: its config as submitted (string values,
/// with its `name`) and the target stored for it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Known {
    pub(crate) config: serde_json::Map<String, serde_json::Value>,
    pub(crate) target: Option<Target>,
}

/// A connector config to create, replace or (None) delete, from REST to the worker; answered
/// with whether it was created, or an HTTP status and the problems.
pub(crate) struct ConfigChange {
    pub(crate) name: String,
    /// pause / resume / stop / restart instead of a config (reaches the connector on
    /// whichever worker runs it)
    pub(crate) steer: Option<Steer>,
    pub(crate) config: Option<serde_json::Map<String, serde_json::Value>>,
    /// refuse (409) when the connector exists (`POST /connectors`)
    pub(crate) create_only: bool,
    /// KIP-980: the target a created connector starts held at (`initial_state`)
    pub(crate) initial: Option<Target>,
    pub(crate) answer: tokio::sync::oneshot::Sender<Result<bool, (StatusCode, String)>>,
}

/// A request to steer a connector.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Steer {
    Target(Target),
    Restart,
}

impl Steer {
    /// Connect's refusal when connector `name` is unknown.
    pub(crate) fn unknown(self, name: &str) -> String {
        match self {
            Steer::Target(_) => format!("Unknown connector {name}"),
            Steer::Restart => format!("Unknown connector: {name}"),
        }
    }
}

impl Admin {
    /// Every connector of a worker, with its config as submitted and its target (listing,
    /// and what any worker answers for a connector, wherever it runs).
    pub(crate) fn set_known(&self, known: std::collections::BTreeMap<String, Known>) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = known;
    }

    /// Connector `name` as this worker knows it (a worker's connectors; `run` knows none).
    pub(crate) fn known(&self, name: &str) -> Option<Known> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The workers the group has as members, listed from a request sent at `asked`.
    pub(crate) fn set_members(&self, ids: std::collections::BTreeSet<String>, asked: Instant) {
        *self.members.lock().unwrap_or_else(|e| e.into_inner()) = Some((ids, asked));
    }

    /// Is worker `id` the first member of the group (by id)?
    pub(crate) fn is_first_member(&self, id: &str) -> bool {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(m, _)| m.first().map(String::as_str) == Some(id))
    }

    /// Is the worker of a status record read at `read` gone from the group? Only a member
    /// list asked for after the record was read can tell (a worker writes its statuses while
    /// a member, so an older list may not have it yet).
    fn is_gone(&self, status: &serde_json::Value, read: Instant) -> bool {
        let Some(id) = status["worker_id"].as_str().filter(|w| !w.is_empty()) else {
            return false;
        };
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(m, asked)| *asked > read && !m.contains(id))
    }

    /// The status another worker wrote for connector `name`, read at `read` (None: forget
    /// it).
    pub(crate) fn set_remote(&self, name: &str, status: Option<serde_json::Value>, read: Instant) {
        let mut g = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        match status {
            Some(s) => g.insert(name.to_string(), (s, read)),
            None => g.remove(name),
        };
    }

    /// The status record of connector `name` running on another worker, if it is known, and
    /// whether its worker is gone from the group (its connectors are then UNASSIGNED).
    pub(crate) fn remote_gone(&self, name: &str) -> Option<Option<(serde_json::Value, bool)>> {
        let known = self.remote(name)?;
        Some(known.map(|(st, read)| {
            let gone = self.is_gone(&st, read);
            (st, gone)
        }))
    }

    /// Every status record known, by connector.
    pub(crate) fn remote_all(&self) -> Vec<(String, serde_json::Value)> {
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, (st, _))| (n.clone(), st.clone()))
            .collect()
    }

    /// The status record of connector `name` running on another worker, if it is known.
    pub(crate) fn remote(&self, name: &str) -> Option<Option<(serde_json::Value, Instant)>> {
        if !self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
        {
            return None;
        }
        Some(
            self.remote
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned(),
        )
    }

    pub(crate) fn add(&self, c: Arc<Control>) {
        self.lock().insert(c.name.clone(), c);
    }

    pub(crate) fn remove(&self, name: &str) -> Option<Arc<Control>> {
        self.lock().remove(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Arc<Control>>> {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connector `name`.
    pub(crate) fn connector(&self, name: &str) -> Option<Arc<Control>> {
        self.lock().get(name).cloned()
    }

    /// Every connector's name (a worker's: wherever it runs).
    pub(crate) fn names(&self) -> Vec<String> {
        let mut all: std::collections::BTreeSet<String> = self.lock().keys().cloned().collect();
        all.extend(
            self.known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        all.into_iter().collect()
    }

    /// The connector the name-less endpoints (`/healthz`, `/metrics`, `/snapshot`) are about:
    /// the only one (`rowstream run`).
    pub(crate) fn only(&self) -> Option<Arc<Control>> {
        let g = self.lock();
        match g.len() {
            1 => g.values().next().cloned(),
            _ => None,
        }
    }
}
