//! `ROWSTREAM_<SECTION>__<KEY>` environment variables, applied onto the parsed file.
//!
//! Invariants:
//! - A variable whose name holds `__` must name a known key; anything else (`ROWSTREAM_CONFIG`,
//!   `ROWSTREAM_LOG`) is not a key and is ignored.
//! - A value is parsed by the key's type from `keys::KEYS`; one that does not parse is reported
//!   with the variable's name and the key's path, and the file's value stays.
//! - Under `kafka.properties` the rest of the name maps `_` to `.`
//!   (`ROWSTREAM_KAFKA__PROPERTIES__SASL_USERNAME` → `sasl.username`).

use super::keys::{self, Kind};

pub(super) fn apply_env(
    root: &mut toml::Table,
    env: &[(String, String)],
    problems: &mut Vec<String>,
) {
    for (name, val) in env {
        let Some(rest) = name.strip_prefix("ROWSTREAM_") else {
            continue;
        };
        if !rest.contains("__") {
            continue; // ROWSTREAM_CONFIG, ROWSTREAM_LOG and such are not keys
        }
        let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let Some((kind, leaf)) = target(&parts) else {
            let path = parts.join(".");
            problems.push(format!(
                "environment variable {name}: no config key `{path}`{}",
                keys::suggest(&path)
            ));
            continue;
        };
        match parse(kind, val) {
            Ok(value) => set(root, &leaf, value),
            Err(expected) => {
                let path = leaf[..2].join(".");
                problems.push(format!(
                    "environment variable {name} (`{path}`): {expected}, got `{val}`"
                ));
            }
        }
    }
}

/// The key a variable names: its type and the path to write.
fn target(parts: &[String]) -> Option<(Kind, Vec<String>)> {
    if parts.len() >= 3 && parts[0] == "kafka" && parts[1] == "properties" {
        let prop = parts[2..].join("_").replace('_', ".");
        return Some((Kind::Str, vec!["kafka".into(), "properties".into(), prop]));
    }
    keys::find(&parts.join(".")).map(|k| (k.kind, parts.to_vec()))
}

/// A variable's text as a value of `kind`, or what was expected.
pub(super) fn parse(kind: Kind, val: &str) -> Result<toml::Value, &'static str> {
    let v = val.trim();
    match kind {
        Kind::Str => Ok(toml::Value::String(val.to_string())),
        Kind::Int => v
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "expected an integer"),
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err("expected true or false"),
        },
        Kind::StrList if v.starts_with('[') => inline(v).ok_or("expected a TOML array of strings"),
        Kind::StrList => Ok(toml::Value::Array(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        )),
        Kind::ScalarMap | Kind::ListMap => inline(v).ok_or("expected a TOML inline table"),
    }
}

/// A TOML value written inline (`[..]`, `{..}`).
fn inline(v: &str) -> Option<toml::Value> {
    format!("x = {v}").parse::<toml::Table>().ok()?.remove("x")
}

pub(super) fn set(root: &mut toml::Table, leaf: &[String], value: toml::Value) {
    let Some((last, parents)) = leaf.split_last() else {
        return;
    };
    let mut cur = root;
    for seg in parents {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if !entry.is_table() {
            *entry = toml::Value::Table(Default::default());
        }
        let Some(t) = entry.as_table_mut() else {
            return;
        };
        cur = t;
    }
    cur.insert(last.clone(), value);
}
