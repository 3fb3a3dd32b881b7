//! The DataWorks Kafka writer's plain record formats, for `rowstream copy`: `text` (the
//! columns' text joined by a field delimiter, nulls as `null_value`) and `json` (an object of
//! typed columns: `JSON_STRING`, `JSON_NUMBER`, `JSON_BOOL`, `JSON_ARRAY`, `JSON_MAP`,
//! `JSON_BASE64`, `JSON_HEX`), and the key made of chosen columns (`keyIndex` / `keyIndexes`).
//!
//! Invariants:
//! - A column's text is its DataWorks value with string quotes removed (decimals exact, DATE
//!   in ms, BYTES base64), so `text` and the envelope agree on every value.
//! - A column's JSON type defaults from its logical type (LONG/DOUBLE/DATE → NUMBER, BOOLEAN →
//!   BOOL, BYTES → BASE64, STRING → STRING); a value the chosen type cannot hold (text in a
//!   NUMBER column, a string that is not a JSON array for ARRAY) is an error naming the column.
use super::dataworks::value_text;
use crate::model::schema::{LogicalType, Shown, TableSchema};
use crate::model::value::Value;
use serde_json::Value as J;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonType {
    String,
    Number,
    Bool,
    Array,
    Map,
    Base64,
    Hex,
}

impl JsonType {
    pub(crate) fn parse(s: &str) -> Option<JsonType> {
        Some(match s.to_ascii_uppercase().as_str() {
            "JSON_STRING" => JsonType::String,
            "JSON_NUMBER" => JsonType::Number,
            "JSON_BOOL" => JsonType::Bool,
            "JSON_ARRAY" => JsonType::Array,
            "JSON_MAP" => JsonType::Map,
            "JSON_BASE64" => JsonType::Base64,
            "JSON_HEX" => JsonType::Hex,
            _ => return None,
        })
    }

    fn default_for(t: LogicalType) -> JsonType {
        match t {
            LogicalType::Long | LogicalType::Double | LogicalType::Date => JsonType::Number,
            LogicalType::Boolean => JsonType::Bool,
            LogicalType::Bytes => JsonType::Base64,
            LogicalType::String => JsonType::String,
        }
    }
}

/// The text of column `ci`'s value as the records show it (None for SQL NULL / absent, and
/// for a column masked to null): a hashed or prefix-kept column's masked text.
pub(crate) fn text(t: &TableSchema, ci: usize, v: &Value) -> Option<String> {
    let text = value_text(&t.columns[ci], v);
    match t.shown(ci) {
        Shown::Value => text,
        Shown::Null | Shown::Dropped => None,
        masked => text.map(|s| masked.mask(s.as_bytes())),
    }
}

/// `text`: the columns joined by `delimiter`, nulls as `null_value`. In a value, a backslash
/// is written `\\` and the delimiter `\<delimiter>` (the escaping of Hive's and MySQL's text
/// formats), so a value holding the delimiter never splits, and a value equal to the null
/// text (`\N`) stays apart from a null.
pub(crate) fn encode_text(
    t: &TableSchema,
    row: &[Value],
    delimiter: &str,
    null_value: &str,
) -> Vec<u8> {
    let parts: Vec<String> = row
        .iter()
        .enumerate()
        .filter(|(i, _)| *t.shown(*i) != Shown::Dropped)
        .map(|(i, v)| match text(t, i, v) {
            Some(s) => escape(&s, delimiter),
            None => null_value.to_string(),
        })
        .collect();
    parts.join(delimiter).into_bytes()
}

/// `s` with its backslashes and `delimiter`s escaped by a backslash.
fn escape(s: &str, delimiter: &str) -> String {
    if !s.contains('\\') && (delimiter.is_empty() || !s.contains(delimiter)) {
        return s.to_string();
    }
    let s = s.replace('\\', "\\\\");
    match delimiter.is_empty() {
        true => s,
        false => s.replace(delimiter, &format!("\\{delimiter}")),
    }
}

/// `json`: `{"column": value, ...}` in table order, each column as its JSON type (`types`
/// overrides the default by column name). Numbers keep their exact text (a decimal's scale).
pub(crate) fn encode_json(
    t: &TableSchema,
    row: &[Value],
    types: &std::collections::BTreeMap<String, JsonType>,
) -> Result<Vec<u8>, String> {
    let quoted = |s: &str| J::String(s.to_string()).to_string();
    let mut out = String::from("{");
    for (i, v) in row.iter().enumerate() {
        let col = &t.columns[i];
        if v.is_absent() || *t.shown(i) == Shown::Dropped {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&quoted(&col.name));
        out.push(':');
        let ty = types
            .get(&col.name)
            .copied()
            .unwrap_or_else(|| JsonType::default_for(t.shown(i).ltype(col.ltype)));
        let Some(s) = text(t, i, v) else {
            out.push_str("null");
            continue;
        };
        let bad = |what: &str| format!("column `{}` of {} cannot be {what}", col.name, t.id);
        let j = match ty {
            JsonType::String => quoted(&s),
            JsonType::Number => match v {
                Value::Float(f) if !f.is_finite() => return Err(bad("JSON_NUMBER (not finite)")),
                _ if s.parse::<f64>().is_ok_and(f64::is_finite)
                    && !s.starts_with('+')
                    && !s.contains(['i', 'I', 'n', 'N']) =>
                {
                    s
                }
                _ => return Err(bad("JSON_NUMBER")),
            },
            JsonType::Bool => match v {
                Value::Bool(b) => b.to_string(),
                _ => match s.as_str() {
                    "true" | "1" => "true".into(),
                    "false" | "0" => "false".into(),
                    _ => return Err(bad("JSON_BOOL")),
                },
            },
            JsonType::Array => match serde_json::from_str::<J>(&s) {
                Ok(a @ J::Array(_)) => a.to_string(),
                _ => return Err(bad("JSON_ARRAY")),
            },
            JsonType::Map => match serde_json::from_str::<J>(&s) {
                Ok(m @ J::Object(_)) => m.to_string(),
                _ => return Err(bad("JSON_MAP")),
            },
            JsonType::Base64 => match v {
                Value::Bytes(_) => quoted(&s),
                _ => {
                    use base64::Engine as _;
                    quoted(&base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
                }
            },
            JsonType::Hex => {
                let bytes: Vec<u8> = match v {
                    Value::Bytes(b) => b.clone(),
                    _ => s.into_bytes(),
                };
                quoted(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        out.push_str(&j);
    }
    out.push('}');
    Ok(out.into_bytes())
}

/// The key of `keyIndexes` columns: their text joined by `sep` (None: no key columns).
pub(crate) fn key_of(
    t: &TableSchema,
    row: &[Value],
    indexes: &[usize],
    sep: &str,
) -> Option<Vec<u8>> {
    if indexes.is_empty() {
        return None;
    }
    let parts: Vec<String> = indexes
        .iter()
        .map(|&i| row.get(i).and_then(|v| text(t, i, v)).unwrap_or_default())
        .collect();
    Some(parts.join(sep).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{Column, DbType, TableId};

    fn table() -> TableSchema {
        let col = |n: &str, t, fsp| Column {
            name: n.into(),
            ltype: t,
            fsp,
            refine: Default::default(),
        };
        TableSchema {
            db_type: DbType::PostgreSql,
            id: TableId {
                db: "shop".into(),
                schema: Some("public".into()),
                table: "t".into(),
            },
            columns: vec![
                col("id", LogicalType::Long, 0),
                col("price", LogicalType::Double, 0),
                col("at", LogicalType::Date, 3),
                col("ok", LogicalType::Boolean, 0),
                col("bin", LogicalType::Bytes, 0),
                col("tags", LogicalType::String, 0),
                col("note", LogicalType::String, 0),
            ],
            key: Some(vec![0]),
            topic: "x".into(),
            encoded: Default::default(),
            types: None,
            shown: None,
            route: None,
        }
    }

    #[test]
    fn text_json_and_keys() {
        let t = table();
        let row = vec![
            Value::Int(7),
            Value::Decimal("1.50".into()),
            Value::Timestamp(1_731_663_000_123_000),
            Value::Bool(true),
            Value::Bytes(vec![1, 255]),
            Value::Text("[\"a\",\"b\"]".into()),
            Value::Null,
        ];
        assert_eq!(
            String::from_utf8(encode_text(&t, &row, "|", "\\N")).unwrap(),
            "7|1.50|1731663000123|true|Af8=|[\"a\",\"b\"]|\\N"
        );
        // a delimiter or a backslash inside a value is escaped; the null text stays apart
        let mut tricky = row.clone();
        tricky[5] = Value::Text("a|b\\N".into());
        tricky[6] = Value::Text("\\N".into());
        assert_eq!(
            String::from_utf8(encode_text(&t, &tricky, "|", "\\N")).unwrap(),
            "7|1.50|1731663000123|true|Af8=|a\\|b\\\\N|\\\\N"
        );
        let mut types = std::collections::BTreeMap::new();
        types.insert("tags".to_string(), JsonType::Array);
        types.insert("bin".to_string(), JsonType::Hex);
        assert_eq!(
            String::from_utf8(encode_json(&t, &row, &types).unwrap()).unwrap(),
            r#"{"id":7,"price":1.50,"at":1731663000123,"ok":true,"bin":"01ff","tags":["a","b"],"note":null}"#
        );
        types.insert("note".to_string(), JsonType::Map);
        let row2: Vec<Value> = row
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, v)| if i == 6 { Value::Text("x".into()) } else { v })
            .collect();
        let e = encode_json(&t, &row2, &types).unwrap_err();
        assert!(e.contains("column `note`"), "{e}");
        assert_eq!(key_of(&t, &row, &[0, 3], ","), Some(b"7,true".to_vec()));
        assert_eq!(key_of(&t, &row, &[], ","), None);
    }
}
