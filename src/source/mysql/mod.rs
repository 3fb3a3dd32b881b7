//! The MySQL / MariaDB source: snapshot, then the ROW binlog as a replica (mysql_async with its
//! `binlog` feature), one binary for both flavours.
//!
//! It keeps the contract of `crate::source`; the snapshot's chunk reader is `snapshot`, the
//! prerequisites `prereq`.
//!
//! Start-up (`prepare`): check the binlog settings (`prereq`), list the tables that match, open the schema
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
//! - A table snapshotted at position S (its fence) drops binlog events that start before S: their
//!   transactions ended at or before S, so they are in the snapshot.
//! - Events are decoded with the table's schema as of their position (see `schema`); a DDL
//!   appends the new schema to the durable history before any later row is decoded.
//! - Unparseable DDL is written as `QUERY` (or skipped when it names no table) and never stops
//!   the stream.
//! - MariaDB's own events: GTID (transaction start + GTID), GTID_LIST, BINLOG_CHECKPOINT and
//!   ANNOTATE_ROWS are read (the latter three carry nothing rowstream needs); MySQL's GTID,
//!   ROWS_QUERY and TRANSACTION_PAYLOAD (compressed transactions, expanded by mysql_async) too.

pub(crate) mod check;
pub(crate) mod cursor;
pub(crate) mod ddl;
pub(crate) mod error;
#[cfg(test)]
mod fixtures;
pub(crate) mod incremental;
pub(crate) mod prereq;
pub(crate) mod schema;
pub(crate) mod snapshot;
pub(crate) mod values;

use crate::checkpoint::store::State;
use crate::config::{Config, MysqlOptions, ResumeBy};
use crate::error::{Classify as _, SetupError};
use crate::model::event::{ChangeEvent, DdlEvent, DdlOp, Marker, Op, SourceEvent};
use crate::model::position::SourcePosition;
use crate::model::schema::{DbType, TableFilter, TableId, TableSchema};
use crate::model::value::Value;
use crate::source::batch::Batcher;
use crate::source::incremental::{Incremental, Job};
use crate::source::plan::{tables_to_resume, tables_to_snapshot, Fence};
use crate::source::render::RenderWarnings;
use crate::source::schemas::SchemaFactory;
use crate::source::snapshot::snapshot_tables;
use crate::source::SnapshotRequest;
use crate::source::Source;
use cursor::{Cursor, EventAt};
pub(crate) use error::MySqlError;
use futures_util::{FutureExt as _, StreamExt};
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::*;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};
use schema::{History, MyTable};
use snapshot::{MyTableReader, SnapTable};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::watch;
use values::{convert, Ctx, Origin};

fn setup(problem: impl Into<String>, fix: impl Into<String>) -> MySqlError {
    MySqlError::Setup(SetupError::new(problem, fix))
}

pub(crate) fn source_id(cfg: &Config) -> String {
    match Opts::from_url(&cfg.source.url) {
        Ok(o) => format!("mysql:{}:{}", o.ip_or_hostname(), o.tcp_port()),
        Err(_) => "mysql:?".into(),
    }
}

/// Binlog bytes after `file`:`pos` (the stored position): the rest of that file and every
/// later one, from `SHOW BINARY LOGS`. An error when the file is gone (purged).
pub(crate) async fn retention(cfg: &Config, file: &str, pos: u64) -> Result<i64, String> {
    let opts = Opts::from_url(&cfg.source.url).map_err(|e| e.to_string())?;
    let mut c = connect(&opts).await.map_err(|e| e.to_string())?;
    let logs: Vec<mysql_async::Row> = c
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| e.to_string())?;
    let _ = c.disconnect().await;
    let mut behind: Option<i64> = None;
    for r in logs {
        let name: String = r.get(0).unwrap_or_default();
        let size: i64 = r.get(1).unwrap_or(0);
        if name.as_str() == file {
            behind = Some((size - pos as i64).max(0));
        } else if let Some(b) = behind.as_mut() {
            *b += size;
        }
    }
    behind.ok_or_else(|| format!("binlog {file} is no longer on the server"))
}

/// Connect with session settings the value conversion relies on.
pub(crate) async fn connect(opts: &Opts) -> Result<Conn, mysql_async::Error> {
    let mut c = Conn::new(opts.clone()).await?;
    c.query_drop("SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = ''")
        .await?;
    Ok(c)
}

pub(crate) struct Prepared {
    opts: Opts,
    db_type: DbType,
    server_id: u32,
    filter: TableFilter,
    factory: SchemaFactory,
    ctx: Arc<Ctx>,
    history: History,
    start: (String, u64),
    gtid: Option<String>,
    /// resume by GTID (`source.resume_by`, or the state was written on another server)
    by_gtid: bool,
    /// the state was written on another server of the replication topology
    moved: bool,
    /// tables to snapshot, with the open snapshot connection and its position
    snapshot: Option<(Conn, (String, u64), Vec<MyTable>)>,
    /// per table: binlog events starting before this position are in its snapshot
    fence: Fence,
    chunk_rows: usize,
    /// no position stored yet: store the start position first, so a restart before the first
    /// transaction resumes here instead of at the server's newest position
    store_start: bool,
    /// tables whose snapshot resumes incrementally, after their stored cursor
    resume: Vec<(TableId, serde_json::Value)>,
}

async fn master_status(conn: &mut Conn) -> Result<(String, u64), MySqlError> {
    Ok(master_status_gtid(conn).await?.0)
}

/// The server's binlog end, and (MySQL) the GTIDs executed up to it, read in one statement.
async fn master_status_gtid(
    conn: &mut Conn,
) -> Result<((String, u64), Option<String>), MySqlError> {
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
    // MySQL's fifth column, Executed_Gtid_Set (MariaDB has four)
    let gtid: Option<String> = row
        .get_opt::<String, _>(4)
        .and_then(Result::ok)
        .map(|g| g.replace(['\n', ' '], ""))
        .filter(|g| !g.is_empty());
    Ok(((file, pos), gtid))
}

/// MariaDB: the GTID position of a binlog file and offset (`BINLOG_GTID_POS`); `None` before
/// any GTID was written.
async fn mariadb_gtid_at(
    conn: &mut Conn,
    at: &(String, u64),
) -> Result<Option<String>, MySqlError> {
    let g: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&at.0, at.1))
        .await?;
    Ok(g.flatten().filter(|g| !g.is_empty()))
}

/// Does this run resume by GTID (`source.resume_by`; a move to another server always does)?
/// `gtid` is the GTID set stored with the position (or executed up to a first start).
fn resume_by_gtid(
    by: ResumeBy,
    start: &(String, u64),
    gtid: Option<&str>,
) -> Result<bool, MySqlError> {
    match (by, gtid) {
        (ResumeBy::File, _) => Ok(false),
        (ResumeBy::Auto, _) => Ok(false),
        (ResumeBy::Gtid, Some(_)) => Ok(true),
        (ResumeBy::Gtid, None) => Err(setup(
            format!(
                "source.resume_by = \"gtid\", but the position binlog {}:{} carries no GTID (the server writes none, or the state was stored before any was written)",
                start.0, start.1
            ),
            "set source.resume_by = \"file\" (or \"auto\"); on MySQL, enable GTIDs (gtid_mode = ON, enforce_gtid_consistency = ON)",
        )),
    }
}

/// Connect, check what a run needs, plan the snapshot, open its read view, load the schemas.
pub(crate) async fn prepare(
    cfg: &Config,
    my: &MysqlOptions,
    state: &State,
    store: Arc<crate::checkpoint::store::Store>,
) -> Result<(Prepared, Vec<Arc<TableSchema>>), MySqlError> {
    let (opts, mut conn, db_type) = open(&cfg.source.url, my).await?;
    prereq::required_for_run(&mut conn, db_type == DbType::MariaDb).await?;
    let filter = crate::source::table_filter(cfg);
    let matched = matched_tables(&mut conn, &filter).await?;
    if state.position.is_none() {
        unmatched_patterns(&mut conn, &filter).await??;
    }
    let mut history = History::open(store)?;
    let need: Vec<TableId> = tables_to_snapshot(cfg.snapshot.mode, &matched, state);
    // after a move to another server the stored fences name the old server's files, which
    // cannot be compared with this one's: none skips anything (changes between the stored
    // position and a fence may be sent again, none is lost)
    let mut fence = match state.moved_from {
        Some(_) => Fence::default(),
        None => Fence::from_state(state),
    };
    let (snapshot, snapshot_gtid) = match need.is_empty() {
        true => (None, None),
        false => {
            let (sc, pos, gtid, defs) = open_snapshot(&opts, &mut conn, db_type, &need).await?;
            (Some((sc, pos, defs)), gtid)
        }
    };
    if let Some((_, pos, _)) = &snapshot {
        fence.set(&need, &binlog_position(&pos.0, pos.1));
    }
    let moved = state.moved_from.is_some();
    if moved {
        // binlog positions of the other server mean nothing here: decode with the schemas as
        // they are now, recorded from the start on
        history.reset()?;
        if db_type != DbType::MariaDb {
            let g = match &state.position {
                Some(SourcePosition::MySql { gtid: Some(g), .. }) => g.clone(),
                _ => String::new(),
            };
            let mode: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_mode").await?;
            let (applied, kept): (Option<i64>, Option<i64>) = conn
                .exec_first(
                    "SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed), GTID_SUBSET(@@GLOBAL.gtid_purged, ?)",
                    (&g, &g),
                )
                .await?
                .unwrap_or_default();
            mysql_gtid_guard(
                &g,
                mode.as_deref().unwrap_or("OFF"),
                applied == Some(1),
                kept == Some(1),
            )?;
        }
    }
    let (start, gtid) = match &state.position {
        Some(SourcePosition::MySql { gtid: Some(g), .. }) if moved => {
            ((String::new(), 4), Some(g.clone()))
        }
        Some(SourcePosition::MySql { file, pos, gtid }) => ((file.clone(), *pos), gtid.clone()),
        _ => {
            // a first start: the GTIDs executed up to the start, so that every position
            // carries the whole set (and a later start can resume by it)
            let (start, reported) = match &snapshot {
                Some((_, p, _)) => (p.clone(), snapshot_gtid.clone()),
                None => master_status_gtid(&mut conn).await?,
            };
            let gtid = match db_type {
                DbType::MariaDb => mariadb_gtid_at(&mut conn, &start).await?,
                _ => reported,
            };
            (start, gtid)
        }
    };
    let by_gtid = moved || resume_by_gtid(my.resume_by, &start, gtid.as_deref())?;
    // the history knows every matched table from the start position on
    for id in &matched {
        if history.at(&id.to_string(), &start.0, start.1).is_none() {
            if let Some(def) = schema::load_table(&mut conn, &id.db, &id.table).await? {
                history.append(&start.0, start.1, def)?;
            }
        }
    }
    let _ = conn.disconnect().await;
    let resume = tables_to_resume(&matched, state, &need);
    let p = Prepared {
        opts,
        db_type,
        server_id: my.server_id.unwrap_or(5401),
        filter,
        factory: SchemaFactory::new(db_type, &cfg.kafka.topic, &cfg.source.keys),
        ctx: Arc::new(ctx_of(cfg, my)),
        history,
        start,
        gtid,
        snapshot,
        fence,
        chunk_rows: cfg.snapshot.chunk_rows as usize,
        store_start: state.position.is_none(),
        by_gtid,
        moved,
        resume,
    };
    let mut schemas = Vec::with_capacity(matched.len());
    for id in &matched {
        if let Some(def) = p
            .history
            .at(&id.to_string(), &p.start.0, p.start.1)
            .cloned()
        {
            let s = p.table_schema(&def)?;
            schemas.push(s);
        }
    }
    Ok((p, schemas))
}

/// The connection options: the URL, and TLS as `source.ssl_mode` / `ssl_root_cert` say (one
/// definition for every connection: catalog, snapshot, binlog, check, verify).
pub(crate) fn opts(url: &str, my: &MysqlOptions) -> Result<Opts, MySqlError> {
    use crate::config::MysqlSslMode as M;
    let opts = Opts::from_url(url).map_err(|e| {
        setup(
            format!("source.url: {e}"),
            "mysql://user:password@host:3306/db",
        )
    })?;
    if my.ssl_mode == M::Disabled {
        return Ok(opts);
    }
    let mut ssl = mysql_async::SslOpts::default()
        .with_danger_accept_invalid_certs(my.ssl_mode == M::Required)
        .with_danger_skip_domain_validation(my.ssl_mode != M::VerifyIdentity);
    if let Some(ca) = &my.ssl_root_cert {
        ssl = ssl.with_root_certs(vec![std::path::PathBuf::from(ca).into()]);
    }
    Ok(mysql_async::OptsBuilder::from_opts(opts)
        .ssl_opts(Some(ssl))
        .into())
}

/// Parse the URL, connect, and tell MariaDB from MySQL.
async fn open(url: &str, my: &MysqlOptions) -> Result<(Opts, Conn, DbType), MySqlError> {
    let opts = opts(url, my)?;
    let mut conn = connect(&opts).await.map_err(|e| {
        let f = prereq::connect_failed(url, &e);
        let err = SetupError::new(f.what, f.fix.unwrap_or_default());
        // no answer, or a server stopping or full: it may come back; a refusal of the user
        // (access denied, unknown database) will not
        match e.class() {
            crate::error::ErrorClass::Transient => MySqlError::Unreachable(err),
            _ => MySqlError::Setup(err),
        }
    })?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let db_type = match version.to_ascii_lowercase().contains("mariadb") {
        true => DbType::MariaDb,
        false => DbType::MySql,
    };
    Ok((opts, conn, db_type))
}

/// May this MySQL server resume the stored GTID set `g` (failover by GTID)? It must run with
/// GTIDs, have applied every transaction rowstream has seen (`applied`: else it lags behind or
/// belongs to another topology), and still hold every one rowstream has not (`kept`: its
/// `gtid_purged` lies within `g`).
fn mysql_gtid_guard(g: &str, mode: &str, applied: bool, kept: bool) -> Result<(), MySqlError> {
    let other = "point source.url at a server of the same replication topology that has applied it (a GTID replica with log_replica_updates), or start over with `rowstream run --resnapshot`";
    if !mode.eq_ignore_ascii_case("ON") {
        return Err(setup(
            format!("the state was written on another server and this one runs with gtid_mode = {mode}: resuming by GTID needs gtid_mode = ON"),
            other,
        ));
    }
    if !applied {
        return Err(setup(
            format!("this server has not applied rowstream's position GTID {g} (it lags behind, or belongs to another replication topology)"),
            other,
        ));
    }
    if !kept {
        return Err(setup(
            format!("this server purged binlogs holding transactions after rowstream's position GTID {g} (its gtid_purged is not within it)"),
            "point source.url at a server that still has those binlogs, or start over with `rowstream run --resnapshot`",
        ));
    }
    Ok(())
}

/// The COM_BINLOG_DUMP_GTID request for MySQL auto-positioning from the executed set `g`
/// (`uuid:1-n` and tagged `uuid:tag:1-n` parts): the server sends every transaction not in it.
fn mysql_gtid_request(server_id: u32, g: &str) -> Result<BinlogStreamRequest<'static>, MySqlError> {
    let sids = g
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<mysql_async::Sid<'static>>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MySqlError::Malformed(format!("stored GTID set {g}: {e}")))?;
    Ok(BinlogStreamRequest::new(server_id)
        .with_gtid()
        .with_gtid_set(sids))
}

/// `source.tables` patterns that select nothing that exists (see
/// `source::unmatched_patterns`).
pub(super) async fn unmatched_patterns(
    conn: &mut Conn,
    filter: &TableFilter,
) -> Result<Result<(), SetupError>, MySqlError> {
    // every database, system ones too: a pattern over one that exists is not a typo
    let dbs: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
        .await?;
    let names: Vec<String> = conn
        .query::<(String, String), _>(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
        )
        .await?
        .into_iter()
        .map(|(d, t)| table_id(&d, &t).pattern_name())
        .collect();
    Ok(crate::source::unmatched_patterns(
        filter, &dbs, &names, false,
    ))
}

/// The base tables `filter` selects, in name order.
async fn matched_tables(conn: &mut Conn, filter: &TableFilter) -> Result<Vec<TableId>, MySqlError> {
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
        )
        .await?;
    Ok(tables
        .iter()
        .map(|(d, t)| table_id(d, t))
        .filter(|id| filter.matches(id))
        .collect())
}

/// A consistent read view for the snapshot, the binlog position it corresponds to, and the
/// definitions of the tables it reads.
async fn open_snapshot(
    opts: &Opts,
    conn: &mut Conn,
    db_type: DbType,
    need: &[TableId],
) -> Result<(Conn, (String, u64), Option<String>, Vec<MyTable>), MySqlError> {
    let mut sc = connect(opts).await?;
    sc.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    let (pos, gtid) = match db_type {
        DbType::MariaDb => (mariadb_snapshot(&mut sc).await?, None),
        _ => mysql_snapshot(conn, &mut sc).await?,
    };
    tracing::info!(file = %pos.0, pos = pos.1, tables = need.len(), "consistent snapshot opened");
    let mut defs = Vec::new();
    for id in need {
        if let Some(def) = schema::load_table(&mut sc, &id.db, &id.table).await? {
            defs.push(def);
        }
    }
    Ok((sc, pos, gtid, defs))
}

/// MariaDB tells the binlog position of a consistent snapshot without a lock.
async fn mariadb_snapshot(sc: &mut Conn) -> Result<(String, u64), MySqlError> {
    sc.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await?;
    let st: Vec<(String, String)> = sc.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
    let get = |n: &str| {
        st.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    match (
        get("binlog_snapshot_file"),
        get("binlog_snapshot_position").and_then(|p| p.parse().ok()),
    ) {
        (Some(f), Some(p)) if !f.is_empty() => Ok((f, p)),
        _ => Err(setup(
            "the server reports no binlog_snapshot_file",
            "enable the binary log (log_bin)",
        )),
    }
}

/// MySQL: the position read under a brief global read lock while the snapshot opens.
async fn mysql_snapshot(
    conn: &mut Conn,
    sc: &mut Conn,
) -> Result<((String, u64), Option<String>), MySqlError> {
    conn.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .map_err(|e| {
            setup(
                format!("FLUSH TABLES WITH READ LOCK failed: {e}"),
                "GRANT RELOAD ON *.* TO the rowstream user",
            )
        })?;
    let res = async {
        let pos = master_status_gtid(conn).await?;
        sc.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await?;
        Ok::<_, MySqlError>(pos)
    }
    .await;
    conn.query_drop("UNLOCK TABLES").await?;
    res
}

impl Source for Prepared {
    fn started(&self) -> Vec<Marker> {
        let Some((_, pos, defs)) = &self.snapshot else {
            return vec![];
        };
        let at = binlog_position(&pos.0, pos.1);
        defs.iter()
            .map(|d| crate::source::started_marker(&table_id(&d.db, &d.table), &at))
            .collect()
    }

    /// Snapshot what was planned, then stream. MySQL has no acknowledgement to send: the
    /// binlog is kept by the server's retention, not by the reader's progress.
    async fn run(
        mut self,
        mut out: Batcher,
        _acks: watch::Receiver<Option<SourcePosition>>,
        mut stop: watch::Receiver<bool>,
        mut requests: tokio::sync::mpsc::Receiver<SnapshotRequest>,
    ) -> Result<(), crate::error::Error> {
        let mut warnings = RenderWarnings::default();
        if let Some((mut conn, pos, defs)) = self.snapshot.take() {
            let mut tables = Vec::with_capacity(defs.len());
            for def in defs {
                let schema = self.table_schema(&def)?;
                tables.push(SnapTable { def, schema });
            }
            let mut reader = MyTableReader {
                conn: &mut conn,
                ctx: &self.ctx,
                warnings: &mut warnings,
                chunk_rows: self.chunk_rows,
            };
            let at = binlog_position(&pos.0, pos.1);
            let done = snapshot_tables(&mut reader, &tables, &at, &mut out, &stop).await?;
            let _ = conn.query_drop("COMMIT").await;
            let _ = conn.disconnect().await;
            if !done {
                return Ok(());
            }
        }
        Ok(self
            .stream(&mut out, &mut stop, &mut requests, &mut warnings)
            .await?)
    }
}

fn table_id(db: &str, table: &str) -> TableId {
    TableId {
        db: db.to_string(),
        schema: None,
        table: table.to_string(),
    }
}

/// A binlog position without GTIDs (for fences).
fn binlog_position(file: &str, pos: u64) -> SourcePosition {
    SourcePosition::MySql {
        file: file.to_string(),
        pos,
        gtid: None,
    }
}

/// The schema of a table definition (columns, key, topic).
fn schema_of(
    factory: &SchemaFactory,
    ctx: &Ctx,
    def: &MyTable,
) -> Result<Arc<TableSchema>, MySqlError> {
    let columns: Vec<_> = def
        .columns
        .iter()
        .map(|c| c.column(ctx.tiny1_bool))
        .collect();
    Ok(factory.build(table_id(&def.db, &def.table), columns, &def.pk)?)
}

fn ctx_of(cfg: &Config, my: &MysqlOptions) -> Ctx {
    Ctx {
        tz_offset_us: cfg.source.tz_offset_secs().unwrap_or(0) as i64 * 1_000_000,
        tiny1_bool: my.tinyint1_as_boolean,
    }
}

/// Every matched table's current rows, chunk by chunk (for `verify`).
pub(crate) struct MyDump {
    conn: Conn,
    db_type: DbType,
    defs: Vec<MyTable>,
    schemas: Vec<Arc<TableSchema>>,
    ctx: Ctx,
    chunk_rows: usize,
}

impl MyDump {
    pub(crate) async fn open(cfg: &Config, my: &MysqlOptions) -> Result<MyDump, MySqlError> {
        let (_, mut conn, db_type) = open(&cfg.source.url, my).await?;
        let filter = crate::source::table_filter(cfg);
        let factory = SchemaFactory::new(db_type, &cfg.kafka.topic, &cfg.source.keys);
        let ctx = ctx_of(cfg, my);
        let (mut defs, mut schemas) = (Vec::new(), Vec::new());
        for id in matched_tables(&mut conn, &filter).await? {
            if let Some(def) = schema::load_table(&mut conn, &id.db, &id.table).await? {
                schemas.push(schema_of(&factory, &ctx, &def)?);
                defs.push(def);
            }
        }
        Ok(MyDump {
            conn,
            db_type,
            defs,
            schemas,
            ctx,
            chunk_rows: cfg.snapshot.chunk_rows as usize,
        })
    }

    pub(crate) fn schemas(&self) -> Vec<Arc<TableSchema>> {
        self.schemas.clone()
    }

    /// The binlog end now, with the GTIDs executed up to it where the server has them (so a
    /// reader that stored a GTID set can tell it has everything, whatever events without a
    /// transaction, such as MariaDB's binlog checkpoints, follow the last one).
    pub(crate) async fn position(&mut self) -> Result<SourcePosition, MySqlError> {
        let ((file, pos), reported) = master_status_gtid(&mut self.conn).await?;
        let gtid = match (self.db_type, reported) {
            (DbType::MariaDb, _) => {
                let g: Option<String> = self
                    .conn
                    .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                    .await?;
                g.filter(|g| !g.is_empty())
            }
            (_, g) => g,
        };
        Ok(SourcePosition::MySql { file, pos, gtid })
    }

    /// The rows of the `i`th matched table, a chunk at a time.
    pub(crate) async fn rows(
        &mut self,
        i: usize,
        f: &mut (dyn FnMut(&[crate::model::value::Row]) -> Result<(), crate::error::Error> + Send),
    ) -> Result<(), crate::error::Error> {
        let (Some(def), Some(schema)) = (self.defs.get(i), self.schemas.get(i)) else {
            return Ok(());
        };
        let target = SnapTable {
            def: def.clone(),
            schema: schema.clone(),
        };
        let mut warnings = RenderWarnings::default();
        let mut reader = MyTableReader {
            conn: &mut self.conn,
            ctx: &self.ctx,
            warnings: &mut warnings,
            chunk_rows: self.chunk_rows,
        };
        crate::source::snapshot::read_all(&mut reader, &target, f).await
    }
}

impl Prepared {
    fn table_schema(&self, def: &MyTable) -> Result<Arc<TableSchema>, MySqlError> {
        schema_of(&self.factory, &self.ctx, def)
    }

    /// Open the binlog dump at the resume position.
    async fn open_stream(&self) -> Result<BinlogStream, MySqlError> {
        let mut conn = connect(&self.opts).await?;
        if self.db_type == DbType::MariaDb {
            // GTID, GTID_LIST, BINLOG_CHECKPOINT and ANNOTATE_ROWS events instead of fakes
            conn.query_drop("SET @mariadb_slave_capability = 4").await?;
        }
        // the server sends heartbeat events when idle: a dead connection is noticed
        conn.query_drop("SET @master_heartbeat_period = 5000000000")
            .await?;
        let (file, pos) = self.start.clone();
        let mut req = BinlogStreamRequest::new(self.server_id)
            .with_filename(file.as_bytes())
            .with_pos(pos);
        if self.by_gtid {
            let g = self.gtid.clone().unwrap_or_default();
            tracing::info!(gtid = %g, "streaming binlog from a GTID position");
            if self.db_type == DbType::MariaDb {
                // MariaDB GTID positioning: the server looks the GTID up in its own binlog and
                // refuses (strict mode) one its history does not contain
                conn.exec_drop("SET @slave_connect_state = ?", (g,)).await?;
                conn.query_drop("SET @slave_gtid_strict_mode = 1").await?;
            } else {
                // MySQL auto-positioning (checked by `mysql_gtid_guard` at start-up)
                req = mysql_gtid_request(self.server_id, &g)?;
            }
        } else {
            tracing::info!(%file, pos, "streaming binlog");
        }
        let stream = conn
            .get_binlog_stream(req)
            .await
            .map_err(|e| self.unreadable(e))?;
        Ok(stream)
    }

    async fn stream(
        &mut self,
        out: &mut Batcher,
        shutdown: &mut watch::Receiver<bool>,
        requests: &mut tokio::sync::mpsc::Receiver<SnapshotRequest>,
        warned: &mut RenderWarnings,
    ) -> Result<(), MySqlError> {
        let mut stream = self.open_stream().await?;
        let mut st = StreamState {
            cur: Cursor::new(&self.start.0, self.start.1),
            gtids: GtidSet::parse(self.gtid.as_deref()),
            txn_time: -1,
            out,
            meta: connect(&self.opts).await?,
            current: HashMap::new(),
            inc: Incremental::default(),
        };
        for (id, cursor) in std::mem::take(&mut self.resume) {
            st.inc.add(Job::new(id.pattern_name(), cursor));
        }
        if self.store_start {
            st.out.add(SourceEvent::Marker(Marker::Checkpoint {
                position: SourcePosition::MySql {
                    file: self.start.0.clone(),
                    pos: self.start.1,
                    gtid: self.gtid.clone(),
                },
                event_time_ms: -1,
            }));
            st.out.flush().await?;
        }
        loop {
            if st.txn_time < 0 && !*shutdown.borrow() {
                if st.inc.waiting_for().is_some_and(|h| st.passed(h)) {
                    st.inc.close(st.out).await?;
                }
                if let Some(job) = st.inc.next_job().cloned() {
                    self.read_chunk(&mut st, &job, warned).await?;
                    continue;
                }
            }
            let ev = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                Some(req) = requests.recv() => {
                    self.snapshot_request(&mut st, req).await?;
                    continue;
                }
                // the binlog parser panics on some malformed events: a typed error instead
                ev = std::panic::AssertUnwindSafe(stream.next()).catch_unwind() => ev.map_err(|_| {
                    MySqlError::Malformed(format!(
                        "the binlog parser failed on a malformed event after {}:{} (a damaged binlog or connection)",
                        st.cur.file, st.cur.pos
                    ))
                })?,
            };
            let Some(ev) = ev else {
                return Err(MySqlError::Event(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server ended the binlog stream",
                )));
            };
            // the server refuses a position it no longer has on the first read
            let ev = ev.map_err(|e| self.unreadable(e))?;
            verify_checksum(&ev).map_err(|e| {
                MySqlError::Malformed(format!(
                    "{e} in {} (a damaged binlog or connection)",
                    st.cur.file
                ))
            })?;
            let h = ev.header();
            let at = st.cur.on_event(&ev).map_err(|e| {
                MySqlError::Malformed(format!(
                    "{e}: rowstream stops rather than guess which changes it has sent (its stored position is kept, nothing is lost); report this with the log"
                ))
            })?;
            tracing::trace!(
                event_type = h.event_type_raw(),
                end_pos = at.end,
                "binlog event"
            );
            match h.event_type_raw() {
                MARIADB_GTID_EVENT => {
                    if let Some((domain, seq)) = parse_mariadb_gtid(ev.data()) {
                        st.gtids.mariadb(domain, h.server_id(), seq);
                    }
                    st.txn_time = at.ts_ms;
                    continue;
                }
                MARIADB_ANNOTATE_ROWS_EVENT
                | MARIADB_BINLOG_CHECKPOINT_EVENT
                | MARIADB_GTID_LIST_EVENT
                // MySQL's PREVIOUS_GTIDS: not needed, and its parser trusts the counts in it
                | MYSQL_PREVIOUS_GTIDS_EVENT => continue,
                _ => {}
            }
            let Some(data) = ev.read_data()? else {
                continue;
            };
            match data {
                // the cursor has moved to the file it names
                EventData::RotateEvent(_) => {}
                EventData::GtidEvent(g) => {
                    st.gtids
                        .mysql(g.sid(), g.tag().map(|t| t.as_str()), g.gno());
                    st.txn_time = at.ts_ms;
                }
                EventData::QueryEvent(q) => {
                    self.query_event(&mut st, &q.schema(), q.query().into_owned(), &at)
                        .await?
                }
                EventData::XidEvent(_) => self.commit(&mut st, &at).await?,
                EventData::RowsEvent(rows) => match stream.get_tme(rows.table_id()) {
                    Some(tme) => self.rows_event(&mut st, &rows, tme, &at, warned).await?,
                    None => {
                        tracing::trace!(table_id = rows.table_id(), "rows event without table map")
                    }
                },
                other => tracing::trace!(?other, "other event"),
            }
        }
        st.out.flush().await?;
        let _ = stream.close().await;
        Ok(())
    }

    /// The server cannot send from the resume position: purged, or (resuming by GTID) not in
    /// its history.
    fn unreadable(&self, e: mysql_async::Error) -> MySqlError {
        match (&e, self.by_gtid) {
            (mysql_async::Error::Server(s), true) if s.code == 1236 => setup(
                format!(
                    "this server cannot resume rowstream's position GTID {}: {}",
                    self.gtid.as_deref().unwrap_or(""),
                    s.message
                ),
                if self.moved {
                    "its binlog history does not contain that position: point source.url at a server of the same replication topology that has applied it (a GTID replica with log_slave_updates), or start over with `rowstream run --resnapshot`"
                } else {
                    "the binlog holding that GTID was purged (or the binlog was reset) before rowstream read it: start over with `rowstream run --resnapshot` (every table snapshotted again), and keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days)"
                },
            ),
            _ => purged(&self.start.0, self.start.1, e),
        }
    }

    /// A transaction ends here: its checkpoint, and the batch goes out.
    async fn commit(&self, st: &mut StreamState<'_>, at: &EventAt) -> Result<(), MySqlError> {
        self.checkpoint(st, at.end, at.ts_ms);
        Ok(st.out.flush().await?)
    }

    /// BEGIN, COMMIT (non-transactional engines), or a DDL statement.
    async fn query_event(
        &mut self,
        st: &mut StreamState<'_>,
        default_db: &str,
        sql: String,
        at: &EventAt,
    ) -> Result<(), MySqlError> {
        let upper = sql.trim().to_ascii_uppercase();
        if upper == "BEGIN" {
            st.txn_time = at.ts_ms;
        } else if upper == "COMMIT" {
            self.commit(st, at).await?;
        } else if !ddl::is_dml_or_control(&sql) {
            self.ddl(st, default_db, &sql, at.end, at.ts_ms).await?;
            self.commit(st, at).await?;
        }
        Ok(())
    }

    /// The rows of a WRITE/UPDATE/DELETE_ROWS event, decoded with the table's schema as of here.
    async fn rows_event(
        &mut self,
        st: &mut StreamState<'_>,
        rows: &RowsEventData<'_>,
        tme: &TableMapEvent<'_>,
        at: &EventAt,
        warned: &mut RenderWarnings,
    ) -> Result<(), MySqlError> {
        let id = table_id(&tme.database_name(), &tme.table_name());
        let name = id.pattern_name();
        if !self.filter.matches(&id)
            || self
                .fence
                .covers(&name, &binlog_position(&st.cur.file, at.start))
        {
            return Ok(());
        }
        let (def, schema) = self
            .schema_for(st, &name, tme.columns_count() as usize, &id, at.end)
            .await?;
        let t = if st.txn_time >= 0 {
            st.txn_time
        } else {
            at.ts_ms
        };
        let op = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => Op::Insert,
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Op::Delete,
            _ => Op::Update,
        };
        let n = def.columns.len();
        let before_cols = image_columns(rows.columns_before_image().map(|b| b.iter().by_vals()), n);
        let after_cols = image_columns(rows.columns_after_image().map(|b| b.iter().by_vals()), n);
        for r in rows.rows(tme) {
            let (before, after) = r?;
            let before =
                before.map(|row| binlog_row(&def, &name, row, &before_cols, &self.ctx, warned));
            let after =
                after.map(|row| binlog_row(&def, &name, row, &after_cols, &self.ctx, warned));
            let ev = ChangeEvent {
                table: schema.clone(),
                op,
                before,
                after,
                event_time_ms: t,
                snapshot: false,
            };
            // every change streamed while a chunk is open may be missing from its read
            st.inc.touched(&ev);
            st.out.add(SourceEvent::Change(ev));
            if st.out.is_full() {
                st.out.flush().await?;
            }
        }
        Ok(())
    }

    fn checkpoint(&self, st: &mut StreamState<'_>, end_pos: u64, ts_ms: i64) {
        let t = if st.txn_time >= 0 { st.txn_time } else { ts_ms };
        st.out.add(SourceEvent::Marker(Marker::Checkpoint {
            position: SourcePosition::MySql {
                file: st.cur.file.clone(),
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
        st: &mut StreamState<'_>,
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
        let def = match self.history.at(name, &st.cur.file, end_pos) {
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
                self.history.append(&st.cur.file, end_pos, d.clone())?;
                d
            }
        };
        let schema = self.table_schema(&def)?;
        let def = Arc::new(def);
        st.out.add(SourceEvent::Table(schema.clone()));
        st.current
            .insert(name.to_string(), (def.clone(), schema.clone()));
        Ok((def, schema))
    }

    async fn ddl(
        &mut self,
        st: &mut StreamState<'_>,
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
                            .at(&format!("{d}.{t}"), &st.cur.file, end_pos)
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
            let id = table_id(&db, &table);
            if !self.filter.matches(&id) {
                continue;
            }
            st.inc.reread(&id);
            let Some(schema) = self.schema_after(st, op, &id, end_pos).await? else {
                continue;
            };
            st.out.add(SourceEvent::Table(schema.clone()));
            st.out.add(SourceEvent::Ddl(DdlEvent {
                table: schema,
                op,
                text: sql.to_string(),
                event_time_ms: ts_ms,
            }));
        }
        Ok(())
    }

    /// The schema a DDL record on `id` carries: the table's columns after the statement (from
    /// the history when this DDL was read before, else from the server, then recorded), the
    /// columns it had when dropped, or its current columns for a QUERY record; `None` for a
    /// QUERY on a table the history does not know.
    async fn schema_after(
        &mut self,
        st: &mut StreamState<'_>,
        op: DdlOp,
        id: &TableId,
        end_pos: u64,
    ) -> Result<Option<Arc<TableSchema>>, MySqlError> {
        let name = id.to_string();
        if op == DdlOp::Query {
            // the statement does not change the table's columns
            return match self.history.at(&name, &st.cur.file, end_pos) {
                Some(d) => Ok(Some(self.table_schema(&d.clone())?)),
                None => Ok(None),
            };
        }
        st.current.remove(&name);
        let def = match self.history.exactly(&name, &st.cur.file, end_pos) {
            Some(d) => Some(d.clone()),
            None if op == DdlOp::Erase => None,
            None => {
                let d = schema::load_table(&mut st.meta, &id.db, &id.table).await?;
                if let Some(d) = &d {
                    self.history.append(&st.cur.file, end_pos, d.clone())?;
                }
                d
            }
        };
        Ok(Some(match &def {
            Some(d) => self.table_schema(d)?,
            // a dropped table: the columns it had
            None => match self
                .history
                .at(&name, &st.cur.file, end_pos.saturating_sub(1))
            {
                Some(d) => self.table_schema(&d.clone())?,
                None => self.factory.with_key(id.clone(), vec![], None),
            },
        }))
    }
}

/// Which of `n` table columns a row image carries, from the rows event's column bitmap (all
/// when the event has none for this image).
pub(crate) fn image_columns(bits: Option<impl Iterator<Item = bool>>, n: usize) -> Vec<bool> {
    match bits {
        Some(b) => {
            let mut v: Vec<bool> = b.take(n).collect();
            v.resize(n, false);
            v
        }
        None => vec![true; n],
    }
}

/// One row image of a rows event, decoded with the table's definition. The image holds values
/// only for the columns `present` marks (a partial image: `binlog_row_image` MINIMAL/NOBLOB);
/// the others are `Absent`.
pub(crate) fn binlog_row(
    def: &MyTable,
    name: &str,
    mut row: mysql_async::binlog::row::BinlogRow,
    present: &[bool],
    ctx: &Ctx,
    warned: &mut RenderWarnings,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(def.columns.len());
    let mut k = 0;
    for (i, c) in def.columns.iter().enumerate() {
        if !present.get(i).copied().unwrap_or(true) {
            out.push(Value::Absent);
            continue;
        }
        let v = row.take(k);
        k += 1;
        out.push(match v {
            None => Value::Absent,
            Some(BinlogValue::Value(v)) => {
                warned.value(name, &c.name, convert(c, v, Origin::Binlog, ctx))
            }
            Some(BinlogValue::Jsonb(j)) => warned.value(name, &c.name, values::jsonb_text(j)),
            Some(BinlogValue::JsonDiff(_)) => warned.failed(
                name,
                &c.name,
                "partial JSON update (binlog_row_value_options=PARTIAL_JSON): set it empty",
            ),
        });
    }
    out
}

/// Check an event's CRC32 (when the binlog carries checksums) before anything parses it: a
/// damaged event becomes an error naming it instead of reaching the parser, which can panic
/// or abort on some damaged events. The FORMAT_DESCRIPTION event (whose CRC the server
/// computes with its in-use flag cleared) and events without a position of their own (the
/// server's fake ROTATE, events inside a compressed transaction) carry none to check.
pub(crate) fn verify_checksum(ev: &mysql_async::binlog::events::Event) -> Result<(), String> {
    let h = ev.header();
    if h.event_type_raw() == 15 || h.log_pos() == 0 {
        return Ok(());
    }
    let (Some(stored), Ok(Some(alg))) = (ev.checksum(), ev.footer().get_checksum_alg()) else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(stored);
    let computed = ev.calc_checksum(alg);
    if stored == computed {
        return Ok(());
    }
    Err(format!(
        "binlog event of type {} ending at offset {} fails its checksum (stored {stored:08x}, computed {computed:08x})",
        h.event_type_raw(),
        h.log_pos()
    ))
}

/// A binlog position the server does not have (1236: purged, or never there) is a setup
/// problem with its way out; other errors pass.
fn purged(file: &str, pos: u64, e: mysql_async::Error) -> MySqlError {
    match e {
        mysql_async::Error::Server(ref s) if s.code == 1236 => setup(
            format!("binlog {file}:{pos} is no longer on the server ({})", s.message),
            "the binlog was purged before rowstream read it: start over with `rowstream run --resnapshot` (every table snapshotted again), and keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days)",
        ),
        e => e.into(),
    }
}

/// MariaDB GTID_EVENT body: seq_no u64 LE, domain_id u32 LE, flags u8 (+ optional XA data).
pub(crate) fn parse_mariadb_gtid(d: &[u8]) -> Option<(u32, u64)> {
    let seq = u64::from_le_bytes(d.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(d.get(8..12)?.try_into().ok()?);
    Some((domain, seq))
}

/// MariaDB's own event types (mysql_async parses MySQL's; these are read by number).
const MARIADB_ANNOTATE_ROWS_EVENT: u8 = 160;
const MARIADB_BINLOG_CHECKPOINT_EVENT: u8 = 161;
/// A transaction starts; body: seq_no u64, domain u32, flags u8.
const MARIADB_GTID_EVENT: u8 = 162;
const MARIADB_GTID_LIST_EVENT: u8 = 163;
pub(crate) const MYSQL_PREVIOUS_GTIDS_EVENT: u8 = 35;

struct StreamState<'a> {
    /// where the stream is in the server's binlog
    cur: Cursor,
    /// incremental snapshots: queued tables, and the chunk waiting for the binlog end its read
    /// saw (file, offset)
    inc: Incremental<(String, u64)>,
    gtids: GtidSet,
    /// commit time (ms) of the open transaction, -1 outside one
    txn_time: i64,
    out: &'a mut Batcher,
    meta: Conn,
    current: HashMap<String, (Arc<MyTable>, Arc<TableSchema>)>,
}

impl StreamState<'_> {
    /// Has the stream read up to binlog position `h`?
    fn passed(&self, h: &(String, u64)) -> bool {
        crate::model::position::binlog_order(&self.cur.file, self.cur.pos, &h.0, h.1)
            .is_some_and(|o| o != std::cmp::Ordering::Less)
    }
}

/// Executed GTIDs: MariaDB `domain-server-seq` per domain, MySQL `uuid:1-n` per source uuid
/// and `uuid:tag:1-n` per tag (MySQL 8.4+ tagged GTIDs).
#[derive(Default, Debug, PartialEq)]
pub(crate) struct GtidSet {
    mariadb: BTreeMap<u32, (u32, u64)>,
    /// `uuid` or `uuid:tag` → highest transaction number
    mysql: BTreeMap<String, u64>,
}

impl GtidSet {
    pub(crate) fn parse(s: Option<&str>) -> GtidSet {
        let mut g = GtidSet::default();
        for part in s
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if let Some((source, range)) = part.rsplit_once(':') {
                let end = range
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                g.mysql.insert(source.to_string(), end);
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
    pub(crate) fn mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        self.mariadb.insert(domain, (server, seq));
    }
    pub(crate) fn mysql(&mut self, sid: [u8; 16], tag: Option<&str>, gno: u64) {
        let u = sid;
        let mut uuid = format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]
        );
        if let Some(t) = tag {
            uuid.push(':');
            uuid.push_str(t);
        }
        let e = self.mysql.entry(uuid).or_insert(0);
        *e = (*e).max(gno);
    }
    pub(crate) fn render(&self) -> Option<String> {
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
    fn mysql_failover_guard_and_request() {
        let g = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,3e11fa47-71ca-11e1-9e33-c80aa9429562:audit:1-2";
        assert!(mysql_gtid_guard(g, "ON", true, true).is_ok());
        for (mode, applied, kept, says) in [
            ("OFF", true, true, "gtid_mode = OFF"),
            ("ON", false, true, "has not applied"),
            ("ON", true, false, "purged binlogs"),
        ] {
            let e = mysql_gtid_guard(g, mode, applied, kept).unwrap_err();
            assert_eq!(e.class(), crate::error::ErrorClass::Setup);
            let text = e.to_string();
            assert!(
                text.contains(says) && text.contains("--resnapshot"),
                "{text}"
            );
        }
        assert!(mysql_gtid_request(5401, g).is_ok());
        assert!(mysql_gtid_request(5401, "not-a-uuid:1-5").is_err());
        // the set GtidSet renders parses back as the request's sids
        let mut set = GtidSet::default();
        set.mysql([0x3e; 16], None, 7);
        set.mysql([0x3e; 16], Some("audit"), 2);
        assert!(mysql_gtid_request(1, &set.render().unwrap()).is_ok());
    }

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
        m.mysql(sid, None, 24);
        assert_eq!(
            m.render().as_deref(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-24")
        );
        assert_eq!(GtidSet::parse(None).render(), None);
    }
}
