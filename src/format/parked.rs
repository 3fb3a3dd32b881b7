//! The dead-letter record: what a record that could not go to its topic becomes in
//! `errors.dead_letter_topic` (docs/message-format.md, "Parked records"), written here and
//! read back here (by `tail`).
//!
//! Invariants:
//! - It names the problem (`parked`, `error`, the unrenderable `columns`), the table, the topic
//!   the record was for, its key, its operation and where it lies in the source (`position`,
//!   `order`), and holds the record itself (`record`) unless the record is what was too large.
//! - It holds nothing the record would not have held: masked and left-out columns stay masked
//!   and left out, because `record` is the record as encoded for its topic.
//! - It is one JSON object; `record` is embedded as JSON, not as a string.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why a record was parked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Why {
    /// a value the source cannot render (`errors.bad_values = "park"`)
    BadValue,
    /// over the producer's `message.max.bytes` (`kafka.oversized = "park"`)
    Oversized,
    /// the broker refused it for good (`errors.tolerance = "all"`)
    Refused,
}

impl Why {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Why::BadValue => "bad_value",
            Why::Oversized => "oversized",
            Why::Refused => "refused",
        }
    }
}

/// One column whose value could not be rendered, and why.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BadColumn {
    pub(crate) name: String,
    pub(crate) reason: String,
}

/// Where the record's source transaction lies: the Postgres commit LSN, or the MySQL/MariaDB
/// binlog file number and offset of the transaction's first event.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Position {
    Lsn {
        lsn: String,
    },
    Binlog {
        #[serde(rename = "binlogFileNumber")]
        file_number: u64,
        offset: u64,
    },
}

impl Position {
    /// From a change's `log_order` (`ChangeEvent::log_order`, the part of `rowstream.order`
    /// before the dot): the commit LSN on Postgres, `file number << 40 | offset` on MySQL.
    pub(crate) fn from_log_order(postgres: bool, order: u64) -> Position {
        match postgres {
            true => Position::Lsn {
                lsn: crate::model::position::Lsn(order).to_string(),
            },
            false => Position::Binlog {
                file_number: order >> 40,
                offset: order & ((1 << 40) - 1),
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Position::Lsn { lsn } => format!("lsn {lsn}"),
            Position::Binlog {
                file_number,
                offset,
            } => format!("binlog file {file_number:06}, offset {offset}"),
        }
    }
}

/// A dead-letter record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Parked<'a> {
    pub(crate) parked: Why,
    /// what went wrong and how to fix it
    pub(crate) error: String,
    /// `schema.table` (PostgreSQL) or `db.table` (MySQL/MariaDB), as the record names it
    pub(crate) table: Option<String>,
    /// the topic the record was for
    pub(crate) topic: String,
    /// the record's Kafka key as text; `null` for a keyless table
    pub(crate) key: Option<String>,
    /// `INSERT`, `UPDATE_AFTER`, `DELETE`, ... as the record has it
    pub(crate) op: Option<String>,
    /// `null` for snapshot rows
    pub(crate) position: Option<Position>,
    /// the record's `rowstream.order` header; `null` for snapshot rows
    pub(crate) order: Option<String>,
    /// the columns that could not be rendered (`BAD_VALUE` only)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) columns: Vec<BadColumn>,
    /// the record's bytes (value plus key)
    pub(crate) size: usize,
    /// when it was parked, ms since the epoch
    pub(crate) parked_at: i64,
    /// the record as it would have gone to `topic` (unrenderable values as null); `null` when
    /// it was parked for its size
    #[serde(borrow)]
    pub(crate) record: Option<&'a RawValue>,
}

impl Parked<'_> {
    /// Append the record's JSON to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        // a struct of strings, numbers and valid JSON: serializing cannot fail
        if let Err(e) = serde_json::to_writer(&mut *out, self) {
            tracing::error!(error = %e, "cannot encode a dead-letter record");
        }
    }

    /// A dead-letter record, or `None` when `bytes` is not one.
    pub(crate) fn read(bytes: &[u8]) -> Option<Parked<'_>> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_back() {
        let record = br#"{"schema":{"a":1},"payload":{"op":"INSERT"}}"#;
        let raw: &RawValue = serde_json::from_slice(record).unwrap();
        let p = Parked {
            parked: Why::BadValue,
            error: "column d: infinite date".into(),
            table: Some("public.t".into()),
            topic: "pg.public.t".into(),
            key: Some("7".into()),
            op: Some("INSERT".into()),
            position: Some(Position::from_log_order(true, 0x1_0000_00ff)),
            order: Some("00000001000000ff.00000000".into()),
            columns: vec![BadColumn {
                name: "d".into(),
                reason: "infinite date".into(),
            }],
            size: 40,
            parked_at: 5,
            record: Some(raw),
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"parked":"BAD_VALUE","error":"column d: infinite date","table":"public.t","topic":"pg.public.t","key":"7","op":"INSERT","position":{"lsn":"1/FF"},"order":"00000001000000ff.00000000","columns":[{"name":"d","reason":"infinite date"}],"size":40,"parkedAt":5,"record":{"schema":{"a":1},"payload":{"op":"INSERT"}}}"#
        );
        let back = Parked::read(&out).unwrap();
        assert_eq!(back.parked, Why::BadValue);
        assert_eq!(
            back.record.unwrap().get(),
            std::str::from_utf8(record).unwrap()
        );
        let mysql = Position::from_log_order(false, (3 << 40) | 4567);
        assert_eq!(mysql.describe(), "binlog file 000003, offset 4567");
        assert!(Parked::read(br#"{"schema":null,"payload":{}}"#).is_none());
    }
}
