//! The Postgres source: logical replication with pgoutput over the streaming replication
//! protocol, snapshot first from the slot's exported snapshot, then the live stream. It keeps
//! the contract of `crate::source`; what is Postgres-specific lives here.
//!
//! Start-up (`prepare`):
//! 1. a normal session evaluates the prerequisites `run` needs (`prereq`), creates the
//!    publication if missing (FOR ALL TABLES when allowed, else FOR TABLE over the matched
//!    tables) and installs the DDL trigger;
//! 2. the replication session creates the slot if missing, exporting a snapshot when tables need
//!    one; when the slot exists and tables still need a snapshot (added to the config later, or
//!    `snapshot.mode = "always"`), a TEMPORARY slot exports one instead;
//! 3. tables are snapshotted in that snapshot (`snapshot`, through the shared driver), then
//!    `START_REPLICATION` resumes at the stored position (or the slot's consistent point)
//!    (`stream`).
//!
//! Invariants:
//! - The snapshot's consistent point is the fence of the tables it reads: their transactions
//!   that committed before it are dropped from the stream, so no row is doubled or lost.
//! - The slot is never created over a stored position: a missing slot with a stored position is
//!   a setup error (changes since then are lost to rowstream), never a silent restart.
//! - The slot's flush LSN is only ever what the committer acknowledged, or, when every change
//!   handed on is acknowledged and nothing is open, the WAL the server sent since (it decoded
//!   to nothing for us; a transaction committing later is still sent in full after a restart).
//!   A server shutting down waits for that confirmation.

pub(crate) mod catalog;
pub(crate) mod check;
pub(crate) mod ddl;
pub(crate) mod error;
pub(crate) mod incremental;
pub(crate) mod pgoutput;
pub(crate) mod prereq;
pub(crate) mod replication;
pub(crate) mod snapshot;
pub(crate) mod stream;
pub(crate) mod tables;
pub(crate) mod tls;
pub(crate) mod types;

use crate::checkpoint::store::State;
use crate::config::{Config, PostgresOptions};
use crate::error::SetupError;
use crate::model::position::{Lsn, SourcePosition};
use crate::model::schema::{DbType, TableId, TableSchema};
use crate::source::batch::Batcher;
use crate::source::incremental::{Incremental, Job};
use crate::source::plan::{tables_to_resume, tables_to_snapshot, Fence};
use crate::source::schemas::SchemaFactory;
use crate::source::snapshot::snapshot_tables;
use crate::source::Source;
use catalog::{Catalog, TableRow};
pub(crate) use error::SourceError;
use replication::{quote_ident, quote_literal, PgError, ReplicationConn};
use snapshot::{PgTableReader, SnapTable};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tables::{TableDecoder, Tables};
use tokio::sync::watch;
use types::DecodeCtx;

fn setup(problem: impl Into<String>, fix: impl Into<String>) -> SourceError {
    SourceError::Setup(SetupError::new(problem, fix))
}

/// A snapshot exported for the tables that need one.
struct Exported {
    name: String,
    point: Lsn,
    tables: Vec<TableRow>,
    /// The temporary slot's connection, held open while the snapshot is read.
    _conn: Option<ReplicationConn>,
}

/// What `prepare` decided; `run` carries it out.
pub(crate) struct Prepared {
    repl: ReplicationConn,
    snapshot: Option<Exported>,
    start: Lsn,
    tables: Tables,
    fence: Fence,
    slot: String,
    publication: String,
    server: Server,
    heartbeat: Duration,
    chunk_pages: u32,
    /// tables whose snapshot resumes incrementally, after their stored cursor
    resume: Vec<(TableId, serde_json::Value)>,
}

pub(crate) fn source_id(cfg: &Config, o: &PostgresOptions) -> String {
    let db = cfg
        .source
        .url
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| c.get_dbname().map(str::to_string));
    format!("postgres:{}:{}", db.unwrap_or_default(), o.slot)
}

fn parse_lsn(s: &str) -> Result<Lsn, SourceError> {
    s.parse()
        .map_err(|e: crate::model::position::LsnParseError| {
            SourceError::Protocol(PgError::Protocol(e.to_string()))
        })
}

/// What the slot holds back, measured over one session kept between measurements: a fresh
/// session every few seconds (TLS set up again, the system trust store read, a backend
/// started) held the stream up for 25–80 ms each time.
pub(crate) struct Probe {
    url: String,
    slot: String,
    ssl_root_cert: Option<String>,
    tls: Option<tls::PgTls>,
    client: Option<tokio_postgres::Client>,
}

impl Probe {
    pub(crate) fn new(cfg: &Config, o: &PostgresOptions) -> Probe {
        Probe {
            url: cfg.source.url.clone(),
            slot: o.slot.clone(),
            ssl_root_cert: o.ssl_root_cert.clone(),
            tls: None,
            client: None,
        }
    }

    /// `pg_current_wal_lsn() - restart_lsn` in bytes (the replay position on a standby) and
    /// the slot's `wal_status`; an error names what failed (no row: the slot does not exist
    /// yet). A failed session is opened again at the next measurement.
    pub(crate) async fn measure(&mut self) -> Result<(i64, String), String> {
        let r = self.query().await;
        if r.is_err() {
            self.client = None;
        }
        r
    }

    async fn query(&mut self) -> Result<(i64, String), String> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let pg: tokio_postgres::Config = self.url.parse().map_err(|e| format!("{e}"))?;
            if self.tls.is_none() {
                self.tls = Some(
                    tls::PgTls::new(self.ssl_root_cert.as_deref()).map_err(|e| e.to_string())?,
                );
            }
            let tls = self.tls.as_ref().ok_or("no TLS setup")?;
            self.client = Some(
                catalog::connect(&pg, tls, "rowstream-probe")
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let client = self.client.as_ref().ok_or("no session")?;
        let row = client
            .query_opt(
                "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - restart_lsn)::bigint, coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no slot {}", self.slot))?;
        Ok((row.get::<_, Option<i64>>(0).unwrap_or(-1), row.get(1)))
    }
}

/// Where and how to connect: the parsed URL, TLS, the database's name.
struct Server {
    pg: tokio_postgres::Config,
    tls: tls::PgTls,
    db: String,
}

/// The URL, TLS and a catalog session, with the prerequisites `run` needs checked.
async fn connect(cfg: &Config, o: &PostgresOptions) -> Result<(Server, Catalog), SourceError> {
    let pg: tokio_postgres::Config = cfg.source.url.parse().map_err(|e| {
        setup(
            format!("source.url is not a Postgres URL: {e}"),
            "postgres://user[:password]@host:5432/db",
        )
    })?;
    let tls = tls::PgTls::new(o.ssl_root_cert.as_deref())
        .map_err(|e| setup(e.to_string(), prereq::TLS_FIX))?;
    let client = catalog::connect(&pg, &tls, "rowstream")
        .await
        .map_err(|e| prereq::connect_failed(&cfg.source.url, &e))?;
    prereq::required_for_run(&client).await?;
    let db = pg.get_dbname().unwrap_or("postgres").to_string();
    Ok((Server { pg, tls, db }, Catalog::new(client)))
}

/// Connect (checking what a run needs) and list the matched tables.
async fn open_tables(
    cfg: &Config,
    o: &PostgresOptions,
) -> Result<(Server, Tables, Vec<TableRow>), SourceError> {
    let (server, catalog) = connect(cfg, o).await?;
    let filter = crate::source::table_filter(cfg);
    let tz = cfg.source.tz_offset_secs().unwrap_or(0) as i64 * 1_000_000;
    let tables = Tables::new(
        catalog,
        server.db.clone(),
        filter.clone(),
        SchemaFactory::new(DbType::PostgreSql, &cfg.kafka.topic, &cfg.source),
        DecodeCtx { tz_offset_us: tz },
        o.toast_placeholder.clone(),
    );
    let matched: Vec<TableRow> = tables
        .catalog
        .tables()
        .await?
        .into_iter()
        .filter(|t| filter.matches(&tables.table_id(&t.schema, &t.name)))
        .collect();
    Ok((server, tables, matched))
}

/// Every matched table's current rows, chunk by chunk (for `verify`).
pub(crate) struct PgDump {
    tables: Tables,
    matched: Vec<TableRow>,
    chunk_pages: u32,
}

impl PgDump {
    pub(crate) async fn open(cfg: &Config, o: &PostgresOptions) -> Result<PgDump, SourceError> {
        let (_, tables, matched) = open_tables(cfg, o).await?;
        Ok(PgDump {
            tables,
            matched,
            chunk_pages: cfg.snapshot.chunk_pages,
        })
    }

    pub(crate) async fn schemas(&mut self) -> Result<Vec<Arc<TableSchema>>, SourceError> {
        let decoders = decoders_for(&mut self.tables, &self.matched).await?;
        Ok(decoders.into_iter().map(|d| d.schema).collect())
    }

    /// The end of the WAL now.
    pub(crate) async fn position(&self) -> Result<SourcePosition, SourceError> {
        let l: String = self
            .tables
            .catalog
            .client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?
            .get(0);
        Ok(SourcePosition::Postgres {
            lsn: parse_lsn(&l)?,
        })
    }

    /// The rows of the `i`th matched table, a chunk at a time.
    pub(crate) async fn rows(
        &mut self,
        i: usize,
        f: &mut (dyn FnMut(&[crate::model::value::Row]) -> Result<(), crate::error::Error> + Send),
    ) -> Result<(), crate::error::Error> {
        let Some(t) = self.matched.get(i).cloned() else {
            return Ok(());
        };
        let target = SnapTable {
            decoder: decoder_for(&mut self.tables, &t).await?,
            oid: t.oid,
        };
        let mut reader = PgTableReader::new(&mut self.tables, self.chunk_pages.min(1024));
        crate::source::snapshot::read_all(&mut reader, &target, f).await
    }
}

/// Connect, check what a run needs, ensure publication and slot, plan and export the
/// snapshot, load the schemas.
pub(crate) async fn prepare(
    cfg: &Config,
    o: &PostgresOptions,
    state: &State,
    fresh: bool,
) -> Result<(Prepared, Vec<Arc<TableSchema>>), SourceError> {
    let (server, mut tables, matched) = open_tables(cfg, o).await?;
    if state.position.is_none() {
        let filter = crate::source::table_filter(cfg);
        catalog::unmatched_patterns(&tables.catalog.client, &filter).await??;
    }
    if matched.is_empty() {
        tracing::warn!(patterns = ?cfg.source.tables(), "no table matches source.tables yet; streaming tables created later");
    }
    ensure_publication(&tables.catalog, &o.publication, &matched).await?;
    if o.capture_ddl {
        install_ddl_capture(&tables.catalog).await;
    }
    let (need_ids, need) = plan(cfg, &tables, &matched, state);
    let mut fence = Fence::from_state(state);
    let mut repl =
        ReplicationConn::connect(&server.pg, &server.tls, &format!("rowstream:{}", o.slot)).await?;
    let slot = Slot {
        name: &o.slot,
        state: match cfg.state.backend {
            crate::config::StateBackend::File => cfg.state.dir.display().to_string(),
            crate::config::StateBackend::Kafka => format!("the state in topic {}", cfg.state.topic),
        },
        catalog: &tables.catalog,
        server: &server,
    };
    if fresh {
        slot.drop_for_resnapshot().await?;
    }
    let (start, snapshot) = slot.open(&mut repl, state, need).await?;
    if let Some(s) = &snapshot {
        fence.set(&need_ids, &SourcePosition::Postgres { lsn: s.point });
    }
    let schemas: Vec<_> = (decoders_for(&mut tables, &matched).await?)
        .into_iter()
        .map(|d| d.schema)
        .collect();
    let ids: Vec<_> = (matched.iter())
        .map(|t| tables.table_id(&t.schema, &t.name))
        .collect();
    let resume = tables_to_resume(&ids, state, &need_ids);
    let prepared = Prepared {
        repl,
        snapshot,
        start,
        tables,
        fence,
        slot: o.slot.clone(),
        publication: o.publication.clone(),
        server,
        heartbeat: Duration::from_millis(cfg.heartbeat.interval_ms),
        chunk_pages: cfg.snapshot.chunk_pages,
        resume,
    };
    Ok((prepared, schemas))
}

/// The tables to snapshot, as ids (for the fence) and as catalog rows (for the reader).
fn plan(
    cfg: &Config,
    tables: &Tables,
    matched: &[TableRow],
    state: &State,
) -> (Vec<TableId>, Vec<TableRow>) {
    let ids: Vec<_> = matched
        .iter()
        .map(|t| tables.table_id(&t.schema, &t.name))
        .collect();
    let need_ids = tables_to_snapshot(cfg.snapshot.mode, &ids, state);
    let need = matched
        .iter()
        .zip(&ids)
        .filter(|(_, id)| need_ids.contains(id))
        .map(|(t, _)| t.clone())
        .collect();
    (need_ids, need)
}

/// The replication slot `prepare` streams from.
struct Slot<'a> {
    name: &'a str,
    /// where the state lives, for messages
    state: String,
    catalog: &'a Catalog,
    server: &'a Server,
}

/// The slot to stream from (created when missing) and the resume LSN, and the snapshot exported
/// for `need` (by the new slot, or by a temporary slot when the slot already exists).
impl Slot<'_> {
    /// `--resnapshot`: drop the slot (lost, or holding a position being forgotten), so `open`
    /// creates it afresh with a new consistent point.
    async fn drop_for_resnapshot(&self) -> Result<(), SourceError> {
        let dropped = self
            .catalog
            .client
            .query_opt(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .await
            .map_err(|e| {
                setup(
                    format!("--resnapshot cannot drop replication slot `{}`: {e}", self.name),
                    "stop whatever uses the slot (another rowstream?), or drop it yourself: SELECT pg_drop_replication_slot('<slot>');",
                )
            })?;
        if dropped.is_some() {
            tracing::warn!(
                slot = self.name,
                "--resnapshot: dropped the replication slot"
            );
        }
        Ok(())
    }

    async fn open(
        &self,
        repl: &mut ReplicationConn,
        state: &State,
        need: Vec<TableRow>,
    ) -> Result<(Lsn, Option<Exported>), SourceError> {
        let slot = self.name;
        let existing = self
        .catalog
        .client
        .query_opt(
            "SELECT plugin::text, database::text, confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
        let Some(r) = existing else {
            if state.position.is_some() {
                return Err(setup(
                format!("replication slot `{slot}` is gone but {} holds a position: changes since then are lost to rowstream", self.state),
                "start over with `rowstream run --resnapshot` (a new slot, every table snapshotted again; consumers see every row again)",
            ));
            }
            let (point, name) = create_slot(repl, slot, "", !need.is_empty()).await?;
            tracing::info!(slot, consistent_point = %point, "created replication slot");
            let snapshot = name.map(|name| Exported {
                name,
                point,
                tables: need,
                _conn: None,
            });
            return Ok((point, snapshot));
        };
        let plugin: String = r.get(0);
        let sdb: String = r.get(1);
        let wal_status: Option<String> = r.get(3);
        let db = &self.server.db;
        prereq::slot_state(slot, &plugin, &sdb, db, wal_status.as_deref(), false).required()?;
        let confirmed = parse_lsn(
            &r.get::<_, Option<String>>(2)
                .unwrap_or_else(|| "0/0".into()),
        )?;
        let start = match &state.position {
            Some(SourcePosition::Postgres { lsn }) => (*lsn).max(confirmed),
            _ => confirmed,
        };
        if need.is_empty() {
            return Ok((start, None));
        }
        // a temporary slot exports a snapshot for the tables that need one
        let mut c =
            ReplicationConn::connect(&self.server.pg, &self.server.tls, "rowstream-snapshot")
                .await?;
        let tmp = format!("{}_snap_{}", slot, std::process::id());
        let (point, name) = create_slot(&mut c, &tmp, "TEMPORARY", true).await?;
        tracing::info!(tables = need.len(), consistent_point = %point, "snapshot of tables added since the last run");
        // nothing stored (offsets reset, the slot kept): the stored position becomes the
        // snapshot's point (`State::apply`), so the stream starts there too; from the slot's
        // older position it would deliver commits behind the stored position (their changes
        // are in the snapshot anyway; Postgres skips transactions that commit before the start)
        let start = if state.position.is_none() {
            start.max(point)
        } else {
            start
        };
        let snapshot = Exported {
            name: name.unwrap_or_default(),
            point,
            tables: need,
            _conn: Some(c),
        };
        Ok((start, Some(snapshot)))
    }
}

/// `CREATE_REPLICATION_SLOT`: the consistent point, and the exported snapshot's name.
async fn create_slot(
    repl: &mut ReplicationConn,
    slot: &str,
    temporary: &str,
    export: bool,
) -> Result<(Lsn, Option<String>), SourceError> {
    let export = if export {
        "EXPORT_SNAPSHOT"
    } else {
        "NOEXPORT_SNAPSHOT"
    };
    let rows = repl
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} {temporary} LOGICAL pgoutput {export}",
            quote_ident(slot)
        ))
        .await
        .map_err(|e| slot_error(slot, e))?;
    let row = rows.first().ok_or_else(|| {
        setup(
            "CREATE_REPLICATION_SLOT returned nothing",
            "check the server log",
        )
    })?;
    let point = parse_lsn(row.get(1).cloned().flatten().as_deref().unwrap_or("0/0"))?;
    Ok((point, row.get(2).cloned().flatten()))
}

impl Prepared {
    /// Read the exported snapshot's tables; false when a stop request ended it early.
    async fn snapshot(
        &mut self,
        snap: Exported,
        out: &mut Batcher,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, SourceError> {
        let client =
            catalog::connect(&self.server.pg, &self.server.tls, "rowstream-snapshot").await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(&snap.name)
            ))
            .await?;
        let main = std::mem::replace(&mut self.tables.catalog, Catalog::new(client));
        tracing::info!(tables = snap.tables.len(), snapshot = %snap.name, "snapshot from the exported snapshot");
        let res = async {
            let decoders = decoders_for(&mut self.tables, &snap.tables).await?;
            let targets: Vec<SnapTable> = (decoders.into_iter().zip(&snap.tables))
                .map(|(decoder, t)| SnapTable {
                    decoder,
                    oid: t.oid,
                })
                .collect();
            let mut reader = PgTableReader::new(&mut self.tables, self.chunk_pages);
            let oids: Vec<u32> = targets.iter().map(|t| t.oid).collect();
            reader.prefetch(&oids).await?;
            let at = SourcePosition::Postgres { lsn: snap.point };
            snapshot_tables(&mut reader, &targets, &at, out, stop).await
        }
        .await;
        let used = std::mem::replace(&mut self.tables.catalog, main);
        used.client.batch_execute("COMMIT").await.ok();
        res
    }

    /// `pg_logical_emit_message` every heartbeat interval keeps an idle slot moving.
    async fn heartbeats(
        &self,
        mut stop: watch::Receiver<bool>,
    ) -> Result<tokio::task::JoinHandle<()>, SourceError> {
        let client =
            catalog::connect(&self.server.pg, &self.server.tls, "rowstream-heartbeat").await?;
        let every = self.heartbeat;
        Ok(tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = t.tick() => {}
                    _ = stop.changed() => return,
                }
                if let Err(e) = client
                    .simple_query(&format!(
                        "SELECT pg_logical_emit_message(false, '{}', '')",
                        ddl::HEARTBEAT_PREFIX
                    ))
                    .await
                {
                    if client.is_closed() {
                        // the server went away: the stream notices too and reconnects, with a
                        // new heartbeat connection
                        tracing::warn!(error = %e, "heartbeat connection lost; heartbeats resume with the next connection");
                        return;
                    }
                    tracing::warn!(error = %e, "heartbeat message failed (an idle slot will not advance); grant EXECUTE on pg_logical_emit_message or use a superuser");
                    tokio::time::sleep(every * 6).await;
                }
            }
        }))
    }
}

impl Source for Prepared {
    fn started(&self) -> Vec<crate::model::event::Marker> {
        let Some(s) = &self.snapshot else {
            return vec![];
        };
        let at = SourcePosition::Postgres { lsn: s.point };
        s.tables
            .iter()
            .map(|t| crate::source::started_marker(&self.tables.table_id(&t.schema, &t.name), &at))
            .collect()
    }

    async fn run(
        mut self,
        mut out: Batcher,
        mut acks: watch::Receiver<Option<SourcePosition>>,
        mut stop: watch::Receiver<bool>,
        mut requests: tokio::sync::mpsc::Receiver<crate::source::SnapshotRequest>,
    ) -> Result<(), crate::error::Error> {
        if let Some(snap) = self.snapshot.take() {
            if !self.snapshot(snap, &mut out, &stop).await? {
                return Ok(());
            }
        }
        let hb = self.heartbeats(stop.clone()).await?;
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {}, messages 'true')",
            quote_ident(&self.slot),
            self.start,
            quote_literal(&quote_ident(&self.publication)),
        );
        self.repl.start_replication(&sql).await?;
        tracing::info!(slot = %self.slot, from = %self.start, "streaming");
        let mut st = stream::StreamState {
            tables: self.tables,
            rels: HashMap::new(),
            fence: self.fence,
            out,
            txn: None,
            received: self.start,
            acked: self.start,
            emitted: self.start,
            xid: 0,
            inc: Incremental::default(),
            recent: Default::default(),
            chunks: 0,
            chunk_pages: self.chunk_pages,
        };
        for (id, cursor) in self.resume {
            st.inc.add(Job::new(id.pattern_name(), cursor));
        }
        let mut conn = self.repl;
        let res =
            stream::stream_loop(&mut conn, &mut st, &mut acks, &mut stop, &mut requests).await;
        hb.abort();
        if res.is_ok() {
            let stream::StreamState {
                out,
                received,
                mut acked,
                ..
            } = st;
            // drain: the pipeline flushes and the committer stores the final position; report it
            drop(out);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::timeout_at(deadline, acks.changed())
                .await
                .is_ok_and(|r| r.is_ok())
            {
                if let Some(SourcePosition::Postgres { lsn }) = acks.borrow().clone() {
                    acked = acked.max(lsn);
                }
            }
            conn.send_status(received.0, acked.0, acked.0, false)
                .await
                .ok();
            conn.send_copy_done().await.ok();
            tracing::info!(flushed = %acked, "replication stopped");
        }
        Ok(res?)
    }
}

fn slot_error(slot: &str, e: PgError) -> SourceError {
    match e.code() {
        Some("53400") => setup(
            format!("cannot create replication slot `{slot}`: all replication slots are in use"),
            "raise max_replication_slots (and max_wal_senders) in postgresql.conf and restart, or drop unused slots",
        ),
        Some("42501") => setup(
            format!("cannot create replication slot `{slot}`: permission denied"),
            "ALTER ROLE <user> WITH REPLICATION;",
        ),
        _ => SourceError::Protocol(e),
    }
}

/// Decoders for many tables, their columns and keys read in two queries (not two per table).
async fn decoders_for(
    tables: &mut Tables,
    rows: &[TableRow],
) -> Result<Vec<TableDecoder>, SourceError> {
    let oids: Vec<u32> = rows.iter().map(|t| t.oid).collect();
    tables.catalog.prefetch(&oids).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut res = Ok(());
    for t in rows {
        match decoder_for(tables, t).await {
            Ok(d) => out.push(d),
            Err(e) => {
                res = Err(e);
                break;
            }
        }
    }
    tables.catalog.forget_prefetched();
    res.map(|()| out)
}

async fn decoder_for(tables: &mut Tables, t: &TableRow) -> Result<TableDecoder, SourceError> {
    let cols: Vec<(String, u32, i32)> = tables
        .catalog
        .columns(t.oid)
        .await?
        .into_iter()
        .map(|c| (c.name, c.type_oid, c.typmod))
        .collect();
    let id = tables.table_id(&t.schema, &t.name);
    tables.decoder(t.oid, id, &cols).await
}

async fn ensure_publication(
    cat: &Catalog,
    name: &str,
    matched: &[TableRow],
) -> Result<(), SourceError> {
    let exists: Option<bool> = cat
        .client
        .query_opt(
            "SELECT pubviaroot FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await?
        .map(|r| r.get(0));
    let q = quote_ident(name);
    if let Some(via_root) = exists {
        // a partitioned table's changes must name it, not its partitions
        if !via_root && matched.iter().any(|t| t.partitioned) {
            cat.client
                .batch_execute(&format!("ALTER PUBLICATION {q} SET (publish_via_partition_root = true)"))
                .await
                .map_err(|e| setup(
                    format!("publication `{name}` publishes partitions under their own names, and it cannot be changed: {e}"),
                    format!("as its owner: ALTER PUBLICATION {q} SET (publish_via_partition_root = true);"),
                ))?;
            tracing::info!(publication = name, "set publish_via_partition_root: partitioned tables' changes name the partitioned table");
        }
        return Ok(());
    }
    match cat
        .client
        .batch_execute(&format!(
            "CREATE PUBLICATION {q} FOR ALL TABLES WITH (publish_via_partition_root = true)"
        ))
        .await
    {
        Ok(()) => {
            tracing::info!(publication = name, "created publication FOR ALL TABLES");
            Ok(())
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            if matched.is_empty() {
                return Err(setup(
                    format!("cannot create publication `{name}` FOR ALL TABLES (needs a superuser) and no table matches source.tables"),
                    format!("as a superuser: CREATE PUBLICATION {q} FOR ALL TABLES;"),
                ));
            }
            let list: Vec<String> = matched
                .iter()
                .map(|t| format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name)))
                .collect();
            cat.client
                .batch_execute(&format!("CREATE PUBLICATION {q} FOR TABLE {} WITH (publish_via_partition_root = true)", list.join(", ")))
                .await
                .map_err(|e| setup(format!("cannot create publication `{name}`: {e}"), format!("as the tables' owner or a superuser: CREATE PUBLICATION {q} FOR ALL TABLES;")))?;
            tracing::info!(publication = name, tables = matched.len(), "created publication FOR TABLE (tables created later are not published; `check` tells)");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Install the DDL event triggers when missing; a failure only loses DDL records (warned).
async fn install_ddl_capture(cat: &Catalog) {
    if ddl::installed_version(&cat.client).await.as_deref() == Some(ddl::MIGRATION_VERSION) {
        return;
    }
    let sql = format!(
        "SET client_min_messages = warning;\n{}\nRESET client_min_messages;",
        ddl::MIGRATION
    );
    match cat.client.batch_execute(&sql).await {
        Ok(()) => tracing::info!(
            "installed the DDL capture event triggers (migrations/postgres/001_ddl_capture.sql)"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot install the DDL capture event triggers: DDL records will be missing; as a superuser run migrations/postgres/001_ddl_capture.sql or `rowstream check --fix`"
        ),
    }
}
