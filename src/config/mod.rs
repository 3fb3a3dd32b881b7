//! Configuration: TOML file, environment overrides, one validation pass.
//!
//! Invariants:
//! - Every key can be set from the environment as `ROWSTREAM_<SECTION>__<KEY>` (e.g.
//!   `ROWSTREAM_SOURCE__URL`); the environment wins over the file. Under `kafka.properties`
//!   the rest of the variable name maps `_` to `.` (`ROWSTREAM_KAFKA__PROPERTIES__SASL_USERNAME`
//!   → `sasl.username`).
//! - Loading reports *every* problem at once, each with the key's path: unknown keys (with a
//!   suggestion), wrong types, missing required keys, invalid values.
//! - Secrets (the password in `source.url`, `*password*`/`*secret*` Kafka properties) never
//!   appear in `Debug` output or logs.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is invalid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl crate::error::Classify for ConfigError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Setup
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    StrList,
    /// a table of scalars (kafka.properties)
    ScalarMap,
    /// a table of string lists (source.keys)
    ListMap,
}

/// Every known key, its type, and whether it is required.
const KEYS: &[(&str, Kind, bool)] = &[
    ("source.type", Kind::Str, true),
    ("source.url", Kind::Str, true),
    ("source.tables", Kind::StrList, false),
    ("source.exclude", Kind::StrList, false),
    ("source.slot", Kind::Str, false),
    ("source.publication", Kind::Str, false),
    ("source.keys", Kind::ListMap, false),
    ("source.toast_placeholder", Kind::Str, false),
    ("source.timezone", Kind::Str, false),
    ("source.capture_ddl", Kind::Bool, false),
    ("source.ssl_root_cert", Kind::Str, false),
    ("source.server_id", Kind::Int, false),
    ("source.tinyint1_as_boolean", Kind::Bool, false),
    ("kafka.brokers", Kind::Str, true),
    ("kafka.topic", Kind::Str, false),
    ("kafka.partitions", Kind::Int, false),
    ("kafka.replication_factor", Kind::Int, false),
    ("kafka.strict_order", Kind::Bool, false),
    ("kafka.key_separator", Kind::Str, false),
    ("kafka.properties", Kind::ScalarMap, false),
    ("snapshot.mode", Kind::Str, false),
    ("snapshot.chunk_pages", Kind::Int, false),
    ("heartbeat.interval_ms", Kind::Int, false),
    ("state.dir", Kind::Str, false),
    ("state.commit_interval_ms", Kind::Int, false),
    ("encode.split_update", Kind::Bool, false),
    ("admin.listen", Kind::Str, false),
];

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    #[serde(default)]
    pub heartbeat: HeartbeatConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub encode: EncodeConfig,
    #[serde(default)]
    pub admin: AdminConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Postgres,
    Mysql,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(rename = "type")]
    pub kind: SourceType,
    pub url: String,
    /// Include patterns over `schema.table` (Postgres) / `db.table` (MySQL); `*` and `?` wildcards.
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Replication slot, created if missing.
    #[serde(default = "default_name")]
    pub slot: String,
    /// Publication, created if missing.
    #[serde(default = "default_name")]
    pub publication: String,
    /// Custom key columns per table (`"schema.table" = ["a", "b"]`), replacing the primary key.
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
    /// Written for unchanged TOASTed values the log does not carry (spec §4.4).
    #[serde(default = "default_toast")]
    pub toast_placeholder: String,
    /// Zone that timestamps without time zone are read in: `UTC` or a fixed offset `+08:00`.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Install the DDL event trigger (migrations/postgres) when missing and capture DDL records.
    #[serde(default = "yes")]
    pub capture_ddl: bool,
    /// Postgres: CA file (PEM) to verify the server certificate and host name with; without
    /// it TLS (`sslmode=prefer|require` in the URL) encrypts without verifying, as libpq does.
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
    /// MySQL/MariaDB: the replica server id rowstream registers with; unique among the
    /// server's replicas.
    #[serde(default)]
    pub server_id: Option<u32>,
    /// MySQL/MariaDB: TINYINT(1) columns render as BOOLEAN (as DataWorks does).
    #[serde(default = "yes")]
    pub tinyint1_as_boolean: bool,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Partitions of the topics rowstream creates.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "one")]
    pub replication_factor: i32,
    /// One request in flight per connection: strict order even across retries.
    #[serde(default)]
    pub strict_order: bool,
    #[serde(default = "default_sep")]
    pub key_separator: String,
    /// Passed to librdkafka as is (TLS, SASL, tuning).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Snapshot each table once (tables added later get their own), then stream.
    Initial,
    /// Never snapshot: stream only.
    Never,
    /// Snapshot every table at every start, then stream.
    Always,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    #[serde(default = "default_mode")]
    pub mode: SnapshotMode,
    /// Heap pages per snapshot chunk (ctid ranges); bounds each COPY.
    #[serde(default = "default_chunk_pages")]
    pub chunk_pages: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            mode: SnapshotMode::Initial,
            chunk_pages: default_chunk_pages(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    #[serde(default = "default_hb")]
    pub interval_ms: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval_ms: default_hb(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// How often delivered positions are stored (and acknowledged to the source).
    #[serde(default = "default_commit")]
    pub commit_interval_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: default_state_dir(),
            commit_interval_ms: default_commit(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeConfig {
    /// Emit UPDATE as UPDATE_BEFORE + UPDATE_AFTER sharing one sequenceId (spec §4.1).
    #[serde(default)]
    pub split_update: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `host:port` for /healthz, /readyz and /metrics; off when unset.
    #[serde(default)]
    pub listen: Option<String>,
}

fn default_tables() -> Vec<String> {
    vec!["public.*".into()]
}
fn default_name() -> String {
    "rowstream".into()
}
fn default_toast() -> String {
    "__rowstream_unchanged_toast_value__".into()
}
fn default_tz() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
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
fn default_mode() -> SnapshotMode {
    SnapshotMode::Initial
}
fn default_chunk_pages() -> u32 {
    4096
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

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((cred, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = cred.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    // key=value form: password=...
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn is_secret_property(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("key.pem") || k.ends_with(".key")
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("type", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("tables", &self.tables)
            .field("exclude", &self.exclude)
            .field("slot", &self.slot)
            .field("publication", &self.publication)
            .field("keys", &self.keys)
            .field("timezone", &self.timezone)
            .field("capture_ddl", &self.capture_ddl)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret_property(k) {
                        "***"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("strict_order", &self.strict_order)
            .field("properties", &props)
            .finish_non_exhaustive()
    }
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
            .finish()
    }
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
        }
    }
}

impl SourceConfig {
    /// Timestamps without zone: offset from UTC in seconds.
    pub fn tz_offset_secs(&self) -> Result<i32, String> {
        parse_tz(&self.timezone)
    }
}

fn parse_tz(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" || t.eq_ignore_ascii_case("gmt") {
        return Ok(0);
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(format!("`{s}` is not UTC or a fixed offset like +08:00")),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    match (h.parse::<i32>(), m.parse::<i32>()) {
        (Ok(h), Ok(m)) if (0..=14).contains(&h) && (0..60).contains(&m) => {
            Ok(sign * (h * 3600 + m * 60))
        }
        _ => Err(format!("`{s}` is not UTC or a fixed offset like +08:00")),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Str => "a string",
        Kind::Int => "an integer",
        Kind::Bool => "a boolean",
        Kind::StrList => "an array of strings",
        Kind::ScalarMap => "a table of strings",
        Kind::ListMap => "a table of string arrays",
    }
}

fn toml_kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn type_ok(k: Kind, v: &toml::Value) -> bool {
    use toml::Value as V;
    match (k, v) {
        (Kind::Str, V::String(_)) | (Kind::Int, V::Integer(_)) | (Kind::Bool, V::Boolean(_)) => {
            true
        }
        (Kind::StrList, V::Array(a)) => a.iter().all(|x| x.is_str()),
        (Kind::ScalarMap, V::Table(t)) => t.values().all(|x| {
            matches!(
                x,
                V::String(_) | V::Integer(_) | V::Boolean(_) | V::Float(_)
            )
        }),
        (Kind::ListMap, V::Table(t)) => t
            .values()
            .all(|x| matches!(x, V::Array(a) if a.iter().all(|y| y.is_str()))),
        _ => false,
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest(path: &str) -> String {
    let best = KEYS
        .iter()
        .flat_map(|(k, _, _)| [*k, k.split('.').next().unwrap_or(k)])
        .map(|k| (edit_distance(path, k), k))
        .min()
        .filter(|(d, _)| *d <= 3);
    match best {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

/// Apply `ROWSTREAM_*` variables onto the parsed file.
fn apply_env(root: &mut toml::Table, env: &[(String, String)], problems: &mut Vec<String>) {
    for (name, val) in env {
        let Some(rest) = name.strip_prefix("ROWSTREAM_") else {
            continue;
        };
        if !rest.contains("__") {
            continue; // ROWSTREAM_CONFIG, ROWSTREAM_LOG and such are not keys
        }
        let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let (path, kind, leaf): (String, Kind, Vec<String>) =
            if parts.len() >= 3 && parts[0] == "kafka" && parts[1] == "properties" {
                let prop = parts[2..].join("_").replace('_', ".");
                (
                    "kafka.properties".into(),
                    Kind::Str,
                    vec!["kafka".into(), "properties".into(), prop],
                )
            } else {
                let path = parts.join(".");
                match KEYS.iter().find(|(k, _, _)| *k == path) {
                    Some((_, k, _)) => (path.clone(), *k, parts.clone()),
                    None => {
                        problems.push(format!(
                            "environment variable {name}: no config key `{path}`{}",
                            suggest(&path)
                        ));
                        continue;
                    }
                }
            };
        let value = match kind {
            Kind::Str => toml::Value::String(val.clone()),
            Kind::Int => {
                match val.trim().parse::<i64>() {
                    Ok(i) => toml::Value::Integer(i),
                    Err(_) => {
                        problems.push(format!("environment variable {name} (`{path}`): expected an integer, got `{val}`"));
                        continue;
                    }
                }
            }
            Kind::Bool => match val.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => {
                    problems.push(format!("environment variable {name} (`{path}`): expected true or false, got `{val}`"));
                    continue;
                }
            },
            Kind::StrList => {
                let v = val.trim();
                if v.starts_with('[') {
                    match format!("x = {v}").parse::<toml::Table>() {
                        Ok(mut t) => t.remove("x").unwrap_or(toml::Value::Array(vec![])),
                        Err(_) => {
                            problems.push(format!("environment variable {name} (`{path}`): not a TOML array of strings"));
                            continue;
                        }
                    }
                } else {
                    toml::Value::Array(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| toml::Value::String(s.into()))
                            .collect(),
                    )
                }
            }
            Kind::ScalarMap | Kind::ListMap => match format!("x = {val}").parse::<toml::Table>() {
                Ok(mut t) => t
                    .remove("x")
                    .unwrap_or(toml::Value::Table(Default::default())),
                Err(_) => {
                    problems.push(format!(
                        "environment variable {name} (`{path}`): not a TOML inline table"
                    ));
                    continue;
                }
            },
        };
        let mut cur = &mut *root;
        for seg in &leaf[..leaf.len() - 1] {
            let entry = cur
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if !entry.is_table() {
                *entry = toml::Value::Table(Default::default());
            }
            cur = entry.as_table_mut().expect("just made a table");
        }
        cur.insert(leaf[leaf.len() - 1].clone(), value);
    }
}

/// Walk the tree: unknown sections/keys, wrong types, missing required keys.
fn check_shape(root: &toml::Table, problems: &mut Vec<String>) {
    let sections: Vec<&str> = {
        let mut s: Vec<&str> = KEYS
            .iter()
            .map(|(k, _, _)| k.split('.').next().unwrap_or(""))
            .collect();
        s.dedup();
        s
    };
    for (sec, v) in root {
        if !sections.contains(&sec.as_str()) {
            problems.push(format!("unknown section `[{sec}]`{}", suggest(sec)));
            continue;
        }
        let Some(t) = v.as_table() else {
            problems.push(format!(
                "`{sec}` must be a table (`[{sec}]`), found {}",
                toml_kind(v)
            ));
            continue;
        };
        for (k, v) in t {
            let path = format!("{sec}.{k}");
            match KEYS.iter().find(|(p, _, _)| *p == path) {
                None => problems.push(format!("unknown key `{path}`{}", suggest(&path))),
                Some((_, kind, _)) if !type_ok(*kind, v) => problems.push(format!(
                    "`{path}`: expected {}, found {}",
                    kind_name(*kind),
                    toml_kind(v)
                )),
                _ => {}
            }
        }
    }
    for (path, _, required) in KEYS {
        if !required {
            continue;
        }
        let (sec, key) = path.split_once('.').unwrap_or((path, ""));
        let present = root
            .get(sec)
            .and_then(|s| s.as_table())
            .is_some_and(|t| t.contains_key(key));
        if !present {
            problems.push(format!("missing required key `{path}`"));
        }
    }
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Config {
    /// Load from a file plus the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
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
    pub fn from_toml_str(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut root: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => return Err(ConfigError::Invalid(vec![format!("not valid TOML: {e}")])),
        };
        apply_env(&mut root, env, &mut problems);
        // kafka.properties values may be numbers or booleans in TOML: librdkafka takes strings
        if let Some(props) = root
            .get_mut("kafka")
            .and_then(|k| k.as_table_mut())
            .and_then(|k| k.get_mut("properties"))
            .and_then(|p| p.as_table_mut())
        {
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
        check_shape(&root, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let cfg: Config = match toml::Value::Table(root).try_into() {
            Ok(c) => c,
            Err(e) => return Err(ConfigError::Invalid(vec![e.to_string().trim().to_string()])),
        };
        cfg.validate(&mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn validate(&self, p: &mut Vec<String>) {
        let s = &self.source;
        match s.kind {
            SourceType::Postgres => {
                if !(s.url.starts_with("postgres://") || s.url.starts_with("postgresql://")) {
                    p.push(
                        "`source.url`: expected postgres://user[:password]@host[:port]/database"
                            .into(),
                    );
                } else if let Err(e) = s.url.parse::<tokio_postgres::Config>() {
                    p.push(format!("`source.url`: {e}"));
                } else if let Ok(c) = s.url.parse::<tokio_postgres::Config>() {
                    if c.get_dbname().is_none() {
                        p.push("`source.url`: name the database, e.g. postgres://postgres@127.0.0.1:5432/shop".into());
                    }
                }
                if !valid_ident(&s.slot) {
                    p.push(format!("`source.slot`: `{}` is not a valid slot name (lower-case letters, digits, _; at most 63)", s.slot));
                }
                if s.publication.is_empty()
                    || s.publication.len() > 63
                    || s.publication.contains('"')
                {
                    p.push(format!(
                        "`source.publication`: `{}` is not a valid publication name",
                        s.publication
                    ));
                }
            }
            SourceType::Mysql => {
                if !s.url.starts_with("mysql://") {
                    p.push(
                        "`source.url`: expected mysql://user:password@host:3306/database".into(),
                    );
                } else if let Err(e) = mysql_async::Opts::from_url(&s.url) {
                    p.push(format!("`source.url`: {e}"));
                }
                match s.server_id {
                    None => p.push("`source.server_id`: required for mysql: a replica id unique among the server's replicas, e.g. 5401".into()),
                    Some(0) => p.push("`source.server_id`: 0 is not a valid replica id; use e.g. 5401".into()),
                    Some(_) => {}
                }
            }
        }
        if s.tables.is_empty() {
            p.push("`source.tables`: give at least one pattern, e.g. [\"public.*\"]".into());
        }
        for (i, pat) in s.tables.iter().chain(s.exclude.iter()).enumerate() {
            if !pat.contains('.') {
                let key = if i < s.tables.len() {
                    "source.tables"
                } else {
                    "source.exclude"
                };
                let example = if s.kind == SourceType::Mysql {
                    "shop.*"
                } else {
                    "public.*"
                };
                p.push(format!(
                    "`{key}`: pattern `{pat}` must name schema.table or db.table (e.g. `{example}`)"
                ));
            }
        }
        for (t, cols) in &s.keys {
            if !t.contains('.') || cols.is_empty() {
                p.push(format!(
                    "`source.keys.\"{t}\"`: expected \"schema.table\" = [\"col\", ...]"
                ));
            }
        }
        if let Err(e) = s.tz_offset_secs() {
            p.push(format!("`source.timezone`: {e}"));
        }
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            p.push("`kafka.brokers`: empty; e.g. \"127.0.0.1:9092\"".into());
        }
        if k.topic.trim().is_empty() {
            p.push("`kafka.topic`: empty; e.g. \"{db}.{schema}.{table}\"".into());
        } else {
            let stripped = k
                .topic
                .replace("{db}", "")
                .replace("{schema}", "")
                .replace("{table}", "");
            if stripped.contains('{') || stripped.contains('}') {
                p.push(format!("`kafka.topic`: `{}` has a placeholder other than {{db}}, {{schema}}, {{table}}", k.topic));
            }
            if stripped
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'))
            {
                p.push(format!("`kafka.topic`: `{}` has characters Kafka topic names cannot hold (allowed: a-z A-Z 0-9 . _ -)", k.topic));
            }
        }
        if !(1..=10000).contains(&k.partitions) {
            p.push(format!(
                "`kafka.partitions`: {} is out of range 1..=10000",
                k.partitions
            ));
        }
        if k.replication_factor < 1 {
            p.push(format!(
                "`kafka.replication_factor`: {} must be at least 1",
                k.replication_factor
            ));
        }
        for prop in ["bootstrap.servers", "enable.idempotence"] {
            if prop == "bootstrap.servers" && k.properties.contains_key(prop) {
                p.push(
                    "`kafka.properties.\"bootstrap.servers\"`: set `kafka.brokers` instead".into(),
                );
            }
        }
        if self.heartbeat.interval_ms < 100 {
            p.push(format!(
                "`heartbeat.interval_ms`: {} is below the minimum of 100",
                self.heartbeat.interval_ms
            ));
        }
        if self.snapshot.chunk_pages == 0 {
            p.push("`snapshot.chunk_pages`: must be at least 1".into());
        }
        if self.state.dir.as_os_str().is_empty() {
            p.push("`state.dir`: empty; e.g. \"./rowstream-state\"".into());
        }
        if !(10..=60_000).contains(&self.state.commit_interval_ms) {
            p.push(format!(
                "`state.commit_interval_ms`: {} is out of range 10..=60000",
                self.state.commit_interval_ms
            ));
        }
        if let Some(l) = &self.admin.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                p.push(format!(
                    "`admin.listen`: `{l}` is not host:port, e.g. 127.0.0.1:8080"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.source.slot, "rowstream");
        assert_eq!(c.kafka.topic, "{db}.{schema}.{table}");
        assert_eq!(c.kafka.properties["linger.ms"], "5");
        assert_eq!(c.snapshot.mode, SnapshotMode::Initial);
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
        assert_eq!(c.source.tables, vec!["a.b", "c.*"]);
        assert_eq!(c.kafka.properties["security.protocol"], "SASL_SSL");
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

    #[test]
    fn redaction_and_tz() {
        assert_eq!(redact_url("postgres://u:p@h:1/d"), "postgres://u:***@h:1/d");
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(parse_tz("+08:00"), Ok(8 * 3600));
        assert_eq!(parse_tz("-05:30"), Ok(-(5 * 3600 + 1800)));
        assert!(parse_tz("Asia/Shanghai").is_err());
    }
}
