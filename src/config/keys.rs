//! The table of every config key, and the shape check that runs on the raw TOML before serde
//! builds the structs.
//!
//! Invariants:
//! - [`KEYS`] lists exactly the keys the structs read, with the source type each applies to;
//!   the test `keys_match_the_structs` serializes the structs and compares.
//! - The shape check reports every problem at once, each with its key path: unknown sections
//!   and keys (with a suggestion), wrong types, missing required keys, an unknown
//!   `source.type`, and keys that do not apply to the chosen source (`slot` on MySQL).

use super::source::SourceType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
    StrList,
    /// a table of scalars (kafka.properties)
    ScalarMap,
    /// a table of string lists (source.keys)
    ListMap,
}

/// Which sources read a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum For {
    All,
    Only(SourceType),
}

pub(super) struct Key {
    pub(super) path: &'static str,
    pub(super) kind: Kind,
    pub(super) required: bool,
    pub(super) applies: For,
}

const fn key(path: &'static str, kind: Kind, required: bool, applies: For) -> Key {
    Key {
        path,
        kind,
        required,
        applies,
    }
}

const PG: For = For::Only(SourceType::Postgres);
const MY: For = For::Only(SourceType::Mysql);
const ALL: For = For::All;

/// Every known key: path, type, required, which sources read it.
pub(super) const KEYS: &[Key] = &[
    key("source.type", Kind::Str, true, ALL),
    key("source.url", Kind::Str, true, ALL),
    key("source.tables", Kind::StrList, false, ALL),
    key("source.exclude", Kind::StrList, false, ALL),
    key("source.keys", Kind::ListMap, false, ALL),
    key("source.columns", Kind::ListMap, false, ALL),
    key("source.column_exclude", Kind::StrList, false, ALL),
    key("source.column_masks", Kind::ScalarMap, false, ALL),
    key("source.mask_salt", Kind::Str, false, ALL),
    key("source.routes", Kind::ScalarMap, false, ALL),
    key("source.shard_column", Kind::Str, false, ALL),
    key("source.ddl_policy", Kind::ScalarMap, false, ALL),
    key("source.timezone", Kind::Str, false, ALL),
    key("source.slot", Kind::Str, false, PG),
    key("source.publication", Kind::Str, false, PG),
    key("source.toast_placeholder", Kind::Str, false, PG),
    key("source.capture_ddl", Kind::Bool, false, PG),
    key("source.ssl_root_cert", Kind::Str, false, ALL),
    key("source.ssl_mode", Kind::Str, false, MY),
    key("source.server_id", Kind::Int, false, MY),
    key("source.tinyint1_as_boolean", Kind::Bool, false, MY),
    key("source.resume_by", Kind::Str, false, MY),
    key("kafka.brokers", Kind::Str, true, ALL),
    key("kafka.topic", Kind::Str, false, ALL),
    key("kafka.partitions", Kind::Int, false, ALL),
    key("kafka.replication_factor", Kind::Int, false, ALL),
    key("kafka.strict_order", Kind::Bool, false, ALL),
    key("kafka.key_separator", Kind::Str, false, ALL),
    key("kafka.properties", Kind::ScalarMap, false, ALL),
    key("kafka.oversized", Kind::Str, false, ALL),
    key("kafka.oversized_tables", Kind::ScalarMap, false, ALL),
    key("kafka.exactly_once", Kind::Bool, false, ALL),
    key("snapshot.mode", Kind::Str, false, ALL),
    key("snapshot.chunk_pages", Kind::Int, false, PG),
    key("snapshot.chunk_rows", Kind::Int, false, MY),
    key("heartbeat.interval_ms", Kind::Int, false, ALL),
    key("state.backend", Kind::Str, false, ALL),
    key("state.connector", Kind::Str, false, ALL),
    key("state.topic", Kind::Str, false, ALL),
    key("state.history_topic", Kind::Str, false, ALL),
    key("state.dir", Kind::Str, false, ALL),
    key("state.commit_interval_ms", Kind::Int, false, ALL),
    key("encode.split_update", Kind::Bool, false, ALL),
    key("encode.order_header", Kind::Bool, false, ALL),
    key("encode.types_header", Kind::Bool, false, ALL),
    key("encode.profile", Kind::Str, false, ALL),
    key("encode.side_topic", Kind::Str, false, ALL),
    key("encode.schema_in_table_name", Kind::Bool, false, PG),
    key("encode.transaction_markers", Kind::Bool, false, ALL),
    key("encode.transaction_topic", Kind::Str, false, ALL),
    key("errors.tolerance", Kind::Str, false, ALL),
    key("errors.bad_values", Kind::Str, false, ALL),
    key("errors.dead_letter_topic", Kind::Str, false, ALL),
    key("errors.max_parked", Kind::Int, false, ALL),
    key("admin.listen", Kind::Str, false, ALL),
    key("admin.token", Kind::Str, false, ALL),
    key("admin.ready_max_lag_ms", Kind::Int, false, ALL),
    key("admin.ready_max_checkpoint_age_ms", Kind::Int, false, ALL),
];

pub(super) fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
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

/// ` (did you mean `x`?)` for the closest known key or section, or nothing.
pub(super) fn suggest(path: &str) -> String {
    let best = KEYS
        .iter()
        .flat_map(|k| [k.path, section(k.path)])
        .map(|k| (edit_distance(path, k), k))
        .min()
        .filter(|(d, _)| *d <= 3);
    match best {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

fn section(path: &str) -> &str {
    path.split_once('.').map_or(path, |(s, _)| s)
}

/// The source type the file names, reporting a `source.type` that names none.
fn source_type(root: &toml::Table, problems: &mut Vec<String>) -> Option<SourceType> {
    let t = root.get("source")?.as_table()?.get("type")?.as_str()?;
    let found = SourceType::parse(t);
    if found.is_none() {
        let names: Vec<&str> = SourceType::ALL.iter().map(|t| t.name()).collect();
        problems.push(format!(
            "`source.type`: `{t}` is not a source type; expected one of {}",
            names.join(", ")
        ));
    }
    found
}

/// Walk the tree: unknown sections/keys, wrong types, keys of another source, missing keys.
pub(super) fn check_shape(root: &toml::Table, problems: &mut Vec<String>) {
    let chosen = source_type(root, problems);
    for (sec, v) in root {
        if !KEYS.iter().any(|k| section(k.path) == sec) {
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
            match find(&path) {
                None => problems.push(format!("unknown key `{path}`{}", suggest(&path))),
                Some(key) if !type_ok(key.kind, v) => problems.push(format!(
                    "`{path}`: expected {}, found {}",
                    kind_name(key.kind),
                    toml_kind(v)
                )),
                Some(key) => not_for(key, chosen, problems),
            }
        }
    }
    for key in KEYS.iter().filter(|k| k.required) {
        let (sec, name) = key.path.split_once('.').unwrap_or((key.path, ""));
        let present = root
            .get(sec)
            .and_then(|s| s.as_table())
            .is_some_and(|t| t.contains_key(name));
        if !present {
            problems.push(format!("missing required key `{}`", key.path));
        }
    }
}

/// Report a key that only another source reads.
fn not_for(key: &Key, chosen: Option<SourceType>, problems: &mut Vec<String>) {
    if let (For::Only(only), Some(chosen)) = (key.applies, chosen) {
        if only != chosen {
            problems.push(format!(
                "`{}`: applies to {} sources only, and source.type is {}; remove it",
                key.path,
                only.name(),
                chosen.name()
            ));
        }
    }
}
