//! The pipeline stage: source events → DataWorks records → Kafka, plus MHEARTBEAT records.
//!
//! One task processes whole batches (no per-row task hop), encoding into two reused buffers
//! (payload and key); librdkafka copies them on send.
//!
//! Invariants:
//! - Records leave in source order; a marker reaches the tracker after every record before it
//!   was handed to the producer.
//! - An UPDATE whose key changed becomes DELETE (old key) + INSERT (new key), so each key's
//!   history stays in its partition (spec §4.2); with `encode.split_update` an UPDATE is
//!   UPDATE_BEFORE + UPDATE_AFTER sharing one sequenceId (spec §4.1).
//! - Snapshot rows carry sequenceId "-1" and eventTime/checkpointTime -1 (spec §4.5).
//! - Heartbeats go to every partition of every known topic, with the commit time of the newest
//!   fully delivered position (spec §4.7).
//! - `kafka.exactly_once`: every `state.commit_interval_ms` the pipeline waits for every record
//!   sent, folds the released markers into the state, writes the state record into the same
//!   transaction and commits it: records and the position covering them become visible
//!   together. A transaction ends only at a marker (the end of a source transaction, of a
//!   snapshot chunk), never between two records of one: records after the last marker would
//!   be committed with a position before them and sent again after a crash. So a commit that
//!   falls due mid-way waits for the next marker, and at the end of the input an unfinished
//!   tail is aborted (the next start sends it). Only committed states leave the pipeline
//!   (`Eos::committed`).
//! - `encode.transaction_markers`: a source transaction's records are preceded by its
//!   TRANSACTION_BEGIN and followed by its TRANSACTION_END, both in `encode.transaction_topic`
//!   (keyed by the source database, so one connector's markers keep their order in one
//!   partition; no heartbeats there). END goes out when the transaction ends: at its
//!   `Checkpoint` marker, before the marker reaches the tracker (the checkpoint covers END), or
//!   at a change of another transaction; never at a stop (see `transactions`). Markers count
//!   as records for the exactly-once commits, which end only at markers: BEGIN..END of one
//!   source transaction commit together.
//! - A record that cannot go to its topic is parked (`dead_letter`): a row with a value the
//!   source could not render (`errors.bad_values = "park"`), one over `message.max.bytes`
//!   (`kafka.oversized = "park"`), one the broker refused for good (`errors.tolerance =
//!   "all"`, handed back by the producer as a `Refusal` with its tracker id still open). Its
//!   dead-letter record goes through the same producer and tracker, so the checkpoint covers
//!   it. A parked record is not one of its transaction's records for the markers (unless the
//!   broker refused it after it was counted).

use super::dead_letter::{describe, DeadLetter, ParkError};
use super::lease::LeaseKeeper;
use super::transactions::{Begin, End, Transactions};
use crate::checkpoint::store::{Store, StoreError};
use crate::checkpoint::tracker::Tracker;
use crate::config::{Config, KafkaConfig, Oversized};
use crate::error::{Classify, ErrorClass};
use crate::format::dataworks::{self, RowOp, Times};
use crate::format::parked::{BadColumn, Parked, Position, Why};
use crate::kafka::{KafkaSink, Refusal, SinkError};
use crate::metrics::Metrics;
use crate::model::event::{Batch, ChangeEvent, Op, SourceEvent};
use crate::model::schema::{TableSchema, TYPES_HEADER};
use crate::model::sequence::{SequenceGen, SequenceId};
use crate::model::time::now_ms;
use crate::model::value::Value;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::pipeline";

#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot persist the sequenceId lease: {0}")]
    Store(#[from] StoreError),
    #[error("a record of {table} (key {key}) is {size} bytes, over the producer's message.max.bytes ({limit})\n  fix: raise kafka.properties.\"message.max.bytes\" and the broker's message.max.bytes (or the topic's max.message.bytes), or set kafka.oversized = \"skip\" or \"placeholder\" (per table: kafka.oversized_tables)")]
    Oversized {
        table: String,
        key: String,
        size: usize,
        limit: usize,
    },
    #[error(transparent)]
    Park(#[from] ParkError),
    #[error("a DDL ({kinds}) on table {table} stopped the connector, as source.ddl_policy asks; the position stays before it\n  fix: apply the change where the topics are consumed, then set source.ddl_policy for {kinds} to \"apply\", \"warn\" or \"ignore\" and start again: the DDL is read again")]
    DdlStopped { table: String, kinds: String },
    #[error("table {table} has no primary key: under encode.profile = \"paimon\" Paimon makes it an append-only table, which fails the Flink job on its first DELETE or UPDATE\n  fix: give it a key with source.keys (e.g. source.keys = {{ \"{table}\" = [\"id\"] }}), or leave it out of source.tables")]
    Keyless { table: String },
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Sink(e) => e.class(),
            PipelineError::Store(e) => e.class(),
            PipelineError::Oversized { .. }
            | PipelineError::Park(_)
            | PipelineError::Keyless { .. }
            | PipelineError::DdlStopped { .. } => ErrorClass::Setup,
        }
    }
}

/// How records are shaped and how often heartbeats go out (from `[encode]`, `[kafka]`,
/// `[heartbeat]`).
pub(crate) struct Settings {
    /// UPDATE as UPDATE_BEFORE + UPDATE_AFTER
    pub(crate) split_update: bool,
    /// `encode.order_header`: change records carry `rowstream.order`
    pub(crate) order_header: bool,
    /// `encode.types_header`: row records carry `rowstream.types` where their table has one
    pub(crate) types_header: bool,
    /// joins the text forms of multi-column keys
    pub(crate) key_sep: String,
    pub(crate) heartbeat: Duration,
    /// the largest record (value + key) the producer accepts
    pub(crate) max_record_bytes: usize,
    /// the oversized-record policy, per table
    pub(crate) kafka: KafkaConfig,
    /// the `schema` member's shape (`encode.profile`, `encode.schema_in_table_name`)
    pub(crate) shape: dataworks::Shape,
    /// heartbeats and DDL records go here instead of the data topics; `""`: nowhere
    pub(crate) side_topic: Option<String>,
    /// `source.ddl_policy`: what a DDL of each type does
    pub(crate) ddl_policy: std::collections::BTreeMap<String, String>,
    /// `encode.transaction_markers`: where TRANSACTION_BEGIN / TRANSACTION_END go
    pub(crate) markers: Option<MarkerSettings>,
    /// `[errors]`: which records are parked, where
    pub(crate) errors: crate::config::ErrorsConfig,
}

/// Where transaction markers go and under which key.
pub(crate) struct MarkerSettings {
    /// `encode.transaction_topic`
    pub(crate) topic: String,
    /// the Kafka key of every marker: the database `source.url` names (a MySQL URL that names
    /// none: each transaction's first table's database)
    pub(crate) key: Option<String>,
}

impl Settings {
    pub(crate) fn from_config(cfg: &Config) -> Settings {
        Settings {
            split_update: cfg.encode.split_update,
            order_header: cfg.encode.order_header,
            types_header: cfg.encode.types_header,
            key_sep: cfg.kafka.key_separator.clone(),
            heartbeat: Duration::from_millis(cfg.heartbeat.interval_ms),
            max_record_bytes: cfg.kafka.message_max_bytes(),
            kafka: cfg.kafka.clone(),
            shape: dataworks::Shape {
                empty_key_list: cfg.encode.profile == crate::config::Profile::Paimon,
                text_values: cfg.encode.profile == crate::config::Profile::Paimon,
                schema_in_table_name: cfg.encode.schema_in_table_name,
            },
            side_topic: cfg.encode.side_topic.clone(),
            ddl_policy: cfg.source.ddl_policy.clone(),
            markers: cfg.encode.transaction_markers.then(|| MarkerSettings {
                topic: cfg.encode.transaction_topic.clone(),
                key: cfg.source.database(),
            }),
            errors: cfg.errors.clone(),
        }
    }
}

/// What an oversized record does (`kafka.oversized`).
enum Fit {
    Send,
    Skip,
    Park,
}

/// Room kept in a dead-letter record for what it says besides the record it holds.
const PARKED_OVERHEAD: usize = 4096;

/// The next refused record to park, or never when refusals are not parked.
async fn recv(rx: &mut Option<mpsc::UnboundedReceiver<Refusal>>) -> Option<Refusal> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Headers holding `rowstream.order` only.
fn order_header(v: &[u8; 25]) -> rdkafka::message::OwnedHeaders {
    rdkafka::message::OwnedHeaders::new_with_capacity(1).insert(rdkafka::message::Header {
        key: ORDER_HEADER,
        value: Some(&v[..]),
    })
}

/// Written instead of a value too large for a Kafka record (`kafka.oversized = "placeholder"`).
pub(crate) const OVERSIZED_PLACEHOLDER: &str = "__rowstream_oversized_value__";

/// Roughly how many bytes a value takes in the record (text as is, bytes as base64).
fn rendered_len(v: &Value) -> usize {
    match v {
        Value::Text(s) | Value::Decimal(s) => s.len(),
        Value::Bytes(b) => b.len() / 3 * 4 + 4,
        Value::Array(a) => a.iter().map(rendered_len).sum::<usize>() + a.len() + 2,
        _ => 8,
    }
}

/// Replace the largest value of `before`/`after` by the placeholder; false when none is left
/// worth replacing.
fn replace_largest(before: &mut Option<Vec<Value>>, after: &mut Option<Vec<Value>>) -> bool {
    let largest = before
        .iter_mut()
        .chain(after.iter_mut())
        .flat_map(|row| row.iter_mut())
        .filter(|v| !matches!(v, Value::Text(s) if s == OVERSIZED_PLACEHOLDER))
        .max_by_key(|v| rendered_len(v));
    match largest {
        Some(v) if rendered_len(v) > OVERSIZED_PLACEHOLDER.len() => {
            *v = Value::Text(OVERSIZED_PLACEHOLDER.into());
            true
        }
        _ => false,
    }
}

/// `kafka.exactly_once`: the state the pipeline folds and commits with its transactions.
pub(crate) struct Eos {
    pub(crate) state: crate::checkpoint::store::State,
    /// the state of the last committed transaction
    pub(crate) committed: tokio::sync::watch::Sender<crate::checkpoint::store::State>,
    pub(crate) interval: Duration,
    /// records were sent since the last marker: a commit now would split a source transaction
    pub(crate) unmarked: bool,
    /// the interval elapsed while `unmarked`: commit at the next marker
    pub(crate) due: bool,
}

pub(crate) struct Pipeline {
    eos: Option<Eos>,
    sink: KafkaSink,
    seq: SequenceGen,
    /// stores the sequenceId lease ahead of the ids, off the delivery path
    lease: LeaseKeeper,
    store: Arc<Store>,
    tracker: Arc<Tracker>,
    stats: Arc<Metrics>,
    settings: Settings,
    buf: Vec<u8>,
    key: Vec<u8>,
    keyless_warned: HashSet<String>,
    /// `source.ddl_policy` and each table's last columns
    ddl: super::ddl_policy::DdlPolicies,
    /// per-record warnings, logged once with a count
    repeats: crate::repeats::Repeats,
    /// this batch's records and bytes per table and op, merged into `stats` after it
    traffic: crate::metrics::TrafficBatch,
    /// the `rowstream.order` header of the change records
    order: LogOrder,
    /// `encode.transaction_markers`: the open source transaction and its counts
    txns: Transactions,
    /// a transaction marker being encoded (`buf` may hold the record it precedes)
    marker_buf: Vec<u8>,
    /// what is parked, where, and how many were
    dead: DeadLetter,
    /// `errors.tolerance = "all"`: the records the broker refused, to park
    refusals: Option<mpsc::UnboundedReceiver<Refusal>>,
    /// a dead-letter record being encoded
    park_buf: Vec<u8>,
}

/// The Kafka header that orders change records along the source log, replays included.
pub(crate) const ORDER_HEADER: &str = "rowstream.order";

/// The `rowstream.order` header of each change record: the transaction's place in the source
/// log (`ChangeEvent::log_order`, 16 hex digits), a dot, and the record's index within the
/// transaction (8 hex digits). A record sent again after a restart carries the value it had
/// the first time (the source log and the transaction's records are the same), and values
/// increase along the log, so comparing them as strings orders a key's records and tells a
/// replay from a newer change. Snapshot rows carry none.
#[derive(Default)]
struct LogOrder {
    /// the transaction of the last change (snapshot rows in between do not end it)
    txn: u64,
    /// the index of the transaction's next record
    index: u32,
    /// the current record is a change (not a snapshot row)
    change: bool,
}

impl LogOrder {
    fn snapshot(&mut self) {
        self.change = false;
    }

    /// Is the current record a change (not a snapshot row)?
    fn is_change(&self) -> bool {
        self.change
    }

    fn change(&mut self, log_order: u64) {
        if self.txn != log_order {
            self.txn = log_order;
            self.index = 0;
        }
        self.change = true;
    }

    /// The header value of the next record of the current change, if it has one.
    fn next(&mut self) -> Option<[u8; 25]> {
        if !self.change {
            return None;
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut v = [b'.'; 25];
        for (i, d) in v[..16].iter_mut().enumerate() {
            *d = HEX[((self.txn >> (60 - 4 * i)) & 0xf) as usize];
        }
        for (i, d) in v[17..].iter_mut().enumerate() {
            *d = HEX[((self.index >> (28 - 4 * i)) & 0xf) as usize];
        }
        self.index = self.index.wrapping_add(1);
        Some(v)
    }
}

impl Pipeline {
    pub(crate) fn new(
        sink: KafkaSink,
        seq: SequenceGen,
        store: Arc<Store>,
        tracker: Arc<Tracker>,
        stats: Arc<Metrics>,
        settings: Settings,
    ) -> Pipeline {
        let dead = DeadLetter::new(&settings.errors, stats.clone());
        let refusals = match (&dead.topic, dead.refused) {
            (Some(topic), true) => sink.park_refusals(topic),
            _ => None,
        };
        Pipeline {
            dead,
            refusals,
            park_buf: Vec::new(),
            eos: None,
            sink,
            seq,
            lease: LeaseKeeper::new(store.clone()),
            store,
            tracker,
            stats,
            ddl: super::ddl_policy::DdlPolicies::new(&settings.ddl_policy),
            settings,
            buf: Vec::with_capacity(4096),
            key: Vec::with_capacity(64),
            keyless_warned: HashSet::new(),

            repeats: Default::default(),
            traffic: Default::default(),
            order: Default::default(),
            txns: Transactions::default(),
            marker_buf: Vec::new(),
        }
    }

    /// Commit records with their position in Kafka transactions (`kafka.exactly_once`).
    pub(crate) fn exactly_once(&mut self, eos: Eos) {
        self.eos = Some(eos);
    }

    /// `kafka.exactly_once`: wait for every record of the open transaction, store the state
    /// they reach in it, commit, begin the next.
    async fn commit_transaction(&mut self) -> Result<(), PipelineError> {
        let Some(eos) = &mut self.eos else {
            return Ok(());
        };
        self.store.fenced()?;
        tokio::task::block_in_place(|| self.sink.flush(Duration::from_secs(60))).map_err(|e| {
            SinkError::Delivery(format!("waiting for the transaction's records: {e}"))
        })?;
        if let Some(f) = self.tracker.failure() {
            return Err(SinkError::from(f).into());
        }
        let changed = crate::checkpoint::commit::fold(&self.tracker, &self.store, &mut eos.state)?;
        if changed {
            if let Some((topic, partition, key)) = self.store.state_record() {
                let body = serde_json::to_vec(&eos.state)
                    .map_err(|e| StoreError::Kafka(format!("state record: {e}")))?;
                self.sink
                    .send(&topic, Some(key.as_bytes()), &body, Some(partition))
                    .await?;
            }
        }
        self.sink.commit_transaction()?;
        tracing::debug!(target: LOG_TARGET, state_changed = changed, "committed a transaction");
        if changed {
            self.store.remember(&eos.state);
            eos.committed.send_replace(eos.state.clone());
        }
        Ok(())
    }

    /// A change or DDL record went out after the last marker.
    fn unmarked(&mut self) {
        if let Some(eos) = &mut self.eos {
            eos.unmarked = true;
        }
    }

    /// `kafka.exactly_once`: the commit interval elapsed; commit now if the last thing sent
    /// was a marker, else at the next one.
    async fn transaction_due(&mut self) -> Result<(), PipelineError> {
        match &mut self.eos {
            Some(eos) if eos.unmarked => {
                eos.due = true;
                Ok(())
            }
            Some(_) => self.commit_transaction().await,
            None => Ok(()),
        }
    }

    /// `kafka.exactly_once`: the input ended; commit up to the last marker, abort what follows
    /// it (a source transaction cut short: the next start sends it again).
    async fn finish_transaction(&mut self) -> Result<(), PipelineError> {
        match &self.eos {
            Some(eos) if eos.unmarked => Ok(self.sink.abort_transaction()?),
            Some(_) => self.commit_transaction().await,
            None => Ok(()),
        }
    }

    /// Make sure a table's topic exists; warn once when a keyless table goes to >1 partition.
    pub(crate) async fn table(&mut self, t: &TableSchema) -> Result<(), PipelineError> {
        // a keyless table would become an append-only Paimon table, which refuses deletes
        if t.key.is_none() && self.settings.shape.text_values {
            return Err(PipelineError::Keyless {
                table: t.id.pattern_name(),
            });
        }
        self.ddl.learn(t);
        let n = self.sink.ensure_topic(&t.topic).await?;
        if t.key.is_none() && n > 1 && self.keyless_warned.insert(t.id.pattern_name()) {
            tracing::warn!(target: LOG_TARGET,
                table = %t.id, topic = %t.topic, partitions = n,
                "table has no key: its records have a null key and are spread over {n} partitions, so their order is not kept; add a primary key, set source.keys, or use a single-partition topic"
            );
        }
        Ok(())
    }

    /// Make sure the topics of the transaction markers (`encode.transaction_markers`) and of
    /// parked records (`errors.dead_letter_topic`) exist (at the start, as the tables' topics).
    pub(crate) async fn own_topics(&mut self) -> Result<(), PipelineError> {
        if let Some(m) = &self.settings.markers {
            self.sink.ensure_topic(&m.topic).await?;
        }
        if let Some(t) = &self.dead.topic {
            self.sink.ensure_topic(t).await?;
        }
        Ok(())
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Batch>) -> Result<(), PipelineError> {
        let mut hb = tokio::time::interval(self.settings.heartbeat);
        hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        hb.tick().await;
        let every = self
            .eos
            .as_ref()
            .map_or(Duration::from_secs(3600), |e| e.interval);
        let mut txn = tokio::time::interval(every);
        txn.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        txn.tick().await;
        let res = loop {
            tokio::select! {
                // a refused record is parked before the next batch: its id holds the checkpoint
                biased;
                Some(r) = recv(&mut self.refusals) => if let Err(e) = self.park_refused(r).await { break Err(e) },
                b = rx.recv() => match b {
                    Some(batch) => if let Err(e) = self.process(batch).await { break Err(e) },
                    None => break self.finish_transaction().await,
                },
                _ = hb.tick() => if let Err(e) = self.heartbeats().await { break Err(e) },
                _ = txn.tick(), if self.eos.is_some() => {
                    if let Err(e) = self.transaction_due().await { break Err(e) }
                }
            }
            if let Some(f) = self.tracker.failure() {
                break Err(SinkError::from(f).into());
            }
        };
        drop(rx);
        let res = match res {
            Ok(()) => self.park_the_last_refusals().await,
            Err(e) => Err(e),
        };
        // deliver what was sent, whatever stopped us; the committer stores what got through
        let sink = self.sink;
        let flushed =
            tokio::task::spawn_blocking(move || sink.flush(Duration::from_secs(60))).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(target: LOG_TARGET, error = %e, "not every record was acknowledged before stopping; the next start resends from the last checkpoint");
        }
        res?;
        if let Some(f) = self.tracker.failure() {
            return Err(SinkError::from(f).into());
        }
        Ok(())
    }

    async fn heartbeats(&mut self) -> Result<(), PipelineError> {
        let et = self.stats.delivered_event_time.load(Ordering::Relaxed);
        let topics: Vec<(String, i32)> = match self.settings.side_topic.as_deref() {
            Some("") => return Ok(()),
            Some(side) => {
                let n = self.sink.ensure_topic(side).await?;
                vec![(side.to_string(), n)]
            }
            None => {
                let markers = self.settings.markers.as_ref().map(|m| m.topic.as_str());
                let dead = self.dead.topic.as_deref();
                self.sink
                    .topics()
                    .filter(|(t, _)| Some(*t) != markers && Some(*t) != dead)
                    .map(|(t, n)| (t.to_string(), n))
                    .collect()
            }
        };
        for (topic, n) in topics {
            for p in 0..n {
                self.buf.clear();
                dataworks::encode_heartbeat(&mut self.buf, et, now_ms());
                self.sink.send(&topic, None, &self.buf, Some(p)).await?;
                self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn process(&mut self, batch: Batch) -> Result<(), PipelineError> {
        for ev in batch {
            match ev {
                SourceEvent::Change(c) => self.change(c).await?,
                SourceEvent::Ddl(d) => {
                    use super::ddl_policy::Policy;
                    let (policy, kinds) = self.ddl.decide(d.op, &d.table);
                    let table = d.table.id.pattern_name();
                    match policy {
                        Policy::Stop => {
                            return Err(PipelineError::DdlStopped {
                                table,
                                kinds: kinds.join(", "),
                            })
                        }
                        Policy::Ignore => {
                            self.table(&d.table).await?;
                            tracing::info!(target: LOG_TARGET, table = %table, ddl = %kinds.join(","), "DDL left out of the topics (source.ddl_policy)");
                            continue;
                        }
                        Policy::Warn => {
                            tracing::warn!(target: LOG_TARGET, table = %table, ddl = %kinds.join(","), op = d.op.as_str(), "DDL on a captured table (source.ddl_policy = warn): check the consumers of its topic");
                        }
                        Policy::Apply => {}
                    }
                    self.table(&d.table).await?;
                    let seq = self.lease.next(&mut self.seq)?;
                    self.buf.clear();
                    let times = Times {
                        event: d.event_time_ms,
                        system: now_ms(),
                        checkpoint: d.event_time_ms,
                    };
                    dataworks::encode_ddl(
                        &mut self.buf,
                        &d.table,
                        self.settings.shape,
                        d.op.as_str(),
                        &d.text,
                        seq,
                        times,
                    );
                    let topic = match self.settings.side_topic.as_deref() {
                        Some("") => continue, // DDL records left out (encode.side_topic = "")
                        Some(side) => {
                            self.sink.ensure_topic(side).await?;
                            side
                        }
                        None => &d.table.topic,
                    };
                    // the table's types after the change, as its rows will carry them
                    let types = match self.settings.types_header {
                        true => d.table.types.as_deref(),
                        false => None,
                    };
                    let headers = types.map(|v| {
                        rdkafka::message::OwnedHeaders::new_with_capacity(1).insert(
                            rdkafka::message::Header {
                                key: TYPES_HEADER,
                                value: Some(v.as_bytes()),
                            },
                        )
                    });
                    self.sink
                        .send_with(topic, None, &self.buf, None, headers)
                        .await?;
                    self.unmarked();
                    self.stats.ddl.fetch_add(1, Ordering::Relaxed);
                    self.traffic.add(&d.table, d.op.as_str(), self.buf.len());
                    self.stats.records.fetch_add(1, Ordering::Relaxed);
                }
                SourceEvent::Marker(m) => {
                    if matches!(m, crate::model::event::Marker::Checkpoint { .. }) {
                        // the source transaction ends here: END before the checkpoint covers it
                        self.end_transaction().await?;
                    }
                    self.tracker.mark(m);
                    if let Some(eos) = &mut self.eos {
                        eos.unmarked = false;
                        if std::mem::take(&mut eos.due) {
                            self.commit_transaction().await?;
                        }
                    }
                }
                SourceEvent::Table(t) => self.table(&t).await?,
            }
        }
        self.stats.merge(&mut self.traffic);
        Ok(())
    }

    async fn emit(
        &mut self,
        t: &TableSchema,
        op: RowOp,
        before: Option<&[Value]>,
        after: Option<&[Value]>,
        seq: Option<SequenceId>,
        event_time: i64,
    ) -> Result<(), PipelineError> {
        let keyrow = after.or(before).unwrap_or(&[]);
        let has_key = dataworks::write_key(&mut self.key, t, keyrow, &self.settings.key_sep);
        self.buf.clear();
        let times = Times {
            event: event_time,
            system: now_ms(),
            checkpoint: event_time,
        };
        dataworks::encode_row(
            &mut self.buf,
            t,
            self.settings.shape,
            op,
            before,
            after,
            seq,
            times,
        );
        if self.dead.checks_values() {
            let bad = DeadLetter::unrendered(t, [before, after]);
            if !bad.is_empty() {
                return self.bad_values(t, op, has_key, bad).await;
            }
        }
        let key_len = if has_key { self.key.len() } else { 0 };
        if self.buf.len() + key_len > self.settings.max_record_bytes {
            match self.oversized(t, has_key, op, before, after, seq, times)? {
                Fit::Send => {}
                Fit::Skip => return Ok(()),
                Fit::Park => {
                    let error = format!(
                        "the record is {} bytes, over the producer's message.max.bytes ({})\n  fix: raise kafka.properties.\"message.max.bytes\" and the broker's message.max.bytes (or the topic's max.message.bytes)",
                        self.buf.len() + key_len,
                        self.settings.max_record_bytes
                    );
                    return self
                        .park(t, op, has_key, Why::Oversized, error, Vec::new())
                        .await;
                }
            }
        }
        let change = self.order.is_change();
        if change && self.settings.markers.is_some() {
            if let Some(b) = self.txns.begin(t) {
                self.send_begin(b).await?;
            }
        }
        let key = if has_key { Some(&self.key[..]) } else { None };
        let order = match self.settings.order_header {
            true => self.order.next(),
            false => None,
        };
        let types = match self.settings.types_header {
            true => t.types.as_deref(),
            false => None,
        };
        let headers = match (order, types) {
            (None, None) => None,
            (order, types) => {
                let mut h = rdkafka::message::OwnedHeaders::new_with_capacity(2);
                if let Some(v) = &order {
                    h = h.insert(rdkafka::message::Header {
                        key: ORDER_HEADER,
                        value: Some(&v[..]),
                    });
                }
                if let Some(v) = types {
                    h = h.insert(rdkafka::message::Header {
                        key: TYPES_HEADER,
                        value: Some(v.as_bytes()),
                    });
                }
                Some(h)
            }
        };
        self.sink
            .send_with(&t.topic, key, &self.buf, None, headers)
            .await?;
        self.unmarked();
        if change && self.settings.markers.is_some() {
            self.txns.written(t);
        }
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        let len = self.buf.len() + if has_key { self.key.len() } else { 0 };
        self.traffic.add(t, op.as_str(), len);
        Ok(())
    }

    /// A row with values the source could not render, in `buf` (written as null):
    /// `errors.bad_values` is `park` or `fail`.
    async fn bad_values(
        &mut self,
        t: &TableSchema,
        op: RowOp,
        has_key: bool,
        bad: Vec<BadColumn>,
    ) -> Result<(), PipelineError> {
        if self.dead.bad_values == crate::config::BadValues::Fail {
            let key = match has_key {
                true => String::from_utf8_lossy(&self.key).into_owned(),
                false => "none".into(),
            };
            let e = DeadLetter::bad_value_error(&t.id.pattern_name(), &key, &bad);
            return Err(e.into());
        }
        let error = format!(
            "{} cannot be rendered (written as null in `record`)\n  fix: correct the value in the source; set errors.bad_values = \"null\" to write such rows with null instead",
            describe(&bad)
        );
        self.park(t, op, has_key, Why::BadValue, error, bad).await
    }

    /// Send the record in `buf` (key in `key`) to the dead-letter topic instead of its topic.
    async fn park(
        &mut self,
        t: &TableSchema,
        op: RowOp,
        has_key: bool,
        why: Why,
        error: String,
        columns: Vec<BadColumn>,
    ) -> Result<(), PipelineError> {
        let Some(topic) = self.dead.topic.clone() else {
            return Err(ParkError::NoTopic.into());
        };
        let key = has_key.then(|| self.key.clone());
        let size = self.buf.len() + key.as_ref().map_or(0, Vec::len);
        let change = self.order.is_change();
        let order = self.order.next();
        let order_text = order.map(|o| String::from_utf8_lossy(&o).into_owned());
        let postgres = t.db_type == crate::model::schema::DbType::PostgreSql;
        // the record itself, when the dead-letter record stays within message.max.bytes
        let fits = size + PARKED_OVERHEAD <= self.settings.max_record_bytes;
        let record = match why != Why::Oversized && fits {
            true => serde_json::from_slice(&self.buf).ok(),
            false => None,
        };
        let table = t.shown_id().pattern_name();
        let parked = Parked {
            parked: why,
            error,
            table: Some(table.clone()),
            topic: t.topic.clone(),
            key: key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            op: Some(op.as_str().to_string()),
            position: change.then(|| Position::from_log_order(postgres, self.order.txn)),
            order: order_text,
            columns,
            size,
            parked_at: now_ms(),
            record,
        };
        self.park_buf.clear();
        parked.encode(&mut self.park_buf);
        let error = parked.error;
        let headers = order.map(|v| order_header(&v));
        self.sink
            .send_with(&topic, key.as_deref(), &self.park_buf, None, headers)
            .await?;
        self.unmarked();
        self.dead.counted(why, &table, &error)?;
        Ok(())
    }

    /// `errors.tolerance = "all"`: the broker refused a record for good; its dead-letter
    /// record completes the record's tracker id.
    async fn park_refused(&mut self, r: Refusal) -> Result<(), PipelineError> {
        let Some(topic) = self.dead.topic.clone() else {
            return Err(ParkError::NoTopic.into());
        };
        let env =
            crate::format::record::Envelope::<crate::format::record::Values>::parse(&r.payload)
                .ok();
        let source = env
            .as_ref()
            .and_then(|e| e.schema.as_ref()?.source.as_ref());
        let table = source.and_then(|s| {
            let name = s.table_name.as_deref()?;
            Some(match s.schema_name.as_deref().or(s.db_name.as_deref()) {
                Some(ns) => format!("{ns}.{name}"),
                None => name.to_string(),
            })
        });
        let postgres = source.and_then(|s| s.db_type.as_deref()) == Some("PostgreSQL");
        let op = env.as_ref().map(|e| e.payload.op.clone());
        let order = (r.headers.iter())
            .find(|(k, _)| k == ORDER_HEADER)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        let position = (order.as_deref())
            .and_then(|o| u64::from_str_radix(o.split('.').next()?, 16).ok())
            .map(|txn| Position::from_log_order(postgres, txn));
        let record = match r.too_large || r.size + PARKED_OVERHEAD > self.settings.max_record_bytes
        {
            true => None,
            false => serde_json::from_slice(&r.payload).ok(),
        };
        let parked = Parked {
            parked: Why::Refused,
            error: r.error,
            table: table.clone(),
            topic: r.topic,
            key: r
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            op,
            position,
            order,
            columns: Vec::new(),
            size: r.size,
            parked_at: now_ms(),
            record,
        };
        self.park_buf.clear();
        parked.encode(&mut self.park_buf);
        let error = parked.error;
        let mut headers = rdkafka::message::OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in r.headers.iter().filter(|(k, _)| k == ORDER_HEADER) {
            headers = headers.insert(rdkafka::message::Header {
                key: k,
                value: Some(v),
            });
        }
        self.sink
            .send_for(
                r.id,
                &topic,
                r.key.as_deref(),
                &self.park_buf,
                None,
                Some(headers),
            )
            .await?;
        self.dead
            .counted(Why::Refused, table.as_deref().unwrap_or("?"), &error)?;
        Ok(())
    }

    /// At the end of the input: the records refused while the last ones were delivered are
    /// parked too (their ids hold the checkpoint until they are).
    async fn park_the_last_refusals(&mut self) -> Result<(), PipelineError> {
        if self.refusals.is_none() {
            return Ok(());
        }
        loop {
            let sink = &self.sink;
            tokio::task::block_in_place(|| sink.flush(Duration::from_secs(60)))
                .map_err(|e| SinkError::Delivery(format!("waiting for the last records: {e}")))?;
            let mut parked = false;
            while let Some(r) = self.refusals.as_mut().and_then(|rx| rx.try_recv().ok()) {
                self.park_refused(r).await?;
                parked = true;
            }
            if !parked {
                return Ok(());
            }
        }
    }

    /// A record over `message.max.bytes` in `buf`: apply the table's policy. `Send`: `buf`
    /// now holds a record that fits (values replaced); `Skip`: leave it out; `Park`: send it
    /// to the dead-letter topic.
    #[allow(clippy::too_many_arguments)]
    fn oversized(
        &mut self,
        t: &TableSchema,
        has_key: bool,
        op: RowOp,
        before: Option<&[Value]>,
        after: Option<&[Value]>,
        seq: Option<SequenceId>,
        times: Times,
    ) -> Result<Fit, PipelineError> {
        let table = t.id.pattern_name();
        let limit = self.settings.max_record_bytes;
        let key_len = if has_key { self.key.len() } else { 0 };
        let size = self.buf.len() + key_len;
        let policy = self.settings.kafka.oversized_for(&table);
        self.stats.oversized.fetch_add(1, Ordering::Relaxed);
        let too_large = |key: &[u8]| PipelineError::Oversized {
            table: table.clone(),
            key: match has_key {
                true => String::from_utf8_lossy(key).into_owned(),
                false => "none".into(),
            },
            size,
            limit,
        };
        match policy {
            Oversized::Fail => Err(too_large(&self.key)),
            Oversized::Skip => {
                if let Some(count) = self.repeats.hit(&format!("{table}/skip")) {
                    tracing::warn!(target: LOG_TARGET, table = %table, size, limit, count, "record over message.max.bytes left out (kafka.oversized = skip; logged once a minute with the count)");
                }
                Ok(Fit::Skip)
            }
            Oversized::Park => Ok(Fit::Park),
            Oversized::Placeholder => {
                let (mut b, mut a) = (before.map(<[Value]>::to_vec), after.map(<[Value]>::to_vec));
                while self.buf.len() + key_len > limit {
                    if !replace_largest(&mut b, &mut a) {
                        return Err(too_large(&self.key));
                    }
                    self.buf.clear();
                    dataworks::encode_row(
                        &mut self.buf,
                        t,
                        self.settings.shape,
                        op,
                        b.as_deref(),
                        a.as_deref(),
                        seq,
                        times,
                    );
                }
                if let Some(count) = self.repeats.hit(&format!("{table}/placeholder")) {
                    tracing::warn!(target: LOG_TARGET, table = %table, size, limit, count, "values over message.max.bytes replaced by a placeholder (kafka.oversized = placeholder; logged once a minute with the count)");
                }
                Ok(Fit::Send)
            }
        }
    }

    async fn change(&mut self, c: ChangeEvent) -> Result<(), PipelineError> {
        let t = c.table.clone();
        let et = c.event_time_ms;
        if c.snapshot {
            self.stats.snapshot_rows.fetch_add(1, Ordering::Relaxed);
            self.order.snapshot();
            return self
                .emit(&t, RowOp::Insert, None, c.after.as_deref(), None, -1)
                .await;
        }
        if self.settings.markers.is_some() && !self.txns.is_open(c.log_order) {
            // a change of another transaction: the open one ended (if no checkpoint said so)
            self.end_transaction().await?;
            // BEGIN's sequenceId comes before the change's records'
            let begin_seq = self.lease.next(&mut self.seq)?;
            self.txns.start(c.log_order, et, begin_seq);
        }
        self.order.change(c.log_order);
        let r = self.change_inner(&t, c, et).await;
        // counted after the send, so `changes == N && in_flight == 0` means all N acknowledged
        self.stats.changes.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// `encode.transaction_markers`: the open source transaction ended; its END, if it had a
    /// BEGIN.
    async fn end_transaction(&mut self) -> Result<(), PipelineError> {
        let Some(end) = self.txns.end() else {
            return Ok(());
        };
        let End {
            id,
            event_time,
            db_type,
            db,
            tables,
        } = end;
        let seq = self.lease.next(&mut self.seq)?;
        let marker = dataworks::Marker::End { tables: &tables };
        self.send_marker(id, event_time, db_type, &db, marker, seq)
            .await
    }

    /// `encode.transaction_markers`: a source transaction's first record is about to go out.
    async fn send_begin(&mut self, b: Begin) -> Result<(), PipelineError> {
        let marker = dataworks::Marker::Begin;
        self.send_marker(b.id, b.event_time, b.db_type, &b.db, marker, b.seq)
            .await
    }

    /// One transaction marker into `encode.transaction_topic` (created when missing), keyed by
    /// the source database.
    async fn send_marker(
        &mut self,
        id: u64,
        event_time: i64,
        db_type: crate::model::schema::DbType,
        db: &str,
        marker: dataworks::Marker<'_>,
        seq: SequenceId,
    ) -> Result<(), PipelineError> {
        let Some(m) = &self.settings.markers else {
            return Ok(());
        };
        self.sink.ensure_topic(&m.topic).await?;
        self.marker_buf.clear();
        let times = Times {
            event: event_time,
            system: now_ms(),
            checkpoint: event_time,
        };
        dataworks::encode_transaction(&mut self.marker_buf, db_type, db, id, marker, seq, times);
        let key = m.key.as_deref().unwrap_or(db);
        self.sink
            .send(&m.topic, Some(key.as_bytes()), &self.marker_buf, None)
            .await?;
        self.unmarked();
        self.stats
            .transaction_markers
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn change_inner(
        &mut self,
        t: &Arc<TableSchema>,
        c: ChangeEvent,
        et: i64,
    ) -> Result<(), PipelineError> {
        let t = t.clone();
        match c.op {
            Op::Insert => {
                let s = self.lease.next(&mut self.seq)?;
                self.emit(&t, RowOp::Insert, None, c.after.as_deref(), Some(s), et)
                    .await
            }
            Op::Delete => {
                let s = self.lease.next(&mut self.seq)?;
                self.emit(&t, RowOp::Delete, c.before.as_deref(), None, Some(s), et)
                    .await
            }
            Op::Update => {
                if key_changed(&t, c.before.as_deref(), c.after.as_deref()) {
                    let s = self.lease.next(&mut self.seq)?;
                    self.emit(&t, RowOp::Delete, c.before.as_deref(), None, Some(s), et)
                        .await?;
                    let s = self.lease.next(&mut self.seq)?;
                    return self
                        .emit(&t, RowOp::Insert, None, c.after.as_deref(), Some(s), et)
                        .await;
                }
                let s = self.lease.next(&mut self.seq)?;
                if self.settings.split_update {
                    self.emit(
                        &t,
                        RowOp::UpdateBefore,
                        c.before.as_deref(),
                        None,
                        Some(s),
                        et,
                    )
                    .await?;
                    self.emit(
                        &t,
                        RowOp::UpdateAfter,
                        None,
                        c.after.as_deref(),
                        Some(s),
                        et,
                    )
                    .await
                } else {
                    self.emit(
                        &t,
                        RowOp::UpdateAfter,
                        c.before.as_deref(),
                        c.after.as_deref(),
                        Some(s),
                        et,
                    )
                    .await
                }
            }
        }
    }
}

/// Did an UPDATE change the key? Only when the before image carries every key column.
pub(crate) fn key_changed(
    t: &TableSchema,
    before: Option<&[Value]>,
    after: Option<&[Value]>,
) -> bool {
    let (Some(k), Some(b), Some(a)) = (&t.key, before, after) else {
        return false;
    };
    k.iter().all(|&i| b.get(i).is_some_and(|v| !v.is_absent()))
        && k.iter().any(|&i| b.get(i) != a.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{Column, DbType, LogicalType, TableId};

    #[test]
    fn log_order_counts_within_a_transaction_and_sorts_as_text() {
        let mut o = LogOrder::default();
        let text = |v: Option<[u8; 25]>| String::from_utf8(v.unwrap().to_vec()).unwrap();
        o.change(0x1_5a2b_3c4d);
        assert_eq!(text(o.next()), "000000015a2b3c4d.00000000");
        assert_eq!(text(o.next()), "000000015a2b3c4d.00000001");
        // a snapshot row in between neither carries one nor ends the transaction
        o.snapshot();
        assert_eq!(o.next(), None);
        o.change(0x1_5a2b_3c4d);
        assert_eq!(text(o.next()), "000000015a2b3c4d.00000002");
        o.change(0x1_5a2b_3c4e);
        let next = text(o.next());
        assert_eq!(next, "000000015a2b3c4e.00000000");
        assert!(next.as_str() > "000000015a2b3c4d.00000002");
    }

    #[test]
    fn key_change_detection() {
        let t = TableSchema::new(
            DbType::PostgreSql,
            TableId {
                db: "d".into(),
                schema: Some("s".into()),
                table: "t".into(),
            },
            vec![
                Column {
                    name: "id".into(),
                    ltype: LogicalType::Long,
                    fsp: 0,
                    refine: Default::default(),
                },
                Column {
                    name: "v".into(),
                    ltype: LogicalType::String,
                    fsp: 0,
                    refine: Default::default(),
                },
            ],
            Some(vec![0]),
            "x".into(),
        );
        let r = |id, v: &str| vec![Value::Int(id), Value::Text(v.into())];
        assert!(key_changed(&t, Some(&r(1, "a")), Some(&r(2, "a"))));
        assert!(!key_changed(&t, Some(&r(1, "a")), Some(&r(1, "b"))));
        assert!(!key_changed(&t, None, Some(&r(1, "b"))));
        assert!(!key_changed(
            &t,
            Some(&[Value::Absent, Value::Absent]),
            Some(&r(1, "b"))
        ));
    }
}
