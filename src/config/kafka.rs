//! The `[kafka]` section: brokers, topic template, topic creation, producer properties.
//!
//! Invariants:
//! - `properties` values are strings (the loader turns TOML numbers and booleans into text,
//!   as librdkafka takes them); `bootstrap.servers` is set through `brokers` only.
//! - Secret properties (`*password*`, `*secret*`, key files) never reach `Debug` output.

use super::error::push;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KafkaConfig {
    pub(crate) brokers: String,
    #[serde(default = "default_topic")]
    pub(crate) topic: String,
    /// Partitions of the topics rowstream creates.
    #[serde(default = "default_partitions")]
    pub(crate) partitions: i32,
    #[serde(default = "one")]
    pub(crate) replication_factor: i32,
    /// One request in flight per connection: strict order even across retries.
    #[serde(default)]
    pub(crate) strict_order: bool,
    #[serde(default = "default_sep")]
    pub(crate) key_separator: String,
    /// Passed to librdkafka as is (TLS, SASL, tuning).
    #[serde(default)]
    pub(crate) properties: BTreeMap<String, String>,
    /// A record larger than `message.max.bytes`: fail (the default), skip, placeholder, or park.
    #[serde(default)]
    pub(crate) oversized: Oversized,
    /// Per-table overrides of `oversized` (`"schema.table" = "skip"`).
    #[serde(default)]
    pub(crate) oversized_tables: BTreeMap<String, String>,
    /// Kafka transactions: records and the position covering them committed together
    /// (needs `state.backend = "kafka"` and a broker with transactions).
    #[serde(default)]
    pub(crate) exactly_once: bool,
}

/// What to do with a record larger than the producer's `message.max.bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Oversized {
    /// Stop with an error naming the table, key, size and the settings to raise.
    #[default]
    Fail,
    /// Leave the record out, counted (`rowstream_oversized_records_total`) and logged.
    Skip,
    /// Replace the largest values by a placeholder until the record fits.
    Placeholder,
    /// Send the record (without its row images) to `errors.dead_letter_topic` instead.
    Park,
}

impl Oversized {
    fn parse(s: &str) -> Option<Oversized> {
        match s {
            "fail" => Some(Oversized::Fail),
            "skip" => Some(Oversized::Skip),
            "placeholder" => Some(Oversized::Placeholder),
            "park" => Some(Oversized::Park),
            _ => None,
        }
    }
}

/// librdkafka's `message.max.bytes` as rowstream sets it (see `sink::kafka::producer_config`).
pub(crate) const DEFAULT_MESSAGE_MAX_BYTES: usize = 10_000_000;

/// How a reader fetches ([`KafkaConfig::reader`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// whole partitions, in large requests
    Bulk,
    /// a few records at a time (state, configs, verify)
    Few,
}

/// Where to start reading so that `offset` is read (records before it are skipped by the
/// reader). tansu answers a fetch from an offset inside a record batch with the *next* batch,
/// so reading from the offset itself would skip the rest of its batch; starting a producer
/// batch's length earlier (rowstream's producer puts at most 10000 records in one) finds the
/// batch that holds it. On Apache Kafka this only reads up to that many records again.
pub(crate) fn read_from(offset: i64) -> i64 {
    (offset - 10_000).max(0)
}

fn one() -> i32 {
    1
}
fn default_topic() -> String {
    "{db}.{schema}.{table}".into()
}
fn default_partitions() -> i32 {
    3
}
fn default_sep() -> String {
    ",".into()
}

pub(crate) fn is_secret_property(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("key.pem") || k.ends_with(".key")
}

impl KafkaConfig {
    /// Defaults everywhere but the brokers.
    pub(crate) fn with_brokers(brokers: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            topic: default_topic(),
            partitions: default_partitions(),
            replication_factor: one(),
            strict_order: false,
            key_separator: default_sep(),
            properties: BTreeMap::new(),
            oversized: Oversized::Fail,
            oversized_tables: BTreeMap::new(),
            exactly_once: false,
        }
    }

    /// The largest record (value + key) the producer accepts.
    pub(crate) fn message_max_bytes(&self) -> usize {
        self.properties
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
    }

    /// The brokers and the connection/security settings of `kafka.properties`: what any client
    /// other than the data producer needs (the admin client, `verify`'s consumer, the state
    /// store).
    pub(crate) fn connection(&self) -> rdkafka::config::ClientConfig {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            if k.starts_with("security.")
                || k.starts_with("sasl.")
                || k.starts_with("ssl.")
                || k.starts_with("socket.")
            {
                c.set(k, v);
            }
        }
        c
    }

    /// The one way rowstream configures a consumer that reads partitions it assigns itself
    /// (sink, export, tail, verify, the state and config topics): the connection settings, a
    /// group id of its own (`<purpose>-<pid>`) that never commits, no end-of-partition events,
    /// the earliest offset where none is given; [`Fetch::Bulk`] adds large fetches
    /// (librdkafka's 1 MB per partition and 500 ms waits made the Parquet sink wait on the
    /// broker most of the time).
    pub(crate) fn reader(&self, purpose: &str, fetch: Fetch) -> rdkafka::config::ClientConfig {
        let mut c = self.connection();
        c.set("group.id", format!("{purpose}-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        if fetch == Fetch::Bulk {
            c.set("fetch.message.max.bytes", "8388608")
                .set("fetch.max.bytes", "33554432")
                .set("fetch.wait.max.ms", "10");
        }
        c
    }

    /// A member of consumer group `group` (a worker: the group's assignment says which
    /// connectors it runs), committing nothing. Cooperative-sticky: a rebalance moves only
    /// the partitions that must move (a dead or leaving member's), never those of survivors.
    pub(crate) fn group_member(&self, group: &str) -> rdkafka::config::ClientConfig {
        let mut c = self.connection();
        c.set("group.id", group)
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("enable.auto.commit", "false");
        c
    }

    /// The oversized-record policy of `table` (`schema.table` / `db.table`).
    pub(crate) fn oversized_for(&self, table: &str) -> Oversized {
        self.oversized_tables
            .get(table)
            .and_then(|p| Oversized::parse(p))
            .unwrap_or(self.oversized)
    }

    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if self.brokers.trim().is_empty() {
            push(p, "kafka.brokers", "empty; e.g. \"127.0.0.1:9092\"");
        }
        self.validate_topic(p);
        if !(1..=10000).contains(&self.partitions) {
            push(
                p,
                "kafka.partitions",
                format!("{} is out of range 1..=10000", self.partitions),
            );
        }
        if self.replication_factor < 1 {
            push(
                p,
                "kafka.replication_factor",
                format!("{} must be at least 1", self.replication_factor),
            );
        }
        for (t, policy) in &self.oversized_tables {
            if Oversized::parse(policy).is_none() {
                push(
                    p,
                    &format!("kafka.oversized_tables.\"{t}\""),
                    format!("`{policy}` is not fail, skip, placeholder or park"),
                );
            }
        }
        if self.properties.contains_key("bootstrap.servers") {
            push(
                p,
                "kafka.properties.\"bootstrap.servers\"",
                "set `kafka.brokers` instead",
            );
        }
    }

    fn validate_topic(&self, p: &mut Vec<String>) {
        let t = &self.topic;
        if t.trim().is_empty() {
            push(p, "kafka.topic", "empty; e.g. \"{db}.{schema}.{table}\"");
            return;
        }
        let stripped = t
            .replace("{db}", "")
            .replace("{schema}", "")
            .replace("{table}", "");
        if stripped.contains('{') || stripped.contains('}') {
            push(
                p,
                "kafka.topic",
                format!("`{t}` has a placeholder other than {{db}}, {{schema}}, {{table}}"),
            );
        }
        if stripped
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'))
        {
            push(
                p,
                "kafka.topic",
                format!("`{t}` has characters Kafka topic names cannot hold (allowed: a-z A-Z 0-9 . _ -)"),
            );
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_property(k) { "***" } else { v };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("strict_order", &self.strict_order)
            .field("key_separator", &self.key_separator)
            .field("properties", &props)
            .field("oversized", &self.oversized)
            .field("oversized_tables", &self.oversized_tables)
            .field("exactly_once", &self.exactly_once)
            .finish()
    }
}
