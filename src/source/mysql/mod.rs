//! The MySQL / MariaDB source: snapshot, then the ROW binlog as a replica (mysql_async with its
//! `binlog` feature), one binary for both flavours.
//!
//! Start-up (`prepare`): check the binlog settings, list the tables that match, open the schema
//! history, and take a consistent snapshot position when tables need one: MariaDB reports the
//! binlog position of a `START TRANSACTION WITH CONSISTENT SNAPSHOT` (`binlog_snapshot_file` /
//! `binlog_snapshot_position`), no lock at all; MySQL takes `FLUSH TABLES WITH READ LOCK` just
//! long enough to read `SHOW MASTER STATUS` (`SHOW BINARY LOG STATUS` on 8.4+) and open the
//! snapshot transaction.
//!
//! Invariants:
//! - Checkpoints are emitted only at transaction ends (XID, or a COMMIT / DDL query event),
//!   carrying file + end offset and the GTID set executed so far; the stream resumes from the
//!   stored file + offset, also after rotation.
//! - A table snapshotted at position S drops binlog changes before S (they are in the snapshot).
//! - Events are decoded with the table's schema as of their position (see `schema`); a DDL
//!   appends the new schema to the durable history before any later row is decoded.
//! - Unparseable DDL is written as `QUERY` (or skipped when it names no table) and never stops
//!   the stream.
//! - MariaDB's own events: GTID (transaction start + GTID), GTID_LIST, BINLOG_CHECKPOINT and
//!   ANNOTATE_ROWS are read (the latter three carry nothing rowstream needs); MySQL's GTID,
//!   ROWS_QUERY and TRANSACTION_PAYLOAD (compressed transactions, expanded by mysql_async) too.

pub mod check;
pub mod ddl;
pub(crate) mod error;
pub mod schema;
pub mod values;

use crate::checkpoint::store::State;
use crate::config::{Config, SnapshotMode};
use crate::error::SetupError;
use crate::event::{Batch, ChangeEvent, DdlEvent, DdlOp, Marker, Op, SourceEvent};
use crate::position::SourcePosition;
use crate::schema::{render_topic, DbType, TableFilter, TableId, TableSchema};
use crate::source::render::RenderWarnings;
use crate::value::Value;
pub(crate) use error::MySqlError;
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use schema::{History, MyTable};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use values::{convert, Ctx, Origin};

const BATCH: usize = 512;
const CHUNK_ROWS: usize = 5000;

fn setup(problem: impl Into<String>, fix: impl Into<String>) -> MySqlError {
    MySqlError::Setup(SetupError::new(problem, fix))
}

pub fn source_id(cfg: &Config) -> String {
    match Opts::from_url(&cfg.source.url) {
        Ok(o) => format!("mysql:{}:{}", o.ip_or_hostname(), o.tcp_port()),
        Err(_) => "mysql:?".into(),
    }
}

/// The include patterns: the default `public.*` means "the URL's database" for MySQL.
fn filter(cfg: &Config, opts: &Opts) -> TableFilter {
    let mut include = cfg.source.tables.clone();
    if include == ["public.*"] {
        if let Some(db) = opts.db_name() {
            include = vec![format!("{db}.*")];
        }
    }
    TableFilter {
        include,
        exclude: cfg.source.exclude.clone(),
    }
}

/// Connect with session settings the value conversion relies on.
pub async fn connect(opts: &Opts) -> Result<Conn, mysql_async::Error> {
    let mut c = Conn::new(opts.clone()).await?;
    c.query_drop("SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = ''")
        .await?;
    Ok(c)
}

pub struct Prepared {
    opts: Opts,
    db_type: DbType,
    server_id: u32,
    filter: TableFilter,
    topic_template: String,
    keys: BTreeMap<String, Vec<String>>,
    ctx: Arc<Ctx>,
    history: History,
    start: (String, u64),
    gtid: Option<String>,
    /// tables to snapshot, with the open snapshot connection and its position
    snapshot: Option<(Conn, (String, u64), Vec<MyTable>)>,
    /// per "db.table": drop binlog changes before this position
    skip_before: HashMap<String, (u64, u64)>,
    pub schemas: Vec<Arc<TableSchema>>,
    chunk_rows: usize,
    /// no position stored yet: store the start position first, so a restart before the first
    /// transaction resumes here instead of at the server's newest position
    store_start: bool,
}

async fn master_status(conn: &mut Conn) -> Result<(String, u64), MySqlError> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW BINARY LOG STATUS").await {
        Ok(r) => r,
        Err(_) => conn.query_first("SHOW MASTER STATUS").await?,
    };
    let row = row.ok_or_else(|| {
        setup(
            "the server has no binary log",
            "enable it: log_bin in the server config, then restart",
        )
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(4);
    Ok((file, pos))
}

pub async fn prepare(cfg: &Config, state: &State) -> Result<Prepared, MySqlError> {
    let opts = Opts::from_url(&cfg.source.url).map_err(|e| {
        setup(
            format!("source.url: {e}"),
            "mysql://user:password@host:3306/db",
        )
    })?;
    let mut conn = connect(&opts).await.map_err(|e| {
        setup(
            format!(
                "cannot connect to {}: {e}",
                crate::config::redact_url(&cfg.source.url)
            ),
            "check source.url, that the server runs, and the user's password and host grants",
        )
    })?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let db_type = if version.to_ascii_lowercase().contains("mariadb") {
        DbType::MariaDb
    } else {
        DbType::MySql
    };
    let vars: Vec<(String, String)> = conn
        .query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image')")
        .await?;
    let var = |n: &str| {
        vars.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.to_ascii_uppercase())
    };
    if var("log_bin").as_deref() != Some("ON") {
        return Err(setup("the binary log is off (log_bin = OFF)", "set log_bin in the server config and restart (run `rowstream check` for every prerequisite)"));
    }
    if var("binlog_format").as_deref() != Some("ROW") {
        return Err(setup(
            format!(
                "binlog_format is {}, rowstream needs ROW",
                var("binlog_format").unwrap_or_default()
            ),
            "SET GLOBAL binlog_format = 'ROW'; and binlog_format = ROW in the server config",
        ));
    }
    if var("binlog_row_image").as_deref() != Some("FULL") {
        return Err(setup(
            format!("binlog_row_image is {}, rowstream needs FULL", var("binlog_row_image").unwrap_or_default()),
            "SET GLOBAL binlog_row_image = 'FULL'; and binlog_row_image = FULL in the server config",
        ));
    }
    let filter = filter(cfg, &opts);
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
        )
        .await?;
    let matched: Vec<(String, String)> = tables
        .into_iter()
        .filter(|(d, t)| {
            filter.matches(&TableId {
                db: d.clone(),
                schema: None,
                table: t.clone(),
            })
        })
        .collect();
    std::fs::create_dir_all(&cfg.state.dir).map_err(MySqlError::Event)?;
    let mut history = History::open(&cfg.state.dir)?;
    let need: Vec<(String, String)> = match cfg.snapshot.mode {
        SnapshotMode::Never => vec![],
        SnapshotMode::Always => matched.clone(),
        SnapshotMode::Initial => matched
            .iter()
            .filter(|(d, t)| !state.tables.contains_key(&format!("{d}.{t}")))
            .cloned()
            .collect(),
    };
    let mut skip_before = HashMap::new();
    for (name, ts) in &state.tables {
        if let Some(SourcePosition::MySql { file, pos, .. }) = &ts.snapshot_from {
            skip_before.insert(name.clone(), SourcePosition::binlog_key(file, *pos));
        }
    }
    // the snapshot: a consistent read view and the binlog position it corresponds to
    let mut snapshot = None;
    let mut snap_pos = None;
    if !need.is_empty() {
        let mut sc = connect(&opts).await?;
        sc.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await?;
        let pos = if db_type == DbType::MariaDb {
            sc.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await?;
            let st: Vec<(String, String)> =
                sc.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
            let get = |n: &str| {
                st.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            };
            match (
                get("binlog_snapshot_file"),
                get("binlog_snapshot_position").and_then(|p| p.parse().ok()),
            ) {
                (Some(f), Some(p)) if !f.is_empty() => (f, p),
                _ => {
                    return Err(setup(
                        "the server reports no binlog_snapshot_file",
                        "enable the binary log (log_bin)",
                    ))
                }
            }
        } else {
            conn.query_drop("FLUSH TABLES WITH READ LOCK")
                .await
                .map_err(|e| {
                    setup(
                        format!("FLUSH TABLES WITH READ LOCK failed: {e}"),
                        "GRANT RELOAD ON *.* TO the rowstream user",
                    )
                })?;
            let res = async {
                let pos = master_status(&mut conn).await?;
                sc.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await?;
                Ok::<_, MySqlError>(pos)
            }
            .await;
            conn.query_drop("UNLOCK TABLES").await?;
            res?
        };
        tracing::info!(file = %pos.0, pos = pos.1, tables = need.len(), "consistent snapshot opened");
        let mut defs = Vec::new();
        for (d, t) in &need {
            if let Some(def) = schema::load_table(&mut sc, d, t).await? {
                skip_before.insert(
                    format!("{d}.{t}"),
                    SourcePosition::binlog_key(&pos.0, pos.1),
                );
                defs.push(def);
            }
        }
        snap_pos = Some(pos.clone());
        snapshot = Some((sc, pos, defs));
    }
    let (start, gtid) = match &state.position {
        Some(SourcePosition::MySql { file, pos, gtid }) => ((file.clone(), *pos), gtid.clone()),
        _ => match &snap_pos {
            Some(p) => (p.clone(), None),
            None => (master_status(&mut conn).await?, None),
        },
    };
    // the history knows every matched table from the start position on
    for (d, t) in &matched {
        let name = format!("{d}.{t}");
        if history.at(&name, &start.0, start.1).is_none() {
            if let Some(def) = schema::load_table(&mut conn, d, t).await? {
                history.append(&start.0, start.1, def)?;
            }
        }
    }
    let tz = cfg.source.tz_offset_secs().unwrap_or(0) as i64 * 1_000_000;
    let ctx = Arc::new(Ctx {
        tz_offset_us: tz,
        tiny1_bool: cfg.source.tinyint1_as_boolean,
    });
    let mut p = Prepared {
        opts,
        db_type,
        server_id: cfg.source.server_id.unwrap_or(5401),
        filter,
        topic_template: cfg.kafka.topic.clone(),
        keys: cfg.source.keys.clone(),
        ctx,
        history,
        start,
        gtid,
        snapshot,
        skip_before,
        schemas: vec![],
        chunk_rows: CHUNK_ROWS,
        store_start: state.position.is_none(),
    };
    for (d, t) in &matched {
        if let Some(def) = p
            .history
            .at(&format!("{d}.{t}"), &p.start.0, p.start.1)
            .cloned()
        {
            let s = p.table_schema(&def);
            p.schemas.push(s);
        }
    }
    let _ = conn.disconnect().await;
    Ok(p)
}

/// Snapshot rows on their way out: batched, counted, progress logged every 5 s.
struct SnapshotOut {
    batch: Batch,
    rows: u64,
    last_log: Instant,
}

impl SnapshotOut {
    async fn push(
        &mut self,
        ev: SourceEvent,
        tx: &mpsc::Sender<Batch>,
        table: &str,
    ) -> Result<(), MySqlError> {
        self.batch.push(ev);
        self.rows += 1;
        if self.batch.len() >= BATCH {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            tx.send(b).await.map_err(|_| MySqlError::Closed)?;
        }
        if self.last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(table, rows = self.rows, "snapshot progress");
            self.last_log = Instant::now();
        }
        Ok(())
    }
}

fn snapshot_change(schema: &Arc<TableSchema>, row: Vec<Value>) -> SourceEvent {
    SourceEvent::Change(ChangeEvent {
        table: schema.clone(),
        op: Op::Insert,
        before: None,
        after: Some(row),
        event_time_ms: -1,
        snapshot: true,
    })
}

impl Prepared {
    fn table_schema(&self, def: &MyTable) -> Arc<TableSchema> {
        let id = TableId {
            db: def.db.clone(),
            schema: None,
            table: def.table.clone(),
        };
        let columns: Vec<_> = def
            .columns
            .iter()
            .map(|c| c.column(self.ctx.tiny1_bool))
            .collect();
        let pname = id.pattern_name();
        let key_names: Vec<String> = self
            .keys
            .get(&pname)
            .cloned()
            .unwrap_or_else(|| def.pk.clone());
        let key: Option<Vec<usize>> = key_names
            .iter()
            .map(|k| columns.iter().position(|c| &c.name == k))
            .collect::<Option<Vec<_>>>()
            .filter(|k| !k.is_empty());
        let topic = render_topic(&self.topic_template, &id);
        TableSchema::new(self.db_type, id, columns, key, topic)
    }

    pub async fn run(
        mut self,
        tx: mpsc::Sender<Batch>,
        _acks: watch::Receiver<Option<SourcePosition>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), MySqlError> {
        let mut warned = RenderWarnings::default();
        if let Some((mut sc, pos, defs)) = self.snapshot.take() {
            for def in &defs {
                if *shutdown.borrow() {
                    return Ok(());
                }
                self.snapshot_table(&mut sc, def, &pos, &tx, &mut warned)
                    .await?;
            }
            let _ = sc.query_drop("COMMIT").await;
            let _ = sc.disconnect().await;
        }
        self.stream(&tx, &mut shutdown, &mut warned).await
    }

    async fn snapshot_table(
        &self,
        sc: &mut Conn,
        def: &MyTable,
        pos: &(String, u64),
        tx: &mpsc::Sender<Batch>,
        warned: &mut RenderWarnings,
    ) -> Result<(), MySqlError> {
        let started = Instant::now();
        let schema = self.table_schema(def);
        let q = |s: &str| format!("`{}`", s.replace('`', "``"));
        let cols: Vec<String> = def.columns.iter().map(|c| q(&c.name)).collect();
        let from = format!("{}.{}", q(&def.db), q(&def.table));
        let pk_idx: Vec<usize> = def
            .pk
            .iter()
            .filter_map(|k| def.columns.iter().position(|c| &c.name == k))
            .collect();
        let name = format!("{}.{}", def.db, def.table);
        tracing::info!(table = %name, "snapshot started");
        let mut out_rows = SnapshotOut {
            batch: Vec::with_capacity(BATCH),
            rows: 0,
            last_log: Instant::now(),
        };
        let mut last: Option<Vec<mysql_async::Value>> = None;
        if pk_idx.is_empty() {
            // no key to chunk by: one SELECT, streamed row by row (bounded memory)
            let mut result = sc
                .exec_iter(format!("SELECT {} FROM {from}", cols.join(",")), ())
                .await?;
            while let Some(row) = result.next().await? {
                let out = self.row_values(def, row.unwrap(), &name, warned);
                out_rows
                    .push(snapshot_change(&schema, out), tx, &name)
                    .await?;
            }
        }
        // keyset chunks by primary key: each chunk holds at most chunk_rows rows
        while !pk_idx.is_empty() {
            let order = def.pk.iter().map(|k| q(k)).collect::<Vec<_>>().join(",");
            let chunk: Vec<mysql_async::Row> = match &last {
                None => {
                    let sql = format!(
                        "SELECT {} FROM {from} ORDER BY {order} LIMIT {}",
                        cols.join(","),
                        self.chunk_rows
                    );
                    sc.exec(sql, ()).await?
                }
                Some(k) => {
                    let marks = vec!["?"; k.len()].join(",");
                    let sql = format!(
                        "SELECT {} FROM {from} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT {}",
                        cols.join(","),
                        self.chunk_rows
                    );
                    sc.exec(sql, mysql_async::Params::Positional(k.clone()))
                        .await?
                }
            };
            let n = chunk.len();
            for row in chunk {
                let vals = row.unwrap();
                last = Some(pk_idx.iter().map(|&i| vals[i].clone()).collect());
                let out = self.row_values(def, vals, &name, warned);
                out_rows
                    .push(snapshot_change(&schema, out), tx, &name)
                    .await?;
            }
            if n < self.chunk_rows {
                break;
            }
        }
        let rows = out_rows.rows;
        let mut batch = out_rows.batch;
        batch.push(SourceEvent::Marker(Marker::SnapshotDone {
            table: name.clone(),
            from: SourcePosition::MySql {
                file: pos.0.clone(),
                pos: pos.1,
                gtid: None,
            },
        }));
        tx.send(batch).await.map_err(|_| MySqlError::Closed)?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(table = %name, rows, secs = format!("{secs:.2}"), rows_per_sec = (rows as f64 / secs.max(1e-6)) as u64, "snapshot finished");
        Ok(())
    }

    /// A row of the snapshot as values; unrenderable ones are null (warned once per column).
    fn row_values(
        &self,
        def: &MyTable,
        vals: Vec<mysql_async::Value>,
        name: &str,
        warned: &mut RenderWarnings,
    ) -> Vec<Value> {
        def.columns
            .iter()
            .zip(vals)
            .map(|(c, v)| warned.value(name, &c.name, convert(c, v, Origin::Snapshot, &self.ctx)))
            .collect()
    }

    async fn stream(
        &mut self,
        tx: &mpsc::Sender<Batch>,
        shutdown: &mut watch::Receiver<bool>,
        warned: &mut RenderWarnings,
    ) -> Result<(), MySqlError> {
        let mut conn = connect(&self.opts).await?;
        if self.db_type == DbType::MariaDb {
            // GTID, GTID_LIST, BINLOG_CHECKPOINT and ANNOTATE_ROWS events instead of fakes
            conn.query_drop("SET @mariadb_slave_capability = 4").await?;
        }
        let checksum: Option<String> = conn.query_first("SELECT @@GLOBAL.binlog_checksum").await?;
        let checksummed = !checksum.unwrap_or_default().eq_ignore_ascii_case("NONE");
        // the server sends heartbeat events when idle: a dead connection is noticed
        conn.query_drop("SET @master_heartbeat_period = 5000000000")
            .await?;
        let meta_conn = connect(&self.opts).await?;
        let (file, pos) = self.start.clone();
        tracing::info!(%file, pos, "streaming binlog");
        let req = BinlogStreamRequest::new(self.server_id)
            .with_filename(file.as_bytes())
            .with_pos(pos);
        let mut stream = conn.get_binlog_stream(req).await.map_err(|e| match e {
            mysql_async::Error::Server(ref s) if s.code == 1236 => setup(
                format!("binlog {file}:{pos} is no longer on the server: {}", s.message),
                "the binlog was purged before rowstream read it; move state.dir away to re-snapshot, and keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days)",
            ),
            e => e.into(),
        })?;
        let mut st = StreamState {
            file,
            gtids: GtidSet::parse(self.gtid.as_deref()),
            txn_time: -1,
            batch: Vec::with_capacity(BATCH),
            meta: meta_conn,
            current: HashMap::new(),
        };
        if self.store_start {
            st.batch.push(SourceEvent::Marker(Marker::Checkpoint {
                position: SourcePosition::MySql {
                    file: self.start.0.clone(),
                    pos: self.start.1,
                    gtid: None,
                },
                event_time_ms: -1,
            }));
            flush(&mut st.batch, tx).await?;
        }
        loop {
            let ev = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                ev = stream.next() => ev,
            };
            let Some(ev) = ev else {
                return Err(MySqlError::Event(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server ended the binlog stream",
                )));
            };
            let ev = ev?;
            let h = ev.header();
            let end_pos = h.log_pos() as u64;
            let ts_ms = h.timestamp() as i64 * 1000;
            tracing::trace!(event_type = h.event_type_raw(), end_pos, "binlog event");
            match h.event_type_raw() {
                // MariaDB GTID: a transaction starts; data = seq_no u64, domain u32, flags u8
                162 => {
                    if let Some((domain, seq)) = parse_mariadb_gtid(ev.data()) {
                        st.gtids.mariadb(domain, h.server_id(), seq);
                    }
                    st.txn_time = ts_ms;
                    continue;
                }
                160 | 161 | 163 => continue,
                _ => {}
            }
            let Some(data) = ev.read_data()? else {
                tracing::trace!("event without data");
                continue;
            };
            match data {
                EventData::RotateEvent(r) => {
                    st.file = rotate_target(r.name_raw(), &st.file, end_pos == 0, checksummed);
                }
                EventData::GtidEvent(g) => {
                    st.gtids.mysql(g.sid(), g.gno());
                    st.txn_time = ts_ms;
                }
                EventData::QueryEvent(q) => {
                    let sql = q.query().into_owned();
                    let upper = sql.trim().to_ascii_uppercase();
                    if upper == "BEGIN" {
                        st.txn_time = ts_ms;
                    } else if upper == "COMMIT" {
                        self.checkpoint(&mut st, end_pos, ts_ms);
                        flush(&mut st.batch, tx).await?;
                    } else if !ddl::is_dml_or_control(&sql) {
                        self.ddl(&mut st, &q.schema(), &sql, end_pos, ts_ms).await?;
                        self.checkpoint(&mut st, end_pos, ts_ms);
                        flush(&mut st.batch, tx).await?;
                    }
                }
                EventData::XidEvent(_) => {
                    self.checkpoint(&mut st, end_pos, ts_ms);
                    flush(&mut st.batch, tx).await?;
                }
                EventData::RowsEvent(rows) => {
                    let Some(tme) = stream.get_tme(rows.table_id()) else {
                        tracing::trace!(table_id = rows.table_id(), "rows event without table map");
                        continue;
                    };
                    tracing::trace!(db = %tme.database_name(), table = %tme.table_name(), "rows event");
                    let name = format!("{}.{}", tme.database_name(), tme.table_name());
                    let id = TableId {
                        db: tme.database_name().into_owned(),
                        schema: None,
                        table: tme.table_name().into_owned(),
                    };
                    if !self.filter.matches(&id) {
                        continue;
                    }
                    if let Some(skip) = self.skip_before.get(&name) {
                        if SourcePosition::binlog_key(&st.file, end_pos) <= *skip {
                            continue;
                        }
                    }
                    let (def, schema) = self
                        .schema_for(&mut st, &name, tme.columns_count() as usize, &id, end_pos)
                        .await?;
                    let t = if st.txn_time >= 0 { st.txn_time } else { ts_ms };
                    for r in rows.rows(tme) {
                        let (before, after) = r?;
                        let conv = |row: Option<mysql_async::binlog::row::BinlogRow>,
                                    warned: &mut RenderWarnings|
                         -> Option<Vec<Value>> {
                            let mut row = row?;
                            let mut out = Vec::with_capacity(def.columns.len());
                            for (i, c) in def.columns.iter().enumerate() {
                                let v = match row.take(i) {
                                    None => Value::Absent,
                                    Some(BinlogValue::Value(v)) => {
                                        convert(c, v, Origin::Binlog, &self.ctx).unwrap_or_else(
                                            |e| {
                                                warned.failed(&name, &c.name, &e)
                                            },
                                        )
                                    }
                                    Some(BinlogValue::Jsonb(j)) => values::jsonb_text(j)
                                        .unwrap_or_else(|e| {
                                            warned.failed(&name, &c.name, &e)
                                        }),
                                    Some(BinlogValue::JsonDiff(_)) => {
                                        warned.failed(&name, &c.name, "partial JSON update (binlog_row_value_options=PARTIAL_JSON): set it empty")
                                    }
                                };
                                out.push(v);
                            }
                            Some(out)
                        };
                        let op = match &rows {
                            RowsEventData::WriteRowsEvent(_)
                            | RowsEventData::WriteRowsEventV1(_) => Op::Insert,
                            RowsEventData::DeleteRowsEvent(_)
                            | RowsEventData::DeleteRowsEventV1(_) => Op::Delete,
                            _ => Op::Update,
                        };
                        let before = conv(before, warned);
                        let after = conv(after, warned);
                        st.batch.push(SourceEvent::Change(ChangeEvent {
                            table: schema.clone(),
                            op,
                            before,
                            after,
                            event_time_ms: t,
                            snapshot: false,
                        }));
                        if st.batch.len() >= BATCH {
                            flush(&mut st.batch, tx).await?;
                        }
                    }
                }
                other => tracing::trace!(?other, "other event"),
            }
        }
        flush(&mut st.batch, tx).await?;
        let _ = stream.close().await;
        Ok(())
    }

    fn checkpoint(&self, st: &mut StreamState, end_pos: u64, ts_ms: i64) {
        let t = if st.txn_time >= 0 { st.txn_time } else { ts_ms };
        st.batch.push(SourceEvent::Marker(Marker::Checkpoint {
            position: SourcePosition::MySql {
                file: st.file.clone(),
                pos: end_pos,
                gtid: st.gtids.render(),
            },
            event_time_ms: t,
        }));
        st.txn_time = -1;
    }

    /// The schema to decode a rows event of `name` with, as of this position.
    async fn schema_for(
        &mut self,
        st: &mut StreamState,
        name: &str,
        ncols: usize,
        id: &TableId,
        end_pos: u64,
    ) -> Result<(Arc<MyTable>, Arc<TableSchema>), MySqlError> {
        if let Some((d, s)) = st.current.get(name) {
            if d.columns.len() == ncols {
                return Ok((d.clone(), s.clone()));
            }
        }
        let def = match self.history.at(name, &st.file, end_pos) {
            Some(d) if d.columns.len() == ncols => d.clone(),
            _ => {
                // unknown or out of step: read the catalog now and remember it from here on
                let d = schema::load_table(&mut st.meta, &id.db, &id.table)
                    .await?
                    .ok_or_else(|| {
                        setup(
                            format!("table {name} is in the binlog but not in information_schema"),
                            "it was dropped since; restart from a later position or re-snapshot",
                        )
                    })?;
                if d.columns.len() != ncols {
                    return Err(setup(
                        format!("binlog rows of {name} have {ncols} columns but the table has {} now, and the schema history has no matching entry", d.columns.len()),
                        "move state.dir away and re-snapshot",
                    ));
                }
                self.history.append(&st.file, end_pos, d.clone())?;
                d
            }
        };
        let schema = self.table_schema(&def);
        let def = Arc::new(def);
        st.batch.push(SourceEvent::Table(schema.clone()));
        st.current
            .insert(name.to_string(), (def.clone(), schema.clone()));
        Ok((def, schema))
    }

    async fn ddl(
        &mut self,
        st: &mut StreamState,
        default_db: &str,
        sql: &str,
        end_pos: u64,
        ts_ms: i64,
    ) -> Result<(), MySqlError> {
        let (op, tables) = match ddl::classify(sql, default_db) {
            Some(x) => x,
            None => {
                // not a statement rowstream reads: a QUERY record on each tracked table it names
                let known: Vec<ddl::TableRef> = ddl::mentioned_tables(sql, default_db)
                    .into_iter()
                    .filter(|(d, t)| {
                        self.history
                            .at(&format!("{d}.{t}"), &st.file, end_pos)
                            .is_some()
                    })
                    .collect();
                if known.is_empty() {
                    tracing::debug!("a statement that names no tracked table is not written");
                    return Ok(());
                }
                (DdlOp::Query, known)
            }
        };
        for (db, table) in tables {
            let id = TableId {
                db: db.clone(),
                schema: None,
                table: table.clone(),
            };
            if !self.filter.matches(&id) {
                continue;
            }
            let name = format!("{db}.{table}");
            let schema = if op == DdlOp::Query {
                // the statement does not change the table's columns
                match self.history.at(&name, &st.file, end_pos) {
                    Some(d) => self.table_schema(&d.clone()),
                    None => continue,
                }
            } else {
                st.current.remove(&name);
                // the schema after the change: from the history when this DDL was seen before
                let def = match self.history.exactly(&name, &st.file, end_pos) {
                    Some(d) => Some(d.clone()),
                    None if op == DdlOp::Erase => None,
                    None => {
                        let d = schema::load_table(&mut st.meta, &db, &table).await?;
                        if let Some(d) = &d {
                            self.history.append(&st.file, end_pos, d.clone())?;
                        }
                        d
                    }
                };
                match &def {
                    Some(d) => self.table_schema(d),
                    // a dropped table: the columns it had
                    None => match self.history.at(&name, &st.file, end_pos.saturating_sub(1)) {
                        Some(d) => self.table_schema(&d.clone()),
                        None => TableSchema::new(
                            self.db_type,
                            id.clone(),
                            vec![],
                            None,
                            render_topic(&self.topic_template, &id),
                        ),
                    },
                }
            };
            st.batch.push(SourceEvent::Table(schema.clone()));
            st.batch.push(SourceEvent::Ddl(DdlEvent {
                table: schema,
                op,
                text: sql.to_string(),
                event_time_ms: ts_ms,
            }));
        }
        Ok(())
    }
}

/// MariaDB GTID_EVENT body: seq_no u64 LE, domain_id u32 LE, flags u8 (+ optional XA data).
pub fn parse_mariadb_gtid(d: &[u8]) -> Option<(u32, u64)> {
    let seq = u64::from_le_bytes(d.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(d.get(8..12)?.try_into().ok()?);
    Some((domain, seq))
}

/// Is `n` a binlog file name: printable ASCII `base.<digits>`?
fn is_binlog_name(n: &[u8]) -> bool {
    let Some(dot) = n.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let ext = &n[dot + 1..];
    dot > 0
        && !ext.is_empty()
        && ext.iter().all(u8::is_ascii_digit)
        && n.iter().all(|c| c.is_ascii_graphic())
}

/// The file a ROTATE event switches to.
///
/// The fake ROTATE the server sends when a dump starts (log_pos 0) only repeats the file rowstream
/// asked for, and it arrives before the format description, so whether its 4-byte CRC32 trails
/// the name varies (seen both ways on MariaDB 10.11): it is not parsed, `current` stays. A real
/// ROTATE names the next file; should a checksum still trail it, it is stripped.
pub fn rotate_target(raw: &[u8], current: &str, fake: bool, checksummed: bool) -> String {
    if fake {
        return current.to_string();
    }
    if is_binlog_name(raw) {
        return String::from_utf8_lossy(raw).into_owned();
    }
    if checksummed && raw.len() > 4 && is_binlog_name(&raw[..raw.len() - 4]) {
        return String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned();
    }
    tracing::warn!("unreadable binlog file name in a ROTATE event; keeping {current}");
    current.to_string()
}

struct StreamState {
    file: String,
    gtids: GtidSet,
    /// commit time (ms) of the open transaction, -1 outside one
    txn_time: i64,
    batch: Batch,
    meta: Conn,
    current: HashMap<String, (Arc<MyTable>, Arc<TableSchema>)>,
}

async fn flush(batch: &mut Batch, tx: &mpsc::Sender<Batch>) -> Result<(), MySqlError> {
    if batch.is_empty() {
        return Ok(());
    }
    tx.send(std::mem::replace(batch, Vec::with_capacity(BATCH)))
        .await
        .map_err(|_| MySqlError::Closed)
}

/// Executed GTIDs: MariaDB `domain-server-seq` per domain, MySQL `uuid:1-n` per source uuid.
#[derive(Default, Debug, PartialEq)]
pub struct GtidSet {
    mariadb: BTreeMap<u32, (u32, u64)>,
    mysql: BTreeMap<String, u64>,
}

impl GtidSet {
    pub fn parse(s: Option<&str>) -> GtidSet {
        let mut g = GtidSet::default();
        for part in s
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if let Some((uuid, range)) = part.split_once(':') {
                let end = range
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                g.mysql.insert(uuid.to_string(), end);
            } else {
                let f: Vec<&str> = part.split('-').collect();
                if let [d, s, q] = f.as_slice() {
                    if let (Ok(d), Ok(s), Ok(q)) = (d.parse(), s.parse(), q.parse()) {
                        g.mariadb.insert(d, (s, q));
                    }
                }
            }
        }
        g
    }
    pub fn mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        self.mariadb.insert(domain, (server, seq));
    }
    pub fn mysql(&mut self, sid: [u8; 16], gno: u64) {
        let u = sid;
        let uuid = format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]
        );
        let e = self.mysql.entry(uuid).or_insert(0);
        *e = (*e).max(gno);
    }
    pub fn render(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .mariadb
            .iter()
            .map(|(d, (s, q))| format!("{d}-{s}-{q}"))
            .collect();
        parts.extend(self.mysql.iter().map(|(u, n)| format!("{u}:1-{n}")));
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gtid_event_bytes() {
        // GTID 0-1-31 laid out as the MariaDB GTID_EVENT body (seq_no, domain_id, flags)
        let body = [31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c];
        assert_eq!(parse_mariadb_gtid(&body), Some((0, 31)));
        let body = [0x10, 0x27, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        assert_eq!(parse_mariadb_gtid(&body), Some((2, 10000)));
        assert_eq!(parse_mariadb_gtid(&[1, 2, 3]), None);
        let mut g = GtidSet::default();
        let (d, s) = parse_mariadb_gtid(&body).unwrap();
        g.mariadb(d, 7, s);
        assert_eq!(g.render().as_deref(), Some("2-7-10000"));
    }

    #[test]
    fn rotate_names_with_trailing_checksums() {
        let cur = "mysql-bin.000045";
        // the fake ROTATE repeats the requested file, with or without a CRC that may look like
        // digits or a dot: never parsed
        for tail in [&b""[..], b"1234", b".\xfe\xa1T", b"\x00\x01\x02\x03"] {
            let mut raw = cur.as_bytes().to_vec();
            raw.extend_from_slice(tail);
            assert_eq!(rotate_target(&raw, cur, true, true), cur, "tail {tail:?}");
        }
        // real ROTATE events carry the next file's name (a trailing checksum is stripped)
        assert_eq!(
            rotate_target(b"mysql-bin.000046", cur, false, true),
            "mysql-bin.000046"
        );
        assert_eq!(
            rotate_target(b"mysql-bin.000046\xfe\xa1.T", cur, false, true),
            "mysql-bin.000046"
        );
        assert_eq!(
            rotate_target(b"a.b.000003", cur, false, false),
            "a.b.000003"
        );
        assert_eq!(rotate_target(b"\xff\xfe", cur, false, true), cur);
    }

    #[test]
    fn gtid_sets_both_flavours() {
        let mut g = GtidSet::parse(Some("0-1-5,1-2-9"));
        g.mariadb(0, 1, 6);
        assert_eq!(g.render().as_deref(), Some("0-1-6,1-2-9"));
        let mut m = GtidSet::parse(Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23"));
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&[
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ]);
        m.mysql(sid, 24);
        assert_eq!(
            m.render().as_deref(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-24")
        );
        assert_eq!(GtidSet::parse(None).render(), None);
    }
}
