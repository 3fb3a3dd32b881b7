//! `rowstream worker --config worker.toml`: one process running many connectors, added,
//! replaced and deleted over the Kafka Connect REST API (`rest`), each one today's pipeline
//! with its state in Kafka under its own name.
//!
//! Invariants:
//! - Connector configs live in a compacted topic (`worker.config_topic`, key
//!   `connector/<name>`, a tombstone when deleted), written (and acknowledged) before the
//!   change takes effect; a restarted worker reads them all back and starts every connector.
//! - Config changes are applied one at a time, in the order they arrive.
//! - A connector's target (paused, stopped, running) is kept beside its config (key
//!   `target/<name>`), so a restarted worker keeps a paused connector paused.
//! - A connector that fails for a reason a retry cannot fix is FAILED (with the error and its
//!   fix in its status) and waits for a restart or resume over REST; the worker keeps running
//!   its other connectors. SIGTERM stops every connector cleanly (positions stored).
//!
//! Distributed mode (several workers sharing connectors through Kafka's group protocol) is not
//! built yet: one worker runs every connector of its config topic.

use crate::admin::{Admin, ConfigChange};
use crate::checkpoint::log::{ensure_topics, TopicLog};
use crate::config::{Config, ConfigError, WorkerConfig, RESERVED};
use crate::error::Error;
use crate::run::{Control, Target};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A connector's config and its stored target.
type Stored = BTreeMap<String, (Map<String, Value>, Option<Target>)>;

/// A running connector: its stop signal and its supervisor task.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) async fn worker(cfg: WorkerConfig) -> Result<(), Error> {
    let mut sigterm = crate::run::sigterm();
    let kafka = cfg.kafka();
    let topic = cfg.worker.config_topic.clone();
    ensure_topics(&kafka, &[&topic]).await.map_err(|e| {
        Error::setup(
            format!("the connector config topic {topic}: {e}"),
            "check kafka.brokers and [kafka.properties] of worker.toml, or create the topic (cleanup.policy=compact)",
        )
    })?;
    let log = Arc::new(
        TopicLog::new(&kafka).map_err(|e| Error::setup(e, "check [kafka] of worker.toml"))?,
    );
    let stored = tokio::task::block_in_place(|| read_configs(&log, &topic, &cfg.id()))?;
    let (tx, mut rx) = mpsc::channel::<ConfigChange>(16);
    let mut admin = Admin::default();
    admin.changes = Some(tx);
    crate::admin::serve(&cfg.worker.listen, admin.clone(), cfg.worker.token.clone()).await?;
    let mut w = Worker {
        cfg,
        admin,
        log,
        topic,
        running: BTreeMap::new(),
    };
    for (name, (flat, target)) in stored {
        match w.validate(&name, &flat) {
            Ok(c) => w.start(c, target),
            Err(problems) => {
                tracing::error!(connector = %name, problems = %problems, "stored connector config is invalid: not started; replace it with PUT /connectors/{name}/config")
            }
        }
    }
    tracing::info!(worker = %w.cfg.id(), connectors = w.running.len(), "worker running");
    loop {
        tokio::select! {
            _ = sigterm.wait_for(|s| *s) => break,
            Some(change) = rx.recv() => {
                let r = w.apply(&change.name, change.config, change.create_only).await;
                let _ = change.answer.send(r);
            }
        }
    }
    let names: Vec<String> = w.running.keys().cloned().collect();
    for name in names {
        w.stop(&name).await;
    }
    Ok(())
}

/// Every stored connector config: read through an acknowledged tombstone of an unused key.
fn read_configs(log: &TopicLog, topic: &str, worker_id: &str) -> Result<Stored, Error> {
    let fail = |e: String| {
        Error::setup(
            format!("cannot read the connector configs in {topic}: {e}"),
            "check that the broker runs and worker.config_topic",
        )
    };
    let end = log
        .write(topic, 0, &format!("end/{worker_id}"), None)
        .map_err(fail)?;
    let mut configs = BTreeMap::new();
    let mut targets = BTreeMap::new();
    log.read_through(topic, 0, end, "", &mut |_, key, value| {
        if let Some(name) = key.strip_prefix("connector/") {
            match value.and_then(|v| serde_json::from_slice::<Map<String, Value>>(v).ok()) {
                Some(flat) => configs.insert(name.to_string(), flat),
                None => configs.remove(name),
            };
        } else if let Some(name) = key.strip_prefix("target/") {
            let t = value.and_then(|v| Target::parse(&String::from_utf8_lossy(v)));
            targets.insert(name.to_string(), t);
        }
    })
    .map_err(fail)?;
    Ok(configs
        .into_iter()
        .map(|(name, flat)| {
            let t = targets.get(&name).copied().flatten();
            (name, (flat, t))
        })
        .collect())
}

struct Worker {
    cfg: WorkerConfig,
    admin: Admin,
    log: Arc<TopicLog>,
    topic: String,
    running: BTreeMap<String, Running>,
}

impl Worker {
    /// The connector config `flat` would give `name`, or every problem (one per line).
    fn validate(&self, name: &str, flat: &Map<String, Value>) -> Result<Config, String> {
        if name.is_empty() || name.contains('/') {
            return Err(format!("connector name `{name}`: empty or holding `/`"));
        }
        Config::from_flat(flat, self.cfg.base(name), RESERVED).map_err(|e| match e {
            ConfigError::Invalid(p) => p.join("\n"),
            other => other.to_string(),
        })
    }

    /// Create, replace or (config None) delete connector `name`; Ok(true) when it was created.
    async fn apply(
        &mut self,
        name: &str,
        config: Option<Map<String, Value>>,
        create_only: bool,
    ) -> Result<bool, (StatusCode, String)> {
        let exists = self.running.contains_key(name);
        let Some(flat) = config else {
            if !exists {
                return Err((StatusCode::NOT_FOUND, format!("Connector {name} not found")));
            }
            self.store(name, None)?;
            self.stop(name).await;
            let _ = tokio::task::block_in_place(|| {
                self.log
                    .write(&self.topic, 0, &format!("target/{name}"), None)
            });
            tracing::info!(connector = %name, "connector deleted");
            return Ok(false);
        };
        if exists && create_only {
            return Err((
                StatusCode::CONFLICT,
                format!("Connector {name} already exists"),
            ));
        }
        let cfg = self.validate(name, &flat).map_err(|p| {
            (
                StatusCode::BAD_REQUEST,
                format!("Connector configuration is invalid:\n{p}"),
            )
        })?;
        let body =
            serde_json::to_vec(&flat).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        self.store(name, Some(&body))?;
        if exists {
            self.stop(name).await;
        }
        self.start(cfg, None);
        tracing::info!(connector = %name, created = !exists, "connector config applied");
        Ok(!exists)
    }

    /// Write connector `name`'s config record (None: its tombstone), acknowledged.
    fn store(&self, name: &str, body: Option<&[u8]>) -> Result<(), (StatusCode, String)> {
        tokio::task::block_in_place(|| {
            self.log
                .write(&self.topic, 0, &format!("connector/{name}"), body)
                .map(|_| ())
                .map_err(|e| {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("cannot store the config in {}: {e}", self.topic),
                    )
                })
        })
    }

    /// Start a connector, held at `target` if one was stored.
    fn start(&mut self, cfg: Config, target: Option<Target>) {
        let control = Arc::new(Control::new(cfg, self.cfg.id()));
        if let Some(t) = target {
            control.set_target(t);
        }
        let name = control.name.clone();
        self.admin.add(control.clone());
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(keep_target(
            control.clone(),
            self.log.clone(),
            self.topic.clone(),
            stop_rx.clone(),
        ));
        let task = tokio::spawn(supervise(control, stop_rx));
        self.running.insert(name, Running { stop, task });
    }

    /// Stop connector `name` (its position stored) and forget it.
    async fn stop(&mut self, name: &str) {
        if let Some(r) = self.running.remove(name) {
            let _ = r.stop.send(true);
            if tokio::time::timeout(Duration::from_secs(60), r.task)
                .await
                .is_err()
            {
                tracing::warn!(connector = %name, "connector did not stop within 60 s");
            }
        }
        self.admin.remove(name);
    }
}

/// Store the connector's target whenever REST changes it, so a restarted worker keeps it.
async fn keep_target(
    control: Arc<Control>,
    log: Arc<TopicLog>,
    topic: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut wanted = control.wanted();
    let mut last = wanted.borrow_and_update().0;
    loop {
        tokio::select! {
            r = wanted.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let t = wanted.borrow_and_update().0;
        if t == last {
            continue;
        }
        last = t;
        let key = format!("target/{}", control.name);
        let r =
            tokio::task::block_in_place(|| log.write(&topic, 0, &key, Some(t.state().as_bytes())));
        if let Err(e) = r {
            tracing::warn!(connector = %control.name, error = %e, "cannot store the connector's target: a restarted worker would not keep it");
        }
    }
}

/// Run one connector until `stop`; a failure a retry cannot fix leaves it FAILED until it is
/// restarted or resumed over REST.
async fn supervise(control: Arc<Control>, mut stop: watch::Receiver<bool>) {
    loop {
        let r = crate::run::run_connector(&control, stop.clone(), false).await;
        if *stop.borrow() {
            return;
        }
        let Err(e) = r else {
            return;
        };
        tracing::error!(connector = %control.name, error = %e, "connector failed: fix the cause, then POST /connectors/{}/restart", control.name);
        control.set_state("FAILED", Some(e.to_string()));
        let mut wanted = control.wanted();
        wanted.borrow_and_update();
        tokio::select! {
            _ = wanted.changed() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
