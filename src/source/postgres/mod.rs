//! The Postgres source: logical replication with pgoutput over the streaming replication
//! protocol, snapshot first from the slot's exported snapshot, then the live stream.
//!
//! Start-up (`prepare`):
//! 1. a normal session checks `wal_level`, creates the publication if missing (FOR ALL TABLES
//!    when allowed, else FOR TABLE over the matched tables) and installs the DDL trigger;
//! 2. the replication session creates the slot if missing, exporting a snapshot when tables need
//!    one; when the slot exists and tables still need a snapshot (added to the config later, or
//!    `snapshot.mode = "always"`), a TEMPORARY slot exports one instead;
//! 3. tables are snapshotted in that snapshot, then `START_REPLICATION` resumes at the stored
//!    position (or the slot's consistent point).
//!
//! Invariants:
//! - Changes of a table whose snapshot was taken at point C are dropped when their transaction
//!   committed before C (they are in the snapshot), so no row is doubled or lost at the hand-off.
//! - Checkpoint markers are emitted only at commits and at heartbeat messages (outside any
//!   transaction); the slot's flush LSN is only ever what the committer acknowledged, i.e. what
//!   is stored after Kafka acknowledged everything before it.
//! - While the pipeline applies backpressure, standby status updates keep flowing, so a slow
//!   broker never makes the server drop the connection for `wal_sender_timeout`.

pub mod catalog;
pub mod check;
pub mod ddl;
pub(crate) mod error;
pub mod pgoutput;
pub mod replication;
pub mod snapshot;
pub mod tables;
pub mod tls;
pub mod types;

use crate::checkpoint::store::State;
use crate::config::{Config, SnapshotMode};
use crate::error::SetupError;
use crate::event::{Batch, ChangeEvent, DdlEvent, DdlOp, Marker, Op, SourceEvent};
use crate::position::{Lsn, SourcePosition};
use crate::schema::{TableFilter, TableSchema};
use crate::value::Value;
use catalog::{Catalog, TableRow};
pub(crate) use error::SourceError;
use pgoutput::{CopyMessage, LogicalMessage, OldKind, Relation, Tuple, TupleValue};
use replication::{pg_ts_to_unix_ms, quote_ident, quote_literal, PgError, ReplicationConn};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tables::{TableDecoder, Tables};
use tokio::sync::{mpsc, watch};
use types::DecodeCtx;

fn setup(problem: impl Into<String>, fix: impl Into<String>) -> SourceError {
    SourceError::Setup(SetupError::new(problem, fix))
}

/// What `prepare` decided; `run` carries it out.
pub struct Prepared {
    repl: ReplicationConn,
    /// Held open while the exported snapshot is read (temporary slot case).
    _snapshot_conn: Option<ReplicationConn>,
    snapshot: Option<(String, Lsn, Vec<TableRow>)>,
    start: Lsn,
    tables: Tables,
    /// Per table (pattern name): drop changes that committed before this LSN.
    skip_before: HashMap<String, Lsn>,
    /// Schemas of the tables matched at start (their topics are created before streaming).
    pub schemas: Vec<Arc<TableSchema>>,
    slot: String,
    publication: String,
    pg: tokio_postgres::Config,
    tls: tls::PgTls,
    heartbeat: Duration,
    chunk_pages: u32,
}

pub fn source_id(cfg: &Config) -> String {
    let db = cfg
        .source
        .url
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| c.get_dbname().map(str::to_string));
    format!("postgres:{}:{}", db.unwrap_or_default(), cfg.source.slot)
}

fn parse_lsn(s: &str) -> Result<Lsn, SourceError> {
    s.parse().map_err(|e: crate::position::LsnParseError| {
        SourceError::Protocol(PgError::Protocol(e.to_string()))
    })
}

pub async fn prepare(cfg: &Config, state: &State) -> Result<Prepared, SourceError> {
    let pg: tokio_postgres::Config = cfg.source.url.parse().map_err(|e| {
        setup(
            format!("source.url is not a Postgres URL: {e}"),
            "postgres://user[:password]@host:5432/db",
        )
    })?;
    let db = pg.get_dbname().unwrap_or("postgres").to_string();
    let tls = tls::PgTls::new(cfg.source.ssl_root_cert.as_deref()).map_err(|e| {
        setup(
            e.to_string(),
            "fix source.ssl_root_cert (a PEM CA file) or remove it",
        )
    })?;
    let client = catalog::connect(&pg, &tls, "rowstream")
        .await
        .map_err(|e| {
            setup(
                format!(
                    "cannot connect to postgres at {}: {e}",
                    crate::config::redact_url(&cfg.source.url)
                ),
                "check source.url, that the server runs and pg_hba.conf admits this user",
            )
        })?;
    let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
    if wal_level != "logical" {
        return Err(setup(
            format!("wal_level is `{wal_level}`, logical replication needs `logical`"),
            "ALTER SYSTEM SET wal_level = logical; then restart postgres (run `rowstream check` for every prerequisite)",
        ));
    }
    let catalog = Catalog::new(client);
    let filter = TableFilter {
        include: cfg.source.tables.clone(),
        exclude: cfg.source.exclude.clone(),
    };
    let tz = cfg.source.tz_offset_secs().unwrap_or(0) as i64 * 1_000_000;
    let mut tables = Tables::new(
        catalog,
        db.clone(),
        filter.clone(),
        cfg.kafka.topic.clone(),
        cfg.source.keys.clone(),
        DecodeCtx { tz_offset_us: tz },
        cfg.source.toast_placeholder.clone(),
    );
    let all = tables.catalog.tables().await?;
    let matched: Vec<TableRow> = all
        .into_iter()
        .filter(|t| filter.matches(&tables.table_id(&t.schema, &t.name)))
        .collect();
    if matched.is_empty() {
        tracing::warn!(patterns = ?cfg.source.tables, "no table matches source.tables yet; streaming tables created later");
    }
    ensure_publication(&tables.catalog, &cfg.source.publication, &matched).await?;
    if cfg.source.capture_ddl {
        install_ddl_capture(&tables.catalog).await;
    }

    // which tables need a snapshot
    let need: Vec<TableRow> = match cfg.snapshot.mode {
        SnapshotMode::Never => vec![],
        SnapshotMode::Always => matched.clone(),
        SnapshotMode::Initial => matched
            .iter()
            .filter(|t| {
                !state
                    .tables
                    .contains_key(&format!("{}.{}", t.schema, t.name))
            })
            .cloned()
            .collect(),
    };
    let mut skip_before: HashMap<String, Lsn> = HashMap::new();
    for (name, ts) in &state.tables {
        if let Some(SourcePosition::Postgres { lsn }) = &ts.snapshot_from {
            skip_before.insert(name.clone(), *lsn);
        }
    }

    let slot = cfg.source.slot.clone();
    let mut repl = ReplicationConn::connect(&pg, &tls, &format!("rowstream:{slot}")).await?;
    let existing = tables
        .catalog
        .client
        .query_opt(
            "SELECT plugin::text, database::text, confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let mut snapshot = None;
    let mut snapshot_conn = None;
    let start;
    match existing {
        None => {
            if state.position.is_some() {
                return Err(setup(
                    format!("replication slot `{slot}` is gone but {} holds a position: changes since then are lost to rowstream", cfg.state.dir.display()),
                    "to start over with a fresh snapshot, move the state directory away and run again",
                ));
            }
            let export = if need.is_empty() {
                "NOEXPORT_SNAPSHOT"
            } else {
                "EXPORT_SNAPSHOT"
            };
            let rows = repl
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {export}",
                    quote_ident(&slot)
                ))
                .await
                .map_err(|e| slot_error(&slot, e))?;
            let row = rows.first().ok_or_else(|| {
                setup(
                    "CREATE_REPLICATION_SLOT returned nothing",
                    "check the server log",
                )
            })?;
            let point = parse_lsn(row.get(1).cloned().flatten().as_deref().unwrap_or("0/0"))?;
            tracing::info!(slot, consistent_point = %point, "created replication slot");
            start = point;
            if let Some(Some(name)) = row.get(2) {
                snapshot = Some((name.clone(), point, need.clone()));
            }
        }
        Some(r) => {
            let plugin: String = r.get(0);
            let sdb: String = r.get(1);
            let wal_status: Option<String> = r.get(3);
            if plugin != "pgoutput" || sdb != db {
                return Err(setup(
                    format!("replication slot `{slot}` exists for plugin `{plugin}` on database `{sdb}`, not pgoutput on `{db}`"),
                    "set source.slot to another name, or drop that slot: SELECT pg_drop_replication_slot('<slot>')",
                ));
            }
            if wal_status.as_deref() == Some("lost") {
                return Err(setup(
                    format!("replication slot `{slot}` lost required WAL (wal_status = lost)"),
                    "drop the slot and the state directory, then run again to re-snapshot",
                ));
            }
            let confirmed = parse_lsn(
                &r.get::<_, Option<String>>(2)
                    .unwrap_or_else(|| "0/0".into()),
            )?;
            start = match &state.position {
                Some(SourcePosition::Postgres { lsn }) => (*lsn).max(confirmed),
                _ => confirmed,
            };
            if !need.is_empty() {
                // a temporary slot exports a snapshot for the tables that need one
                let mut c = ReplicationConn::connect(&pg, &tls, "rowstream-snapshot").await?;
                let tmp = format!("{}_snap_{}", slot, std::process::id());
                let rows = c
                    .simple_query(&format!(
                        "CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT",
                        quote_ident(&tmp)
                    ))
                    .await
                    .map_err(|e| slot_error(&tmp, e))?;
                let row = rows.first().ok_or_else(|| {
                    setup(
                        "CREATE_REPLICATION_SLOT returned nothing",
                        "check the server log",
                    )
                })?;
                let point = parse_lsn(row.get(1).cloned().flatten().as_deref().unwrap_or("0/0"))?;
                let name = row.get(2).cloned().flatten().unwrap_or_default();
                tracing::info!(tables = need.len(), consistent_point = %point, "snapshot of tables added since the last run");
                snapshot = Some((name, point, need.clone()));
                snapshot_conn = Some(c);
            }
        }
    }
    if let Some((_, point, need)) = &snapshot {
        for t in need {
            skip_before.insert(format!("{}.{}", t.schema, t.name), *point);
        }
    }
    let mut schemas = Vec::new();
    for t in &matched {
        let d = decoder_for(&mut tables, t).await?;
        schemas.push(d.schema);
    }
    Ok(Prepared {
        repl,
        _snapshot_conn: snapshot_conn,
        snapshot,
        start,
        tables,
        skip_before,
        schemas,
        slot,
        publication: cfg.source.publication.clone(),
        pg,
        tls,
        heartbeat: Duration::from_millis(cfg.heartbeat.interval_ms),
        chunk_pages: cfg.snapshot.chunk_pages,
    })
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

async fn decoder_for(tables: &mut Tables, t: &TableRow) -> Result<TableDecoder, SourceError> {
    let cols: Vec<(String, u32, i32)> = tables
        .catalog
        .columns(t.oid)
        .await?
        .into_iter()
        .map(|c| (c.name, c.type_oid, c.typmod))
        .collect();
    let id = tables.table_id(&t.schema, &t.name);
    Ok(tables.decoder(t.oid, id, &cols, None).await?)
}

async fn ensure_publication(
    cat: &Catalog,
    name: &str,
    matched: &[TableRow],
) -> Result<(), SourceError> {
    let exists = cat
        .client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    let q = quote_ident(name);
    match cat
        .client
        .batch_execute(&format!("CREATE PUBLICATION {q} FOR ALL TABLES"))
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
                .batch_execute(&format!("CREATE PUBLICATION {q} FOR TABLE {}", list.join(", ")))
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

struct RelEntry {
    decoder: Option<Arc<TableDecoder>>,
    skip_before: Option<Lsn>,
    /// replica-identity flags per column
    key_flags: Arc<[bool]>,
}

struct StreamState {
    tables: Tables,
    rels: HashMap<u32, RelEntry>,
    skip_before: HashMap<String, Lsn>,
    batch: Batch,
    /// commit LSN and commit time (ms) of the open transaction
    txn: Option<(Lsn, i64)>,
    received: Lsn,
    /// last position the committer stored (the slot's flush LSN)
    acked: Lsn,
}

impl Prepared {
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Batch>,
        mut acks: watch::Receiver<Option<SourcePosition>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        // 1. snapshot
        if let Some((name, point, need)) = self.snapshot.take() {
            let snap_client = catalog::connect(&self.pg, &self.tls, "rowstream-snapshot").await?;
            snap_client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                    quote_literal(&name)
                ))
                .await?;
            let main_client =
                std::mem::replace(&mut self.tables.catalog, Catalog::new(snap_client));
            tracing::info!(
                tables = need.len(),
                "snapshot of {} table(s) from exported snapshot {}",
                need.len(),
                name
            );
            for t in &need {
                if *shutdown.borrow() {
                    break;
                }
                let d = decoder_for(&mut self.tables, t).await?;
                snapshot::snapshot_table(
                    &mut self.tables,
                    &d,
                    t.oid,
                    self.chunk_pages,
                    point,
                    &tx,
                    &shutdown,
                )
                .await?;
            }
            let snap = std::mem::replace(&mut self.tables.catalog, main_client);
            snap.client.batch_execute("COMMIT").await.ok();
            drop(self._snapshot_conn.take());
            if *shutdown.borrow() {
                return Ok(());
            }
        }
        // 2. heartbeat messages keep an idle slot moving
        let hb_client = catalog::connect(&self.pg, &self.tls, "rowstream-heartbeat").await?;
        let hb_every = self.heartbeat;
        let mut hb_stop = shutdown.clone();
        let hb = tokio::spawn(async move {
            let mut t = tokio::time::interval(hb_every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = t.tick() => {}
                    _ = hb_stop.changed() => return,
                }
                if let Err(e) = hb_client
                    .simple_query(&format!(
                        "SELECT pg_logical_emit_message(false, '{}', '')",
                        ddl::HEARTBEAT_PREFIX
                    ))
                    .await
                {
                    tracing::warn!(error = %e, "heartbeat message failed (an idle slot will not advance); grant EXECUTE on pg_logical_emit_message or use a superuser");
                    tokio::time::sleep(hb_every * 6).await;
                }
            }
        });
        // 3. stream
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {}, messages 'true')",
            quote_ident(&self.slot),
            self.start,
            quote_literal(&quote_ident(&self.publication)),
        );
        self.repl.start_replication(&sql).await?;
        tracing::info!(slot = %self.slot, from = %self.start, "streaming");
        let mut st = StreamState {
            tables: self.tables,
            rels: HashMap::new(),
            skip_before: self.skip_before,
            batch: Vec::with_capacity(snapshot::BATCH),
            txn: None,
            received: self.start,
            acked: self.start,
        };
        let mut conn = self.repl;
        let res = stream_loop(&mut conn, &mut st, &tx, &mut acks, &mut shutdown).await;
        hb.abort();
        if res.is_ok() {
            // drain: the pipeline flushes and the committer stores the final position; report it
            drop(tx);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::timeout_at(deadline, acks.changed())
                .await
                .is_ok_and(|r| r.is_ok())
            {
                if let Some(SourcePosition::Postgres { lsn }) = acks.borrow().clone() {
                    st.acked = st.acked.max(lsn);
                }
            }
            conn.send_status(st.received.0, st.acked.0, st.acked.0, false)
                .await
                .ok();
            conn.send_copy_done().await.ok();
            tracing::info!(flushed = %st.acked, "replication stopped");
        }
        res
    }
}

async fn send_status(conn: &mut ReplicationConn, st: &StreamState) -> Result<(), PgError> {
    conn.send_status(st.received.0.max(st.acked.0), st.acked.0, st.acked.0, false)
        .await
}

/// Hand a batch to the pipeline, keeping the server's keepalive satisfied while we wait.
async fn flush_batch(
    conn: &mut ReplicationConn,
    st: &mut StreamState,
    tx: &mpsc::Sender<Batch>,
) -> Result<(), SourceError> {
    if st.batch.is_empty() {
        return Ok(());
    }
    let batch = std::mem::replace(&mut st.batch, Vec::with_capacity(snapshot::BATCH));
    let batch = match tx.try_reserve() {
        Ok(permit) => {
            permit.send(batch);
            return Ok(());
        }
        Err(mpsc::error::TrySendError::Closed(())) => return Err(SourceError::Closed),
        Err(mpsc::error::TrySendError::Full(())) => batch,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            permit = tx.reserve() => {
                permit.map_err(|_| SourceError::Closed)?.send(batch);
                return Ok(());
            }
            _ = tick.tick() => send_status(conn, st).await?,
        }
    }
}

async fn stream_loop(
    conn: &mut ReplicationConn,
    st: &mut StreamState,
    tx: &mpsc::Sender<Batch>,
    acks: &mut watch::Receiver<Option<SourcePosition>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), SourceError> {
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                // finish the open transaction's batch? No: an unfinished transaction is replayed
                // after restart; only whole transactions were marked.
                flush_batch(conn, st, tx).await?;
                return Ok(());
            }
            r = acks.changed() => {
                if r.is_err() { return Err(SourceError::Closed); }
                if let Some(SourcePosition::Postgres { lsn }) = acks.borrow_and_update().clone() {
                    st.acked = st.acked.max(lsn);
                }
                send_status(conn, st).await?;
            }
            _ = status_tick.tick() => send_status(conn, st).await?,
            data = conn.next_copy_data() => {
                match pgoutput::parse_copy(data?)? {
                    CopyMessage::Keepalive { wal_end, reply, .. } => {
                        if st.txn.is_none() && st.batch.is_empty() {
                            st.received = st.received.max(wal_end);
                        }
                        if reply { send_status(conn, st).await?; }
                    }
                    CopyMessage::XLogData { wal_end, send_time, data, .. } => {
                        let msg = pgoutput::parse_logical(data)?;
                        let end_of_txn = handle(st, msg, send_time).await?;
                        st.received = st.received.max(wal_end);
                        if end_of_txn || st.batch.len() >= snapshot::BATCH {
                            flush_batch(conn, st, tx).await?;
                        }
                    }
                }
            }
        }
    }
}

/// Apply one pgoutput message; returns true at transaction ends (batch should be flushed).
async fn handle(
    st: &mut StreamState,
    msg: LogicalMessage,
    send_time: i64,
) -> Result<bool, SourceError> {
    match msg {
        LogicalMessage::Begin {
            final_lsn,
            commit_ts,
            ..
        } => {
            st.txn = Some((final_lsn, pg_ts_to_unix_ms(commit_ts)));
        }
        LogicalMessage::Commit {
            end_lsn, commit_ts, ..
        } => {
            st.txn = None;
            st.batch.push(SourceEvent::Marker(Marker::Checkpoint {
                position: SourcePosition::Postgres { lsn: end_lsn },
                event_time_ms: pg_ts_to_unix_ms(commit_ts),
            }));
            return Ok(true);
        }
        LogicalMessage::Relation(rel) => relation(st, rel).await?,
        LogicalMessage::Origin | LogicalMessage::Type { .. } => {}
        LogicalMessage::Insert { rel, new } => {
            if let Some((d, t)) = live(st, rel) {
                let after = row(st, &d, &new, None);
                st.batch
                    .push(change(d.schema.clone(), Op::Insert, None, Some(after), t));
            }
        }
        LogicalMessage::Update { rel, old, new } => {
            if let Some((d, t)) = live(st, rel) {
                let flags = st
                    .rels
                    .get(&rel)
                    .map(|e| e.key_flags.clone())
                    .unwrap_or_default();
                let old_full = match &old {
                    Some((OldKind::Full, tup)) => Some(tup),
                    _ => None,
                };
                let after = row(st, &d, &new, old_full);
                let before = old.as_ref().map(|(k, tup)| old_row(st, &d, k, tup, &flags));
                st.batch
                    .push(change(d.schema.clone(), Op::Update, before, Some(after), t));
            }
        }
        LogicalMessage::Delete { rel, old: (k, tup) } => {
            if let Some((d, t)) = live(st, rel) {
                let flags = st
                    .rels
                    .get(&rel)
                    .map(|e| e.key_flags.clone())
                    .unwrap_or_default();
                let before = old_row(st, &d, &k, &tup, &flags);
                st.batch
                    .push(change(d.schema.clone(), Op::Delete, Some(before), None, t));
            }
        }
        LogicalMessage::Truncate { options, rels } => {
            for rel in rels {
                if let Some((d, t)) = live(st, rel) {
                    let id = &d.schema.id;
                    let mut text = format!(
                        "TRUNCATE TABLE {}.{}",
                        quote_ident(id.schema.as_deref().unwrap_or("public")),
                        quote_ident(&id.table)
                    );
                    if options & 2 != 0 {
                        text.push_str(" RESTART IDENTITY");
                    }
                    if options & 1 != 0 {
                        text.push_str(" CASCADE");
                    }
                    st.batch.push(SourceEvent::Ddl(DdlEvent {
                        table: d.schema.clone(),
                        op: DdlOp::Truncate,
                        text,
                        event_time_ms: t,
                    }));
                }
            }
        }
        LogicalMessage::Message {
            transactional,
            lsn,
            prefix,
            content,
        } => {
            if prefix == ddl::HEARTBEAT_PREFIX && !transactional {
                if st.txn.is_none() {
                    st.batch.push(SourceEvent::Marker(Marker::Checkpoint {
                        position: SourcePosition::Postgres { lsn },
                        event_time_ms: pg_ts_to_unix_ms(send_time),
                    }));
                    return Ok(true);
                }
            } else if prefix == ddl::DDL_PREFIX {
                ddl_message(st, &content).await?;
            }
        }
    }
    Ok(false)
}

fn change(
    table: Arc<TableSchema>,
    op: Op,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
    t: i64,
) -> SourceEvent {
    SourceEvent::Change(ChangeEvent {
        table,
        op,
        before,
        after,
        event_time_ms: t,
        snapshot: false,
    })
}

/// The decoder of a relation whose change must be emitted now, with the commit time.
fn live(st: &StreamState, rel: u32) -> Option<(Arc<TableDecoder>, i64)> {
    let e = st.rels.get(&rel)?;
    let d = e.decoder.as_ref()?;
    let (commit_lsn, t) = st.txn.unwrap_or((Lsn(u64::MAX), -1));
    if let Some(skip) = e.skip_before {
        if commit_lsn < skip {
            return None;
        }
    }
    Some((Arc::clone(d), t))
}

fn row(
    st: &mut StreamState,
    d: &TableDecoder,
    tup: &Tuple,
    old_full: Option<&Tuple>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(d.kinds.len());
    for i in 0..d.kinds.len() {
        out.push(match tup.get(i) {
            None | Some(TupleValue::Null) => Value::Null,
            Some(TupleValue::Text(b)) => st.tables.decode(d, i, b),
            Some(TupleValue::Unchanged) => match old_full.and_then(|o| o.get(i)) {
                Some(TupleValue::Text(b)) => st.tables.decode(d, i, b),
                _ => Value::Text(st.tables.toast_placeholder.clone()),
            },
            Some(TupleValue::Binary(_)) => {
                st.tables
                    .render_failed(&d.schema, i, "binary tuple value in text mode");
                Value::Null
            }
        });
    }
    out
}

/// Old image as the log carries it: the whole row (`O`), or only the identity columns (`K`).
fn old_row(
    st: &mut StreamState,
    d: &TableDecoder,
    kind: &OldKind,
    tup: &Tuple,
    key_flags: &[bool],
) -> Vec<Value> {
    let full = row(st, d, tup, None);
    match kind {
        OldKind::Full => full,
        OldKind::Key => full
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                if key_flags.get(i).copied().unwrap_or(false) {
                    v
                } else {
                    Value::Absent
                }
            })
            .collect(),
    }
}

async fn relation(st: &mut StreamState, rel: Relation) -> Result<(), SourceError> {
    let id = st.tables.table_id(&rel.namespace, &rel.name);
    let key_flags: Arc<[bool]> = rel.columns.iter().map(|c| c.flags & 1 == 1).collect();
    let decoder = if st.tables.filter.matches(&id) {
        let cols: Vec<(String, u32, i32)> = rel
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.type_oid, c.typmod))
            .collect();
        let d = st.tables.decoder(rel.oid, id.clone(), &cols, None).await?;
        if d.schema.key.is_none() && rel.replica_identity != b'f' {
            tracing::warn!(table = %id, "table has no primary key: records carry a null key; UPDATE/DELETE need REPLICA IDENTITY FULL on the source");
        }
        st.batch.push(SourceEvent::Table(d.schema.clone()));
        Some(Arc::new(d))
    } else {
        None
    };
    let skip_before = st.skip_before.get(&id.pattern_name()).copied();
    st.rels.insert(
        rel.oid,
        RelEntry {
            decoder,
            skip_before,
            key_flags,
        },
    );
    Ok(())
}

async fn ddl_message(st: &mut StreamState, content: &[u8]) -> Result<(), SourceError> {
    let msg: ddl::DdlMessage = match serde_json::from_slice(content) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable DDL capture message skipped");
            return Ok(());
        }
    };
    let op = ddl::ddl_op(&msg.tag, &msg.query);
    let t = st.txn.map(|x| x.1).unwrap_or(-1);
    let commit_lsn = st.txn.map(|x| x.0).unwrap_or(Lsn(u64::MAX));
    for obj in msg.objects {
        let id = st.tables.table_id(&obj.schema, &obj.table);
        if !st.tables.filter.matches(&id) {
            continue;
        }
        if st
            .skip_before
            .get(&id.pattern_name())
            .is_some_and(|s| commit_lsn < *s)
        {
            continue;
        }
        let schema = match &obj.columns {
            Some(cols) => {
                let cols: Vec<(String, u32, i32)> = cols
                    .iter()
                    .map(|c| (c.name.clone(), c.type_oid, c.typmod))
                    .collect();
                st.tables
                    .decoder(obj.oid, id.clone(), &cols, None)
                    .await
                    .map(|d| d.schema)
                    .ok()
            }
            None => None,
        };
        // dropped tables: the last schema we knew
        let schema = match schema {
            Some(s) => s,
            None => match st
                .rels
                .values()
                .filter_map(|e| e.decoder.as_ref())
                .find(|d| d.schema.id == id)
            {
                Some(d) => d.schema.clone(),
                None => TableSchema::new(
                    crate::schema::DbType::PostgreSql,
                    id.clone(),
                    vec![],
                    None,
                    crate::schema::render_topic(&st.tables.topic_template, &id),
                ),
            },
        };
        st.batch.push(SourceEvent::Table(schema.clone()));
        st.batch.push(SourceEvent::Ddl(DdlEvent {
            table: schema,
            op,
            text: msg.query.clone(),
            event_time_ms: t,
        }));
    }
    Ok(())
}
