//! The sections that shape a run rather than a connection: `[snapshot]`, `[heartbeat]`,
//! `[state]`, `[encode]`, `[admin]`. Every key has a default, so each section may be left out.
//!
//! Invariant: a value that passed `validate` is usable as is (intervals within their ranges,
//! a non-empty state directory, a parseable admin address).

use super::error::push;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SnapshotMode {
    /// Snapshot each table once (tables added later get their own), then stream.
    Initial,
    /// Never snapshot: stream only.
    Never,
    /// Snapshot every table at every start, then stream.
    Always,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotConfig {
    #[serde(default = "default_mode")]
    pub(crate) mode: SnapshotMode,
    /// Postgres: heap pages per snapshot chunk (ctid ranges); bounds each COPY.
    #[serde(default = "default_chunk_pages")]
    pub(crate) chunk_pages: u32,
    /// MySQL/MariaDB: rows per snapshot chunk (keyset ranges of the primary key).
    #[serde(default = "default_chunk_rows")]
    pub(crate) chunk_rows: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            mode: default_mode(),
            chunk_pages: default_chunk_pages(),
            chunk_rows: default_chunk_rows(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatConfig {
    #[serde(default = "default_hb")]
    pub(crate) interval_ms: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval_ms: default_hb(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateConfig {
    /// Where the state lives: a local directory (`file`, the default) or compacted Kafka
    /// topics (`kafka`: no local disk needed).
    #[serde(default)]
    pub(crate) backend: StateBackend,
    /// The pipeline's name: the key of its state in the Kafka topics (required with `kafka`).
    #[serde(default)]
    pub(crate) connector: Option<String>,
    /// `kafka` backend: the compacted topic of positions, snapshot progress and sequenceId
    /// leases (Kafka Connect's `offset.storage.topic`).
    #[serde(default = "default_state_topic")]
    pub(crate) topic: String,
    /// `kafka` backend: the compacted topic of the MySQL/MariaDB schema history.
    #[serde(default = "default_history_topic")]
    pub(crate) history_topic: String,
    #[serde(default = "default_state_dir")]
    pub(crate) dir: PathBuf,
    /// How often delivered positions are stored (and acknowledged to the source).
    #[serde(default = "default_commit")]
    pub(crate) commit_interval_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::default(),
            connector: None,
            topic: default_state_topic(),
            history_topic: default_history_topic(),
            dir: default_state_dir(),
            commit_interval_ms: default_commit(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncodeConfig {
    /// Emit UPDATE as UPDATE_BEFORE + UPDATE_AFTER sharing one sequenceId (spec §4.1).
    #[serde(default)]
    pub(crate) split_update: bool,
    /// Which consumers the topics are shaped for (see [`Profile`]).
    #[serde(default)]
    pub(crate) profile: Profile,
    /// The topic heartbeats and DDL records go to instead of the data topics; `""` leaves
    /// them out. Unset: the data topics, or with `profile = "paimon"`, `rowstream-side`
    /// (filled in by `resolve`).
    #[serde(default)]
    pub(crate) side_topic: Option<String>,
    /// PostgreSQL: `tableName` is `<schema>_<table>`, for consumers that ignore `schemaName`
    /// (Paimon) when several schemas share a table name.
    #[serde(default)]
    pub(crate) schema_in_table_name: bool,
    /// Every change record carries the `rowstream.order` header that tells a replay from a
    /// newer change (docs/message-format.md, "Replays"); `false` leaves it out (each header
    /// costs librdkafka three allocations: ~10% of MariaDB's streaming throughput).
    #[serde(default = "yes")]
    pub(crate) order_header: bool,
    /// Row records of tables with columns whose DataWorks type leaves the source type open
    /// (decimals, floats, BIGINT UNSIGNED) carry the `rowstream.types` header, which
    /// `rowstream sink` types its columns by; `false` leaves it out.
    #[serde(default = "yes")]
    pub(crate) types_header: bool,
    /// `TRANSACTION_BEGIN` / `TRANSACTION_END` records around each source transaction's
    /// records, in `transaction_topic` (off by default; needs `order_header`).
    #[serde(default)]
    pub(crate) transaction_markers: bool,
    /// The topic the transaction markers go to.
    #[serde(default = "default_transaction_topic")]
    pub(crate) transaction_topic: String,
}

impl Default for EncodeConfig {
    fn default() -> Self {
        EncodeConfig {
            split_update: false,
            profile: Profile::default(),
            side_topic: None,
            schema_in_table_name: false,
            order_header: true,
            types_header: true,
            transaction_markers: false,
            transaction_topic: default_transaction_topic(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `encode.transaction_topic` when not set.
pub(crate) const DEFAULT_TRANSACTION_TOPIC: &str = "rowstream.transactions";

fn default_transaction_topic() -> String {
    DEFAULT_TRANSACTION_TOPIC.into()
}

/// Can `t` name a Kafka topic (a-z A-Z 0-9 . _ -, at most 249 characters)?
pub(super) fn topic_name_ok(t: &str) -> bool {
    t.len() <= 249
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The shape of the topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Profile {
    /// The DataWorks format as DataWorks writes it: heartbeats and DDL records in the data
    /// topics, `"primaryKey": null` for a table without a key.
    #[default]
    Dataworks,
    /// What Apache Paimon's `aliyun-json` parser accepts: data topics hold only INSERT,
    /// UPDATE_BEFORE, UPDATE_AFTER and DELETE records, heartbeats and DDL records go to
    /// `side_topic`, a table without a key carries `"primaryKey": []`.
    Paimon,
}

/// `encode.side_topic` under `profile = "paimon"` when not set.
pub(crate) const DEFAULT_SIDE_TOPIC: &str = "rowstream-side";

impl EncodeConfig {
    /// Defaults that depend on the profile.
    pub(super) fn resolve(&mut self) {
        if self.profile == Profile::Paimon && self.side_topic.is_none() {
            self.side_topic = Some(DEFAULT_SIDE_TOPIC.into());
        }
    }

    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if let Some(t) = self.side_topic.as_deref().filter(|t| !t.is_empty()) {
            if !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                push(
                    p,
                    "encode.side_topic",
                    format!("`{t}` has characters Kafka topic names cannot hold (allowed: a-z A-Z 0-9 . _ -)"),
                );
            }
        }
        self.validate_markers(p);
    }

    /// `encode.transaction_markers` and `encode.transaction_topic`.
    fn validate_markers(&self, p: &mut Vec<String>) {
        let t = &self.transaction_topic;
        if t.is_empty() {
            if self.transaction_markers {
                push(
                    p,
                    "encode.transaction_topic",
                    "empty while encode.transaction_markers is on; name the topic the markers go to, e.g. \"rowstream.transactions\"",
                );
            }
        } else if !topic_name_ok(t) || t == "." || t == ".." {
            push(
                p,
                "encode.transaction_topic",
                format!("`{t}` is not a Kafka topic name (allowed: a-z A-Z 0-9 . _ -, at most 249 characters)"),
            );
        }
        if self.transaction_markers && !self.order_header {
            push(
                p,
                "encode.transaction_markers",
                "needs encode.order_header = true: the rowstream.order header of each change record names its transaction, which is how a consumer matches records to their TRANSACTION_BEGIN / TRANSACTION_END; turn encode.order_header on or encode.transaction_markers off",
            );
        }
        if self.transaction_markers && self.side_topic.as_deref() == Some(t.as_str()) {
            push(
                p,
                "encode.transaction_topic",
                format!("`{t}` is encode.side_topic too; give the transaction markers a topic of their own"),
            );
        }
    }
}

#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminConfig {
    /// `host:port` for /healthz, /readyz and /metrics; off when unset.
    #[serde(default)]
    pub(crate) listen: Option<String>,
    /// When set, the REST calls that change something (pause, resume, stop, restart, offsets,
    /// snapshot) need `Authorization: Bearer <token>`.
    #[serde(default)]
    pub(crate) token: Option<String>,
    /// `/ready` fails while the source lag is above this (ms); unset: lag does not count.
    #[serde(default)]
    pub(crate) ready_max_lag_ms: Option<u64>,
    /// `/ready` fails while the stored position is older than this (ms) with records
    /// delivered since (a broker that stopped acknowledging, a store that cannot be written).
    #[serde(default = "default_ready_checkpoint_age")]
    pub(crate) ready_max_checkpoint_age_ms: u64,
}

fn default_ready_checkpoint_age() -> u64 {
    300_000
}

fn default_mode() -> SnapshotMode {
    SnapshotMode::Initial
}
fn default_chunk_pages() -> u32 {
    4096
}
fn default_chunk_rows() -> u32 {
    5000
}
fn default_hb() -> u64 {
    5000
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("./rowstream-state")
}
fn default_commit() -> u64 {
    200
}

impl SnapshotConfig {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if self.chunk_pages == 0 {
            push(p, "snapshot.chunk_pages", "must be at least 1");
        }
        if self.chunk_rows == 0 {
            push(p, "snapshot.chunk_rows", "must be at least 1");
        }
    }
}

impl HeartbeatConfig {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if self.interval_ms < 100 {
            push(
                p,
                "heartbeat.interval_ms",
                format!("{} is below the minimum of 100", self.interval_ms),
            );
        }
    }
}

/// Where a pipeline's state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StateBackend {
    /// `state.dir` on the local disk.
    #[default]
    File,
    /// Compacted Kafka topics (`state.topic`, `state.history_topic`), keyed by `state.connector`.
    Kafka,
}

fn default_state_topic() -> String {
    "rowstream-offsets".into()
}

fn default_history_topic() -> String {
    "rowstream-schema-history".into()
}

impl StateConfig {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if self.backend == StateBackend::Kafka {
            match self.connector.as_deref() {
                None | Some("") => push(
                    p,
                    "state.connector",
                    "required with state.backend = \"kafka\": the name this pipeline's state is kept under, e.g. \"orders-db\"",
                ),
                Some(c) if c.contains('/') => {
                    push(p, "state.connector", format!("`{c}` may not contain `/`"))
                }
                _ => {}
            }
            for (key, t) in [
                ("state.topic", &self.topic),
                ("state.history_topic", &self.history_topic),
            ] {
                if t.is_empty()
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    push(
                        p,
                        key,
                        format!("`{t}` is not a Kafka topic name (allowed: a-z A-Z 0-9 . _ -)"),
                    );
                }
            }
        }
        if self.dir.as_os_str().is_empty() {
            push(p, "state.dir", "empty; e.g. \"./rowstream-state\"");
        }
        if !(10..=60_000).contains(&self.commit_interval_ms) {
            push(
                p,
                "state.commit_interval_ms",
                format!("{} is out of range 10..=60000", self.commit_interval_ms),
            );
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: None,
            token: None,
            ready_max_lag_ms: None,
            ready_max_checkpoint_age_ms: default_ready_checkpoint_age(),
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("ready_max_lag_ms", &self.ready_max_lag_ms)
            .field(
                "ready_max_checkpoint_age_ms",
                &self.ready_max_checkpoint_age_ms,
            )
            .finish()
    }
}

impl AdminConfig {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if let Some(l) = &self.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                push(
                    p,
                    "admin.listen",
                    format!("`{l}` is not host:port, e.g. 127.0.0.1:8080"),
                );
            }
        }
    }
}
