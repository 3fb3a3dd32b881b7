//! The binlog stream: the dump opened at the resume position (by file and offset, or by
//! GTID), every event placed by the cursor, rows decoded with the table's schema as of their
//! position, DDL recorded in the schema history, a checkpoint at each transaction end.
//!
//! Invariants:
//! - Checkpoints are emitted only at transaction ends (XID, or a COMMIT / DDL query event),
//!   carrying the file the cursor names, the end offset and the GTID set executed so far.
//! - A table snapshotted at position S (its fence) drops binlog events that start before S,
//!   and only when that order is proven (same log, see `model::position`).
//! - Events are decoded with the table's schema as of their position (see `schema`); a DDL
//!   appends the new schema to the durable history before any later row is decoded.
//! - MariaDB's own events: GTID (transaction start + GTID), GTID_LIST, BINLOG_CHECKPOINT and
//!   ANNOTATE_ROWS are read (the latter three carry nothing rowstream needs); MySQL's GTID,
//!   ROWS_QUERY and TRANSACTION_PAYLOAD (compressed transactions, expanded by mysql_async) too.

use super::cursor::{Cursor, EventAt};
use super::error::{setup, MySqlError};
use super::gtid::{mysql_gtid_request, parse_mariadb_gtid, GtidSet};
use super::schema::{self, MyTable};
use super::table_map::TableMap;
use super::values::{convert, Ctx, Origin};
use super::{binlog_position, connect, ddl, table_id, Prepared};
use crate::model::event::{ChangeEvent, DdlEvent, DdlOp, Marker, Op, SourceEvent};
use crate::model::position::{binlog_log_order, SourcePosition};
use crate::model::schema::{DbType, TableId, TableSchema};
use crate::model::value::Value;
use crate::source::batch::Batcher;
use crate::source::incremental::{Incremental, Job};
use crate::source::render::RenderWarnings;
use crate::source::SnapshotRequest;
use futures_util::{FutureExt as _, StreamExt};
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::*;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::source::mysql";

impl Prepared {
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
            tracing::info!(target: LOG_TARGET, gtid = %g, "streaming binlog from a GTID position");
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
            tracing::info!(target: LOG_TARGET, %file, pos, "streaming binlog");
        }
        let stream = conn
            .get_binlog_stream(req)
            .await
            .map_err(|e| self.unreadable(e))?;
        Ok(stream)
    }

    /// Stream the binlog until `shutdown`: each event read and placed (`next_event`), then
    /// applied (`event`); between transactions the incremental snapshots take their turn
    /// (`incremental_step`) and snapshot requests are answered.
    pub(super) async fn stream(
        &mut self,
        out: &mut Batcher,
        shutdown: &mut watch::Receiver<bool>,
        requests: &mut tokio::sync::mpsc::Receiver<SnapshotRequest>,
        warned: &mut RenderWarnings,
    ) -> Result<(), MySqlError> {
        let mut stream = self.open_stream().await?;
        let mut st = self.stream_state(out).await?;
        loop {
            if st.txn_time < 0
                && !*shutdown.borrow()
                && self.incremental_step(&mut st, warned).await?
            {
                continue;
            }
            let (ev, at) = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                Some(req) = requests.recv() => {
                    self.snapshot_request(&mut st, req).await?;
                    continue;
                }
                ev = self.next_event(&mut stream, &mut st.cur) => ev?,
            };
            self.event(&mut st, &stream, &ev, &at, warned).await?;
        }
        st.out.flush().await?;
        let _ = stream.close().await;
        Ok(())
    }

    /// The stream's state at the resume position, with a metadata session of its own; the
    /// incremental snapshots to resume are queued, and with no position stored yet the start
    /// position is stored first.
    async fn stream_state<'a>(
        &mut self,
        out: &'a mut Batcher,
    ) -> Result<StreamState<'a>, MySqlError> {
        let mut st = StreamState {
            cur: Cursor::new(&self.start.0, self.start.1),
            gtids: GtidSet::parse(self.gtid.as_deref()),
            txn_time: -1,
            txn_order: 0,
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
        Ok(st)
    }

    /// Between two transactions: the open incremental chunk goes out once the stream has
    /// passed the binlog end its read saw, then the next chunk of a queued table is read.
    /// `true` when a chunk was read.
    async fn incremental_step(
        &self,
        st: &mut StreamState<'_>,
        warned: &mut RenderWarnings,
    ) -> Result<bool, MySqlError> {
        if st.inc.waiting_for().is_some_and(|h| st.passed(h)) {
            st.inc.close(st.out).await?;
        }
        if let Some(job) = st.inc.next_job().cloned() {
            self.read_chunk(st, &job, warned).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The next event of the dump, checked and placed by the cursor. A parser panic, the end
    /// of the dump, the server's refusal, a failed checksum or an event the cursor cannot
    /// place is an error.
    #[inline]
    async fn next_event(
        &self,
        stream: &mut BinlogStream,
        cur: &mut Cursor,
    ) -> Result<(Event, EventAt), MySqlError> {
        // the binlog parser panics on some malformed events: a typed error instead
        let ev = std::panic::AssertUnwindSafe(stream.next())
            .catch_unwind()
            .await
            .map_err(|_| {
                MySqlError::Malformed(format!(
                    "the binlog parser failed on a malformed event after {}:{} (a damaged binlog or connection)",
                    cur.file, cur.pos
                ))
            })?;
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
                cur.file
            ))
        })?;
        let at = cur.on_event(&ev).map_err(|e| {
            MySqlError::Malformed(format!(
                "{e}: rowstream stops rather than guess which changes it has sent (its stored position is kept, nothing is lost); report this with the log"
            ))
        })?;
        tracing::trace!(target: LOG_TARGET,
            event_type = ev.header().event_type_raw(),
            end_pos = at.end,
            "binlog event"
        );
        Ok((ev, at))
    }

    /// One placed event: a GTID starts a transaction, a query event is BEGIN, COMMIT or DDL,
    /// an XID ends a transaction, a rows event is decoded with its table map; MariaDB's
    /// ANNOTATE_ROWS, BINLOG_CHECKPOINT and GTID_LIST, MySQL's PREVIOUS_GTIDS and the rest
    /// are passed over (a ROTATE has moved the cursor already).
    #[inline]
    async fn event(
        &mut self,
        st: &mut StreamState<'_>,
        stream: &BinlogStream,
        ev: &Event,
        at: &EventAt,
        warned: &mut RenderWarnings,
    ) -> Result<(), MySqlError> {
        let h = ev.header();
        match h.event_type_raw() {
            MARIADB_GTID_EVENT => {
                if let Some((domain, seq)) = parse_mariadb_gtid(ev.data()) {
                    st.gtids.mariadb(domain, h.server_id(), seq);
                }
                st.begin(at);
                return Ok(());
            }
            MARIADB_ANNOTATE_ROWS_EVENT
            | MARIADB_BINLOG_CHECKPOINT_EVENT
            | MARIADB_GTID_LIST_EVENT
            // MySQL's PREVIOUS_GTIDS: not needed, and its parser trusts the counts in it
            | MYSQL_PREVIOUS_GTIDS_EVENT => return Ok(()),
            _ => {}
        }
        let Some(data) = ev.read_data()? else {
            return Ok(());
        };
        match data {
            // the cursor has moved to the file it names
            EventData::RotateEvent(_) => {}
            EventData::GtidEvent(g) => {
                st.gtids
                    .mysql(g.sid(), g.tag().map(|t| t.as_str()), g.gno());
                st.begin(at);
            }
            EventData::QueryEvent(q) => {
                self.query_event(st, &q.schema(), q.query().into_owned(), at)
                    .await?
            }
            EventData::XidEvent(_) => self.commit(st, at).await?,
            EventData::RowsEvent(rows) => match stream.get_tme(rows.table_id()) {
                Some(tme) => self.rows_event(st, &rows, tme, at, warned).await?,
                None => {
                    tracing::trace!(target: LOG_TARGET, table_id = rows.table_id(), "rows event without table map")
                }
            },
            other => tracing::trace!(target: LOG_TARGET, ?other, "other event"),
        }
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
            st.begin(at);
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
        let (def, schema) = self.schema_for(st, &name, tme, &id, at.end).await?;
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
                log_order: st.txn_order,
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

    /// The schema to decode a rows event of `name` with: the one in use while the event's
    /// TABLE_MAP is the one it was checked against; else the first that fits the TABLE_MAP of
    /// the history's entry as of this position, the table as `information_schema` has it now,
    /// and the TABLE_MAP's own columns (binlog_row_metadata = FULL), recorded in the history
    /// here. A table that changed again since the event was written is thus never decoded
    /// with its later columns.
    async fn schema_for(
        &mut self,
        st: &mut StreamState<'_>,
        name: &str,
        tme: &TableMapEvent<'_>,
        id: &TableId,
        end_pos: u64,
    ) -> Result<(Arc<MyTable>, Arc<TableSchema>), MySqlError> {
        let map_id = tme.table_id();
        if let Some(c) = st.current.get(name) {
            if c.map_id == map_id {
                return Ok((c.def.clone(), c.schema.clone()));
            }
        }
        let map = TableMap::of(tme);
        if let Some(c) = st.current.get_mut(name) {
            if map.fits(&c.def) {
                c.map_id = map_id;
                return Ok((c.def.clone(), c.schema.clone()));
            }
        }
        let def = match self.history.at(name, &st.cur.file, end_pos) {
            Some(d) if map.fits(d) => d.clone(),
            _ => self.definition_now(st, name, &map, id, end_pos).await?,
        };
        let schema = self.table_schema(&def)?;
        let def = Arc::new(def);
        st.out.add(SourceEvent::Table(schema.clone()));
        st.current.insert(
            name.to_string(),
            Current {
                def: def.clone(),
                schema: schema.clone(),
                map_id,
            },
        );
        Ok((def, schema))
    }

    /// The table's columns for an event the history has no fitting entry for: the catalog's,
    /// if they fit the event's TABLE_MAP, else the TABLE_MAP's own; recorded in the history at
    /// `end_pos` so a replay decodes the same way.
    async fn definition_now(
        &mut self,
        st: &mut StreamState<'_>,
        name: &str,
        map: &TableMap,
        id: &TableId,
        end_pos: u64,
    ) -> Result<MyTable, MySqlError> {
        let now = schema::load_table(&mut st.meta, &id.db, &id.table).await?;
        let def = match now {
            Some(d) if map.fits(&d) => d,
            now => match map.definition(&id.db, &id.table, now.as_ref()) {
                Some(d) => {
                    tracing::info!(target: LOG_TARGET, table = name, file = %st.cur.file, pos = end_pos,
                        "the table changed again since this binlog event was written: its columns are taken from the event");
                    d
                }
                None if now.is_none() => {
                    return Err(setup(
                        format!("table {name} is in the binlog but not in information_schema, and the binlog events carry no column names"),
                        "set binlog_row_metadata = FULL on the server (column names in every event), or restart from a later position or re-snapshot",
                    ))
                }
                None => {
                    return Err(setup(
                        format!("binlog rows of {name} do not match the table's columns now ({} columns), and the schema history has no matching entry; the events carry no column names to decode them with", now.map_or(0, |d| d.columns.len())),
                        "set binlog_row_metadata = FULL on the server (column names in every event, so a table changed again since is decoded as it was), then move state.dir away and re-snapshot",
                    ))
                }
            },
        };
        self.history.append(&st.cur.file, end_pos, def.clone())?;
        Ok(def)
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
                    tracing::debug!(target: LOG_TARGET, "a statement that names no tracked table is not written");
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
            Some(BinlogValue::Jsonb(j)) => {
                warned.value(name, &c.name, super::values::jsonb_text(j))
            }
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

/// MariaDB's own event types (mysql_async parses MySQL's; these are read by number).
const MARIADB_ANNOTATE_ROWS_EVENT: u8 = 160;
const MARIADB_BINLOG_CHECKPOINT_EVENT: u8 = 161;
/// A transaction starts; body: seq_no u64, domain u32, flags u8.
const MARIADB_GTID_EVENT: u8 = 162;
const MARIADB_GTID_LIST_EVENT: u8 = 163;
pub(crate) const MYSQL_PREVIOUS_GTIDS_EVENT: u8 = 35;

pub(super) struct StreamState<'a> {
    /// where the stream is in the server's binlog
    cur: Cursor,
    /// incremental snapshots: queued tables, and the chunk waiting for the binlog end its read
    /// saw (file, offset)
    pub(super) inc: Incremental<(String, u64)>,
    gtids: GtidSet,
    /// commit time (ms) of the open transaction, -1 outside one
    txn_time: i64,
    /// the open transaction's place in the binlog (`binlog_log_order` of its first event)
    txn_order: u64,
    out: &'a mut Batcher,
    pub(super) meta: Conn,
    current: HashMap<String, Current>,
}

/// The definition a table's rows are decoded with, and the TABLE_MAP id it was checked
/// against (a table gets a new id when its definition is reloaded, after a DDL too).
struct Current {
    def: Arc<MyTable>,
    schema: Arc<TableSchema>,
    map_id: u64,
}

impl StreamState<'_> {
    /// A transaction starts at `at`: its time, and its place in the binlog.
    #[inline]
    fn begin(&mut self, at: &EventAt) {
        self.txn_time = at.ts_ms;
        self.txn_order = binlog_log_order(&self.cur.file, at.start);
    }

    /// Has the stream read up to binlog position `h`?
    fn passed(&self, h: &(String, u64)) -> bool {
        crate::model::position::binlog_order(&self.cur.file, self.cur.pos, &h.0, h.1)
            .is_some_and(|o| o != std::cmp::Ordering::Less)
    }
}
