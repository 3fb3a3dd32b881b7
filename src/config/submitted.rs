//! A connector config as Kafka Connect keeps and shows it: a map of string keys to string
//! values, holding its own `name`, the same map answered by every worker of a group.
//!
//! Invariants:
//! - What a worker stores (and every `GET .../config`, `GET /connectors/{name}`, `.../tasks` and
//!   `?expand=info` shows) is the config as submitted, values turned into text (numbers and
//!   booleans as written, lists and tables as TOML inline text, which [`super::Config::from_flat`]
//!   reads back the same), plus `name`. Never the resolved config with the worker's own keys.
//! - Secrets are shown as `***` ([`redacted`]); a config sent back with `***` where the stored
//!   one had a secret keeps the stored secret ([`restore_secrets`]), so GET-then-PUT, the way
//!   tools change one setting, never overwrites a password with its mask.

use serde_json::{Map, Value};

/// What a secret is shown as.
const MASK: &str = "***";

/// The config `flat` submitted for connector `name` as Connect keeps it, or the refusal (a
/// `name` that differs from the connector's, a value that is not a scalar, a list or a table).
pub(crate) fn submitted(
    name: &str,
    flat: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (k, v) in flat {
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => v.to_string(),
            Value::Array(_) | Value::Object(_) => match toml::Value::try_from(v) {
                Ok(t) => t.to_string(),
                Err(e) => return Err(format!("`{k}`: {e}")),
            },
        };
        out.insert(k.clone(), Value::String(text));
    }
    match out.get("name").and_then(Value::as_str) {
        Some(given) if given != name => {
            return Err(format!(
                "Connector name configuration ({given}) doesn't match connector name in the URL ({name})"
            ))
        }
        _ => {}
    }
    out.insert("name".into(), Value::String(name.to_string()));
    Ok(out)
}

/// Is `key` (with value `v`) a secret that is shown masked, and how is it shown?
fn masked(key: &str, v: &Value) -> Option<Value> {
    if super::kafka::is_secret_property(key) || key == "admin.token" || key == "source.mask_salt" {
        return Some(Value::String(MASK.into()));
    }
    match (key, v) {
        ("source.url", Value::String(u)) => {
            let r = super::source::redact_url(u);
            (r != *u).then_some(Value::String(r))
        }
        _ => None,
    }
}

/// `flat` as shown to a caller: secrets masked.
pub(crate) fn redacted(flat: Map<String, Value>) -> Map<String, Value> {
    flat.into_iter()
        .map(|(k, v)| match masked(&k, &v) {
            Some(m) => (k, m),
            None => (k, v),
        })
        .collect()
}

/// A config sent back after a GET: where it holds a secret's mask, the stored secret stays.
pub(crate) fn restore_secrets(new: &mut Map<String, Value>, stored: &Map<String, Value>) {
    for (k, v) in new.iter_mut() {
        if let Some(old) = stored.get(k) {
            if masked(k, old).as_ref() == Some(v) {
                *v = old.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn values_become_text_and_the_name_is_added() {
        let s = submitted(
            "c",
            &map(json!({"kafka.partitions": 3, "kafka.strict_order": true,
                "source.tables": ["public.a", "public.b"], "source.keys": {"public.a": ["x"]},
                "snapshot.mode": "initial", "gone": null})),
        )
        .unwrap();
        assert_eq!(
            Value::Object(s),
            json!({"kafka.partitions": "3", "kafka.strict_order": "true",
                "source.tables": "[\"public.a\", \"public.b\"]",
                "source.keys": "{ \"public.a\" = [\"x\"] }",
                "snapshot.mode": "initial", "name": "c"})
        );
    }

    #[test]
    fn a_name_of_another_connector_is_refused() {
        let e = submitted("c", &map(json!({"name": "d"}))).unwrap_err();
        assert_eq!(
            e,
            "Connector name configuration (d) doesn't match connector name in the URL (c)"
        );
        assert!(submitted("c", &map(json!({"name": "c"}))).is_ok());
    }

    #[test]
    fn a_masked_secret_sent_back_keeps_the_stored_one() {
        let stored = map(json!({"source.url": "postgres://u:pw@h/db",
            "kafka.properties.sasl.password": "p", "kafka.topic": "t"}));
        let shown = redacted(stored.clone());
        assert_eq!(shown["source.url"], json!("postgres://u:***@h/db"));
        assert_eq!(shown["kafka.properties.sasl.password"], json!("***"));
        assert_eq!(shown["kafka.topic"], json!("t"));
        let mut back = shown.clone();
        back.insert("kafka.topic".into(), json!("t2"));
        restore_secrets(&mut back, &stored);
        assert_eq!(back["source.url"], stored["source.url"]);
        assert_eq!(back["kafka.properties.sasl.password"], json!("p"));
        assert_eq!(back["kafka.topic"], json!("t2"));
        // a new secret is taken as given
        let mut changed = shown;
        changed.insert("kafka.properties.sasl.password".into(), json!("new"));
        restore_secrets(&mut changed, &stored);
        assert_eq!(changed["kafka.properties.sasl.password"], json!("new"));
    }
}
