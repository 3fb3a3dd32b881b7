//! Configuration: TOML file, environment overrides, one validation pass.
//!
//! The module is split by concern: `keys` (the table of every key and the shape check on the
//! raw TOML), `env` (`ROWSTREAM_*` overrides), and one file per group of sections: `source`
//! (common keys plus the keys of the source `source.type` names), `kafka`, and `runtime`
//! (snapshot, heartbeat, state, encode, admin), `lake` and `worker` (the files of `rowstream
//! sink` and `rowstream worker`), `submitted` (a connector config as Kafka Connect keeps and
//! shows it), `error` (every problem at once).
//!
//! What it may import: `error` only (and rdkafka's `ClientConfig`, which the Kafka settings
//! build); every other part of rowstream reads it.
//!
//! Invariants:
//! - Every key can be set from the environment as `ROWSTREAM_<SECTION>__<KEY>` (e.g.
//!   `ROWSTREAM_SOURCE__URL`); the environment wins over the file.
//! - Loading reports *every* problem at once, each with the key's path: unknown keys (with a
//!   suggestion), wrong types, keys of another source type, missing required keys, invalid
//!   values.
//! - A loaded `Config` is resolved: defaults that depend on the source type are filled in here,
//!   not by the sources.
//! - Secrets (the password in `source.url`, `*password*`/`*secret*` Kafka properties) never
//!   appear in `Debug` output or logs.

mod env;
mod error;
mod errors;
mod kafka;
mod keys;
mod lake;
mod runtime;
mod source;
mod submitted;
mod worker;

use error::push;
pub(crate) use error::ConfigError;
pub(crate) use errors::{BadValues, ErrorsConfig, Tolerance};
pub(crate) use kafka::{
    is_secret_property, read_from, Fetch, KafkaConfig, Oversized, DEFAULT_MESSAGE_MAX_BYTES,
};
pub(crate) use lake::{LakeConfig, LakeFormat};
pub(crate) use runtime::{
    AdminConfig, EncodeConfig, HeartbeatConfig, Profile, SnapshotConfig, SnapshotMode,
    StateBackend, StateConfig,
};
pub(crate) use source::{
    parse_mask, parse_tz, redact_url, ColumnMask, MysqlOptions, MysqlSslMode, PostgresOptions,
    ResumeBy, SourceConfig, SourceOptions, DDL_KINDS,
};
pub(crate) use submitted::{redacted, restore_secrets, submitted};
pub(crate) use worker::{reachable, WorkerConfig, RESERVED};

use serde::Deserialize;
use std::fmt;
use std::path::Path;

#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) source: SourceConfig,
    pub(crate) kafka: KafkaConfig,
    #[serde(default)]
    pub(crate) snapshot: SnapshotConfig,
    #[serde(default)]
    pub(crate) heartbeat: HeartbeatConfig,
    #[serde(default)]
    pub(crate) state: StateConfig,
    #[serde(default)]
    pub(crate) encode: EncodeConfig,
    #[serde(default)]
    pub(crate) admin: AdminConfig,
    #[serde(default)]
    pub(crate) errors: ErrorsConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("kafka", &self.kafka)
            .field("snapshot", &self.snapshot)
            .field("heartbeat", &self.heartbeat)
            .field("state", &self.state)
            .field("encode", &self.encode)
            .field("admin", &self.admin)
            .field("errors", &self.errors)
            .finish()
    }
}

impl Config {
    /// The effective config (file, environment and defaults) as TOML a user can paste back,
    /// secrets replaced by `***` (the URL's password, secret Kafka properties, the admin token).
    pub(crate) fn to_toml(&self) -> String {
        let mut v = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            _ => return String::new(),
        };
        if let Some(url) = v
            .get_mut("source")
            .and_then(|s| s.get_mut("url"))
            .filter(|u| u.is_str())
        {
            *url = toml::Value::String(redact_url(url.as_str().unwrap_or_default()));
        }
        if let Some(props) = v
            .get_mut("kafka")
            .and_then(|k| k.get_mut("properties"))
            .and_then(|p| p.as_table_mut())
        {
            for (k, val) in props.iter_mut() {
                if is_secret_property(k) {
                    *val = toml::Value::String("***".into());
                }
            }
        }
        if let Some(t) = v.get_mut("admin").and_then(|a| a.get_mut("token")) {
            *t = toml::Value::String("***".into());
        }
        // keys of the other source type (defaults the structs carry) are left out, so the text
        // loads back; sections in the order the docs give them
        let kind = self.source.kind();
        let mut out = String::new();
        for section in [
            "source",
            "kafka",
            "snapshot",
            "heartbeat",
            "state",
            "encode",
            "admin",
        ] {
            let Some(toml::Value::Table(mut t)) = v.remove(section) else {
                continue;
            };
            t.retain(|k, _| {
                keys::find(&format!("{section}.{k}")).is_none_or(|key| {
                    key.applies == keys::For::All || key.applies == keys::For::Only(kind)
                })
            });
            let mut one = toml::Table::new();
            one.insert(section.into(), toml::Value::Table(t));
            out.push_str(&toml::to_string(&one).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

/// TOML numbers and booleans under `kafka.properties` become text: librdkafka takes strings.
fn properties_as_text(root: &mut toml::Table) {
    let Some(props) = root
        .get_mut("kafka")
        .and_then(|k| k.as_table_mut())
        .and_then(|k| k.get_mut("properties"))
        .and_then(|p| p.as_table_mut())
    else {
        return;
    };
    for (_, v) in props.iter_mut() {
        let s = match v {
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => continue,
        };
        *v = toml::Value::String(s);
    }
}

impl Config {
    /// Load from a file plus the process environment.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("ROWSTREAM_"))
            .collect();
        Config::from_toml_str(&text, &env)
    }

    /// Parse `text` with the given `ROWSTREAM_*` variables applied; reports every problem.
    pub(crate) fn from_toml_str(
        text: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut root: toml::Table = text
            .parse()
            .map_err(|e| ConfigError::Invalid(vec![format!("not valid TOML: {e}")]))?;
        env::apply_env(&mut root, env, &mut problems);
        Config::from_table(root, problems)
    }

    /// A connector config as the Kafka Connect REST API carries it: flat `section.key` pairs
    /// (`kafka.properties.<name>` for librdkafka's), values as strings (parsed by the key's
    /// type) or JSON, laid over `base` (the worker's settings). Keys in `reserved` are the
    /// worker's to set. Reports every problem, each with its key.
    pub(crate) fn from_flat(
        flat: &serde_json::Map<String, serde_json::Value>,
        mut base: toml::Table,
        reserved: &[&str],
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        for (k, v) in flat {
            if k == "name" || k == "connector.class" || k == "tasks.max" {
                continue; // Connect's own keys, which tools send along
            }
            if reserved.contains(&k.as_str()) {
                problems.push(format!("`{k}`: set by the worker, not per connector"));
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => Some(s.clone()),
                _ => None,
            };
            if let Some(prop) = k.strip_prefix("kafka.properties.") {
                let val = text.unwrap_or_else(|| v.to_string());
                env::set(
                    &mut base,
                    &["kafka".into(), "properties".into(), prop.into()],
                    toml::Value::String(val),
                );
                continue;
            }
            let Some(key) = keys::find(k) else {
                problems.push(format!("unknown key `{k}`{}", keys::suggest(k)));
                continue;
            };
            let value = match text {
                Some(t) => env::parse(key.kind, &t).map_err(|e| format!("`{k}`: {e}, got `{t}`")),
                None => toml::Value::try_from(v).map_err(|e| format!("`{k}`: {e}")),
            };
            match value {
                Ok(value) => {
                    let leaf: Vec<String> = k.split('.').map(String::from).collect();
                    env::set(&mut base, &leaf, value);
                }
                Err(p) => problems.push(p),
            }
        }
        Config::from_table(base, problems)
    }

    /// The checks every config goes through, whatever it came from.
    fn from_table(mut root: toml::Table, mut problems: Vec<String>) -> Result<Config, ConfigError> {
        properties_as_text(&mut root);
        keys::check_shape(&root, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let mut cfg: Config =
            toml::Value::Table(root)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    ConfigError::Invalid(vec![e.to_string().trim().to_string()])
                })?;
        cfg.source.resolve(&mut problems);
        cfg.encode.resolve();
        cfg.validate(&mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn validate(&self, p: &mut Vec<String>) {
        self.source.validate(p);
        self.kafka.validate(p);
        self.snapshot.validate(p);
        self.heartbeat.validate(p);
        self.state.validate(p);
        self.encode.validate(p);
        self.admin.validate(p);
        let markers = self.encode.transaction_markers;
        self.errors.validate(
            &[
                ("encode.side_topic", self.encode.side_topic.as_deref()),
                (
                    "encode.transaction_topic",
                    markers.then_some(self.encode.transaction_topic.as_str()),
                ),
            ],
            self.kafka.oversized == Oversized::Park
                || self.kafka.oversized_tables.values().any(|v| v == "park"),
            self.kafka.exactly_once,
            p,
        );
        if self.kafka.exactly_once && self.state.backend != StateBackend::Kafka {
            push(
                p,
                "kafka.exactly_once",
                "needs state.backend = \"kafka\" (and state.connector): the position is committed in the same Kafka transaction as the records it covers",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::source::SourceType;
    use super::*;

    const GOOD: &str = r#"
[source]
type = "postgres"
url = "postgres://postgres:hunter2@127.0.0.1:5432/shop"
tables = ["public.*"]
[kafka]
brokers = "127.0.0.1:9092"
partitions = 3
[kafka.properties]
"linger.ms" = 5
"sasl.password" = "s3cret"
[snapshot]
mode = "initial"
[heartbeat]
interval_ms = 5000
[state]
dir = "./st"
"#;

    #[test]
    fn loads_with_defaults() {
        let c = Config::from_toml_str(GOOD, &[]).unwrap();
        assert_eq!(pg(&c).slot, "rowstream");
        assert_eq!(c.kafka.topic, "{db}.{schema}.{table}");
        assert_eq!(c.kafka.properties["linger.ms"], "5");
        assert_eq!(c.snapshot.mode, SnapshotMode::Initial);
        assert!(
            c.encode.order_header,
            "the rowstream.order header is on by default"
        );
        let off = format!("{GOOD}\n[encode]\norder_header = false\n");
        assert!(
            !Config::from_toml_str(&off, &[])
                .unwrap()
                .encode
                .order_header
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cret"), "{dbg}");
    }

    #[test]
    fn env_overrides() {
        let env = vec![
            (
                "ROWSTREAM_SOURCE__URL".to_string(),
                "postgres://u@h/other".to_string(),
            ),
            ("ROWSTREAM_KAFKA__PARTITIONS".to_string(), "7".to_string()),
            (
                "ROWSTREAM_KAFKA__STRICT_ORDER".to_string(),
                "true".to_string(),
            ),
            (
                "ROWSTREAM_SOURCE__TABLES".to_string(),
                "a.b, c.*".to_string(),
            ),
            (
                "ROWSTREAM_KAFKA__PROPERTIES__SECURITY_PROTOCOL".to_string(),
                "SASL_SSL".to_string(),
            ),
        ];
        let c = Config::from_toml_str(GOOD, &env).unwrap();
        assert_eq!(c.source.url, "postgres://u@h/other");
        assert_eq!(c.kafka.partitions, 7);
        assert!(c.kafka.strict_order);
        assert_eq!(c.source.tables(), ["a.b", "c.*"]);
        assert_eq!(c.kafka.properties["security.protocol"], "SASL_SSL");
    }

    /// Transaction markers: off by default; on from the file or the environment; refused
    /// without the order header they rely on, or without a valid topic.
    #[test]
    fn parking_policies_need_a_dead_letter_topic() {
        let c = Config::from_toml_str(GOOD, &[]).unwrap();
        assert_eq!(c.errors.bad_values, BadValues::Null);
        assert_eq!(c.errors.tolerance, Tolerance::None);
        assert_eq!(c.errors.topic(), None);
        let err = |extra: &str| {
            Config::from_toml_str(&format!("{GOOD}\n{extra}"), &[])
                .unwrap_err()
                .to_string()
        };
        let msg = err("[errors]\nbad_values = \"park\"\ntolerance = \"all\"\n");
        assert!(
            msg.contains("`errors.bad_values`: \"park\" sends rows"),
            "{msg}"
        );
        assert!(msg.contains("`errors.tolerance`: \"all\" parks"), "{msg}");
        assert!(msg.contains("set errors.dead_letter_topic"), "{msg}");
        let msg = err("[errors]\nbad_values = \"drop\"\n");
        assert!(msg.contains("unknown variant `drop`"), "{msg}");
        let msg = err("[errors]\ndead_letter_topic = \"dead letters\"\n");
        assert!(
            msg.contains("`dead letters` is not a Kafka topic name"),
            "{msg}"
        );
        let msg = err("[encode]\nside_topic = \"dl\"\n[errors]\ndead_letter_topic = \"dl\"\n");
        assert!(msg.contains("`dl` is encode.side_topic too"), "{msg}");
        let over = GOOD.replace("[kafka]\n", "[kafka]\noversized = \"park\"\n");
        let msg = Config::from_toml_str(&over, &[]).unwrap_err().to_string();
        assert!(msg.contains("`kafka.oversized`: \"park\""), "{msg}");
        let eos = format!("{GOOD}\n[errors]\ntolerance = \"all\"\ndead_letter_topic = \"dl\"\n")
            .replace("[kafka]\n", "[kafka]\nexactly_once = true\n");
        let msg = Config::from_toml_str(&eos, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("cannot be combined with kafka.exactly_once"),
            "{msg}"
        );
        let env = [
            (
                "ROWSTREAM_ERRORS__BAD_VALUES".to_string(),
                "park".to_string(),
            ),
            (
                "ROWSTREAM_ERRORS__DEAD_LETTER_TOPIC".to_string(),
                "dl".to_string(),
            ),
            ("ROWSTREAM_ERRORS__MAX_PARKED".to_string(), "10".to_string()),
        ];
        let c = Config::from_toml_str(GOOD, &env).unwrap();
        assert_eq!(c.errors.bad_values, BadValues::Park);
        assert_eq!(c.errors.topic(), Some("dl"));
        assert_eq!(c.errors.max_parked, 10);
    }

    #[test]
    fn transaction_markers_need_the_order_header_and_a_topic() {
        let c = Config::from_toml_str(GOOD, &[]).unwrap();
        assert!(!c.encode.transaction_markers);
        assert_eq!(c.encode.transaction_topic, "rowstream.transactions");
        assert_eq!(c.source.database().as_deref(), Some("shop"));
        let env = [(
            "ROWSTREAM_ENCODE__TRANSACTION_MARKERS".to_string(),
            "true".to_string(),
        )];
        let c = Config::from_toml_str(GOOD, &env).unwrap();
        assert!(c.encode.transaction_markers);
        let no_order = format!("{GOOD}\n[encode]\norder_header = false\n");
        let msg = Config::from_toml_str(&no_order, &env)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`encode.transaction_markers`: needs encode.order_header = true"),
            "{msg}"
        );
        // order_header off alone is fine
        assert!(Config::from_toml_str(&no_order, &[]).is_ok());
        let empty =
            format!("{GOOD}\n[encode]\ntransaction_markers = true\ntransaction_topic = \"\"\n");
        let msg = Config::from_toml_str(&empty, &[]).unwrap_err().to_string();
        assert!(
            msg.contains(
                "`encode.transaction_topic`: empty while encode.transaction_markers is on"
            ),
            "{msg}"
        );
        let bad = format!("{GOOD}\n[encode]\ntransaction_topic = \"tx/1\"\n");
        let msg = Config::from_toml_str(&bad, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`encode.transaction_topic`: `tx/1` is not a Kafka topic name"),
            "{msg}"
        );
        let shared = format!(
            "{GOOD}\n[encode]\ntransaction_markers = true\nside_topic = \"side\"\ntransaction_topic = \"side\"\n"
        );
        let msg = Config::from_toml_str(&shared, &[]).unwrap_err().to_string();
        assert!(msg.contains("`side` is encode.side_topic too"), "{msg}");
        let c = Config::from_toml_str(MYSQL, &[]).unwrap();
        assert_eq!(c.source.database().as_deref(), Some("shop"));
        let no_db = MYSQL.replace("3306/shop", "3306") + "\n";
        let no_db = no_db.replace("server_id = 7", "server_id = 7\ntables = [\"shop.*\"]");
        let c = Config::from_toml_str(&no_db, &[]).unwrap();
        assert_eq!(c.source.database(), None);
    }

    #[test]
    fn reports_every_problem_with_paths() {
        let bad = r#"
[source]
type = "postgres"
url = "mysql://x"
tabels = ["public.*"]
slot = "Bad-Slot"
[kafka]
partitions = "three"
[snapshot]
mode = "sometimes"
[heartbeet]
interval_ms = 1
"#;
        let e = Config::from_toml_str(bad, &[("ROWSTREAM_KAFKA__PARTITONS".into(), "3".into())])
            .unwrap_err();
        let msg = e.to_string();
        for needle in [
            "unknown key `source.tabels` (did you mean `source.tables`?)",
            "`kafka.partitions`: expected an integer, found a string",
            "unknown section `[heartbeet]` (did you mean",
            "missing required key `kafka.brokers`",
            "ROWSTREAM_KAFKA__PARTITONS",
        ] {
            assert!(msg.contains(needle), "missing `{needle}` in:\n{msg}");
        }
        // semantic problems are all reported too once the shape is right
        let bad2 = r#"
[source]
type = "postgres"
url = "mysql://x"
slot = "Bad-Slot"
tables = ["orders"]
timezone = "Mars/Olympus"
[kafka]
brokers = ""
topic = "{database}.x"
partitions = 0
[snapshot]
mode = "initial"
[heartbeat]
interval_ms = 1
"#;
        let msg = Config::from_toml_str(bad2, &[]).unwrap_err().to_string();
        for needle in [
            "`source.url`",
            "`source.slot`",
            "`source.tables`",
            "`source.timezone`",
            "`kafka.brokers`",
            "`kafka.topic`",
            "`kafka.partitions`",
            "`heartbeat.interval_ms`",
        ] {
            assert!(msg.contains(needle), "missing `{needle}` in:\n{msg}");
        }
        let bad3 = GOOD.replace("mode = \"initial\"", "mode = \"sometimes\"");
        let msg = Config::from_toml_str(&bad3, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("sometimes") && msg.contains("snapshot.mode"),
            "{msg}"
        );
    }

    fn pg(c: &Config) -> &PostgresOptions {
        match &c.source.options {
            SourceOptions::Postgres(o) => o,
            SourceOptions::Mysql(_) => panic!("expected postgres options"),
        }
    }

    const MYSQL: &str = r#"
[source]
type = "mysql"
url = "mysql://u:p@127.0.0.1:3306/shop"
server_id = 7
[kafka]
brokers = "127.0.0.1:9092"
"#;

    #[test]
    fn defaults_depend_on_the_source_type() {
        let c = Config::from_toml_str(GOOD, &[]).unwrap();
        assert_eq!(c.source.tables(), ["public.*"]);
        let c = Config::from_toml_str(MYSQL, &[]).unwrap();
        assert_eq!(c.source.kind(), SourceType::Mysql);
        assert_eq!(c.source.tables(), ["shop.*"]);
        // an explicit pattern is taken as written, also `public.*` on MySQL
        let explicit = MYSQL.replace("server_id = 7", "server_id = 7\ntables = [\"public.*\"]");
        let c = Config::from_toml_str(&explicit, &[]).unwrap();
        assert_eq!(c.source.tables(), ["public.*"]);
        let no_db = MYSQL.replace("3306/shop", "3306");
        let msg = Config::from_toml_str(&no_db, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`source.tables`: no pattern given and source.url names no database"),
            "{msg}"
        );
        let empty = GOOD.replace("tables = [\"public.*\"]", "tables = []");
        let msg = Config::from_toml_str(&empty, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`source.tables`: give at least one pattern"),
            "{msg}"
        );
    }

    #[test]
    fn keys_of_the_other_source_are_reported() {
        let bad = MYSQL.replace(
            "server_id = 7",
            "server_id = 7\nslot = \"s\"\ncapture_ddl = false\n[snapshot]\nchunk_pages = 8",
        );
        let msg = Config::from_toml_str(&bad, &[]).unwrap_err().to_string();
        for needle in [
            "`source.slot`: applies to postgres sources only, and source.type is mysql; remove it",
            "`source.capture_ddl`: applies to postgres sources only",
            "`snapshot.chunk_pages`: applies to postgres sources only",
        ] {
            assert!(msg.contains(needle), "missing `{needle}` in:\n{msg}");
        }
        let env = [("ROWSTREAM_SOURCE__SERVER_ID".to_string(), "9".to_string())];
        let msg = Config::from_toml_str(GOOD, &env).unwrap_err().to_string();
        assert!(
            msg.contains(
                "`source.server_id`: applies to mysql sources only, and source.type is postgres"
            ),
            "{msg}"
        );
        let other = GOOD.replace("type = \"postgres\"", "type = \"sqlserver\"");
        let msg = Config::from_toml_str(&other, &[]).unwrap_err().to_string();
        assert!(
            msg.contains(
                "`source.type`: `sqlserver` is not a source type; expected one of postgres, mysql"
            ),
            "{msg}"
        );
    }

    /// Every key path a serialized `Config` of `kind` holds, `section.key`.
    fn struct_paths(c: &Config) -> Vec<String> {
        let v = toml::Value::try_from(c).unwrap();
        let mut out = Vec::new();
        for (sec, t) in v.as_table().unwrap() {
            for k in t.as_table().unwrap().keys() {
                out.push(format!("{sec}.{k}"));
            }
        }
        out.sort();
        out
    }

    /// `validate` prints TOML that loads back into the same config; secrets are `***`.
    #[test]
    fn effective_toml_loads_back_with_secrets_hidden() {
        let my = MYSQL.replace("u:p@", "u:hunter2@").replace(
            "[kafka]",
            "[kafka]\nproperties = { \"sasl.password\" = \"s3cret\", \"linger.ms\" = 5 }",
        );
        for base in [GOOD.to_string(), my] {
            let text = base + "[admin]\ntoken = \"tok-secret\"\n";
            let c = Config::from_toml_str(&text, &[]).unwrap();
            let out = c.to_toml();
            for secret in ["hunter2", "s3cret", "tok-secret"] {
                assert!(!out.contains(secret), "{out}");
            }
            assert!(out.contains("\"linger.ms\" = \"5\""), "{out}");
            assert!(out.starts_with("[source]\n"), "{out}");
            assert!(out.contains("mode = \"initial\""), "{out}");
            // pasted back with the secrets filled in, it is the same config
            let filled = out
                .replacen(":***@", ":hunter2@", 1)
                .replace(
                    "\"sasl.password\" = \"***\"",
                    "\"sasl.password\" = \"s3cret\"",
                )
                .replace("token = \"***\"", "token = \"tok-secret\"");
            let back = Config::from_toml_str(&filled, &[]).unwrap();
            assert_eq!(
                toml::Value::try_from(&back).unwrap(),
                toml::Value::try_from(&c).unwrap()
            );
        }
    }

    /// docs/configuration.md has a row for every key with its default, its environment
    /// variable and the source types that read it.
    #[test]
    fn the_configuration_reference_matches_the_structs() {
        let doc = include_str!("../../docs/configuration.md");
        let minimal = |t: SourceType| {
            match t {
            SourceType::Postgres => "[source]\ntype = \"postgres\"\nurl = \"postgres://u@h/shop\"\n[kafka]\nbrokers = \"b:9092\"\n",
            SourceType::Mysql => "[source]\ntype = \"mysql\"\nurl = \"mysql://u@h/shop\"\nserver_id = 7\n[kafka]\nbrokers = \"b:9092\"\n",
        }
        };
        let defaults: Vec<(SourceType, toml::Value)> = SourceType::ALL
            .into_iter()
            .map(|t| {
                let c = Config::from_toml_str(minimal(t), &[]).unwrap();
                (t, toml::Value::try_from(&c).unwrap())
            })
            .collect();
        let mut missing = Vec::new();
        for key in keys::KEYS {
            let Some(row) = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", key.path)))
            else {
                missing.push(format!("no row for `{}`", key.path));
                continue;
            };
            let env = format!(
                "`ROWSTREAM_{}{}`",
                key.path.to_ascii_uppercase().replace('.', "__"),
                if key.path == "kafka.properties" {
                    "__<NAME>"
                } else {
                    ""
                }
            );
            if !row.contains(&env) {
                missing.push(format!("`{}`: environment variable {env}", key.path));
            }
            let applies = match key.applies {
                keys::For::All => "| both |",
                keys::For::Only(SourceType::Postgres) => "| postgres |",
                keys::For::Only(SourceType::Mysql) => "| mysql |",
            };
            if !row.contains(applies) {
                missing.push(format!("`{}`: source column {applies}", key.path));
            }
            let (section, name) = key.path.split_once('.').unwrap();
            for (t, v) in &defaults {
                if key.applies != keys::For::All && key.applies != keys::For::Only(*t) {
                    continue;
                }
                let shown = match v.get(section).and_then(|s| s.get(name)) {
                    _ if key.required || key.path == "source.server_id" => "required".to_string(),
                    None => "unset".to_string(),
                    Some(d) if key.path == "source.url" => d.to_string(),
                    Some(d) => format!("`{}`", d.to_string().replace("shop", "<db>")),
                };
                if !row.contains(&shown) {
                    missing.push(format!("`{}`: default {shown} ({t:?})", key.path));
                }
            }
        }
        // and no row for a key that does not exist
        for l in doc.lines() {
            if let Some(path) = l.strip_prefix("| `").and_then(|r| r.split('`').next()) {
                let worker = doc[..doc.find(l).unwrap()].contains("## `worker.toml`");
                if !worker && keys::find(path).is_none() {
                    missing.push(format!("row for unknown key `{path}`"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/configuration.md:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn keys_match_the_structs() {
        // every optional key given, so none serializes as absent
        let full_pg = format!(
            "{GOOD}\n[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"t\"\nready_max_lag_ms = 1\n"
        )
        .replace("[state]", "[state]\nconnector = \"c\"")
        .replace("tables = [", "ssl_root_cert = \"ca.pem\"\ntables = [");
        let full_my = format!(
            "{MYSQL}\n[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"t\"\nready_max_lag_ms = 1\n"
        )
        .replace("[state]", "[state]\nconnector = \"c\"")
        .replace(
            "server_id = 7",
            "server_id = 7\nssl_mode = \"required\"\nssl_root_cert = \"Cargo.toml\"",
        );
        let (full_pg, full_my) = (
            format!("{full_pg}[encode]\nside_topic = \"s\"\n"),
            format!("{full_my}[encode]\nside_topic = \"s\"\n"),
        );
        let mut all_fields = Vec::new();
        for (kind, text) in [
            (SourceType::Postgres, full_pg),
            (SourceType::Mysql, full_my),
        ] {
            let c = Config::from_toml_str(&text, &[]).unwrap();
            assert_eq!(c.source.kind(), kind);
            let fields = struct_paths(&c);
            // the tagged [source] section holds exactly the keys of its type
            let source_fields: Vec<&String> =
                fields.iter().filter(|p| p.starts_with("source.")).collect();
            let source_keys: Vec<&str> = keys::KEYS
                .iter()
                .filter(|k| k.path.starts_with("source."))
                .filter(|k| k.applies == keys::For::All || k.applies == keys::For::Only(kind))
                .map(|k| k.path)
                .collect();
            let mut source_keys: Vec<String> = source_keys.into_iter().map(String::from).collect();
            source_keys.sort();
            assert_eq!(
                source_fields,
                source_keys.iter().collect::<Vec<_>>(),
                "{kind:?}: KEYS and the [source] structs disagree"
            );
            all_fields.extend(fields);
        }
        all_fields.sort();
        all_fields.dedup();
        let mut table: Vec<String> = keys::KEYS.iter().map(|k| k.path.to_string()).collect();
        table.sort();
        assert_eq!(all_fields, table, "KEYS and the structs disagree");
    }
}
