//! The Postgres change stream: pgoutput messages → events, in log order.
//!
//! Invariants:
//! - Checkpoint markers only at commits and at heartbeat messages outside any transaction.
//! - A change of a table whose commit record starts before the table's fence is dropped (it is
//!   in the table's snapshot); relation messages pick the fence up for their table.
//! - While the pipeline applies backpressure, standby status updates keep flowing (every 1 s),
//!   so a slow broker never makes the server drop the connection for `wal_sender_timeout`.
//! - The flush LSN reported to the server is only ever a position the committer stored.
//! - An ended transaction reaches the pipeline before the next message is read, and handing it
//!   on awaits no timer: only room in the channel.

use super::ddl;
use super::error::SourceError;
use super::incremental::{self, Watermark};
use super::pgoutput::{self, CopyMessage, LogicalMessage, OldKind, Relation, Tuple, TupleValue};
use super::replication::{pg_ts_to_unix_ms, quote_ident, PgError, ReplicationConn};
use super::tables::{TableDecoder, Tables};
use crate::model::event::{ChangeEvent, DdlEvent, DdlOp, Marker, Op, SourceEvent};
use crate::model::position::{Lsn, SourcePosition};
use crate::model::schema::TableSchema;
use crate::model::value::Value;
use crate::source::batch::{Batcher, Closed};
use crate::source::incremental::{Incremental, Job};
use crate::source::plan::{covered, Fence};
use crate::source::SnapshotRequest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub(super) struct RelEntry {
    decoder: Option<Arc<TableDecoder>>,
    /// the table's snapshot fence: its changes committed before it are in the snapshot
    fence: Option<SourcePosition>,
    /// replica-identity flags per column
    key_flags: Arc<[bool]>,
}

pub(super) struct StreamState {
    pub(super) tables: Tables,
    pub(super) rels: HashMap<u32, RelEntry>,
    pub(super) fence: Fence,
    pub(super) out: Batcher,
    /// commit LSN and commit time (ms) of the open transaction
    pub(super) txn: Option<(Lsn, i64)>,
    pub(super) received: Lsn,
    /// last position the committer stored (the slot's flush LSN)
    pub(super) acked: Lsn,
    /// the newest position handed on as a checkpoint (acknowledged once `acked` reaches it)
    pub(super) emitted: Lsn,
    /// the open transaction's id
    pub(super) xid: u32,
    /// incremental snapshots: queued tables and the chunk waiting for its watermark
    pub(super) inc: Incremental<Watermark>,
    pub(super) recent: incremental::Recent,
    pub(super) chunks: u64,
    /// `snapshot.chunk_pages`
    pub(super) chunk_pages: u32,
}

/// Report positions. The flush position is what Kafka acknowledged, except when rowstream is
/// idle (no open transaction, nothing waiting, every checkpoint handed on acknowledged): then
/// everything the server sent so far is confirmed, WAL that decoded to nothing (a shutdown
/// checkpoint) included. A server shutting down waits for exactly that before it lets its
/// walsender end the stream.
async fn send_status(conn: &mut ReplicationConn, st: &StreamState) -> Result<(), PgError> {
    let idle = st.txn.is_none() && st.out.is_empty() && st.acked >= st.emitted;
    let flush = if idle {
        st.acked.max(st.received)
    } else {
        st.acked
    };
    conn.send_status(st.received.0.max(flush.0), flush.0, flush.0, false)
        .await
}

/// Hand the batch to the pipeline, keeping the server's keepalive satisfied while we wait.
/// No timer is awaited before the first try: a fresh interval's first tick waits for the timer
/// wheel's next millisecond, which at one flush per transaction cost 2/3 of the streaming
/// throughput (and, with the channel full, capped it near 6k transactions/s).
async fn flush_batch(conn: &mut ReplicationConn, st: &mut StreamState) -> Result<(), SourceError> {
    if st.out.try_flush()? {
        return Ok(());
    }
    let (received, acked) = (st.received, st.acked);
    let every = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            r = st.out.flush() => return Ok(r?),
            _ = tick.tick() => conn.send_status(received.0.max(acked.0), acked.0, acked.0, false).await?,
        }
    }
}

pub(super) async fn stream_loop(
    conn: &mut ReplicationConn,
    st: &mut StreamState,
    acks: &mut watch::Receiver<Option<SourcePosition>>,
    shutdown: &mut watch::Receiver<bool>,
    requests: &mut mpsc::Receiver<SnapshotRequest>,
) -> Result<(), SourceError> {
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if st.txn.is_none() && !*shutdown.borrow() {
            if let Some(job) = st.inc.next_job().cloned() {
                st.chunks += 1;
                let ctx = incremental::ChunkCtx {
                    tables: &mut st.tables,
                    inc: &mut st.inc,
                    recent: &st.recent,
                    chunk_pages: st.chunk_pages,
                };
                incremental::read_chunk(ctx, &job, st.chunks).await?;
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                // finish the open transaction's batch? No: an unfinished transaction is replayed
                // after restart; only whole transactions were marked.
                flush_batch(conn, st).await?;
                return Ok(());
            }
            r = acks.changed() => {
                if r.is_err() { return Err(Closed.into()); }
                if let Some(SourcePosition::Postgres { lsn }) = acks.borrow_and_update().clone() {
                    st.acked = st.acked.max(lsn);
                }
                send_status(conn, st).await?;
            }
            _ = status_tick.tick() => send_status(conn, st).await?,
            Some(req) = requests.recv() => snapshot_request(st, req).await?,
            data = conn.next_copy_data() => {
                match pgoutput::parse_copy(data?)? {
                    CopyMessage::Keepalive { wal_end, reply, .. } => {
                        if st.txn.is_none() && st.out.is_empty() {
                            st.received = st.received.max(wal_end);
                        }
                        if reply { send_status(conn, st).await?; }
                    }
                    CopyMessage::XLogData { wal_end, send_time, data, .. } => {
                        let msg = pgoutput::parse_logical(data)?;
                        let end_of_txn = handle(st, msg, send_time).await?;
                        st.received = st.received.max(wal_end);
                        if end_of_txn || st.out.is_full() {
                            flush_batch(conn, st).await?;
                        }
                    }
                }
            }
        }
    }
}

/// "Snapshot these tables again": queued when every one can be, else refused with the reasons.
async fn snapshot_request(st: &mut StreamState, req: SnapshotRequest) -> Result<(), SourceError> {
    let mut problems = Vec::new();
    for t in &req.tables {
        if let Some(p) = incremental::refuse(&mut st.tables, t).await? {
            problems.push(p);
        }
    }
    if problems.is_empty() {
        for t in &req.tables {
            st.inc.add(Job::new(t.clone(), serde_json::Value::Null));
        }
    }
    req.answer(problems);
    Ok(())
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
            xid,
        } => {
            st.txn = Some((final_lsn, pg_ts_to_unix_ms(commit_ts)));
            st.xid = xid;
        }
        LogicalMessage::Commit {
            end_lsn, commit_ts, ..
        } => {
            st.txn = None;
            st.recent.push(st.xid);
            st.emitted = st.emitted.max(end_lsn);
            st.out.add(SourceEvent::Marker(Marker::Checkpoint {
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
                emit(
                    st,
                    change(d.schema.clone(), Op::Insert, None, Some(after), t),
                );
            }
        }
        LogicalMessage::Update { rel, old, new } => {
            if let Some((d, t)) = live(st, rel) {
                let old_full = match &old {
                    Some((OldKind::Full, tup)) => Some(tup),
                    _ => None,
                };
                let after = row(st, &d, &new, old_full);
                let before = old.as_ref().map(|(k, tup)| old_row(st, &d, rel, k, tup));
                emit(
                    st,
                    change(d.schema.clone(), Op::Update, before, Some(after), t),
                );
            }
        }
        LogicalMessage::Delete { rel, old: (k, tup) } => {
            if let Some((d, t)) = live(st, rel) {
                let before = old_row(st, &d, rel, &k, &tup);
                emit(
                    st,
                    change(d.schema.clone(), Op::Delete, Some(before), None, t),
                );
            }
        }
        LogicalMessage::Truncate { options, rels } => {
            for rel in rels {
                if let Some((d, t)) = live(st, rel) {
                    let id = &d.schema.id;
                    st.inc.reread(id);
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
                    st.out.add(SourceEvent::Ddl(DdlEvent {
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
                    st.emitted = st.emitted.max(lsn);
                    st.out.add(SourceEvent::Marker(Marker::Checkpoint {
                        position: SourcePosition::Postgres { lsn },
                        event_time_ms: pg_ts_to_unix_ms(send_time),
                    }));
                    return Ok(true);
                }
            } else if prefix == incremental::WATERMARK_PREFIX {
                if st
                    .inc
                    .waiting_for()
                    .is_some_and(|w| w.token.as_bytes() == &content[..])
                {
                    st.inc.close(&mut st.out).await?;
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
) -> ChangeEvent {
    ChangeEvent {
        table,
        op,
        before,
        after,
        event_time_ms: t,
        snapshot: false,
        log_order: 0,
    }
}

/// Out with a streamed change (its place in the log: the transaction's commit LSN); a chunk
/// whose read did not see its transaction loses its keys.
fn emit(st: &mut StreamState, mut ev: ChangeEvent) {
    ev.log_order = st.txn.map_or(0, |(lsn, _)| lsn.0);
    if st.inc.waiting_for().is_some_and(|w| w.touches(st.xid)) {
        st.inc.touched(&ev);
    }
    st.out.add(SourceEvent::Change(ev));
}

/// The decoder of a relation whose change must be emitted now, with the commit time.
fn live(st: &StreamState, rel: u32) -> Option<(Arc<TableDecoder>, i64)> {
    let e = st.rels.get(&rel)?;
    let d = e.decoder.as_ref()?;
    let (commit_lsn, t) = st.txn.unwrap_or((Lsn(u64::MAX), -1));
    if let Some(fence) = &e.fence {
        if covered(fence, &SourcePosition::Postgres { lsn: commit_lsn }) {
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
                    .render_failed(&d.schema, i, "binary tuple value in text mode")
            }
        });
    }
    out
}

/// Old image as the log carries it: the whole row (`O`), or only the identity columns (`K`).
/// The old row an UPDATE or DELETE carries: the whole row (replica identity full) or only the
/// key columns of relation `rel` (the others absent).
fn old_row(
    st: &mut StreamState,
    d: &TableDecoder,
    rel: u32,
    kind: &OldKind,
    tup: &Tuple,
) -> Vec<Value> {
    let full = row(st, d, tup, None);
    if let OldKind::Full = kind {
        return full;
    }
    let key_flags = st.rels.get(&rel).map(|e| &e.key_flags[..]).unwrap_or(&[]);
    full.into_iter()
        .enumerate()
        .map(|(i, v)| match key_flags.get(i) {
            Some(true) => v,
            _ => Value::Absent,
        })
        .collect()
}

async fn relation(st: &mut StreamState, rel: Relation) -> Result<(), SourceError> {
    // a partition's changes are its partitioned table's, whether or not the server published
    // them under the root (publish_via_partition_root)
    let root = st
        .tables
        .catalog
        .client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.oid = pg_partition_root($1::oid) AND c.oid <> $1::oid",
            &[&rel.oid],
        )
        .await?;
    let id = match &root {
        Some(r) => st
            .tables
            .table_id(&r.get::<_, String>(0), &r.get::<_, String>(1)),
        None => st.tables.table_id(&rel.namespace, &rel.name),
    };
    let key_flags: Arc<[bool]> = rel.columns.iter().map(|c| c.flags & 1 == 1).collect();
    let decoder = if st.tables.filter.matches(&id) {
        let cols: Vec<(String, u32, i32)> = rel
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.type_oid, c.typmod))
            .collect();
        let d = st.tables.decoder(rel.oid, id.clone(), &cols).await?;
        if d.schema.key.is_none() && rel.replica_identity != b'f' {
            tracing::warn!(table = %id, "table has no primary key: records carry a null key; UPDATE/DELETE need REPLICA IDENTITY FULL on the source");
        }
        st.out.add(SourceEvent::Table(d.schema.clone()));
        Some(Arc::new(d))
    } else {
        None
    };
    let fence = st.fence.get(&id.pattern_name()).cloned();
    st.rels.insert(
        rel.oid,
        RelEntry {
            decoder,
            fence,
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
        // a partition's rows and changes are its partitioned table's (publish_via_partition_root):
        // no topic, no DDL record of its own
        let partition = st
            .tables
            .catalog
            .client
            .query_opt(
                "SELECT relispartition FROM pg_class WHERE oid = $1::oid",
                &[&obj.oid],
            )
            .await?
            .is_some_and(|r| r.get::<_, bool>(0));
        if partition {
            continue;
        }
        st.inc.reread(&id);
        if st.fence.covers(
            &id.pattern_name(),
            &SourcePosition::Postgres { lsn: commit_lsn },
        ) {
            continue;
        }
        let schema = match &obj.columns {
            Some(cols) => {
                let cols: Vec<(String, u32, i32)> = cols
                    .iter()
                    .map(|c| (c.name.clone(), c.type_oid, c.typmod))
                    .collect();
                st.tables
                    .decoder(obj.oid, id.clone(), &cols)
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
                None => st.tables.schemas.with_key(id.clone(), vec![], None),
            },
        };
        st.out.add(SourceEvent::Table(schema.clone()));
        st.out.add(SourceEvent::Ddl(DdlEvent {
            table: schema,
            op,
            text: msg.query.clone(),
            event_time_ms: t,
        }));
    }
    Ok(())
}
