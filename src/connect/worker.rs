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
//! - Distributed mode (`worker.group_id`): every worker of the group follows the config topic
//!   (configs, targets, statuses are records there) and joins a Kafka consumer group over the
//!   topic `<group_id>-connectors` ([`PARTITIONS`] partitions). A connector belongs to the
//!   partition of its name (FNV-1a) and runs on the worker that partition is assigned to; when
//!   a worker dies or leaves, the group coordinator hands its partitions to the others, which
//!   start those connectors from their stored positions (the Kafka state claim fences a
//!   zombie; a Postgres slot still held is waited for). Membership is Kafka's, never ours.
//! - Each worker writes its connectors' states (`status/<name>`) to the config topic, so any
//!   worker answers the status of any connector.

use crate::checkpoint::log::{ensure_topics, TopicLog};
use crate::config::{Config, ConfigError, WorkerConfig, RESERVED};
use crate::connect::control::{Admin, ConfigChange, Known};
use crate::connect::control::{ConnectorState, Control, Target};
use crate::error::Error;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::worker";

/// Every connector's config (as submitted) and its stored target.
type Stored = BTreeMap<String, Known>;

/// Partitions of the group's connectors topic: how many slots connectors hash into.
pub(crate) const PARTITIONS: i32 = 12;

/// What the worker's background threads report.
enum Event {
    /// the partitions of the connectors topic this worker now owns
    Owned(BTreeSet<i32>),
    /// a record of the config topic written by any worker (value None: a tombstone), and
    /// when it was read
    Record(String, Option<Vec<u8>>, std::time::Instant),
    /// the ids of the group's members, listed from a request sent at the instant given
    Members(BTreeSet<String>, std::time::Instant),
}

/// The partition (slot) of connector `name`.
fn slot(name: &str) -> i32 {
    let mut h: u32 = 0x811c9dc5;
    for b in name.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    (h % PARTITIONS as u32) as i32
}

/// A running connector: its stop signal and its supervisor task.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) async fn worker(cfg: WorkerConfig) -> Result<(), Error> {
    let mut sigterm = crate::connect::run::sigterm();
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
    let mut admin = Admin::default();
    let (stored, end) =
        tokio::task::block_in_place(|| read_configs(&log, &topic, &cfg.id(), &admin))?;
    // statuses an earlier run of this worker (same id) left behind: it runs nothing yet
    tokio::task::block_in_place(|| {
        unassign_own(&log, &topic, &cfg.id(), &cfg.advertised(), &admin)
    });
    let (tx, mut rx) = mpsc::channel::<ConfigChange>(16);
    admin.changes = Some(tx);
    if let Some(id) = tokio::task::block_in_place(|| cluster_id(&kafka)) {
        let _ = admin.cluster_id.set(id);
    }
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let distributed = cfg.worker.group_id.clone();
    let stop_threads = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(group) = &distributed {
        let connectors_topic = format!("{group}-connectors");
        ensure_partitioned(&kafka, &connectors_topic).await?;
        follow_config(
            &log,
            &topic,
            end + 1,
            events_tx.clone(),
            stop_threads.clone(),
        )?;
        join_group(
            &kafka,
            (group, &cfg.id()),
            &connectors_topic,
            events_tx.clone(),
            stop_threads.clone(),
        )?;
    }
    crate::connect::http::serve::serve(&cfg.worker.listen, admin.clone(), cfg.worker.token.clone())
        .await?;
    let state_changed = Arc::new(tokio::sync::Notify::new());
    let mut w = Worker {
        owned: distributed.as_ref().map(|_| BTreeSet::new()),
        cfg,
        admin,
        log,
        topic,
        running: BTreeMap::new(),
        view: stored,
        published: BTreeMap::new(),
        pending_targets: BTreeMap::new(),
        state_changed: state_changed.clone(),
    };
    w.reconcile().await;
    tracing::info!(target: LOG_TARGET, worker = %w.cfg.id(), connectors = w.view.len(), distributed = w.owned.is_some(), "worker running");
    let mut publish = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = sigterm.wait_for(|s| *s) => break,
            Some(change) = rx.recv() => {
                let r = match change.steer {
                    Some(how) => w.steer(&change.name, how).map(|_| false),
                    None => w.apply(&change.name, change.config, (change.create_only, change.initial)).await,
                };
                let _ = change.answer.send(r);
            }
            Some(ev) = events.recv() => w.event(ev).await,
            _ = publish.tick(), if w.owned.is_some() => w.publish_statuses(),
            _ = state_changed.notified(), if w.owned.is_some() => w.publish_statuses(),
        }
    }
    stop_threads.store(true, std::sync::atomic::Ordering::Relaxed);
    let names: Vec<String> = w.running.keys().cloned().collect();
    for name in names {
        w.stop(&name).await;
        w.publish_unassigned(&name);
    }
    Ok(())
}

/// The Kafka cluster's id (None: the cluster did not say within 10 s).
fn cluster_id(kafka: &crate::config::KafkaConfig) -> Option<String> {
    use rdkafka::consumer::Consumer;
    let c: rdkafka::consumer::BaseConsumer = kafka.connection().create().ok()?;
    c.client().fetch_cluster_id(Duration::from_secs(10))
}

/// The group's connectors topic: [`PARTITIONS`] partitions, no data (its partitions are the
/// slots the group coordinator assigns).
async fn ensure_partitioned(kafka: &crate::config::KafkaConfig, topic: &str) -> Result<(), Error> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        kafka.connection().create().map_err(|e| {
            Error::setup(
                format!("kafka admin client: {e}"),
                "check [kafka] of worker.toml",
            )
        })?;
    let nt = NewTopic::new(
        topic,
        PARTITIONS,
        TopicReplication::Fixed(kafka.replication_factor),
    );
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match admin.create_topics(&[nt], &opts).await {
        Ok(rs) => {
            for r in rs {
                if let Err((t, code)) = r {
                    if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                        return Err(Error::setup(
                            format!("cannot create the group's topic {t}: {code}"),
                            format!("create it with {PARTITIONS} partitions"),
                        ));
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(Error::setup(
            format!("cannot create the group's topic {topic}: {e}"),
            format!("create it with {PARTITIONS} partitions"),
        )),
    }
}

/// Follow the config topic from offset `from` (records written by any worker of the group).
fn follow_config(
    log: &TopicLog,
    topic: &str,
    from: i64,
    tx: mpsc::UnboundedSender<Event>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), Error> {
    use rdkafka::Message as _;
    let c = log
        .consumer(topic, 0, rdkafka::Offset::Offset(from))
        .map_err(|e| Error::setup(e, "check [kafka] of worker.toml"))?;
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                let ev = Event::Record(
                    key.into_owned(),
                    m.payload().map(<[u8]>::to_vec),
                    std::time::Instant::now(),
                );
                if tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

/// Follows the partitions the group coordinator assigns this member. The protocol is
/// cooperative (`cooperative-sticky`): a rebalance hands out or takes back only the partitions
/// that move, so the connectors of surviving workers keep running through it; each step leaves
/// the whole current set in `assigned` for the worker's thread.
struct Rebalances {
    current: std::sync::Mutex<BTreeSet<i32>>,
    assigned: std::sync::Mutex<Vec<BTreeSet<i32>>>,
}

impl rdkafka::ClientContext for Rebalances {}

impl rdkafka::consumer::ConsumerContext for Rebalances {
    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        r: &rdkafka::consumer::Rebalance<'_>,
    ) {
        use rdkafka::consumer::Rebalance;
        let Ok(mut cur) = self.current.lock() else {
            return;
        };
        match r {
            Rebalance::Assign(tpl) => cur.extend(tpl.elements().iter().map(|e| e.partition())),
            Rebalance::Revoke(tpl) => {
                for e in tpl.elements() {
                    cur.remove(&e.partition());
                }
            }
            Rebalance::Error(_) => return,
        }
        if let Ok(mut q) = self.assigned.lock() {
            q.push(cur.clone());
        }
    }
}

type GroupConsumer = rdkafka::consumer::BaseConsumer<Rebalances>;

/// Join the group: a consumer over the connectors topic whose assignment (Kafka's group
/// protocol, cooperative-sticky) says which connectors this worker runs. Membership and
/// assignment are the coordinator's; this thread only passes each new set on.
fn join_group(
    kafka: &crate::config::KafkaConfig,
    (group, id): (&str, &str),
    topic: &str,
    tx: mpsc::UnboundedSender<Event>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), Error> {
    use rdkafka::consumer::Consumer;
    let fail = |e: rdkafka::error::KafkaError| {
        Error::setup(
            format!("cannot join group {group}: {e}"),
            "check [kafka] of worker.toml",
        )
    };
    let c: GroupConsumer = kafka
        .group_member(group)
        // the id the group's member list names this worker by (statuses name it too)
        .set("client.id", id)
        .create_with_context(Rebalances {
            current: Default::default(),
            assigned: Default::default(),
        })
        .map_err(fail)?;
    c.subscribe(&[topic]).map_err(fail)?;
    let group = group.to_string();
    std::thread::spawn(move || {
        let mut last: Option<BTreeSet<i32>> = None;
        let mut listed = std::time::Instant::now() - MEMBERS_EVERY;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = c.poll(Duration::from_millis(200));
            if listed.elapsed() >= MEMBERS_EVERY {
                listed = std::time::Instant::now();
                if let Some(ids) = members(&c, &group) {
                    if tx.send(Event::Members(ids, listed)).is_err() {
                        return;
                    }
                }
            }
            let assigned: Vec<BTreeSet<i32>> = c
                .context()
                .assigned
                .lock()
                .map(|mut q| std::mem::take(&mut *q))
                .unwrap_or_default();
            for now in assigned {
                if last.as_ref() == Some(&now) {
                    continue;
                }
                last = Some(now.clone());
                if tx.send(Event::Owned(now)).is_err() {
                    return;
                }
            }
        }
        // leaving the group hands our partitions over at once
        c.unsubscribe();
    });
    Ok(())
}

/// Connectors whose last status names this worker's id from before its start (it was killed,
/// or stopped without writing): UNASSIGNED until a worker runs them, in the config topic and in
/// this worker's view.
fn unassign_own(log: &TopicLog, topic: &str, id: &str, rest: &str, admin: &Admin) {
    for (name, st) in admin.remote_all() {
        let mine = st["worker_id"].as_str() == Some(id);
        if !mine || st["state"] == json!(ConnectorState::Unassigned) {
            continue;
        }
        let v = json!({ "state": ConnectorState::Unassigned, "worker_id": id, "trace": null, "rest": rest });
        if log
            .write(
                topic,
                0,
                &format!("status/{name}"),
                Some(v.to_string().as_bytes()),
            )
            .is_ok()
        {
            admin.set_remote(&name, Some(v), std::time::Instant::now());
        }
    }
}

/// A stored config as Connect keeps it (configs stored before that kept typed values).
fn as_submitted(name: &str, flat: Map<String, Value>) -> Map<String, Value> {
    crate::config::submitted(name, &flat).unwrap_or(flat)
}

/// How often a worker lists the group's members (to tell a gone worker's connectors).
const MEMBERS_EVERY: Duration = Duration::from_secs(2);

/// The ids (client ids) of the group's members as the coordinator has them, None when it
/// does not answer (or the group is between generations and lists nobody).
fn members(c: &GroupConsumer, group: &str) -> Option<BTreeSet<String>> {
    use rdkafka::consumer::Consumer;
    let list = c
        .fetch_group_list(Some(group), Duration::from_secs(1))
        .ok()?;
    let g = list.groups().iter().find(|g| g.name() == group)?;
    let ids: BTreeSet<String> = g
        .members()
        .iter()
        .map(|m| m.client_id().to_string())
        .collect();
    (!ids.is_empty()).then_some(ids)
}

/// Every stored connector config: read through an acknowledged tombstone of an unused key.
/// The statuses other workers wrote go to `admin` (a worker that joins later answers for
/// connectors whose state has not changed since).
fn read_configs(
    log: &TopicLog,
    topic: &str,
    worker_id: &str,
    admin: &Admin,
) -> Result<(Stored, i64), Error> {
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
    let mut statuses = BTreeMap::new();
    log.read_through(topic, 0, end, "", &mut |_, key, value| {
        if let Some(name) = key.strip_prefix("connector/") {
            match value.and_then(|v| serde_json::from_slice::<Map<String, Value>>(v).ok()) {
                Some(flat) => configs.insert(name.to_string(), as_submitted(name, flat)),
                None => configs.remove(name),
            };
        } else if let Some(name) = key.strip_prefix("target/") {
            let t = value.and_then(|v| Target::parse(&String::from_utf8_lossy(v)));
            targets.insert(name.to_string(), t);
        } else if let Some(name) = key.strip_prefix("status/") {
            let st = value.and_then(|v| serde_json::from_slice::<Value>(v).ok());
            statuses.insert(name.to_string(), st);
        }
    })
    .map_err(fail)?;
    let read = std::time::Instant::now();
    for (name, st) in statuses {
        admin.set_remote(&name, st, read);
    }
    let stored = configs
        .into_iter()
        .map(|(name, config)| {
            let target = targets.get(&name).copied().flatten();
            (name, Known { config, target })
        })
        .collect();
    Ok((stored, end))
}

struct Worker {
    cfg: WorkerConfig,
    admin: Admin,
    log: Arc<TopicLog>,
    topic: String,
    running: BTreeMap<String, Running>,
    /// every connector of the config topic, with its target
    view: Stored,
    /// distributed: the partitions assigned to this worker (None: it runs every connector)
    owned: Option<BTreeSet<i32>>,
    /// the last state written for each running connector
    published: BTreeMap<String, (ConnectorState, Option<String>)>,
    /// targets stored for connectors whose config has not arrived yet (KIP-980)
    pending_targets: BTreeMap<String, Option<Target>>,
    /// told when a connector of this worker changes state
    state_changed: Arc<tokio::sync::Notify>,
}

impl Worker {
    /// Does this worker run connector `name`?
    fn owns(&self, name: &str) -> bool {
        self.owned.as_ref().is_none_or(|o| o.contains(&slot(name)))
    }

    /// Start what this worker should run and is not running; stop the rest.
    async fn reconcile(&mut self) {
        let running: Vec<String> = self.running.keys().cloned().collect();
        for name in running {
            if !self.view.contains_key(&name) || !self.owns(&name) {
                tracing::info!(target: LOG_TARGET, connector = %name, "connector leaves this worker");
                self.stop(&name).await;
                if self.view.contains_key(&name) {
                    self.publish_unassigned(&name);
                }
            }
        }
        let want: Vec<(String, Map<String, Value>, Option<Target>)> = self
            .view
            .iter()
            .filter(|(n, _)| !self.running.contains_key(*n) && self.owns(n))
            .map(|(n, k)| (n.clone(), k.config.clone(), k.target))
            .collect();
        for (name, flat, target) in want {
            match self.validate(&name, &flat) {
                Ok(c) => {
                    tracing::info!(target: LOG_TARGET, connector = %name, "connector starts on this worker");
                    self.start(c, target)
                }
                Err(problems) => {
                    tracing::error!(target: LOG_TARGET, connector = %name, problems = %problems, "stored connector config is invalid: not started; replace it with PUT /connectors/{name}/config")
                }
            }
        }
        self.admin.set_known(self.view.clone());
    }

    /// A change seen in the group: an assignment, or a record of the config topic.
    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Owned(parts) => {
                tracing::info!(target: LOG_TARGET, partitions = ?parts, "group assignment");
                self.owned = Some(parts);
                self.reconcile().await;
            }
            Event::Record(key, value, read) => {
                if let Some(name) = key.strip_prefix("connector/") {
                    let flat = value
                        .and_then(|v| serde_json::from_slice::<Map<String, Value>>(&v).ok())
                        .map(|f| as_submitted(name, f));
                    let same = flat.as_ref() == self.view.get(name).map(|x| &x.config);
                    if same {
                        return;
                    }
                    match flat {
                        Some(config) => {
                            let target = match self.view.get(name) {
                                Some(k) => k.target,
                                None => self.pending_targets.remove(name).flatten(),
                            };
                            self.view.insert(name.to_string(), Known { config, target });
                            // a replaced config restarts the connector with it
                            self.stop(name).await;
                        }
                        None => {
                            self.view.remove(name);
                        }
                    }
                    self.reconcile().await;
                } else if let Some(name) = key.strip_prefix("target/") {
                    let t = value.and_then(|v| Target::parse(&String::from_utf8_lossy(&v)));
                    match self.view.get_mut(name) {
                        Some(entry) => {
                            entry.target = t;
                            self.admin.set_known(self.view.clone());
                        }
                        // a created connector's initial state comes before its config
                        None => {
                            self.pending_targets.insert(name.to_string(), t);
                        }
                    }
                    if let (Some(c), Some(t)) = (self.admin.connector(name), t) {
                        if c.target() != t {
                            c.set_target(t);
                        }
                    }
                } else if let Some(name) = key.strip_prefix("restart/") {
                    if let (Some(c), Some(_)) = (self.admin.connector(name), value) {
                        c.restart();
                    }
                } else if let Some(name) = key.strip_prefix("status/") {
                    let st = value.and_then(|v| serde_json::from_slice::<Value>(&v).ok());
                    if self.running.contains_key(name) {
                        // another worker wrote over this one's record (a handover's last
                        // word, or the UNASSIGNED of a gone worker written late): write ours
                        // again
                        if st
                            .as_ref()
                            .is_some_and(|v| v["worker_id"] != json!(self.cfg.id()))
                        {
                            self.published.remove(name);
                            self.publish_statuses();
                        }
                    } else {
                        self.admin.set_remote(name, st, read);
                    }
                }
            }
            Event::Members(ids, asked) => {
                self.admin.set_members(ids, asked);
                self.unassign_gone();
            }
        }
    }

    /// Connectors whose status names a worker the group no longer has are UNASSIGNED until
    /// their new worker starts them: the first member (by id) writes that record, once.
    fn unassign_gone(&mut self) {
        if !self.admin.is_first_member(&self.cfg.id()) {
            return;
        }
        let names: Vec<String> = self.view.keys().cloned().collect();
        for name in names {
            if self.running.contains_key(&name) {
                continue;
            }
            let Some(Some((st, gone))) = self.admin.remote_gone(&name) else {
                continue;
            };
            if gone && st["state"] != json!(ConnectorState::Unassigned) {
                let worker = st["worker_id"].as_str().unwrap_or("").to_string();
                tracing::info!(target: LOG_TARGET, connector = %name, worker = %worker, "the connector's worker left the group: UNASSIGNED until its new worker starts it");
                self.write_status(&name, ConnectorState::Unassigned, None, &worker);
            }
        }
    }

    /// Write connector `name`'s status record, as run by `worker`.
    fn write_status(
        &self,
        name: &str,
        state: ConnectorState,
        trace: Option<&str>,
        worker: &str,
    ) -> bool {
        let rest = match worker == self.cfg.id() {
            true => json!(self.cfg.advertised()),
            false => Value::Null,
        };
        let v = json!({ "state": state, "worker_id": worker, "trace": trace, "rest": rest });
        let key = format!("status/{name}");
        let r = tokio::task::block_in_place(|| {
            self.log
                .write(&self.topic, 0, &key, Some(v.to_string().as_bytes()))
        });
        if let Err(e) = &r {
            tracing::warn!(target: LOG_TARGET, connector = %name, error = %e, "cannot store the connector's status");
        }
        r.is_ok()
    }

    /// The record of a connector this worker stopped while it stays in the group's care
    /// (moved to another worker, or this worker leaving): UNASSIGNED until it runs again.
    fn publish_unassigned(&mut self, name: &str) {
        if self.owned.is_some() {
            self.write_status(name, ConnectorState::Unassigned, None, &self.cfg.id());
        }
        self.published.remove(name);
    }

    /// Pause, resume, stop or restart connector `name`, wherever it runs: here directly, on
    /// another worker through a record of the config topic (its target is stored either way).
    fn steer(
        &mut self,
        name: &str,
        how: crate::connect::control::Steer,
    ) -> Result<(), (StatusCode, String)> {
        use crate::connect::control::Steer;
        if !self.view.contains_key(name) {
            return Err((StatusCode::NOT_FOUND, how.unknown(name)));
        }
        let local = self.admin.connector(name);
        let (key, value) = match how {
            Steer::Target(t) => {
                if let Some(entry) = self.view.get_mut(name) {
                    entry.target = Some(t);
                }
                self.admin.set_known(self.view.clone());
                if let Some(c) = &local {
                    c.set_target(t);
                }
                (format!("target/{name}"), t.state().name().to_string())
            }
            Steer::Restart => {
                if let Some(c) = &local {
                    c.restart();
                    return Ok(());
                }
                (
                    format!("restart/{name}"),
                    crate::model::time::now_ms().to_string(),
                )
            }
        };
        tokio::task::block_in_place(|| {
            self.log
                .write(&self.topic, 0, &key, Some(value.as_bytes()))
                .map(|_| ())
                .map_err(|e| {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("cannot reach the connector through {}: {e}", self.topic),
                    )
                })
        })
    }

    /// Write the state of each running connector whose state changed since the last write.
    fn publish_statuses(&mut self) {
        let id = self.cfg.id();
        for name in self.running.keys() {
            let Some(c) = self.admin.connector(name) else {
                continue;
            };
            let st = c.state();
            if self.published.get(name) == Some(&st) {
                continue;
            }
            if self.write_status(name, st.0, st.1.as_deref(), &id) {
                self.published.insert(name.clone(), st);
            }
        }
    }

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
        (create_only, initial): (bool, Option<Target>),
    ) -> Result<bool, (StatusCode, String)> {
        let exists = self.view.contains_key(name);
        let Some(flat) = config else {
            if !exists {
                return Err((StatusCode::NOT_FOUND, format!("Connector {name} not found")));
            }
            self.store(name, None)?;
            self.view.remove(name);
            self.stop(name).await;
            self.published.remove(name);
            for key in [format!("target/{name}"), format!("status/{name}")] {
                let _ = tokio::task::block_in_place(|| self.log.write(&self.topic, 0, &key, None));
            }
            self.reconcile().await;
            tracing::info!(target: LOG_TARGET, connector = %name, "connector deleted");
            return Ok(false);
        };
        if exists && create_only {
            return Err((
                StatusCode::CONFLICT,
                format!("Connector {name} already exists"),
            ));
        }
        // kept as Connect keeps it (text values, its name); a secret sent back masked keeps
        // the stored one
        let mut flat =
            crate::config::submitted(name, &flat).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let target = match self.view.get(name) {
            Some(k) => {
                crate::config::restore_secrets(&mut flat, &k.config);
                k.target
            }
            None => initial,
        };
        let cfg = self.validate(name, &flat).map_err(|p| {
            (
                StatusCode::BAD_REQUEST,
                format!("Connector configuration is invalid:\n{p}"),
            )
        })?;
        let body =
            serde_json::to_vec(&flat).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        if let (false, Some(t)) = (exists, target) {
            // KIP-980: the target first, so no worker starts it running before it is held
            self.write_target(name, t)?;
        }
        self.store(name, Some(&body))?;
        drop(cfg);
        self.view.insert(
            name.to_string(),
            Known {
                config: flat,
                target,
            },
        );
        self.stop(name).await;
        self.reconcile().await;
        tracing::info!(target: LOG_TARGET, connector = %name, created = !exists, "connector config applied");
        Ok(!exists)
    }

    /// Write connector `name`'s target record, acknowledged.
    fn write_target(&self, name: &str, t: Target) -> Result<(), (StatusCode, String)> {
        tokio::task::block_in_place(|| {
            self.log
                .write(
                    &self.topic,
                    0,
                    &format!("target/{name}"),
                    Some(t.state().name().as_bytes()),
                )
                .map(|_| ())
                .map_err(|e| {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("cannot store the connector's state in {}: {e}", self.topic),
                    )
                })
        })
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
        let mut control = Control::new(cfg, self.cfg.id());
        control.state_changed = self.state_changed.clone();
        let control = Arc::new(control);
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

    /// Stop connector `name` (its position stored) and forget it (and what was published of
    /// it: a connector that comes back publishes its state again).
    async fn stop(&mut self, name: &str) {
        self.published.remove(name);
        if let Some(r) = self.running.remove(name) {
            let _ = r.stop.send(true);
            if tokio::time::timeout(Duration::from_secs(60), r.task)
                .await
                .is_err()
            {
                tracing::warn!(target: LOG_TARGET, connector = %name, "connector did not stop within 60 s");
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
        let r = tokio::task::block_in_place(|| {
            log.write(&topic, 0, &key, Some(t.state().name().as_bytes()))
        });
        if let Err(e) = r {
            tracing::warn!(target: LOG_TARGET, connector = %control.name, error = %e, "cannot store the connector's target: a restarted worker would not keep it");
        }
    }
}

/// Run one connector until `stop`; a failure a retry cannot fix leaves it FAILED until it is
/// restarted or resumed over REST. A claim by another process is not such a failure: during a
/// rebalance two workers can both believe they were assigned a connector for a moment; the
/// newer claim wins, and the fenced worker waits (UNASSIGNED) and claims again while the
/// connector is still assigned to it (when the group moved it away, the worker stops it
/// first), so a connector never stays down waiting for a person.
async fn supervise(control: Arc<Control>, mut stop: watch::Receiver<bool>) {
    // the connector's snapshot progress lines, while it runs here
    let _progress = crate::connect::progress::snapshot_lines(
        control.metrics.clone(),
        &control.name,
        Duration::from_secs(10),
    );
    let mut wait = Duration::from_secs(3);
    loop {
        let r = crate::connect::run::run_connector(&control, stop.clone(), false).await;
        if *stop.borrow() {
            return;
        }
        let Err(e) = r else {
            return;
        };
        if crate::checkpoint::state::StoreError::is_fenced(&e) {
            tracing::info!(target: LOG_TARGET, connector = %control.name, retry_in_secs = wait.as_secs(), "another worker claimed the connector (a rebalance in progress): it runs there; this worker claims it again later if the group still assigns it here");
            control.set_state(ConnectorState::Unassigned, None);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            wait = (wait * 2).min(Duration::from_secs(30));
            continue;
        }
        tracing::error!(target: LOG_TARGET, connector = %control.name, error = %e, "connector failed: fix the cause, then POST /connectors/{}/restart", control.name);
        control.set_state(ConnectorState::Failed, Some(e.to_string()));
        let mut wanted = control.wanted();
        wanted.borrow_and_update();
        tokio::select! {
            _ = wanted.changed() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
