//! The MySQL/MariaDB half of a snapshot (the shared driver is `crate::source::snapshot`):
//! tables read in primary-key order, keyset chunks of `snapshot.chunk_rows` rows, inside the snapshot
//! transaction `prepare` opened (`START TRANSACTION WITH CONSISTENT SNAPSHOT`).
//!
//! Invariants:
//! - A keyed table is read in chunks `WHERE (pk) > (last key) ORDER BY pk LIMIT n`: each chunk
//!   bounded, the cursor (the last key) is where an interrupted read would resume.
//! - A table without a primary key has nothing to chunk by: it is one chunk, streamed row by
//!   row from the server (memory stays bounded).
//! - A missing privilege names the table and the GRANT that fixes it.

use super::error::MySqlError;
use super::schema::MyTable;
use super::values::{convert, Ctx, Origin};
use crate::error::SetupError;
use crate::model::schema::TableSchema;
use crate::model::value::Value;
use crate::source::render::RenderWarnings;
use crate::source::snapshot::{RowOut, TableReader};
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::sync::Arc;

/// A table to snapshot: its definition and schema.
pub(crate) struct SnapTable {
    pub(crate) def: MyTable,
    pub(crate) schema: Arc<TableSchema>,
}

pub(crate) struct MyTableReader<'a> {
    pub(crate) conn: &'a mut Conn,
    pub(crate) ctx: &'a Ctx,
    pub(crate) warnings: &'a mut RenderWarnings,
    pub(crate) chunk_rows: usize,
    /// row estimates read ahead for many tables ([`MyTableReader::estimates`]), each taken by
    /// the table's `begin`
    pub(crate) estimates: Estimates,
    /// tables the snapshot transaction found empty ([`MyTableReader::probe_empty`]): their
    /// first chunk is not read
    pub(crate) empty: std::collections::HashSet<(String, String)>,
}

/// Row estimates by (database, table).
pub(crate) type Estimates = std::collections::HashMap<(String, String), Option<u64>>;

/// Tables probed for emptiness in one statement.
const PROBE_TABLES: usize = 500;

fn quote(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

impl MyTableReader<'_> {
    /// The row estimates of the tables of `dbs`, in one query per database (one per table took
    /// seconds for 10,000 tables): read once for a whole snapshot, then handed to each reader.
    pub(crate) async fn estimates(conn: &mut Conn, dbs: &[&str]) -> Result<Estimates, MySqlError> {
        let mut out = Estimates::new();
        for db in dbs {
            let rows: Vec<(String, Option<u64>)> = conn
                .exec(
                    "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                    (db,),
                )
                .await?;
            for (t, n) in rows {
                out.insert((db.to_string(), t), n);
            }
        }
        Ok(out)
    }

    /// Which of `tables` hold no row, in the snapshot's read view: one statement of
    /// `EXISTS(SELECT 1 FROM t)` per [`PROBE_TABLES`] tables. A whole database of empty tables
    /// then costs no chunk query per table (each is a prepared statement, two round trips:
    /// 10,000 empty tables took 22 s that way). Row estimates cannot tell: InnoDB's are
    /// approximate.
    pub(crate) async fn probe_empty(&mut self, tables: &[SnapTable]) -> Result<(), MySqlError> {
        for group in tables.chunks(PROBE_TABLES) {
            let probes: Vec<String> = group
                .iter()
                .map(|t| {
                    format!(
                        "EXISTS(SELECT 1 FROM {}.{})",
                        quote(&t.def.db),
                        quote(&t.def.table)
                    )
                })
                .collect();
            let row: Option<mysql_async::Row> = match self
                .conn
                .query_first(format!("SELECT {}", probes.join(",")))
                .await
            {
                Ok(r) => r,
                // a table the user may not read: its own chunk query names it and the GRANT
                Err(mysql_async::Error::Server(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(row) = row else { continue };
            for (i, t) in group.iter().enumerate() {
                if row.get::<i64, _>(i) == Some(0) {
                    self.empty.insert((t.def.db.clone(), t.def.table.clone()));
                }
            }
        }
        Ok(())
    }

    /// A table without a key: every row in one pass.
    async fn all_rows(
        &mut self,
        t: &SnapTable,
        select: &str,
        out: &mut RowOut<'_>,
    ) -> Result<(), MySqlError> {
        let name = t.schema.id.pattern_name();
        let mut result = self.conn.exec_iter(select, ()).await?;
        while let Some(row) = result.next().await? {
            let v = values_of(&t.def, &name, row.unwrap(), self.ctx, self.warnings);
            out.row(v).await?;
        }
        Ok(())
    }
}

fn values_of(
    def: &MyTable,
    name: &str,
    vals: Vec<mysql_async::Value>,
    ctx: &Ctx,
    warnings: &mut RenderWarnings,
) -> Vec<Value> {
    def.columns
        .iter()
        .zip(vals)
        .map(|(c, v)| warnings.value(name, &c.name, convert(c, v, Origin::Snapshot, ctx)))
        .collect()
}

impl TableReader for MyTableReader<'_> {
    type Table = SnapTable;
    /// the last key read
    type Cursor = Vec<KeyPart>;
    type Error = MySqlError;

    fn schema(t: &SnapTable) -> &Arc<TableSchema> {
        &t.schema
    }

    async fn begin(&mut self, t: &SnapTable) -> Result<Option<u64>, MySqlError> {
        if let Some(n) = (self.estimates).remove(&(t.def.db.clone(), t.def.table.clone())) {
            return Ok(n);
        }
        let n: Option<Option<u64>> = self
            .conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&t.def.db, &t.def.table),
            )
            .await?;
        Ok(n.flatten())
    }

    async fn read_chunk(
        &mut self,
        t: &SnapTable,
        cursor: Option<Self::Cursor>,
        out: &mut RowOut<'_>,
    ) -> Result<Option<Self::Cursor>, MySqlError> {
        let def = &t.def;
        if cursor.is_none() && self.empty.remove(&(def.db.clone(), def.table.clone())) {
            return Ok(None);
        }
        let cols: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
        let from = format!("{}.{}", quote(&def.db), quote(&def.table));
        let select = format!("SELECT {} FROM {from}", cols.join(","));
        let pk_idx: Vec<usize> = def
            .pk
            .iter()
            .filter_map(|k| def.columns.iter().position(|c| &c.name == k))
            .collect();
        if pk_idx.is_empty() {
            self.all_rows(t, &select, out)
                .await
                .map_err(|e| read_error(def, e))?;
            return Ok(None);
        }
        let order = def
            .pk
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(",");
        let chunk: Vec<mysql_async::Row> = match &cursor {
            None => {
                let sql = format!("{select} ORDER BY {order} LIMIT {}", self.chunk_rows);
                self.conn.exec(sql, ()).await
            }
            Some(k) => {
                let marks = vec!["?"; k.len()].join(",");
                let sql = format!(
                    "{select} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT {}",
                    self.chunk_rows
                );
                let params = k.iter().map(KeyPart::to_value).collect();
                self.conn
                    .exec(sql, mysql_async::Params::Positional(params))
                    .await
            }
        }
        .map_err(|e| read_error(def, e.into()))?;
        let n = chunk.len();
        let name = t.schema.id.pattern_name();
        let mut last = None;
        for row in chunk {
            let vals = row.unwrap();
            last = Some(pk_idx.iter().map(|&i| KeyPart::of(&vals[i])).collect());
            let v = values_of(def, &name, vals, self.ctx, self.warnings);
            out.row(v).await?;
        }
        Ok(if n < self.chunk_rows { None } else { last })
    }
}

/// One key column's value in a stored cursor: the server's value, exactly (text keys readable).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KeyPart {
    Null,
    Text(String),
    /// base64
    Bytes(String),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl KeyPart {
    pub(crate) fn of(v: &mysql_async::Value) -> KeyPart {
        use base64::Engine as _;
        use mysql_async::Value as V;
        match v.clone() {
            V::NULL => KeyPart::Null,
            V::Bytes(b) => match String::from_utf8(b) {
                Ok(s) => KeyPart::Text(s),
                Err(e) => {
                    KeyPart::Bytes(base64::engine::general_purpose::STANDARD.encode(e.into_bytes()))
                }
            },
            V::Int(i) => KeyPart::Int(i),
            V::UInt(u) => KeyPart::UInt(u),
            V::Float(f) => KeyPart::Float(f),
            V::Double(f) => KeyPart::Double(f),
            V::Date(y, mo, d, h, mi, s, us) => KeyPart::Date(y, mo, d, h, mi, s, us),
            V::Time(n, d, h, mi, s, us) => KeyPart::Time(n, d, h, mi, s, us),
        }
    }

    pub(crate) fn to_value(&self) -> mysql_async::Value {
        use base64::Engine as _;
        use mysql_async::Value as V;
        match self.clone() {
            KeyPart::Null => V::NULL,
            KeyPart::Text(s) => V::Bytes(s.into_bytes()),
            KeyPart::Bytes(b) => V::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default(),
            ),
            KeyPart::Int(i) => V::Int(i),
            KeyPart::UInt(u) => V::UInt(u),
            KeyPart::Float(f) => V::Float(f),
            KeyPart::Double(f) => V::Double(f),
            KeyPart::Date(y, mo, d, h, mi, s, us) => V::Date(y, mo, d, h, mi, s, us),
            KeyPart::Time(n, d, h, mi, s, us) => V::Time(n, d, h, mi, s, us),
        }
    }
}

/// A failed read of `def`: a missing privilege is a setup error with its GRANT.
fn read_error(def: &MyTable, e: MySqlError) -> MySqlError {
    match &e {
        MySqlError::Driver(mysql_async::Error::Server(s)) if s.code == 1142 => {
            MySqlError::Setup(SetupError::new(
                format!(
                    "cannot snapshot {}.{}: {} (the snapshot reads every row)",
                    def.db, def.table, s.message
                ),
                format!(
                    "GRANT SELECT ON {}.{} TO <rowstream's user>; (run `rowstream check` to list every missing grant)",
                    quote(&def.db),
                    quote(&def.table)
                ),
            ))
        }
        _ => e,
    }
}
