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
//! Then `stream` reads the binlog from the resume position (its invariants are there), placing
//! every event with `cursor` and keeping the executed GTIDs with `gtid`.
//!
//! Invariants:
//! - Unparseable DDL is written as `QUERY` (or skipped when it names no table) and never stops
//!   the stream.
//! - The files of this folder import `mod.rs` (the prepared source and its helpers), never the
//!   other way round: `mod.rs` calls the stream through `Prepared`'s methods.

pub(crate) mod check;
pub(crate) mod cursor;
pub(crate) mod ddl;
pub(crate) mod error;
#[cfg(test)]
pub(crate) mod fixtures;
pub(crate) mod gtid;
pub(crate) mod incremental;
pub(crate) mod prereq;
pub(crate) mod schema;
pub(crate) mod snapshot;
pub(crate) mod stream;
pub(crate) mod table_map;
pub(crate) mod values;

use crate::checkpoint::store::State;
use crate::config::{Config, MysqlOptions};
use crate::error::{Classify as _, SetupError};
use crate::model::event::Marker;
use crate::model::position::SourcePosition;
use crate::model::schema::{DbType, TableFilter, TableId, TableSchema};
use crate::source::batch::Batcher;
use crate::source::plan::{tables_to_resume, tables_to_snapshot, Fence};
use crate::source::render::RenderWarnings;
use crate::source::schemas::SchemaFactory;
use crate::source::snapshot::snapshot_tables;
use crate::source::SnapshotRequest;
use crate::source::Source;
use error::setup;
pub(crate) use error::MySqlError;
use gtid::{mariadb_gtid_at, mysql_gtid_guard, resume_by_gtid};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use schema::{History, MyTable};
use snapshot::{MyTableReader, SnapTable};
use std::sync::Arc;
use tokio::sync::watch;
use values::Ctx;

pub(crate) fn source_id(cfg: &Config) -> String {
    match Opts::from_url(&cfg.source.url) {
        Ok(o) => format!("mysql:{}:{}", o.ip_or_hostname(), o.tcp_port()),
        Err(_) => "mysql:?".into(),
    }
}

/// Binlog bytes after the stored position, measured over one session kept between
/// measurements (a fresh one every few seconds cost the stream its handshake each time).
pub(crate) struct Probe {
    url: String,
    conn: Option<Conn>,
}

impl Probe {
    pub(crate) fn new(cfg: &Config) -> Probe {
        Probe {
            url: cfg.source.url.clone(),
            conn: None,
        }
    }

    /// The rest of `file` after `pos` and every later file, from `SHOW BINARY LOGS`; an error
    /// when the file is gone (purged). A failed session is opened again the next time.
    pub(crate) async fn measure(&mut self, file: &str, pos: u64) -> Result<i64, String> {
        let logs = match self.logs().await {
            Ok(l) => l,
            Err(e) => {
                self.conn = None;
                return Err(e);
            }
        };
        let mut behind: Option<i64> = None;
        for (name, size) in logs {
            if name.as_str() == file {
                behind = Some((size - pos as i64).max(0));
            } else if let Some(b) = behind.as_mut() {
                *b += size;
            }
        }
        behind.ok_or_else(|| format!("binlog {file} is no longer on the server"))
    }

    async fn logs(&mut self) -> Result<Vec<(String, i64)>, String> {
        if self.conn.is_none() {
            let opts = Opts::from_url(&self.url).map_err(|e| e.to_string())?;
            self.conn = Some(connect(&opts).await.map_err(|e| e.to_string())?);
        }
        let c = self.conn.as_mut().ok_or("no session")?;
        let rows: Vec<mysql_async::Row> = c
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0).unwrap_or_default(), r.get(1).unwrap_or(0)))
            .collect())
    }
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
    snapshot: Option<Snapshot>,
    /// per table: binlog events starting before this position are in its snapshot
    fence: Fence,
    chunk_rows: usize,
    /// no position stored yet: store the start position first, so a restart before the first
    /// transaction resumes here instead of at the server's newest position
    store_start: bool,
    /// tables whose snapshot resumes incrementally, after their stored cursor
    resume: Vec<(TableId, serde_json::Value)>,
}

/// A snapshot's read view (its connection), its binlog position and the definitions of the
/// tables it reads.
type Snapshot = (Conn, (String, u64), Vec<MyTable>);

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
    let (fence, snapshot, snapshot_gtid) =
        snapshot_and_fences(&opts, &mut conn, db_type, &need, state).await?;
    let moved = state.moved_from.is_some();
    if moved {
        // binlog positions of the other server mean nothing here: decode with the schemas as
        // they are now, recorded from the start on
        history.reset()?;
        if db_type != DbType::MariaDb {
            moved_gtid_guard(&mut conn, state).await?;
        }
    }
    let snapshot_pos = snapshot.as_ref().map(|(_, p, _)| p);
    let (start, gtid) = start_position(
        &mut conn,
        db_type,
        state,
        moved,
        snapshot_pos,
        snapshot_gtid,
    )
    .await?;
    let by_gtid = moved || resume_by_gtid(my.resume_by, &start, gtid.as_deref())?;
    record_matched(&mut conn, &mut history, &matched, &start).await?;
    let _ = conn.disconnect().await;
    let resume = tables_to_resume(&matched, state, &need);
    let p = Prepared {
        opts,
        db_type,
        server_id: my.server_id.unwrap_or(5401),
        filter,
        factory: SchemaFactory::new(db_type, &cfg.kafka.topic, &cfg.source),
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
    let schemas = p.start_schemas(&matched)?;
    Ok((p, schemas))
}

/// The fences and the snapshot of the tables in `need`: its read view, its binlog position
/// and the definitions it reads, with the GTIDs MySQL reported there. The stored fences are
/// kept, the snapshotted tables' set to the snapshot's position.
async fn snapshot_and_fences(
    opts: &Opts,
    conn: &mut Conn,
    db_type: DbType,
    need: &[TableId],
    state: &State,
) -> Result<(Fence, Option<Snapshot>, Option<String>), MySqlError> {
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
            let (sc, pos, gtid, defs) = open_snapshot(opts, conn, db_type, need).await?;
            (Some((sc, pos, defs)), gtid)
        }
    };
    if let Some((_, pos, _)) = &snapshot {
        fence.set(need, &binlog_position(&pos.0, pos.1));
    }
    Ok((fence, snapshot, snapshot_gtid))
}

/// MySQL, with the state written on another server: this server can resume the stored GTID
/// set (GTID mode on, the set applied here and nothing after it purged; see
/// `mysql_gtid_guard`).
async fn moved_gtid_guard(conn: &mut Conn, state: &State) -> Result<(), MySqlError> {
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
    )
}

/// Where the stream starts, with the GTIDs executed up to there: the stored position (after
/// a move only its GTIDs, the file left to the server); on a first start the snapshot's
/// position (`snapshot`, with the GTIDs reported there) or else the server's binlog end.
async fn start_position(
    conn: &mut Conn,
    db_type: DbType,
    state: &State,
    moved: bool,
    snapshot: Option<&(String, u64)>,
    snapshot_gtid: Option<String>,
) -> Result<((String, u64), Option<String>), MySqlError> {
    Ok(match &state.position {
        Some(SourcePosition::MySql { gtid: Some(g), .. }) if moved => {
            ((String::new(), 4), Some(g.clone()))
        }
        Some(SourcePosition::MySql { file, pos, gtid }) => ((file.clone(), *pos), gtid.clone()),
        _ => {
            // a first start: the GTIDs executed up to the start, so that every position
            // carries the whole set (and a later start can resume by it)
            let (start, reported) = match snapshot {
                Some(p) => (p.clone(), snapshot_gtid),
                None => master_status_gtid(conn).await?,
            };
            let gtid = match db_type {
                DbType::MariaDb => mariadb_gtid_at(conn, &start).await?,
                _ => reported,
            };
            (start, gtid)
        }
    })
}

/// The history knows every matched table from the start position on: a table it has no
/// definition of there is read from the catalog and recorded at `start`.
async fn record_matched(
    conn: &mut Conn,
    history: &mut History,
    matched: &[TableId],
    start: &(String, u64),
) -> Result<(), MySqlError> {
    let missing: Vec<TableId> = (matched.iter())
        .filter(|id| history.at(&id.to_string(), &start.0, start.1).is_none())
        .cloned()
        .collect();
    let defs = schema::load_tables(conn, &missing).await?;
    history.append_all(&start.0, start.1, defs)?;
    Ok(())
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
    let defs = schema::load_tables(&mut sc, need).await?;
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
        if let Some(snapshot) = self.snapshot.take() {
            if !self
                .snapshot_groups(snapshot, &mut out, &stop, &mut warnings)
                .await?
            {
                return Ok(());
            }
        }
        Ok(self
            .stream(&mut out, &mut stop, &mut requests, &mut warnings)
            .await?)
    }
}

/// Tables read in one snapshot transaction at most. A transaction's cost per table grows with
/// the tables it has opened (the server keeps each one's metadata lock to its end): 10,000
/// tables in one took 8 s to probe for emptiness alone, against 2 s in groups of 1,000.
const SNAPSHOT_GROUP: usize = 1000;

impl Prepared {
    /// Read the planned tables, [`SNAPSHOT_GROUP`] at a time, each group in a read view of its
    /// own: the first is the one `prepare` opened (the stream starts at its position), each
    /// later one is opened when its turn comes, at a later position that becomes its tables'
    /// fence (their changes before it are in the read view, so the stream drops them). Their
    /// definitions are read again inside it. `false` when a stop request ended it early.
    async fn snapshot_groups(
        &mut self,
        (conn, pos, defs): Snapshot,
        out: &mut Batcher,
        stop: &watch::Receiver<bool>,
        warnings: &mut RenderWarnings,
    ) -> Result<bool, MySqlError> {
        let mut first = Some((conn, pos));
        let mut dbs: Vec<&str> = defs.iter().map(|d| d.db.as_str()).collect();
        dbs.sort_unstable();
        dbs.dedup();
        let mut estimates = match &mut first {
            Some((conn, _)) => MyTableReader::estimates(conn, &dbs).await?,
            None => Default::default(),
        };
        for group in defs.chunks(SNAPSHOT_GROUP) {
            if *stop.borrow() {
                return Ok(false);
            }
            let (mut conn, pos, group) = match first.take() {
                Some((conn, pos)) => (conn, pos, group.to_vec()),
                None => {
                    let ids: Vec<TableId> =
                        group.iter().map(|d| table_id(&d.db, &d.table)).collect();
                    let mut meta = connect(&self.opts).await?;
                    let (sc, pos, _, defs) =
                        open_snapshot(&self.opts, &mut meta, self.db_type, &ids).await?;
                    let _ = meta.disconnect().await;
                    self.fence.set(&ids, &binlog_position(&pos.0, pos.1));
                    (sc, pos, defs)
                }
            };
            let mut tables = Vec::with_capacity(group.len());
            for def in group {
                let schema = self.table_schema(&def)?;
                tables.push(SnapTable { def, schema });
            }
            let mut reader = MyTableReader {
                conn: &mut conn,
                ctx: &self.ctx,
                warnings: &mut *warnings,
                chunk_rows: self.chunk_rows,
                estimates: (tables.iter())
                    .filter_map(|t| {
                        let k = (t.def.db.clone(), t.def.table.clone());
                        estimates.remove_entry(&k)
                    })
                    .collect(),
                empty: Default::default(),
            };
            reader.probe_empty(&tables).await?;
            let at = binlog_position(&pos.0, pos.1);
            let done = snapshot_tables(&mut reader, &tables, &at, out, stop).await?;
            let _ = conn.query_drop("COMMIT").await;
            let _ = conn.disconnect().await;
            if !done {
                return Ok(false);
            }
        }
        Ok(true)
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
        let factory = SchemaFactory::new(db_type, &cfg.kafka.topic, &cfg.source);
        let ctx = ctx_of(cfg, my);
        let (mut defs, mut schemas) = (Vec::new(), Vec::new());
        let matched = matched_tables(&mut conn, &filter).await?;
        for def in schema::load_tables(&mut conn, &matched).await? {
            schemas.push(schema_of(&factory, &ctx, &def)?);
            defs.push(def);
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
            estimates: Default::default(),
            empty: Default::default(),
        };
        crate::source::snapshot::read_all(&mut reader, &target, f).await
    }
}

impl Prepared {
    fn table_schema(&self, def: &MyTable) -> Result<Arc<TableSchema>, MySqlError> {
        schema_of(&self.factory, &self.ctx, def)
    }

    /// The schemas of the matched tables at the start position, from the history.
    fn start_schemas(&self, matched: &[TableId]) -> Result<Vec<Arc<TableSchema>>, MySqlError> {
        let mut schemas = Vec::with_capacity(matched.len());
        for id in matched {
            if let Some(def) = self
                .history
                .at(&id.to_string(), &self.start.0, self.start.1)
                .cloned()
            {
                let s = self.table_schema(&def)?;
                schemas.push(s);
            }
        }
        Ok(schemas)
    }
}
