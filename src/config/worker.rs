//! `worker.toml`, the settings of `rowstream worker`: where its REST API listens, the Kafka
//! cluster every connector of the worker writes to, and the topics that hold connector configs
//! and state. Connectors themselves are added over REST (`POST /connectors`), their configs
//! laid over [`WorkerConfig::base`].
//!
//! Invariants:
//! - Unknown keys are refused with their path, as in a connector config.
//! - A connector's `state.*` and `admin.*` keys are the worker's ([`RESERVED`]): every connector
//!   keeps its state in Kafka under its own name.

use super::error::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Keys a connector config may not set: the worker sets them.
pub(crate) const RESERVED: &[&str] = &[
    "state.backend",
    "state.connector",
    "state.topic",
    "state.history_topic",
    "state.dir",
    "admin.listen",
    "admin.token",
];

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerConfig {
    pub(crate) worker: WorkerSection,
    pub(crate) kafka: WorkerKafka,
    #[serde(default)]
    pub(crate) state: WorkerState,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerSection {
    /// Where the REST API listens.
    #[serde(default = "default_listen")]
    pub(crate) listen: String,
    /// When set, changing REST calls need `Authorization: Bearer <token>`.
    #[serde(default)]
    pub(crate) token: Option<String>,
    /// The compacted topic of connector configs (Kafka Connect's `config.storage.topic`).
    #[serde(default = "default_config_topic")]
    pub(crate) config_topic: String,
    /// This worker's name in statuses (default: `listen`).
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// The `host:port` other workers reach this one's REST API at, to pass on calls for a
    /// connector running here (Connect's `rest.advertised.listener`; default: `listen`, a
    /// wildcard address read as loopback).
    #[serde(default)]
    pub(crate) advertised_listen: Option<String>,
    /// Distributed mode: workers of one group share the connectors of `config_topic` through
    /// Kafka's group protocol (a consumer group over the topic `<group_id>-connectors`).
    #[serde(default)]
    pub(crate) group_id: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerKafka {
    pub(crate) brokers: String,
    #[serde(default)]
    pub(crate) properties: BTreeMap<String, String>,
    #[serde(default = "one")]
    pub(crate) replication_factor: i32,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerState {
    #[serde(default = "default_state_topic")]
    pub(crate) topic: String,
    #[serde(default = "default_history_topic")]
    pub(crate) history_topic: String,
}

impl Default for WorkerState {
    fn default() -> Self {
        WorkerState {
            topic: default_state_topic(),
            history_topic: default_history_topic(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8083".into()
}
fn default_config_topic() -> String {
    "rowstream-configs".into()
}
fn default_state_topic() -> String {
    "rowstream-offsets".into()
}
fn default_history_topic() -> String {
    "rowstream-schema-history".into()
}
fn one() -> i32 {
    1
}

impl WorkerConfig {
    pub(crate) fn load(path: &Path) -> Result<WorkerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let cfg: WorkerConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Invalid(vec![e.to_string().trim().to_string()]))?;
        let mut problems = Vec::new();
        if cfg.worker.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "`worker.listen`: `{}` is not host:port, e.g. 127.0.0.1:8083",
                cfg.worker.listen
            ));
        }
        if cfg.kafka.brokers.trim().is_empty() {
            problems.push("`kafka.brokers`: empty; e.g. \"127.0.0.1:9092\"".into());
        }
        match problems.is_empty() {
            true => Ok(cfg),
            false => Err(ConfigError::Invalid(problems)),
        }
    }

    /// This worker's name in statuses.
    pub(crate) fn id(&self) -> String {
        self.worker
            .id
            .clone()
            .unwrap_or_else(|| self.worker.listen.clone())
    }

    /// Where other workers reach this one's REST API.
    pub(crate) fn advertised(&self) -> String {
        self.worker
            .advertised_listen
            .clone()
            .unwrap_or_else(|| reachable(&self.worker.listen))
    }

    /// The Kafka settings of the worker's own clients (the config topic).
    pub(crate) fn kafka(&self) -> super::kafka::KafkaConfig {
        let mut t = toml::Table::new();
        t.insert("brokers".into(), self.kafka.brokers.clone().into());
        let mut k: super::kafka::KafkaConfig = toml::Value::Table(t)
            .try_into()
            .expect("brokers alone make a kafka section");
        k.properties = self.kafka.properties.clone();
        k.replication_factor = self.kafka.replication_factor;
        k
    }

    /// What every connector `name` of this worker starts from: the worker's Kafka cluster, and
    /// its state in the worker's topics under its own name.
    pub(crate) fn base(&self, name: &str) -> toml::Table {
        let mut kafka = toml::Table::new();
        kafka.insert("brokers".into(), self.kafka.brokers.clone().into());
        kafka.insert(
            "replication_factor".into(),
            (self.kafka.replication_factor as i64).into(),
        );
        let props: toml::Table = self
            .kafka
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
            .collect();
        kafka.insert("properties".into(), props.into());
        let mut state = toml::Table::new();
        state.insert("backend".into(), "kafka".into());
        state.insert("connector".into(), name.into());
        state.insert("topic".into(), self.state.topic.clone().into());
        state.insert(
            "history_topic".into(),
            self.state.history_topic.clone().into(),
        );
        let mut root = toml::Table::new();
        root.insert("kafka".into(), kafka.into());
        root.insert("state".into(), state.into());
        root
    }
}

/// The address to reach a listener at: a wildcard listener is reached on loopback.
pub(crate) fn reachable(listen: &str) -> String {
    listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:")
}
