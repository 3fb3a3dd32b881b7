//! `ChangeEvent` → DataWorks built-in JSON bytes and Kafka key
//! (contract: `shared/spec/dataworks-format.md`).
//!
//! Invariants:
//! - Output is compact JSON, keys in the spec's order:
//!   `schema{dataColumn,primaryKey,source}`, `payload{before,after,sequenceId,timestamp{eventTime,
//!   systemTime,checkpointTime},op,ddl}`, `version`.
//! - The `schema` member of a table is encoded once per schema version (cached in the
//!   schema's `encoded` slot) and copied into each record; a record is written into a caller-owned, reused buffer.
//! - Values render per spec §2: integers exact, decimals as their exact text in a string, DATE as
//!   integer ms (precision ≤ 3) or ms with exactly 6 decimals written as text (finer precision),
//!   BYTES as padded standard base64, `Absent` columns left out of the image.
//! - A PostgreSQL source adds `schemaName` between `dbName` and `tableName`.
//! - Transaction markers (`TRANSACTION_BEGIN` / `TRANSACTION_END`) carry a `schema` with null
//!   columns and key and a `source` of `dbType` and `dbName` only, null images and `ddl`, and
//!   one member more than other records, `payload.transaction`, after `ddl`.

use super::json::{write_f64, write_i64, write_str, write_str_body, write_u64};
use crate::model::schema::{Column, DbType, Shown, TableSchema};
use crate::model::sequence::SequenceId;
use crate::model::value::Value;
use base64::Engine as _;

pub(crate) const VERSION: &str = "0.0.1";

/// Record operations (spec §1); DDL ops come from [`crate::model::event::DdlOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowOp {
    Insert,
    UpdateBefore,
    UpdateAfter,
    Delete,
}

impl RowOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RowOp::Insert => "INSERT",
            RowOp::UpdateBefore => "UPDATE_BEFORE",
            RowOp::UpdateAfter => "UPDATE_AFTER",
            RowOp::Delete => "DELETE",
        }
    }
}

/// Times of one record, ms since the epoch. Snapshot rows use -1 for event and checkpoint time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times {
    pub(crate) event: i64,
    pub(crate) system: i64,
    pub(crate) checkpoint: i64,
}

/// How the `schema` member is shaped beyond the spec's defaults (`[encode]`). One pipeline
/// encodes with one shape, so the rendering cached in a table's schema is always of it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Shape {
    /// `"primaryKey": []` instead of `null` for a table without a key (Paimon rejects null)
    pub(crate) empty_key_list: bool,
    /// PostgreSQL: `tableName` is `<schema>_<table>` (for consumers that ignore `schemaName`)
    pub(crate) schema_in_table_name: bool,
    /// every non-null value of a row image as a JSON string (its rendering's text): Paimon
    /// reads JSON numbers through a float (`100.0` lands as `"1E+2"`) and maps every column
    /// to STRING under `--type_mapping to-string` anyway
    pub(crate) text_values: bool,
}

/// `"schema":{...}` of a table, rendered once per schema version and cached in the schema.
fn schema_member(t: &TableSchema, shape: Shape) -> &[u8] {
    t.encoded
        .get_or_init(|| encode_schema(t, shape).into_boxed_slice())
}

/// `"schema":{...}` for a table.
fn encode_schema(t: &TableSchema, shape: Shape) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + t.columns.len() * 32);
    b.extend_from_slice(b"\"schema\":{\"dataColumn\":[");
    let mut first = true;
    for (i, c) in t.columns.iter().enumerate() {
        let shown = t.shown(i);
        if *shown == Shown::Dropped {
            continue;
        }
        if !first {
            b.push(b',');
        }
        first = false;
        b.extend_from_slice(b"{\"name\":");
        write_str(&mut b, &c.name);
        b.extend_from_slice(b",\"type\":\"");
        b.extend_from_slice(shown.ltype(c.ltype).as_str().as_bytes());
        b.extend_from_slice(b"\"}");
    }
    if let Some(r) = &t.route {
        if !first {
            b.push(b',');
        }
        b.extend_from_slice(b"{\"name\":");
        write_str(&mut b, &r.column);
        b.extend_from_slice(b",\"type\":\"STRING\"}");
    }
    b.extend_from_slice(b"],\"primaryKey\":");
    match &t.key {
        None if shape.empty_key_list => b.extend_from_slice(b"[]"),
        None => b.extend_from_slice(b"null"),
        Some(k) => {
            b.push(b'[');
            for (i, &ci) in k.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                write_str(&mut b, &t.columns[ci].name);
            }
            if let Some(r) = &t.route {
                b.push(b',');
                write_str(&mut b, &r.column);
            }
            b.push(b']');
        }
    }
    b.extend_from_slice(b",\"source\":{\"dbType\":\"");
    b.extend_from_slice(t.db_type.as_str().as_bytes());
    let id = t.shown_id();
    b.extend_from_slice(b"\",\"dbName\":");
    write_str(&mut b, &id.db);
    if let Some(s) = &id.schema {
        b.extend_from_slice(b",\"schemaName\":");
        write_str(&mut b, s);
    }
    b.extend_from_slice(b",\"tableName\":");
    match &id.schema {
        Some(schema) if shape.schema_in_table_name => {
            write_str(&mut b, &format!("{schema}_{}", id.table))
        }
        _ => write_str(&mut b, &id.table),
    }
    b.extend_from_slice(b"}}");
    b
}

fn write_times(b: &mut Vec<u8>, t: Times) {
    b.extend_from_slice(b"\"timestamp\":{\"eventTime\":");
    write_i64(b, t.event);
    b.extend_from_slice(b",\"systemTime\":");
    write_i64(b, t.system);
    b.extend_from_slice(b",\"checkpointTime\":");
    write_i64(b, t.checkpoint);
    b.push(b'}');
}

/// Render one value for a column.
pub(crate) fn write_value(b: &mut Vec<u8>, col: &Column, v: &Value) {
    match v {
        Value::Null | Value::Absent | Value::Unrendered(_) => b.extend_from_slice(b"null"),
        Value::Bool(x) => b.extend_from_slice(if *x { b"true" } else { b"false" }),
        Value::Int(x) => write_i64(b, *x),
        Value::UInt(x) => write_u64(b, *x),
        Value::Float(x) => write_f64(b, *x),
        Value::Decimal(s) | Value::Text(s) => write_str(b, s),
        Value::Timestamp(us) => write_timestamp(b, *us, col.fsp),
        Value::Bytes(x) => {
            b.push(b'"');
            let start = b.len();
            let enc = base64::engine::general_purpose::STANDARD;
            b.resize(start + base64::encoded_len(x.len(), true).unwrap_or(0), 0);
            let n = enc.encode_slice(x, &mut b[start..]).unwrap_or(0);
            b.truncate(start + n);
            b.push(b'"');
        }
        Value::Array(items) => {
            // a STRING holding the JSON array text (spec §2)
            let mut text = Vec::with_capacity(16 * items.len());
            write_array(&mut text, col, items);
            b.push(b'"');
            write_str_body(b, &text);
            b.push(b'"');
        }
    }
}

/// JSON array text: each element as the column's element type renders (`col.fsp` is the
/// elements' precision), `null`, or a nested array.
fn write_array(b: &mut Vec<u8>, col: &Column, items: &[Value]) {
    b.push(b'[');
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        match v {
            Value::Array(inner) => write_array(b, col, inner),
            v => write_value(b, col, v),
        }
    }
    b.push(b']');
}

/// DATE rendering: integer ms for precision ≤ 3, else ms with exactly 6 decimals (exact text).
pub(crate) fn write_timestamp(b: &mut Vec<u8>, micros: i64, fsp: u8) {
    if fsp <= 3 {
        write_i64(b, micros.div_euclid(1000));
    } else {
        let neg = micros < 0;
        let abs = micros.unsigned_abs();
        if neg {
            b.push(b'-');
        }
        write_u64(b, abs / 1000);
        let frac = (abs % 1000) as u32;
        b.push(b'.');
        b.push(b'0' + (frac / 100) as u8);
        b.push(b'0' + (frac / 10 % 10) as u8);
        b.push(b'0' + (frac % 10) as u8);
        b.extend_from_slice(b"000");
    }
}

/// A value's text: its DataWorks rendering with a string's quotes removed (decimals exact,
/// DATE in ms, BYTES base64); `None` for SQL NULL or a value the log did not carry. What a
/// masked column's hash or kept prefix is taken of, and `copy`'s text format.
pub(crate) fn value_text(c: &Column, v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Absent | Value::Unrendered(_) => None,
        Value::Text(s) | Value::Decimal(s) => Some(s.clone()),
        _ => {
            let mut b = Vec::new();
            write_value(&mut b, c, v);
            let s = String::from_utf8_lossy(&b).into_owned();
            Some(match serde_json::from_str::<String>(&s) {
                Ok(unquoted) => unquoted,
                Err(_) => s,
            })
        }
    }
}

/// A row image as records carry it: `{"dataColumn":{...}}` (or `null`).
pub(crate) fn write_image(
    b: &mut Vec<u8>,
    t: &TableSchema,
    row: Option<&[Value]>,
    text_values: bool,
) {
    let Some(row) = row else {
        b.extend_from_slice(b"null");
        return;
    };
    b.extend_from_slice(b"{\"dataColumn\":{");
    let mut first = true;
    for (i, (c, v)) in t.columns.iter().zip(row.iter()).enumerate() {
        let shown = t.shown(i);
        if v.is_absent() || *shown == Shown::Dropped {
            continue;
        }
        if !first {
            b.push(b',');
        }
        first = false;
        write_str(b, &c.name);
        b.push(b':');
        match shown {
            Shown::Value | Shown::Dropped => {}
            Shown::Null => {
                b.extend_from_slice(b"null");
                continue;
            }
            masked => {
                match value_text(c, v) {
                    Some(text) => write_str(b, &masked.mask(text.as_bytes())),
                    None => b.extend_from_slice(b"null"),
                }
                continue;
            }
        }
        let start = b.len();
        write_value(b, c, v);
        // numbers, booleans and DATE milliseconds hold no character JSON escapes
        if text_values && !matches!(b[start], b'"' | b'n') {
            b.insert(start, b'"');
            b.push(b'"');
        }
    }
    if let Some(r) = &t.route {
        if !first {
            b.push(b',');
        }
        write_str(b, &r.column);
        b.push(b':');
        write_str(b, &r.shard);
    }
    b.extend_from_slice(b"}}");
}

/// A row record (INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE).
// the record's parts as the pipeline holds them: a struct would only be built to be taken apart
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_row(
    b: &mut Vec<u8>,
    t: &TableSchema,
    shape: Shape,
    op: RowOp,
    before: Option<&[Value]>,
    after: Option<&[Value]>,
    seq: Option<SequenceId>,
    times: Times,
) {
    b.push(b'{');
    b.extend_from_slice(schema_member(t, shape));
    b.extend_from_slice(b",\"payload\":{\"before\":");
    write_image(b, t, before, shape.text_values);
    b.extend_from_slice(b",\"after\":");
    write_image(b, t, after, shape.text_values);
    b.extend_from_slice(b",\"sequenceId\":\"");
    match seq {
        Some(s) => {
            use std::io::Write as _;
            let _ = write!(b, "{s}");
        }
        None => b.extend_from_slice(b"-1"),
    }
    b.extend_from_slice(b"\",");
    write_times(b, times);
    b.extend_from_slice(b",\"op\":\"");
    b.extend_from_slice(op.as_str().as_bytes());
    b.extend_from_slice(b"\",\"ddl\":null},\"version\":\"");
    b.extend_from_slice(VERSION.as_bytes());
    b.extend_from_slice(b"\"}");
}

/// A DDL record: `before`/`after` null, `ddl` = `{"text":..,"ddlMeta":null}`.
pub(crate) fn encode_ddl(
    b: &mut Vec<u8>,
    t: &TableSchema,
    shape: Shape,
    op: &str,
    text: &str,
    seq: SequenceId,
    times: Times,
) {
    use std::io::Write as _;
    b.push(b'{');
    b.extend_from_slice(schema_member(t, shape));
    let _ = write!(
        b,
        ",\"payload\":{{\"before\":null,\"after\":null,\"sequenceId\":\"{seq}\","
    );
    write_times(b, times);
    b.extend_from_slice(b",\"op\":\"");
    b.extend_from_slice(op.as_bytes());
    b.extend_from_slice(b"\",\"ddl\":{\"text\":");
    write_str(b, text);
    b.extend_from_slice(b",\"ddlMeta\":null}},\"version\":\"");
    b.extend_from_slice(VERSION.as_bytes());
    b.extend_from_slice(b"\"}");
}

/// An `MHEARTBEAT` record (spec §4.7).
pub(crate) fn encode_heartbeat(b: &mut Vec<u8>, event_time: i64, system_time: i64) {
    b.extend_from_slice(
        b"{\"schema\":{\"dataColumn\":null,\"primaryKey\":null,\"source\":null},\"payload\":{\"before\":null,\"after\":null,\"sequenceId\":null,",
    );
    write_times(
        b,
        Times {
            event: event_time,
            system: system_time,
            checkpoint: event_time,
        },
    );
    b.extend_from_slice(b",\"op\":\"MHEARTBEAT\",\"ddl\":null},\"version\":\"");
    b.extend_from_slice(VERSION.as_bytes());
    b.extend_from_slice(b"\"}");
}

/// Which transaction marker (`encode.transaction_markers`), with what TRANSACTION_END counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Marker<'a> {
    Begin,
    /// the records written for the transaction, per table (`schema.table` / `db.table`)
    End {
        tables: &'a [(String, u64)],
    },
}

/// A transaction marker of source transaction `id` (its place in the source log, the first
/// part of its records' `rowstream.order`): `TRANSACTION_BEGIN` with
/// `"transaction":{"id":..}`, or `TRANSACTION_END` with the id, `eventCount` (the records
/// written for the transaction) and `tables` (the same per table).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_transaction(
    b: &mut Vec<u8>,
    db_type: DbType,
    db: &str,
    id: u64,
    marker: Marker<'_>,
    seq: SequenceId,
    times: Times,
) {
    use std::io::Write as _;
    b.extend_from_slice(
        b"{\"schema\":{\"dataColumn\":null,\"primaryKey\":null,\"source\":{\"dbType\":\"",
    );
    b.extend_from_slice(db_type.as_str().as_bytes());
    b.extend_from_slice(b"\",\"dbName\":");
    write_str(b, db);
    let _ = write!(
        b,
        "}}}},\"payload\":{{\"before\":null,\"after\":null,\"sequenceId\":\"{seq}\","
    );
    write_times(b, times);
    let op = match marker {
        Marker::Begin => "TRANSACTION_BEGIN",
        Marker::End { .. } => "TRANSACTION_END",
    };
    let _ = write!(
        b,
        ",\"op\":\"{op}\",\"ddl\":null,\"transaction\":{{\"id\":\"{id:016x}\""
    );
    if let Marker::End { tables } = marker {
        let total: u64 = tables.iter().map(|(_, n)| n).sum();
        let _ = write!(b, ",\"eventCount\":{total},\"tables\":{{");
        for (i, (t, n)) in tables.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            write_str(b, t);
            let _ = write!(b, ":{n}");
        }
        b.push(b'}');
    }
    b.extend_from_slice(b"}},\"version\":\"");
    b.extend_from_slice(VERSION.as_bytes());
    b.extend_from_slice(b"\"}");
}

/// The Kafka key of a row: key columns' text forms joined by `sep`. Returns false (and leaves
/// `out` empty) when the table has no key or a key column is absent from the image.
pub(crate) fn write_key(out: &mut Vec<u8>, t: &TableSchema, row: &[Value], sep: &str) -> bool {
    out.clear();
    let Some(key) = &t.key else { return false };
    if !write_key_values(out, t, key, row, sep) {
        return false;
    }
    // a shard's records: the shard's name ends the key, as it ends `primaryKey`
    if let Some(r) = &t.route {
        out.extend_from_slice(sep.as_bytes());
        out.extend_from_slice(r.shard.as_bytes());
    }
    true
}

fn write_key_values(
    out: &mut Vec<u8>,
    t: &TableSchema,
    key: &[usize],
    row: &[Value],
    sep: &str,
) -> bool {
    for (i, &ci) in key.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep.as_bytes());
        }
        let Some(v) = row.get(ci) else { return false };
        match v {
            Value::Absent => {
                out.clear();
                return false;
            }
            Value::Null | Value::Unrendered(_) => {}
            Value::Decimal(s) | Value::Text(s) => out.extend_from_slice(s.as_bytes()),
            Value::Array(items) => write_array(out, &t.columns[ci], items),
            Value::Bytes(_)
            | Value::Bool(_)
            | Value::Int(_)
            | Value::UInt(_)
            | Value::Float(_)
            | Value::Timestamp(_) => {
                let start = out.len();
                write_value(out, &t.columns[ci], v);
                // strings (base64, NaN) come back quoted: keep the bare text
                if out.len() > start + 1 && out[start] == b'"' {
                    out.remove(start);
                    out.pop();
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{Column, DbType, LogicalType, TableId};

    fn sync_test_table() -> std::sync::Arc<TableSchema> {
        let col = |n: &str, t, fsp| Column {
            name: n.into(),
            ltype: t,
            fsp,
            refine: Default::default(),
        };
        TableSchema::new(
            DbType::MySql,
            TableId {
                db: "bigdata_test".into(),
                schema: None,
                table: "sync_test_table".into(),
            },
            vec![
                col("id", LogicalType::Long, 0),
                col("val", LogicalType::Double, 0),
                col("name", LogicalType::String, 0),
                col("create_time", LogicalType::Date, 0),
            ],
            Some(vec![0]),
            "t".into(),
        )
    }

    fn row(id: i64, val: &str) -> Vec<Value> {
        vec![
            Value::Int(id),
            Value::Decimal(val.into()),
            Value::Text("a".into()),
            Value::Timestamp(1731661114000 * 1000),
        ]
    }

    /// The two verbatim DataWorks messages of the spec, byte for byte.
    #[test]
    fn golden_dataworks_update_and_delete() {
        let t = sync_test_table();
        let mut b = Vec::new();
        encode_row(
            &mut b,
            &t,
            Shape::default(),
            RowOp::UpdateAfter,
            Some(&row(2, "1.100000")),
            Some(&row(2, "2.200000")),
            Some(SequenceId {
                ms: 1731663842292,
                counter: 1,
            }),
            Times {
                event: 1731662097000,
                system: 1731663848979,
                checkpoint: 1731662097000,
            },
        );
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"schema":{"dataColumn":[{"name":"id","type":"LONG"},{"name":"val","type":"DOUBLE"},{"name":"name","type":"STRING"},{"name":"create_time","type":"DATE"}],"primaryKey":["id"],"source":{"dbType":"MySQL","dbName":"bigdata_test","tableName":"sync_test_table"}},"payload":{"before":{"dataColumn":{"id":2,"val":"1.100000","name":"a","create_time":1731661114000}},"after":{"dataColumn":{"id":2,"val":"2.200000","name":"a","create_time":1731661114000}},"sequenceId":"1731663842292000001","timestamp":{"eventTime":1731662097000,"systemTime":1731663848979,"checkpointTime":1731662097000},"op":"UPDATE_AFTER","ddl":null},"version":"0.0.1"}"#
        );
        b.clear();
        encode_row(
            &mut b,
            &t,
            Shape::default(),
            RowOp::Delete,
            Some(&row(1, "1.100000")),
            None,
            Some(SequenceId {
                ms: 1731663842292,
                counter: 0,
            }),
            Times {
                event: 1731662085000,
                system: 1731663848953,
                checkpoint: 1731662085000,
            },
        );
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"schema":{"dataColumn":[{"name":"id","type":"LONG"},{"name":"val","type":"DOUBLE"},{"name":"name","type":"STRING"},{"name":"create_time","type":"DATE"}],"primaryKey":["id"],"source":{"dbType":"MySQL","dbName":"bigdata_test","tableName":"sync_test_table"}},"payload":{"before":{"dataColumn":{"id":1,"val":"1.100000","name":"a","create_time":1731661114000}},"after":null,"sequenceId":"1731663842292000000","timestamp":{"eventTime":1731662085000,"systemTime":1731663848953,"checkpointTime":1731662085000},"op":"DELETE","ddl":null},"version":"0.0.1"}"#
        );
    }

    #[test]
    fn snapshot_heartbeat_ddl_and_partial_images() {
        let t = TableSchema::new(
            DbType::PostgreSql,
            TableId {
                db: "shop".into(),
                schema: Some("public".into()),
                table: "o".into(),
            },
            vec![
                Column {
                    name: "id".into(),
                    ltype: LogicalType::Long,
                    fsp: 0,
                    refine: Default::default(),
                },
                Column {
                    name: "ts".into(),
                    ltype: LogicalType::Date,
                    fsp: 6,
                    refine: Default::default(),
                },
                Column {
                    name: "b".into(),
                    ltype: LogicalType::Bytes,
                    fsp: 0,
                    refine: Default::default(),
                },
            ],
            None,
            "t".into(),
        );
        let mut b = Vec::new();
        encode_row(
            &mut b,
            &t,
            Shape::default(),
            RowOp::Insert,
            None,
            Some(&[
                Value::UInt(u64::MAX),
                Value::Timestamp(1590315269123456),
                Value::Bytes(vec![1, 2, 3, 255]),
            ]),
            None,
            Times {
                event: -1,
                system: 5,
                checkpoint: -1,
            },
        );
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"schema":{"dataColumn":[{"name":"id","type":"LONG"},{"name":"ts","type":"DATE"},{"name":"b","type":"BYTES"}],"primaryKey":null,"source":{"dbType":"PostgreSQL","dbName":"shop","schemaName":"public","tableName":"o"}},"payload":{"before":null,"after":{"dataColumn":{"id":18446744073709551615,"ts":1590315269123.456000,"b":"AQID/w=="}},"sequenceId":"-1","timestamp":{"eventTime":-1,"systemTime":5,"checkpointTime":-1},"op":"INSERT","ddl":null},"version":"0.0.1"}"#
        );
        b.clear();
        encode_row(
            &mut b,
            &t,
            Shape::default(),
            RowOp::Delete,
            Some(&[Value::Int(7), Value::Absent, Value::Absent]),
            None,
            Some(SequenceId { ms: 1, counter: 2 }),
            Times {
                event: 3,
                system: 4,
                checkpoint: 3,
            },
        );
        let s = std::str::from_utf8(&b).unwrap();
        assert!(s.contains(r#""before":{"dataColumn":{"id":7}},"after":null,"sequenceId":"0000000000001000002""#), "{s}");
        b.clear();
        encode_heartbeat(&mut b, 10, 20);
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"schema":{"dataColumn":null,"primaryKey":null,"source":null},"payload":{"before":null,"after":null,"sequenceId":null,"timestamp":{"eventTime":10,"systemTime":20,"checkpointTime":10},"op":"MHEARTBEAT","ddl":null},"version":"0.0.1"}"#
        );
        b.clear();
        encode_ddl(
            &mut b,
            &t,
            Shape::default(),
            "ALTER",
            "ALTER TABLE o ADD \"c\" int",
            SequenceId {
                ms: 1731663842292,
                counter: 7,
            },
            Times {
                event: 1,
                system: 2,
                checkpoint: 1,
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v["payload"]["ddl"],
            serde_json::json!({"text":"ALTER TABLE o ADD \"c\" int","ddlMeta":null})
        );
        assert_eq!(v["payload"]["sequenceId"], "1731663842292000007");
        assert_eq!(v["payload"]["op"], "ALTER");
    }

    /// TRANSACTION_BEGIN and TRANSACTION_END, byte for byte.
    #[test]
    fn transaction_markers() {
        let seq = |counter| SequenceId {
            ms: 1731663842292,
            counter,
        };
        let times = Times {
            event: 1731662097000,
            system: 1731663848979,
            checkpoint: 1731662097000,
        };
        let mut b = Vec::new();
        encode_transaction(
            &mut b,
            DbType::PostgreSql,
            "shop",
            0x1_a2b3_c4d5,
            Marker::Begin,
            seq(1),
            times,
        );
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"schema":{"dataColumn":null,"primaryKey":null,"source":{"dbType":"PostgreSQL","dbName":"shop"}},"payload":{"before":null,"after":null,"sequenceId":"1731663842292000001","timestamp":{"eventTime":1731662097000,"systemTime":1731663848979,"checkpointTime":1731662097000},"op":"TRANSACTION_BEGIN","ddl":null,"transaction":{"id":"00000001a2b3c4d5"}},"version":"0.0.1"}"#
        );
        b.clear();
        let tables = [("public.\"b".to_string(), 2), ("public.a".to_string(), 3)];
        encode_transaction(
            &mut b,
            DbType::MariaDb,
            "shop",
            u64::MAX,
            Marker::End { tables: &tables },
            seq(9),
            times,
        );
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"schema":{"dataColumn":null,"primaryKey":null,"source":{"dbType":"MariaDB","dbName":"shop"}},"payload":{"before":null,"after":null,"sequenceId":"1731663842292000009","timestamp":{"eventTime":1731662097000,"systemTime":1731663848979,"checkpointTime":1731662097000},"op":"TRANSACTION_END","ddl":null,"transaction":{"id":"ffffffffffffffff","eventCount":5,"tables":{"public.\"b":2,"public.a":3}}},"version":"0.0.1"}"#
        );
        // the reader every tool uses reads them
        let r: crate::format::record::Envelope<crate::format::record::Values> =
            crate::format::record::Envelope::parse(&b).unwrap();
        let t = r.payload.transaction().unwrap();
        assert_eq!(t.id, "ffffffffffffffff");
        assert_eq!(t.event_count, Some(5));
        let counts: Vec<(String, u64)> = t
            .tables
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.as_u64().unwrap()))
            .collect();
        assert_eq!(counts, tables);
    }

    #[test]
    fn timestamps_exact() {
        let f = |us, fsp| {
            let mut b = Vec::new();
            write_timestamp(&mut b, us, fsp);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(f(1590315269123456, 6), "1590315269123.456000");
        assert_eq!(f(1590315269000000, 6), "1590315269000.000000");
        assert_eq!(f(-1500, 6), "-1.500000");
        assert_eq!(f(-1000, 0), "-1");
        assert_eq!(f(1731661114000000, 0), "1731661114000");
        assert_eq!(f(1731661114123000, 3), "1731661114123");
    }

    #[test]
    fn arrays_render_as_json_text_strings() {
        let col = |fsp| Column {
            name: "a".into(),
            ltype: LogicalType::String,
            fsp,
            refine: Default::default(),
        };
        let f = |c: &Column, v: Value| {
            let mut b = Vec::new();
            write_value(&mut b, c, &v);
            String::from_utf8(b).unwrap()
        };
        let a = Value::Array;
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            f(&col(0), a(vec![Value::Int(1), Value::Int(2), Value::Null])),
            r#""[1,2,null]""#
        );
        assert_eq!(
            f(
                &col(0),
                a(vec![
                    a(vec![Value::Int(1)]),
                    a(vec![Value::Int(3), Value::Int(4)])
                ])
            ),
            r#""[[1],[3,4]]""#
        );
        assert_eq!(f(&col(0), a(vec![])), r#""[]""#);
        assert_eq!(
            f(&col(0), a(vec![t("a"), t("q\"x"), Value::Null])),
            r#""[\"a\",\"q\\\"x\",null]""#
        );
        assert_eq!(
            f(
                &col(0),
                a(vec![Value::Decimal("1.50".into()), Value::Bool(true)])
            ),
            r#""[\"1.50\",true]""#
        );
        assert_eq!(
            f(&col(6), a(vec![Value::Timestamp(1590315269123456)])),
            r#""[1590315269123.456000]""#
        );
        assert_eq!(
            f(&col(0), a(vec![Value::Bytes(vec![1, 2, 3, 255])])),
            r#""[\"AQID/w==\"]""#
        );
    }

    #[test]
    fn keys() {
        let t = sync_test_table();
        let mut k = Vec::new();
        assert!(write_key(&mut k, &t, &row(42, "1.0"), ","));
        assert_eq!(k, b"42");
    }
}
