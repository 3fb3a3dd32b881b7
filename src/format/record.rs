//! The read side of the DataWorks envelope (`dataworks` writes it): one typed shape that every
//! reader of rowstream's topics uses (`tail`, `verify`, the Parquet sink).
//!
//! Invariants:
//! - Only what readers use is typed; what a reader does not ask for is skipped, never an error
//!   (a record of a later version with more members still reads).
//! - Images are generic over how their values are kept: parsed JSON values ([`Values`], for
//!   printing and comparing) or the raw JSON text of each value ([`RawValues`], for the sink,
//!   which types them from the schema and must not reparse numbers).
//! - `schema.dataColumn` is kept as its raw text: the sink compares it to see a schema change,
//!   and [`Schema::columns`] reads names and types from it on demand.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// An image's values as parsed JSON, member order as in the record.
pub(crate) type Values = serde_json::Map<String, serde_json::Value>;
/// An image's values as their JSON text.
pub(crate) type RawValues = HashMap<String, Box<RawValue>>;

/// One record: its schema part (absent on heartbeats of some writers) and its payload.
#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub(crate) struct Envelope<'a, V> {
    #[serde(borrow, default)]
    pub(crate) schema: Option<Schema<'a>>,
    pub(crate) payload: Payload<'a, V>,
}

impl<'a, V: Deserialize<'a>> Envelope<'a, V> {
    /// Read a record's bytes.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[derive(Deserialize)]
pub(crate) struct Schema<'a> {
    /// `[{"name": .., "type": ..}, ...]` as written
    #[serde(rename = "dataColumn", borrow, default)]
    pub(crate) data_column: Option<&'a RawValue>,
    /// `["id"]` or `null`, as written
    #[serde(rename = "primaryKey", borrow, default)]
    pub(crate) primary_key: Option<&'a RawValue>,
    #[serde(default)]
    pub(crate) source: Option<Source>,
}

impl Schema<'_> {
    /// The columns, in table order (none when `dataColumn` is absent or unreadable).
    pub(crate) fn columns(&self) -> Vec<Column> {
        self.data_column
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }
}

/// A column of `schema.dataColumn`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// the DataWorks type: LONG, DOUBLE, STRING, DATE, BOOLEAN, BYTES
    #[serde(rename = "type")]
    pub(crate) ltype: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct Source {
    /// `PostgreSQL`, `MySQL`, `MariaDB`
    #[serde(rename = "dbType", default)]
    pub(crate) db_type: Option<String>,
    #[serde(rename = "dbName", default)]
    pub(crate) db_name: Option<String>,
    #[serde(rename = "schemaName", default)]
    pub(crate) schema_name: Option<String>,
    #[serde(rename = "tableName", default)]
    pub(crate) table_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub(crate) struct Payload<'a, V> {
    #[serde(default)]
    pub(crate) before: Option<Image<V>>,
    #[serde(default)]
    pub(crate) after: Option<Image<V>>,
    #[serde(rename = "sequenceId", default)]
    pub(crate) sequence_id: Option<String>,
    #[serde(default)]
    pub(crate) timestamp: Option<Times>,
    pub(crate) op: String,
    /// the DDL part as written (`null` on row records)
    #[serde(borrow, default)]
    pub(crate) ddl: Option<&'a RawValue>,
    /// what a transaction marker says, as written (absent on every other record)
    #[serde(borrow, default)]
    pub(crate) transaction: Option<&'a RawValue>,
}

/// `payload.transaction` of a `TRANSACTION_BEGIN` / `TRANSACTION_END` record.
#[derive(Deserialize, Debug)]
pub(crate) struct Transaction {
    /// the transaction's place in the source log: 16 hex digits, the first part of its
    /// records' `rowstream.order`
    pub(crate) id: String,
    /// END: the records written for the transaction
    #[serde(rename = "eventCount", default)]
    pub(crate) event_count: Option<u64>,
    /// END: the same per table (`schema.table` / `db.table`)
    #[serde(default)]
    pub(crate) tables: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<V> Payload<'_, V> {
    /// The sequenceId as a number; -1 for snapshot rows and when absent.
    pub(crate) fn sequence(&self) -> i64 {
        self.sequence_id
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1)
    }

    /// The commit time in ms; `None` for snapshot rows (-1) and when absent.
    pub(crate) fn event_time(&self) -> Option<i64> {
        self.timestamp
            .as_ref()
            .and_then(|t| t.event_time)
            .filter(|&t| t >= 0)
    }

    /// What a transaction marker says (`None` on other records, or when unreadable).
    pub(crate) fn transaction(&self) -> Option<Transaction> {
        serde_json::from_str::<Option<Transaction>>(self.transaction?.get())
            .ok()
            .flatten()
    }

    /// The statement of a DDL record.
    pub(crate) fn ddl_text(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Ddl {
            text: Option<String>,
        }
        serde_json::from_str::<Option<Ddl>>(self.ddl?.get())
            .ok()
            .flatten()?
            .text
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub(crate) struct Image<V> {
    #[serde(rename = "dataColumn")]
    pub(crate) data_column: V,
}

#[derive(Deserialize)]
pub(crate) struct Times {
    #[serde(rename = "eventTime", default)]
    pub(crate) event_time: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"{"schema":{"dataColumn":[{"name":"id","type":"LONG"},{"name":"v","type":"DOUBLE"}],"primaryKey":["id"],"source":{"dbType":"MySQL","dbName":"shop","tableName":"t"}},"payload":{"before":null,"after":{"dataColumn":{"id":7,"v":1.50}},"sequenceId":"42","timestamp":{"eventTime":1700000000000,"systemTime":1,"checkpointTime":1700000000000},"op":"INSERT","ddl":null,"extra":1},"version":"0.0.1"}"#;

    #[test]
    fn one_shape_with_parsed_or_raw_values() {
        let r: Envelope<Values> = Envelope::parse(ROW.as_bytes()).unwrap();
        assert_eq!(r.payload.op, "INSERT");
        assert_eq!(r.payload.sequence(), 42);
        assert_eq!(r.payload.event_time(), Some(1_700_000_000_000));
        assert!(r.payload.before.is_none() && r.payload.ddl_text().is_none());
        assert_eq!(r.payload.after.as_ref().unwrap().data_column["id"], 7);
        let s = r.schema.unwrap();
        assert_eq!(s.source.as_ref().unwrap().schema_name, None);
        assert_eq!(
            s.columns(),
            vec![
                Column {
                    name: "id".into(),
                    ltype: "LONG".into()
                },
                Column {
                    name: "v".into(),
                    ltype: "DOUBLE".into()
                },
            ]
        );
        // the raw text of each value, as written
        let raw: Envelope<RawValues> = Envelope::parse(ROW.as_bytes()).unwrap();
        assert_eq!(raw.payload.after.unwrap().data_column["v"].get(), "1.50");
        // a DDL record, a heartbeat without schema
        let ddl = r#"{"schema":null,"payload":{"before":null,"after":null,"sequenceId":"-1","timestamp":{"eventTime":-1},"op":"ALTER","ddl":{"text":"ALTER TABLE t ADD c int","ddlMeta":null}}}"#;
        let d: Envelope<Values> = Envelope::parse(ddl.as_bytes()).unwrap();
        assert_eq!(
            d.payload.ddl_text().as_deref(),
            Some("ALTER TABLE t ADD c int")
        );
        assert_eq!((d.payload.sequence(), d.payload.event_time()), (-1, None));
        assert!(Envelope::<Values>::parse(b"not json").is_err());
    }
}
