//! `[sink] format = "paimon"`: topics → Apache Paimon tables, one per source table, in a
//! warehouse directory, exactly once across crashes. Written with the `paimon` crate
//! (apache/paimon-rust), which writes primary-key tables with row kinds and commits with
//! identifiers; it has no compaction (see the README: Paimon's own `compact` action does it).
//!
//! Invariants:
//! - A keyed source table is a primary-key table (the key from `schema.primaryKey`), its rows
//!   written with their row kind: INSERT +I, UPDATE_BEFORE -U, UPDATE_AFTER +U, DELETE -D (a
//!   key change arrives as DELETE + INSERT). A keyless table is an append table of every change,
//!   with the op in `__op__` (the image of a DELETE is its before image). Columns are typed as
//!   the Parquet sink types them (`columns::arrow_type`): a DATE is a TIMESTAMP_LTZ(6).
//! - A flush commits every table with pending rows, each with the same commit identifier, under
//!   one commit user (`sink.commit_user`). Before its first commit the flush stores the offsets
//!   it covers (`_rowstream/<user>/<identifier>.json` in the warehouse, the last three kept);
//!   flush n starts only
//!   after flush n-1 committed every table. So at start, with n the highest identifier any table
//!   holds: every partition resumes after the offsets of flush n-1, and a table that holds n
//!   skips the records up to flush n's offsets. No record is applied twice, none is skipped.
//! - Schema: a column the records have and the table lacks is added (after a flush) before any
//!   row that has it; a column the table has and the records lack (dropped at the source) stays,
//!   written null; a column whose type changed, or a key that changed, stops the sink naming the
//!   table (Paimon changes neither in place). TRUNCATE empties the table in a commit of its own,
//!   after every row before it. Other DDL records are not rows.
//! - An unchanged TOASTed value (the log did not carry it) cannot be written without erasing the
//!   stored one: it stops the sink naming the table and the fix (REPLICA IDENTITY FULL).
use super::columns::{arrow_type, record_columns, Col, Row, Rows};
use super::Lake;
use crate::error::Error;
use crate::format::record::{Envelope, RawValues};
use crate::model::schema::Refine;
use arrow_array::{ArrayRef, Int8Array, RecordBatch, StringArray};
use arrow_schema::{DataType as ArrowType, Field, Schema as ArrowSchema};
use object_store::path::Path as StorePath;
use object_store::ObjectStoreExt as _;
use paimon::catalog::Identifier;
use paimon::spec::{
    BigIntType, BooleanType, DataType, DecimalType, DoubleType, LocalZonedTimestampType, Schema,
    SchemaChange, VarBinaryType, VarCharType, VALUE_KIND_FIELD_NAME,
};
use paimon::{Catalog, CatalogFactory, CatalogOptions, Options};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Per topic, per partition: the offset of the last record a flush covers.
type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// The Paimon type of a column rowstream types as `ltype` refined by `refine`.
fn paimon_type(ltype: &str, refine: Refine, nullable: bool) -> Result<DataType, String> {
    let e = |e: paimon::Error| e.to_string();
    Ok(match arrow_type(ltype, refine) {
        ArrowType::Int64 => DataType::BigInt(BigIntType::with_nullable(nullable)),
        ArrowType::Float64 => DataType::Double(DoubleType::with_nullable(nullable)),
        ArrowType::Decimal128(p, s) => DataType::Decimal(
            DecimalType::with_nullable(nullable, u32::from(p), s as u32).map_err(e)?,
        ),
        ArrowType::Timestamp(..) => DataType::LocalZonedTimestamp(
            LocalZonedTimestampType::with_nullable(nullable, 6).map_err(e)?,
        ),
        ArrowType::Boolean => DataType::Boolean(BooleanType::with_nullable(nullable)),
        ArrowType::Binary => DataType::VarBinary(
            VarBinaryType::try_new(nullable, VarBinaryType::MAX_LENGTH).map_err(e)?,
        ),
        _ => DataType::VarChar(
            VarCharType::with_nullable(nullable, VarCharType::MAX_LENGTH).map_err(e)?,
        ),
    })
}

/// The Paimon table of a record: its database (the source database) and name (the table's;
/// a PostgreSQL table outside `public` is `<schema>_<table>`).
fn target(source: Option<&crate::format::record::Source>) -> Option<Identifier> {
    let s = source?;
    let table = s.table_name.as_deref()?;
    let name = match s.schema_name.as_deref() {
        Some(schema) if schema != "public" => format!("{schema}_{table}"),
        _ => table.to_string(),
    };
    Some(Identifier::new(s.db_name.as_deref()?, name))
}

/// A table being written: its columns as the table has them, its key, and its pending rows.
struct Target {
    id: Identifier,
    cols: Vec<Col>,
    key: Vec<String>,
    rows: Vec<Row>,
    /// records at or below these offsets are in the table already (its last flush)
    skip_until: HashMap<(String, i32), i64>,
}

impl Target {
    fn keyed(&self) -> bool {
        !self.key.is_empty()
    }
}

/// The warehouse and what this run writes into it.
pub(crate) struct PaimonLake<'a> {
    catalog: Arc<dyn Catalog>,
    lake: &'a Lake,
    user: String,
    options: BTreeMap<String, String>,
    placeholder: String,
    tables: HashMap<String, Target>,
    /// the last offset read per partition (every record, rows or not)
    seen: Offsets,
    /// the identifier of the next flush
    next: i64,
    /// identifier → offsets, of the flushes a restart needs (the last three)
    stored: BTreeMap<i64, Offsets>,
    pending: usize,
}

fn paimon_error(what: &str, e: paimon::Error) -> Error {
    Error::setup(
        format!("paimon: cannot {what}: {}", super::brief(&e)),
        "check sink.url (a warehouse directory rowstream can write) and [sink.table_options]; the reason above is Paimon's (docs/troubleshooting.md)",
    )
}

impl<'a> PaimonLake<'a> {
    /// Open the warehouse at `dir`; the commit user's last flush decides where each partition
    /// resumes (`resume`, the first offset to read) and which records each table skips.
    pub(crate) async fn open(
        dir: &str,
        lake: &'a Lake,
        cfg: &crate::config::LakeConfig,
    ) -> Result<(PaimonLake<'a>, HashMap<(String, i32), i64>), Error> {
        let mut o = Options::new();
        o.set(CatalogOptions::WAREHOUSE, dir.to_string());
        let catalog = CatalogFactory::create(o)
            .await
            .map_err(|e| paimon_error("open the warehouse", e))?;
        let mut me = PaimonLake {
            catalog,
            lake,
            user: cfg.sink.commit_user.clone(),
            options: cfg.sink.table_options.clone(),
            placeholder: serde_json::Value::from(cfg.sink.toast_placeholder.as_str()).to_string(),
            tables: HashMap::new(),
            seen: Offsets::new(),
            next: 1,
            stored: BTreeMap::new(),
            pending: 0,
        };
        let resume = me.recover().await?;
        Ok((me, resume))
    }

    fn offsets_path(&self, ident: i64) -> StorePath {
        self.lake
            .prefix
            .clone()
            .join("_rowstream")
            .join(self.user.as_str())
            .join(format!("{ident}.json"))
    }

    async fn read_offsets(&self, ident: i64) -> Result<Option<Offsets>, Error> {
        let path = self.offsets_path(ident);
        match self.lake.store.get(&path).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| super::store_error("read", &path, e))?;
                let o = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::setup(
                        format!("{path} is not rowstream's offsets file: {e}"),
                        "restore it, or land into a new warehouse",
                    )
                })?;
                Ok(Some(o))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(super::store_error("read", &path, e)),
        }
    }

    /// The highest identifier of this commit user in each table of the warehouse; sets where
    /// the run starts. Returns the first offset to read per partition (none: the beginning).
    async fn recover(&mut self) -> Result<HashMap<(String, i32), i64>, Error> {
        let mut held: Vec<(Identifier, i64)> = Vec::new();
        let dbs = self
            .catalog
            .list_databases()
            .await
            .map_err(|e| paimon_error("list the databases", e))?;
        for db in dbs {
            let names = self
                .catalog
                .list_tables(&db)
                .await
                .map_err(|e| paimon_error("list the tables", e))?;
            for name in names {
                let id = Identifier::new(db.clone(), name);
                if let Some(n) = self.last_identifier(&id).await? {
                    held.push((id, n));
                }
            }
        }
        let Some(last) = held.iter().map(|(_, n)| *n).max() else {
            return Ok(HashMap::new());
        };
        let Some(covered) = self.read_offsets(last).await? else {
            return Err(Error::setup(
                format!(
                    "the warehouse holds commit {last} of user {} but not its offsets file {}",
                    self.user,
                    self.offsets_path(last)
                ),
                "restore the _rowstream directory of the warehouse, or land into a new warehouse",
            ));
        };
        let before = match self.read_offsets(last - 1).await? {
            Some(o) => o,
            // the first commit resumes from the beginning
            None if last <= 1 => Offsets::new(),
            None => {
                return Err(Error::setup(
                    format!(
                        "the warehouse holds commit {last} of user {} but not the offsets file of commit {} ({})",
                        self.user,
                        last - 1,
                        self.offsets_path(last - 1)
                    ),
                    "restore the _rowstream directory of the warehouse, or land into a new warehouse",
                ))
            }
        };
        let mut resume = HashMap::new();
        for (topic, parts) in &before {
            for (&p, &o) in parts {
                resume.insert((topic.clone(), p), o + 1);
            }
        }
        for (id, n) in held {
            if n != last {
                continue;
            }
            let t = self.load(&id).await?;
            let mut target = t;
            for (topic, parts) in &covered {
                for (&p, &o) in parts {
                    target.skip_until.insert((topic.clone(), p), o);
                }
            }
            self.tables.insert(id.full_name(), target);
        }
        tracing::info!(user = %self.user, last, "paimon: resuming after the last commit");
        self.stored.insert(last - 1, before);
        self.stored.insert(last, covered.clone());
        self.seen = covered;
        self.next = last + 1;
        Ok(resume)
    }

    async fn last_identifier(&self, id: &Identifier) -> Result<Option<i64>, Error> {
        let table = self
            .catalog
            .get_table(id)
            .await
            .map_err(|e| paimon_error("read a table", e))?;
        let sm = table.snapshot_manager();
        let err = |e| paimon_error("read a snapshot", e);
        let Some(latest) = sm.get_latest_snapshot_id().await.map_err(err)? else {
            return Ok(None);
        };
        let earliest = sm
            .earliest_snapshot_id()
            .await
            .map_err(err)?
            .unwrap_or(latest);
        for n in (earliest..=latest).rev() {
            let s = sm.get_snapshot(n).await.map_err(err)?;
            if s.commit_user() == self.user {
                return Ok(Some(s.commit_identifier()));
            }
        }
        Ok(None)
    }

    /// A table of the warehouse as it is now.
    async fn load(&self, id: &Identifier) -> Result<Target, Error> {
        let table = self
            .catalog
            .get_table(id)
            .await
            .map_err(|e| paimon_error("read a table", e))?;
        let schema = table.schema();
        let cols = schema
            .fields()
            .iter()
            .map(|f| Col {
                name: f.name().to_string(),
                ltype: ltype_of(f.data_type()).0.into(),
                refine: ltype_of(f.data_type()).1,
            })
            .filter(|c| c.name != "__op__")
            .collect();
        Ok(Target {
            id: id.clone(),
            cols,
            key: schema.primary_keys().to_vec(),
            rows: Vec::new(),
            skip_until: HashMap::new(),
        })
    }

    /// Take the record of `topic`/`partition` at `offset`. Rows wait for the next flush.
    pub(crate) async fn land(
        &mut self,
        (topic, partition): (&str, i32),
        offset: i64,
        payload: &[u8],
        types: Option<&str>,
    ) -> Result<(), Error> {
        let where_ = || format!("{topic}[{partition}]@{offset}");
        let rec: Envelope<RawValues> = Envelope::parse(payload).map_err(|e| {
            Error::setup(
                format!("{} is not a DataWorks JSON record: {e}", where_()),
                "land only topics rowstream (or DataWorks) writes",
            )
        })?;
        let op = rec.payload.op.clone();
        let ddl = rec.payload.ddl.is_some_and(|d| d.get() != "null");
        let is_row = matches!(
            op.as_str(),
            "INSERT" | "UPDATE_BEFORE" | "UPDATE_AFTER" | "DELETE"
        );
        if !(is_row || ddl && op == "TRUNCATE") {
            self.saw(topic, partition, offset);
            return Ok(());
        }
        let schema = rec.schema.as_ref();
        let (Some(id), Some(columns)) = (
            target(schema.and_then(|s| s.source.as_ref())),
            schema.and_then(|s| s.data_column),
        ) else {
            return Err(Error::setup(
                format!("{} is a `{op}` record without its table", where_()),
                "land only topics rowstream (or DataWorks) writes",
            ));
        };
        let cols = record_columns(columns, types).map_err(|e| {
            Error::setup(
                format!("{}: schema.dataColumn is not a column list: {e}", where_()),
                "land only topics rowstream (or DataWorks) writes",
            )
        })?;
        let key: Vec<String> = schema
            .and_then(|s| s.primary_key)
            .and_then(|k| serde_json::from_str::<Option<Vec<String>>>(k.get()).ok())
            .flatten()
            .unwrap_or_default();
        self.prepare_table(&id, &cols, &key).await?;
        let t = self
            .tables
            .get_mut(&id.full_name())
            .expect("prepared above");
        if t.skip_until
            .get(&(topic.to_string(), partition))
            .is_some_and(|&o| offset <= o)
        {
            self.saw(topic, partition, offset);
            return Ok(()); // in the table already (its last flush)
        }
        if op == "TRUNCATE" {
            // every row before it first, then the table emptied in a commit of its own
            self.flush().await?;
            self.saw(topic, partition, offset);
            return self.truncate(&id).await;
        }
        let sequence_id = rec.payload.sequence();
        let image = match op.as_str() {
            "INSERT" | "UPDATE_AFTER" => rec.payload.after,
            _ => rec.payload.before,
        };
        let Some(image) = image else {
            return Err(Error::setup(
                format!("{} is a `{op}` record without its image", where_()),
                "land only topics rowstream (or DataWorks) writes",
            ));
        };
        let mut values = image.data_column;
        if values.values().any(|v| v.get() == self.placeholder) {
            return Err(Error::setup(
                format!(
                    "{}: table {} has an unchanged TOASTed value the log does not carry; writing it would erase the value the Paimon table holds",
                    where_(),
                    id.full_name()
                ),
                "ALTER TABLE ... REPLICA IDENTITY FULL on the source table (its changes then carry every value), re-snapshot it, and land again",
            ));
        }
        let row = Row {
            op,
            sequence_id,
            event_time: -1,
            offset,
            values: t.cols.iter().map(|c| values.remove(&c.name)).collect(),
        };
        t.rows.push(row);
        self.pending += 1;
        self.saw(topic, partition, offset);
        Ok(())
    }

    fn saw(&mut self, topic: &str, partition: i32, offset: i64) {
        let o = self
            .seen
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_insert(offset);
        *o = (*o).max(offset);
    }

    /// Rows waiting for a flush.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// The table `id` exists with at least `cols` (added when missing) and the key `key`.
    async fn prepare_table(
        &mut self,
        id: &Identifier,
        cols: &[Col],
        key: &[String],
    ) -> Result<(), Error> {
        let name = id.full_name();
        if !self.tables.contains_key(&name) {
            let t = match self.catalog.get_table(id).await {
                Ok(_) => self.load(id).await?,
                Err(paimon::Error::TableNotExist { .. }) => self.create(id, cols, key).await?,
                Err(e) => return Err(paimon_error("read a table", e)),
            };
            self.tables.insert(name.clone(), t);
        }
        let t = &self.tables[&name];
        if t.key != key {
            return Err(Error::setup(
                format!(
                    "the key of {name} changed from {:?} to {key:?}; Paimon cannot change a table's primary key",
                    t.key
                ),
                "land the table into a new warehouse (or drop the Paimon table and land it again)",
            ));
        }
        let mut added = Vec::new();
        for c in cols {
            match t.cols.iter().find(|x| x.name == c.name) {
                None => added.push(c),
                Some(x) if arrow_type(&x.ltype, x.refine) != arrow_type(&c.ltype, c.refine) => {
                    return Err(Error::setup(
                        format!(
                            "column {} of {name} changed from {} to {}; Paimon cannot change a column's type in place",
                            c.name,
                            arrow_type(&x.ltype, x.refine),
                            arrow_type(&c.ltype, c.refine)
                        ),
                        "land the table into a new warehouse (or drop the Paimon table and land it again)",
                    ));
                }
                Some(_) => {}
            }
        }
        if added.is_empty() {
            return Ok(());
        }
        // the rows before the change are written with the columns they had
        self.flush().await?;
        let mut changes = Vec::new();
        for c in &added {
            let ty = paimon_type(&c.ltype, c.refine, true).map_err(Error::fatal)?;
            changes.push(SchemaChange::add_column(c.name.clone(), ty));
        }
        self.catalog
            .alter_table(id, changes, false)
            .await
            .map_err(|e| paimon_error("add a column", e))?;
        tracing::info!(table = %name, added = added.len(), "paimon: columns added");
        let skip = self
            .tables
            .remove(&name)
            .map(|t| t.skip_until)
            .unwrap_or_default();
        let mut t = self.load(id).await?;
        t.skip_until = skip;
        self.tables.insert(name, t);
        Ok(())
    }

    async fn create(&self, id: &Identifier, cols: &[Col], key: &[String]) -> Result<Target, Error> {
        self.catalog
            .create_database(id.database(), true, HashMap::new())
            .await
            .map_err(|e| paimon_error("create a database", e))?;
        let mut b = Schema::builder();
        for c in cols {
            let nullable = !key.contains(&c.name);
            let ty = paimon_type(&c.ltype, c.refine, nullable).map_err(Error::fatal)?;
            b = b.column(c.name.clone(), ty);
        }
        if key.is_empty() {
            let ty = DataType::VarChar(VarCharType::string_type());
            b = b.column("__op__", ty);
        } else {
            b = b.primary_key(key.to_vec());
        }
        for (k, v) in &self.options {
            b = b.option(k.clone(), v.clone());
        }
        if key.is_empty() && !self.options.contains_key("bucket-key") {
            // an append table with a fixed bucket count needs a bucket key it does not have:
            // bucket-unaware, as Paimon's own CDC ingest makes it
            b = b.option("bucket", "-1");
        }
        let schema = b.build().map_err(|e| paimon_error("define a table", e))?;
        self.catalog
            .create_table(id, schema, true)
            .await
            .map_err(|e| paimon_error("create a table", e))?;
        tracing::info!(table = %id.full_name(), keyed = !key.is_empty(), "paimon: table created");
        self.load(id).await
    }

    /// Store the offsets of flush `ident` before any of its commits.
    async fn store_offsets(&mut self, ident: i64) -> Result<(), Error> {
        let path = self.offsets_path(ident);
        let body = serde_json::to_vec(&self.seen).map_err(|e| Error::fatal(e.to_string()))?;
        self.lake
            .store
            .put(&path, body.into())
            .await
            .map_err(|e| super::store_error("write", &path, e))?;
        self.stored.insert(ident, self.seen.clone());
        // a restart needs the last two a table holds: this flush's, and while none holds it,
        // the two before
        while self.stored.len() > 3 {
            let (&old, _) = self.stored.iter().next().expect("more than two");
            self.stored.remove(&old);
            let p = self.offsets_path(old);
            let _ = self.lake.store.delete(&p).await;
        }
        Ok(())
    }

    /// Commit every table's pending rows as flush `next`.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        if self.pending == 0 {
            return Ok(());
        }
        let ident = self.next;
        self.store_offsets(ident).await?;
        let names: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, t)| !t.rows.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        let mut rows = 0;
        for name in names {
            let t = self.tables.get_mut(&name).expect("listed above");
            let batch = batch_of(t).map_err(|e| {
                Error::setup(
                    format!("paimon table {name}: {e}"),
                    "the record cannot be stored in the table; see docs/troubleshooting.md",
                )
            })?;
            rows += batch.num_rows();
            t.rows.clear();
            let id = t.id.clone();
            let table = self
                .catalog
                .get_table(&id)
                .await
                .map_err(|e| paimon_error("read a table", e))?;
            let wb = table
                .new_write_builder()
                .with_commit_user(self.user.clone())
                .map_err(|e| paimon_error("write", e))?;
            let mut w = wb.new_write().map_err(|e| paimon_error("write", e))?;
            w.write_arrow_batch(&batch)
                .await
                .map_err(|e| paimon_error("write rows", e))?;
            let msgs = w
                .prepare_commit()
                .await
                .map_err(|e| paimon_error("prepare a commit", e))?;
            wb.new_commit()
                .commit_with_identifier(msgs, ident)
                .await
                .map_err(|e| paimon_error("commit", e))?;
            tracing::debug!(ident, table = %name, "paimon: table committed");
        }
        tracing::debug!(ident, rows, "paimon: committed");
        self.pending = 0;
        self.next += 1;
        Ok(())
    }

    /// Empty table `id` in a commit of its own (a flush of no rows).
    async fn truncate(&mut self, id: &Identifier) -> Result<(), Error> {
        let ident = self.next;
        self.store_offsets(ident).await?;
        let table = self
            .catalog
            .get_table(id)
            .await
            .map_err(|e| paimon_error("read a table", e))?;
        let wb = table
            .new_write_builder()
            .with_commit_user(self.user.clone())
            .map_err(|e| paimon_error("truncate", e))?;
        wb.new_commit()
            .truncate_table_with_identifier(ident)
            .await
            .map_err(|e| paimon_error("truncate", e))?;
        tracing::info!(table = %id.full_name(), "paimon: truncated");
        self.next += 1;
        Ok(())
    }
}

/// The DataWorks type and refinement a Paimon column of rowstream's was made from.
fn ltype_of(t: &DataType) -> (&'static str, Refine) {
    match t {
        DataType::BigInt(_) => ("LONG", Refine::None),
        DataType::Double(_) => ("DOUBLE", Refine::Float),
        DataType::Decimal(d) if d.scale() == 0 && d.precision() == 20 => {
            ("LONG", Refine::Unsigned64)
        }
        DataType::Decimal(d) => ("DOUBLE", Refine::decimal(d.precision(), d.scale())),
        DataType::LocalZonedTimestamp(_) | DataType::Timestamp(_) => ("DATE", Refine::None),
        DataType::Boolean(_) => ("BOOLEAN", Refine::None),
        DataType::VarBinary(_) | DataType::Binary(_) => ("BYTES", Refine::None),
        _ => ("STRING", Refine::None),
    }
}

/// A table's pending rows as the batch Paimon writes: the table's columns, then the row kind
/// (a keyed table) or `__op__` (a keyless one).
fn batch_of(t: &mut Target) -> Result<RecordBatch, String> {
    let rows = Rows {
        columns: std::mem::take(&mut t.cols),
        partition: 0,
        rows: std::mem::take(&mut t.rows),
        metadata: HashMap::new(),
        placeholder: String::new(),
    };
    let full = rows.to_batch();
    t.cols = rows.columns;
    t.rows = rows.rows;
    let full = full?;
    let n = t.cols.len();
    let mut fields: Vec<Field> = full.schema().fields()[..n]
        .iter()
        .map(|f| {
            let nullable = !t.key.contains(f.name());
            f.as_ref().clone().with_nullable(nullable)
        })
        .collect();
    let mut arrays: Vec<ArrayRef> = full.columns()[..n].to_vec();
    if t.keyed() {
        let kinds: Int8Array = t
            .rows
            .iter()
            .map(|r| match r.op.as_str() {
                "UPDATE_BEFORE" => 1,
                "UPDATE_AFTER" => 2,
                "DELETE" => 3,
                _ => 0,
            })
            .map(Some)
            .collect();
        fields.push(Field::new(VALUE_KIND_FIELD_NAME, ArrowType::Int8, false));
        arrays.push(Arc::new(kinds));
    } else {
        let ops: StringArray = t.rows.iter().map(|r| Some(r.op.as_str())).collect();
        fields.push(Field::new("__op__", ArrowType::Utf8, true));
        arrays.push(Arc::new(ops));
    }
    RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays).map_err(|e| e.to_string())
}
