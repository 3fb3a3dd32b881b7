//! `sink.toml`, the settings of `rowstream sink`: which topics to land, where (a directory or
//! an object store URL), and when a file is complete.
//!
//! Invariants:
//! - Unknown keys are refused with their path.
//! - `sink.options` (object store credentials) never reach `Debug` output or logs.
//! - A loaded config has at least one topic, a usable location and positive flush limits.

use super::error::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LakeConfig {
    pub(crate) kafka: LakeKafka,
    pub(crate) sink: LakeSection,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LakeKafka {
    pub(crate) brokers: String,
    /// librdkafka properties (TLS, SASL) for the consumer.
    #[serde(default)]
    pub(crate) properties: BTreeMap<String, String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LakeSection {
    /// The topics to land, by name.
    pub(crate) topics: Vec<String>,
    /// A directory (`/var/lake`, `file:///var/lake`) or an object store URL (`s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix`).
    pub(crate) url: String,
    /// A file is written once it holds this many rows...
    #[serde(default = "default_flush_records")]
    pub(crate) flush_records: usize,
    /// ...or once its first row waited this long.
    #[serde(default = "default_flush_interval")]
    pub(crate) flush_interval_ms: u64,
    /// Object store settings as the object_store crate names them (`aws_endpoint`,
    /// `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, ...).
    #[serde(default)]
    pub(crate) options: BTreeMap<String, String>,
    /// The text the source writes for an unchanged TOASTed value (`source.toast_placeholder`):
    /// such a value lands as null, its column named in the row's `__unchanged__` list.
    #[serde(default = "default_toast_placeholder")]
    pub(crate) toast_placeholder: String,
    /// What is written: `parquet` (the change log as files named by offsets) or `paimon`
    /// (one Paimon table per source table in the warehouse `url`).
    #[serde(default)]
    pub(crate) format: LakeFormat,
    /// `paimon`: the commit user of the sink's commits (one per sink landing a warehouse).
    #[serde(default = "default_commit_user")]
    pub(crate) commit_user: String,
    /// `paimon`: options of the tables the sink creates (`bucket`, `file.format`, ...).
    #[serde(default)]
    pub(crate) table_options: BTreeMap<String, String>,
}

/// What `rowstream sink` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LakeFormat {
    #[default]
    Parquet,
    Paimon,
}

fn default_commit_user() -> String {
    "rowstream-sink".into()
}

fn default_toast_placeholder() -> String {
    "__rowstream_unchanged_toast_value__".into()
}

fn default_flush_records() -> usize {
    10_000
}
fn default_flush_interval() -> u64 {
    60_000
}

impl std::fmt::Debug for LakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeConfig")
            .field("brokers", &self.kafka.brokers)
            .field("topics", &self.sink.topics)
            .field("url", &self.sink.url)
            .field("options", &self.sink.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LakeConfig {
    pub(crate) fn load(path: &Path) -> Result<LakeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        LakeConfig::parse(&text)
    }

    pub(crate) fn parse(text: &str) -> Result<LakeConfig, ConfigError> {
        let cfg: LakeConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Invalid(vec![e.to_string().trim().to_string()]))?;
        let mut problems = Vec::new();
        if cfg.kafka.brokers.trim().is_empty() {
            problems.push("`kafka.brokers`: empty; e.g. \"127.0.0.1:9092\"".into());
        }
        if cfg.sink.topics.is_empty() {
            problems.push("`sink.topics`: give at least one topic".into());
        }
        if cfg.sink.url.trim().is_empty() {
            problems.push(
                "`sink.url`: empty; a directory (/var/lake) or an object store URL (s3://bucket/prefix)"
                    .into(),
            );
        }
        if cfg.sink.flush_records == 0 {
            problems.push("`sink.flush_records`: must be at least 1".into());
        }
        if cfg.sink.flush_interval_ms == 0 {
            problems.push("`sink.flush_interval_ms`: must be at least 1".into());
        }
        match problems.is_empty() {
            true => Ok(cfg),
            false => Err(ConfigError::Invalid(problems)),
        }
    }

    /// The consumer's Kafka settings.
    pub(crate) fn kafka(&self) -> super::kafka::KafkaConfig {
        let mut k = super::kafka::KafkaConfig::with_brokers(&self.kafka.brokers);
        k.properties = self.kafka.properties.clone();
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named() {
        let c = LakeConfig::parse(
            "[kafka]\nbrokers = \"b:9092\"\n[sink]\ntopics = [\"t\"]\nurl = \"/tmp/x\"\n",
        )
        .unwrap();
        assert_eq!(c.sink.flush_records, 10_000);
        assert_eq!(c.sink.flush_interval_ms, 60_000);
        let e = LakeConfig::parse(
            "[kafka]\nbrokers = \"\"\n[sink]\ntopics = []\nurl = \"\"\nflush_records = 0\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "`kafka.brokers`",
            "`sink.topics`",
            "`sink.url`",
            "`sink.flush_records`",
        ] {
            assert!(e.contains(want), "{e}");
        }
        let e = LakeConfig::parse(
            "[kafka]\nbrokers = \"b\"\n[sink]\ntopics = [\"t\"]\nurl = \"/x\"\nflush_rows = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("flush_rows"), "{e}");
        let secret = LakeConfig::parse(
            "[kafka]\nbrokers = \"b\"\n[sink]\ntopics = [\"t\"]\nurl = \"s3://b/p\"\noptions = { aws_secret_access_key = \"hunter2\" }\n",
        )
        .unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
