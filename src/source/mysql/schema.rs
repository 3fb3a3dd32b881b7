//! MySQL/MariaDB table schemas and their durable history.
//!
//! The binlog's TABLE_MAP gives physical column types; names, keys, TINYINT(1), enum/set labels
//! and charsets come from `information_schema`, captured at start and after every DDL, and
//! appended to the state store's schema history (`state.dir/schema-history.jsonl`, or the
//! history topic) keyed by binlog position. A restart from an
//! earlier position therefore decodes old events with the columns that were valid then.
//!
//! Invariants:
//! - History entries are only appended (fsync'd), never rewritten; lookups take the newest entry
//!   at or before a position.
//! - A schema whose column count disagrees with a TABLE_MAP is not used for that event: the
//!   TABLE_MAP's own metadata (binlog_row_metadata=FULL) is used instead, never a misaligned guess.

use crate::checkpoint::store::Store;
use crate::model::schema::{Column, LogicalType, Refine};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// One column as rowstream needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MyCol {
    pub(crate) name: String,
    /// information_schema DATA_TYPE, lower case (`int`, `varchar`, `enum`, ...)
    pub(crate) data_type: String,
    #[serde(default)]
    pub(crate) unsigned: bool,
    /// TINYINT(1)
    #[serde(default)]
    pub(crate) tiny1: bool,
    /// fractional seconds digits (datetime, timestamp, time)
    #[serde(default)]
    pub(crate) fsp: u8,
    /// DECIMAL scale
    #[serde(default)]
    pub(crate) scale: u32,
    /// DECIMAL precision (0: unknown, a schema history entry written before it was kept)
    #[serde(default)]
    pub(crate) precision: u32,
    /// `latin1`, `utf8mb4`, `binary`, ... (None for non-text)
    #[serde(default)]
    pub(crate) charset: Option<String>,
    /// enum/set labels in definition order
    #[serde(default)]
    pub(crate) labels: Vec<String>,
    /// BIT width
    #[serde(default)]
    pub(crate) bits: u32,
    /// BINARY(n) length
    #[serde(default)]
    pub(crate) len: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MyTable {
    pub(crate) db: String,
    pub(crate) table: String,
    pub(crate) columns: Vec<MyCol>,
    pub(crate) pk: Vec<String>,
}

impl MyCol {
    /// A column with no modifiers (tests and the TABLE_MAP reader build on it).
    pub(crate) fn plain(name: &str, data_type: &str) -> MyCol {
        MyCol {
            name: name.into(),
            data_type: data_type.into(),
            unsigned: false,
            tiny1: false,
            fsp: 0,
            scale: 0,
            precision: 0,
            charset: None,
            labels: vec![],
            bits: 0,
            len: 0,
        }
    }

    pub(crate) fn logical(&self, tiny1_bool: bool) -> (LogicalType, u8) {
        match self.data_type.as_str() {
            "tinyint" if self.tiny1 && tiny1_bool => (LogicalType::Boolean, 0),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                (LogicalType::Long, 0)
            }
            "decimal" | "numeric" | "float" | "double" | "real" => (LogicalType::Double, 0),
            "date" => (LogicalType::Date, 0),
            "datetime" | "timestamp" => (LogicalType::Date, self.fsp),
            "bit" if self.bits <= 1 => (LogicalType::Boolean, 0),
            "bit" | "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "geomcollection" => {
                (LogicalType::Bytes, 0)
            }
            _ => (LogicalType::String, 0),
        }
    }

    pub(crate) fn column(&self, tiny1_bool: bool) -> Column {
        let (ltype, fsp) = self.logical(tiny1_bool);
        Column {
            name: self.name.clone(),
            ltype,
            fsp,
            refine: self.refine(),
        }
    }

    /// What the column's logical type leaves open (see [`Refine`]).
    fn refine(&self) -> Refine {
        match self.data_type.as_str() {
            "float" | "double" | "real" => Refine::Float,
            "decimal" | "numeric" if self.precision > 0 => {
                Refine::decimal(self.precision, self.scale)
            }
            "decimal" | "numeric" => Refine::Numeric,
            "bigint" if self.unsigned => Refine::Unsigned64,
            _ => Refine::None,
        }
    }
}

/// The precision in a DECIMAL's COLUMN_TYPE (`decimal(12,2) unsigned` → 12; 0 when absent).
fn decimal_precision(column_type: &str) -> u32 {
    column_type
        .split_once('(')
        .and_then(|(_, r)| r.split([',', ')']).next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0)
}

/// Parse `enum('a','b''c')` / `set(...)` labels from COLUMN_TYPE.
pub(crate) fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return vec![];
    };
    let body = &column_type[start + 1..column_type.rfind(')').unwrap_or(column_type.len())];
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match (in_q, c) {
            (false, '\'') => in_q = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                cur.push('\'');
                chars.next();
            }
            (true, '\'') => {
                in_q = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (true, c) => cur.push(c),
            _ => {}
        }
    }
    out
}

/// COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME
/// A column's row of `information_schema.COLUMNS` with its table's name first.
type TableColumnRow = (
    String,
    String,
    String,
    String,
    Option<u64>,
    Option<u64>,
    Option<String>,
);
type ColumnRow = (
    String,
    String,
    String,
    Option<u64>,
    Option<u64>,
    Option<String>,
);
/// Entries of one table, ordered by binlog position key.
type Entries = Vec<((u64, u64), MyTable)>;

/// Columns of one table from `information_schema` (None when the table does not exist).
pub(crate) async fn load_table(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<Option<MyTable>, mysql_async::Error> {
    use mysql_async::prelude::*;
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        .await?;
    Ok(Some(table_of(db, table, rows, pk)))
}

/// Up to this many tables of one database are asked for by name, more by database.
const NAMED_TABLES: usize = 1000;

/// Columns of many tables, in two queries per database (not two per table: 10,000 tables
/// took 15 s that way), in the order of `ids`; a table that does not exist is left out.
pub(crate) async fn load_tables(
    conn: &mut mysql_async::Conn,
    ids: &[crate::model::schema::TableId],
) -> Result<Vec<MyTable>, mysql_async::Error> {
    use mysql_async::prelude::*;
    use std::collections::HashMap;
    let mut dbs: Vec<&str> = ids.iter().map(|i| i.db.as_str()).collect();
    dbs.sort_unstable();
    dbs.dedup();
    let mut cols: HashMap<(String, String), Vec<ColumnRow>> = HashMap::new();
    let mut keys: HashMap<(String, String), Vec<String>> = HashMap::new();
    for db in dbs {
        // a few tables of a big database (a snapshot group): those by name; else all of it
        let names: Vec<&str> = (ids.iter())
            .filter(|i| i.db == db)
            .map(|i| i.table.as_str())
            .collect();
        let only = match names.len() <= NAMED_TABLES {
            true => format!(
                " AND TABLE_NAME IN ({})",
                names.iter().map(|_| "?").collect::<Vec<_>>().join(",")
            ),
            false => String::new(),
        };
        let mut params: Vec<mysql_async::Value> = vec![db.into()];
        if !only.is_empty() {
            params.extend(names.iter().map(|n| mysql_async::Value::from(*n)));
        }
        let rows: Vec<TableColumnRow> = conn
            .exec(
                format!("SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?{only} ORDER BY TABLE_NAME, ORDINAL_POSITION"),
                params.clone(),
            )
            .await?;
        for (t, name, dt, ct, scale, dtp, cs) in rows {
            (cols.entry((db.to_string(), t)).or_default()).push((name, dt, ct, scale, dtp, cs));
        }
        // STATISTICS, not KEY_COLUMN_USAGE: the server opens every table of the database for
        // the latter (1.5 s for 10,000 tables, even when a few are asked for)
        let rows: Vec<(String, String)> = conn
            .exec(
                format!("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ?{only} AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX"),
                params,
            )
            .await?;
        for (t, name) in rows {
            keys.entry((db.to_string(), t)).or_default().push(name);
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let k = (id.db.clone(), id.table.clone());
        if let Some(rows) = cols.remove(&k) {
            let pk = keys.remove(&k).unwrap_or_default();
            out.push(table_of(&id.db, &id.table, rows, pk));
        }
    }
    Ok(out)
}

/// A table's definition from its `information_schema` rows.
fn table_of(db: &str, table: &str, rows: Vec<ColumnRow>, pk: Vec<String>) -> MyTable {
    let columns = rows
        .into_iter()
        .map(|(name, dt, ct, scale, dtp, cs)| {
            let dt = dt.to_ascii_lowercase();
            let ctl = ct.to_ascii_lowercase();
            let bits = if dt == "bit" {
                ctl.trim_start_matches("bit(")
                    .trim_end_matches(')')
                    .parse()
                    .unwrap_or(1)
            } else {
                0
            };
            let fsp = match dt.as_str() {
                "datetime" | "timestamp" | "time" => dtp.unwrap_or(0).min(6) as u8,
                _ => 0,
            };
            let len = if dt == "binary" {
                ctl.trim_start_matches("binary(")
                    .trim_end_matches(')')
                    .parse()
                    .unwrap_or(0)
            } else {
                0
            };
            MyCol {
                len,
                labels: if dt == "enum" || dt == "set" {
                    parse_labels(&ct)
                } else {
                    vec![]
                },
                unsigned: ctl.contains("unsigned"),
                tiny1: ctl.starts_with("tinyint(1)"),
                fsp,
                scale: scale.unwrap_or(0) as u32,
                precision: if dt == "decimal" || dt == "numeric" {
                    decimal_precision(&ctl)
                } else {
                    0
                },
                charset: cs.map(|c| c.to_ascii_lowercase()),
                bits,
                name,
                data_type: dt,
            }
        })
        .collect();
    MyTable {
        db: db.into(),
        table: table.into(),
        columns,
        pk,
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    file: String,
    pos: u64,
    table: MyTable,
}

/// The order key of a binlog position in the history: (file sequence number, offset).
fn binlog_key(file: &str, pos: u64) -> (u64, u64) {
    let seq = crate::model::position::binlog_file_seq(file).map_or(0, |(_, n)| n);
    (seq, pos)
}

/// The durable schema history (see module doc).
pub(crate) struct History {
    store: Arc<Store>,
    /// "db.table" → entries ordered by position
    entries: HashMap<String, Entries>,
}

/// The schema history could not be stored or read.
pub(crate) type HistoryError = crate::checkpoint::store::StoreError;

impl History {
    pub(crate) fn open(store: Arc<Store>) -> Result<History, HistoryError> {
        let mut entries: HashMap<String, Entries> = HashMap::new();
        for line in store.history()? {
            // a torn last line (crash mid-append) is skipped: the DDL is replayed
            let Ok(e) = serde_json::from_slice::<Entry>(&line) else {
                continue;
            };
            let key = binlog_key(&e.file, e.pos);
            let v = entries
                .entry(format!("{}.{}", e.table.db, e.table.table))
                .or_default();
            v.push((key, e.table));
            v.sort_by_key(|x| x.0);
        }
        Ok(History { store, entries })
    }

    /// Forget every entry (a move to another server, whose positions are another namespace).
    pub(crate) fn reset(&mut self) -> Result<(), HistoryError> {
        self.entries.clear();
        self.store.history_reset()
    }

    /// The table's columns as of `(file, pos)`.
    pub(crate) fn at(&self, name: &str, file: &str, pos: u64) -> Option<&MyTable> {
        let key = binlog_key(file, pos);
        self.entries
            .get(name)?
            .iter()
            .rev()
            .find(|(k, _)| *k <= key)
            .map(|(_, t)| t)
    }

    /// Is there an entry for `name` exactly at `(file, pos)` (a DDL seen before)?
    pub(crate) fn exactly(&self, name: &str, file: &str, pos: u64) -> Option<&MyTable> {
        let key = binlog_key(file, pos);
        self.entries
            .get(name)?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| t)
    }

    pub(crate) fn append(
        &mut self,
        file: &str,
        pos: u64,
        table: MyTable,
    ) -> Result<(), HistoryError> {
        self.append_all(file, pos, vec![table])
    }

    /// Record `tables` as of `(file, pos)`, durable together (one write: the start of a
    /// database of 10,000 tables appended them one fsync or one broker round trip each).
    pub(crate) fn append_all(
        &mut self,
        file: &str,
        pos: u64,
        tables: Vec<MyTable>,
    ) -> Result<(), HistoryError> {
        let mut entries = Vec::with_capacity(tables.len());
        for table in &tables {
            let name = format!("{}.{}", table.db, table.table);
            let entry = serde_json::to_vec(&Entry {
                file: file.into(),
                pos,
                table: table.clone(),
            })
            .map_err(|e| HistoryError::Kafka(format!("schema history entry: {e}")))?;
            entries.push((format!("{file}/{pos}/{name}"), entry));
        }
        self.store.history_append(&entries)?;
        for table in tables {
            let v = (self.entries)
                .entry(format!("{}.{}", table.db, table.table))
                .or_default();
            v.push((binlog_key(file, pos), table));
            v.sort_by_key(|x| x.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(cols: &[&str]) -> MyTable {
        MyTable {
            db: "d".into(),
            table: "t".into(),
            columns: cols.iter().map(|c| MyCol::plain(c, "int")).collect(),
            pk: vec![],
        }
    }

    #[test]
    fn history_by_position_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut h = History::open(store.clone()).unwrap();
        h.append("mysql-bin.000001", 100, t(&["a"])).unwrap();
        h.append("mysql-bin.000002", 50, t(&["a", "b"])).unwrap();
        let h = History::open(store.clone()).unwrap();
        assert!(h.at("d.t", "mysql-bin.000001", 99).is_none());
        assert_eq!(
            h.at("d.t", "mysql-bin.000001", 500).unwrap().columns.len(),
            1
        );
        assert_eq!(
            h.at("d.t", "mysql-bin.000002", 50).unwrap().columns.len(),
            2
        );
        assert!(h.exactly("d.t", "mysql-bin.000002", 50).is_some());
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("schema-history.jsonl"))
            .unwrap()
            .write_all(b"{torn")
            .unwrap();
        assert!(History::open(store).is_ok());
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_labels("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_labels("set('x')"), vec!["x"]);
    }
}
