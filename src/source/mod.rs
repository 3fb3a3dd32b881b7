//! Change sources and the contract every source keeps.
//!
//! A source turns a database's change log into [`SourceEvent`]s for the pipeline. Two exist:
//! `postgres` (logical replication, pgoutput) and `mysql` (MySQL/MariaDB ROW binlog). A third
//! (say SQL Server) implements the same contract and reuses the same shared parts.
//!
//! What it may import: `model`, `config`, `check` (findings), `checkpoint` (the stored state a
//! run starts from), `metrics`, `error`; never `format`, `kafka`, `connect` or `tools` (the
//! sources do not know where their events go).
//!
//! # The contract
//!
//! **Start-up** (`prepare(cfg, options, state)`, per source, returning the source and the
//! schemas of the matched tables; [`prepare`] dispatches on `source.type`): connect, evaluate the source's
//! prerequisites (its `prereq` module, the same definitions `rowstream check` prints) and stop
//! with a setup error naming the fix when one fails; list the tables that match
//! `source.tables`/`source.exclude`; decide which need a snapshot with
//! [`plan::tables_to_snapshot`]; open a consistent read of them and learn the log position it
//! corresponds to (the fence, [`plan::Fence`]); build every matched table's schema through
//! [`schemas::SchemaFactory`] (one key policy: custom key, else primary key, else none; a bad
//! `source.keys` entry is a setup error). The resume position is the stored one when there is
//! one, else the snapshot's point, else the log's current end.
//!
//! **Running** ([`Source::run`]):
//! 1. Snapshot first, with the shared driver [`snapshot::snapshot_tables`] and a
//!    database-specific [`snapshot::TableReader`]: rows are `INSERT`s with `snapshot = true`,
//!    each chunk is followed by `Marker::Snapshot { fence, step }` (its progress, `Done` at the
//!    table's end), and a stop request is honoured at the next chunk boundary. Before any row,
//!    [`Source::started`] names the snapshots about to start; `run` stores them first, so a
//!    crash mid-snapshot resumes behind the same fence. A table whose snapshot started and did
//!    not finish ([`plan::tables_to_resume`]), or that a [`SnapshotRequest`] names, is read by
//!    [`incremental`] while streaming: chunks held until the source's high watermark, keys
//!    changed in the window dropped from the chunk.
//! 2. Then stream from the resume position. Events are sent **in log order**. A change of a
//!    table whose record starts before that table's fence is dropped (it is in the snapshot).
//! 3. `Marker::Checkpoint` is sent **only at transaction ends** (or at a heartbeat point outside
//!    any transaction), after every event of that transaction: everything before a marker
//!    belongs to positions at or before it. Positions only move forward (the store refuses a
//!    step back).
//! 4. `SourceEvent::Table` announces a table (or a new version of its schema) before its first
//!    record, so its topic exists before anything is written to it; a DDL becomes a
//!    `SourceEvent::Ddl` in log order, carrying the schema after the change.
//! 5. Everything goes through [`batch::Batcher`]: bounded, so a slow broker slows the log reader.
//!    While blocked, a source keeps its server connection alive (Postgres standby status
//!    updates; MySQL's server heartbeats need nothing).
//! 6. Positions in `acks` are stored (Kafka acknowledged everything before them): only those may
//!    be confirmed to the database (Postgres flush LSN). Nothing else is ever confirmed.
//! 7. On a stop request: finish the current chunk or event, flush the batcher, return `Ok`;
//!    an open transaction is not marked, so it is replayed after a restart.
//! 8. Errors carry their class (`crate::error`): a lost connection is transient (the run restarts
//!    from the stored position), a missing privilege or prerequisite is a setup error with its
//!    fix. A value that cannot be rendered is never an error: [`render::RenderWarnings`].
//!
//! **Database-specific, per source:** the connection and its session settings, log decoding,
//! the chunk reader, the catalog (columns, types, primary keys), DDL capture, prerequisites.

pub(crate) mod batch;
#[cfg(test)]
mod fuzz;
pub(crate) mod incremental;
pub(crate) mod mysql;
pub(crate) mod plan;
pub(crate) mod postgres;
pub(crate) mod render;
pub(crate) mod schemas;
pub(crate) mod snapshot;

use crate::check::Finding;
use crate::checkpoint::store::State;
use crate::config::{Config, SourceOptions};
use crate::error::Error;
use crate::model::event::{Marker, SnapshotStep};
use crate::model::position::SourcePosition;
use crate::model::schema::{TableFilter, TableId, TableSchema};
use batch::Batcher;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// A prepared source, ready to run (see the module doc for what `run` must do).
pub(crate) trait Source: Send + 'static {
    /// Snapshot what was planned, then stream until `stop` turns true, snapshotting tables
    /// again incrementally as `requests` ask.
    fn run(
        self,
        out: Batcher,
        acks: watch::Receiver<Option<SourcePosition>>,
        stop: watch::Receiver<bool>,
        requests: mpsc::Receiver<SnapshotRequest>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Markers to store before the source runs: the snapshots it is about to start (so a crash
    /// mid-snapshot resumes behind the same fence instead of starting over).
    fn started(&self) -> Vec<Marker>;
}

/// "Snapshot these tables (pattern names) again while streaming": answered with the reasons
/// any cannot be (then none is queued).
pub(crate) struct SnapshotRequest {
    pub(crate) tables: Vec<String>,
    reply: oneshot::Sender<Result<(), Vec<String>>>,
}

impl SnapshotRequest {
    pub(crate) fn new(tables: Vec<String>) -> (Self, oneshot::Receiver<Result<(), Vec<String>>>) {
        let (reply, rx) = oneshot::channel();
        (SnapshotRequest { tables, reply }, rx)
    }

    /// Queued when `problems` is empty.
    pub(crate) fn answer(self, problems: Vec<String>) {
        let r = match problems.is_empty() {
            true => Ok(()),
            false => Err(problems),
        };
        let _ = self.reply.send(r);
    }
}

/// The marker that says a table's snapshot starts behind `fence`.
pub(crate) fn started_marker(table: &TableId, fence: &SourcePosition) -> Marker {
    Marker::Snapshot {
        table: table.pattern_name(),
        fence: Some(fence.clone()),
        step: SnapshotStep::At(serde_json::Value::Null),
    }
}

/// The source `source.type` names, prepared.
pub(crate) enum AnySource {
    Postgres(Box<postgres::Prepared>),
    MySql(Box<mysql::Prepared>),
}

/// Measures what the source keeps for this connector (bytes) and, for Postgres, the slot's
/// `wal_status`: the gauges of `metrics::RETAINED_BYTES` / `WAL_STATUS`. One session, kept
/// open between measurements.
pub(crate) enum RetentionProbe {
    Postgres(Box<postgres::Probe>),
    MySql(mysql::Probe),
}

impl RetentionProbe {
    pub(crate) fn new(cfg: &Config) -> RetentionProbe {
        match &cfg.source.options {
            SourceOptions::Postgres(o) => {
                RetentionProbe::Postgres(Box::new(postgres::Probe::new(cfg, o)))
            }
            SourceOptions::Mysql(_) => RetentionProbe::MySql(mysql::Probe::new(cfg)),
        }
    }

    pub(crate) async fn measure(
        &mut self,
        stored: Option<&SourcePosition>,
    ) -> Result<(i64, Option<String>), String> {
        match self {
            RetentionProbe::Postgres(p) => p
                .measure()
                .await
                .map(|(b, st)| (b, Some(st).filter(|s| !s.is_empty()))),
            RetentionProbe::MySql(p) => match stored {
                Some(SourcePosition::MySql { file, pos, .. }) => {
                    p.measure(file, *pos).await.map(|b| (b, None))
                }
                _ => Err("no stored binlog position yet".into()),
            },
        }
    }
}

/// Identifies the source a state belongs to (`postgres:<db>:<slot>`, `mysql:<host>:<port>`).
pub(crate) fn source_id(cfg: &Config) -> String {
    match &cfg.source.options {
        SourceOptions::Postgres(o) => postgres::source_id(cfg, o),
        SourceOptions::Mysql(_) => mysql::source_id(cfg),
    }
}

/// May a state written against another server be resumed on the one `new_id` names? Only a
/// MySQL/MariaDB state holding a GTID position: the other server must be of the same
/// replication topology, which the source checks when it connects (failover by GTID).
pub(crate) fn may_move(state: &State, new_id: &str) -> bool {
    state.source_id.starts_with("mysql:")
        && new_id.starts_with("mysql:")
        && matches!(
            &state.position,
            Some(SourcePosition::MySql { gtid: Some(_), .. })
        )
}

/// What start-up produced: the source, and the schemas of the tables matched at start (their
/// topics are created before anything runs).
pub(crate) struct Ready {
    pub(crate) source: AnySource,
    pub(crate) schemas: Vec<Arc<TableSchema>>,
}

/// Start-up of the source `source.type` names (the contract's first part). `fresh`: starting
/// over (`--resnapshot`): a source drops what holds its old position (the Postgres slot).
pub(crate) async fn prepare(
    cfg: &Config,
    state: &State,
    fresh: bool,
    store: Arc<crate::checkpoint::store::Store>,
) -> Result<Ready, Error> {
    let (source, schemas) = match &cfg.source.options {
        SourceOptions::Postgres(o) => {
            let (p, schemas) = postgres::prepare(cfg, o, state, fresh).await?;
            (AnySource::Postgres(Box::new(p)), schemas)
        }
        SourceOptions::Mysql(o) => {
            let (p, schemas) = mysql::prepare(cfg, o, state, store).await?;
            (AnySource::MySql(Box::new(p)), schemas)
        }
    };
    Ok(Ready { source, schemas })
}

impl Source for AnySource {
    async fn run(
        self,
        out: Batcher,
        acks: watch::Receiver<Option<SourcePosition>>,
        stop: watch::Receiver<bool>,
        requests: mpsc::Receiver<SnapshotRequest>,
    ) -> Result<(), Error> {
        match self {
            AnySource::Postgres(p) => p.run(out, acks, stop, requests).await,
            AnySource::MySql(p) => p.run(out, acks, stop, requests).await,
        }
    }

    fn started(&self) -> Vec<Marker> {
        match self {
            AnySource::Postgres(p) => p.started(),
            AnySource::MySql(p) => p.started(),
        }
    }
}

/// The matched tables' current rows and the log's end, read-only (for `verify`).
pub(crate) enum Dump {
    Postgres(Box<postgres::PgDump>),
    MySql(Box<mysql::MyDump>),
}

impl Dump {
    pub(crate) async fn open(cfg: &Config) -> Result<Dump, Error> {
        Ok(match &cfg.source.options {
            SourceOptions::Postgres(o) => {
                Dump::Postgres(Box::new(postgres::PgDump::open(cfg, o).await?))
            }
            SourceOptions::Mysql(o) => Dump::MySql(Box::new(mysql::MyDump::open(cfg, o).await?)),
        })
    }

    /// The matched tables, in name order.
    pub(crate) async fn schemas(&mut self) -> Result<Vec<Arc<TableSchema>>, Error> {
        Ok(match self {
            Dump::Postgres(d) => d.schemas().await?,
            Dump::MySql(d) => d.schemas(),
        })
    }

    /// The end of the source's log now.
    pub(crate) async fn position(&mut self) -> Result<SourcePosition, Error> {
        Ok(match self {
            Dump::Postgres(d) => d.position().await?,
            Dump::MySql(d) => d.position().await?,
        })
    }

    /// The rows of the `i`th table of [`Dump::schemas`], a chunk at a time.
    pub(crate) async fn rows(
        &mut self,
        i: usize,
        f: &mut (dyn FnMut(&[crate::model::value::Row]) -> Result<(), Error> + Send),
    ) -> Result<(), Error> {
        match self {
            Dump::Postgres(d) => d.rows(i, f).await,
            Dump::MySql(d) => d.rows(i, f).await,
        }
    }
}

/// The tables `source.tables` / `source.exclude` select.
pub(crate) fn table_filter(cfg: &Config) -> TableFilter {
    TableFilter {
        include: cfg.source.tables().to_vec(),
        exclude: cfg.source.exclude.clone(),
    }
}

/// At the first start, `source.tables` patterns that select nothing that exists (see
/// [`TableFilter::dead_patterns`]) stop the run: a typo would otherwise stream nothing,
/// silently. `schemas` are the existing schemas (Postgres) or databases (MySQL), `names` the
/// existing tables as `schema.table` / `db.table`.
pub(crate) fn unmatched_patterns(
    filter: &TableFilter,
    schemas: &[String],
    names: &[String],
    postgres: bool,
) -> Result<(), crate::error::SetupError> {
    let dead = filter.dead_patterns(schemas, names);
    if dead.is_empty() {
        return Ok(());
    }
    let (over, kind) = match postgres {
        true => ("schema.table", "schemas"),
        false => ("database.table", "databases"),
    };
    let mut have: Vec<&str> = schemas.iter().map(String::as_str).take(10).collect();
    if schemas.len() > 10 {
        have.push("...");
    }
    Err(crate::error::SetupError::new(
        format!(
            "source.tables {dead:?} match(es) no table ({kind} here: {}; {} table(s) in all)",
            have.join(", "),
            names.len()
        ),
        format!("correct the pattern (globs over {over}, case-sensitive; `rowstream check` counts what matches), or create the table first"),
    ))
}

/// `rowstream check` of the source: every prerequisite, each problem with its fix.
pub(crate) async fn check(cfg: &Config, fix: bool) -> Vec<Finding> {
    match &cfg.source.options {
        SourceOptions::Postgres(o) => postgres::check::check(cfg, o, fix).await,
        SourceOptions::Mysql(o) => mysql::check::check(cfg, o, fix).await,
    }
}
