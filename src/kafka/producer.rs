//! The Kafka producer: rdkafka (bundled librdkafka), topic creation, keys, partitioning,
//! delivery tracking and backpressure.
//!
//! Invariants:
//! - Every record sent is registered with the [`Tracker`] first; its delivery report (from
//!   librdkafka's poll thread) completes it, or poisons the tracker on a final error. Nothing is
//!   fire-and-forget.
//! - Keys are partitioned by librdkafka's `murmur2_random`, the Java client's default murmur2,
//!   so a key lands where a Java producer would put it. Heartbeats name their partition.
//! - `KafkaSink::new` asks the brokers for metadata before anything else starts, so a wrong
//!   address, password or CA stops rowstream before it touches the database.
//! - A record the broker refuses for good completes its tracker id with the failure, unless
//!   refusals are parked ([`KafkaSink::park_refusals`]): then the report goes to the pipeline
//!   as a [`Refusal`], and the id completes when the dead-letter record sent under the same id
//!   ([`KafkaSink::send_for`]) is delivered. A refusal of a dead-letter record is a failure.
//! - When librdkafka's queue is full, `send` waits until a delivery report frees room (it is
//!   woken by the report, not by polling) instead of buffering: the source is slowed, memory
//!   stays bounded by `queue.buffering.max.*`.

use super::client::{probe, producer_config, Watch, TXN_TIMEOUT};
use super::error::{delivery_failure, refused_for_good, txn_error, SinkError};
use crate::checkpoint::tracker::Tracker;
use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::sink::kafka";

/// A record the broker refused for good, handed to the pipeline to park (its tracker id is
/// still open).
pub(crate) struct Refusal {
    pub(crate) id: u64,
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// the record's value (the dead-letter record names its table and op from it, and holds
    /// it unless it was refused for its size)
    pub(crate) payload: Vec<u8>,
    /// value plus key, in bytes
    pub(crate) size: usize,
    pub(crate) too_large: bool,
    pub(crate) error: String,
}

/// Where refusals go: the dead-letter topic (whose own refusals are failures) and the pipeline.
struct Parking {
    topic: String,
    tx: tokio::sync::mpsc::UnboundedSender<Refusal>,
}

pub(crate) struct DeliveryCtx {
    tracker: Arc<Tracker>,
    /// set by [`KafkaSink::park_refusals`]
    parking: std::sync::OnceLock<Parking>,
    /// the delivery latency histogram
    metrics: Arc<crate::metrics::Metrics>,
    /// signalled by every delivery report: room may have freed up in librdkafka's queue
    space: tokio::sync::Notify,
    watch: Watch,
}

impl ClientContext for DeliveryCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        self.watch.log(level, fac, msg)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.error(error, reason)
    }
}

impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &DeliveryResult<'_>, id: usize) {
        match r {
            Ok(m) => {
                use rdkafka::Message as _;
                // the record's create time is set by the producer when it was handed over
                if let Some(t) = m.timestamp().to_millis() {
                    let ms = (crate::model::time::now_ms() - t).max(0) as u64;
                    self.metrics.latency.observe(ms);
                }
                self.tracker.delivered(id as u64, Ok(()))
            }
            Err((e, m)) => {
                use rdkafka::Message as _;
                let size = m.payload_len() + m.key().map_or(0, <[u8]>::len);
                let f = delivery_failure(e, m.topic(), m.partition(), m.key(), size);
                if !f.permanent {
                    tracing::error!(target: LOG_TARGET, error = %f, "kafka delivery failed");
                }
                let parking = self
                    .parking
                    .get()
                    .filter(|p| f.permanent && p.topic != m.topic());
                let f = match parking {
                    Some(p) => {
                        let too_large =
                            e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
                        let r = Refusal {
                            id: id as u64,
                            topic: m.topic().to_string(),
                            key: m.key().map(<[u8]>::to_vec),
                            headers: headers_of(m),
                            payload: m.payload().unwrap_or_default().to_vec(),
                            size,
                            too_large,
                            error: f.message.clone(),
                        };
                        match p.tx.send(r) {
                            Ok(()) => None, // the dead-letter record completes the id
                            Err(_) => Some(f),
                        }
                    }
                    None => Some(f),
                };
                if let Some(f) = f {
                    self.tracker.delivered(id as u64, Err(f))
                }
            }
        }
        self.space.notify_one();
    }
}

/// A message's headers, copied.
fn headers_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    use rdkafka::message::{Headers as _, Message as _};
    let Some(h) = m.headers() else {
        return Vec::new();
    };
    h.iter()
        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
        .collect()
}

pub(crate) struct KafkaSink {
    producer: ThreadedProducer<DeliveryCtx>,
    /// `kafka.exactly_once`: a transaction is open
    transactional: bool,
    admin: AdminClient<Watch>,
    partitions: HashMap<String, i32>,
    cfg: KafkaConfig,
    tracker: Arc<Tracker>,
}

impl KafkaSink {
    /// The sink; with a `transactional_id` (`kafka.exactly_once`) its producer is
    /// transactional: `init_transactions` fences any older producer of that id (aborting its
    /// open transaction) and a transaction is begun.
    pub(crate) fn new(
        cfg: &KafkaConfig,
        tracker: Arc<Tracker>,
        metrics: Arc<crate::metrics::Metrics>,
        transactional_id: Option<&str>,
    ) -> Result<KafkaSink, SinkError> {
        let ctx = DeliveryCtx {
            tracker: tracker.clone(),
            parking: std::sync::OnceLock::new(),
            metrics,
            space: tokio::sync::Notify::new(),
            watch: Watch::quiet(),
        };
        let mut pc = producer_config(cfg);
        if let Some(id) = transactional_id {
            pc.set("transactional.id", id)
                .set("transaction.timeout.ms", "60000");
        }
        let producer: ThreadedProducer<DeliveryCtx> =
            pc.create_with_context(ctx).map_err(SinkError::Setup)?;
        let admin = cfg
            .connection()
            .create_with_context(Watch::quiet())
            .map_err(SinkError::Setup)?;
        probe(producer.client(), &producer.context().watch, cfg)?;
        if transactional_id.is_some() {
            tokio::task::block_in_place(|| producer.init_transactions(TXN_TIMEOUT))
                .map_err(|e| txn_error("cannot start transactions", e))?;
            producer
                .begin_transaction()
                .map_err(|e| txn_error("cannot begin a transaction", e))?;
        }
        Ok(KafkaSink {
            transactional: transactional_id.is_some(),
            producer,
            admin,
            partitions: HashMap::new(),
            cfg: cfg.clone(),
            tracker,
        })
    }

    /// Create `topic` if missing and learn its partition count.
    pub(crate) async fn ensure_topic(&mut self, topic: &str) -> Result<i32, SinkError> {
        if let Some(&n) = self.partitions.get(topic) {
            return Ok(n);
        }
        if let Some(n) = self.fetch_partitions(topic).await {
            self.partitions.insert(topic.to_string(), n);
            return Ok(n);
        }
        let nt = NewTopic::new(
            topic,
            self.cfg.partitions,
            TopicReplication::Fixed(self.cfg.replication_factor),
        );
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        match self.admin.create_topics(&[nt], &opts).await {
            Ok(results) => {
                for r in results {
                    if let Err((t, code)) = r {
                        if code != RDKafkaErrorCode::TopicAlreadyExists {
                            return Err(SinkError::CreateTopic {
                                topic: t,
                                reason: code.to_string(),
                                transient: !refused_for_good(code),
                            });
                        }
                    }
                }
            }
            Err(e) => {
                return Err(SinkError::CreateTopic {
                    topic: topic.into(),
                    reason: e.to_string(),
                    transient: true,
                })
            }
        }
        tracing::info!(target: LOG_TARGET, topic, partitions = self.cfg.partitions, "created topic");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(n) = self.fetch_partitions(topic).await {
                self.partitions.insert(topic.to_string(), n);
                return Ok(n);
            }
            if Instant::now() > deadline {
                return Err(SinkError::TopicNotReady {
                    topic: topic.into(),
                    secs: 30,
                    brokers: self.cfg.brokers.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fetch_partitions(&self, topic: &str) -> Option<i32> {
        let client = self.producer.client();
        let md = tokio::task::block_in_place(|| {
            client.fetch_metadata(Some(topic), Duration::from_secs(10))
        });
        let md = match md {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, topic, error = %e, "metadata request failed");
                return None;
            }
        };
        let t = md.topics().iter().find(|t| t.name() == topic)?;
        if t.error().is_some() || t.partitions().is_empty() {
            return None;
        }
        Some(t.partitions().len() as i32)
    }

    /// Topics known to exist, with their partition counts.
    pub(crate) fn topics(&self) -> impl Iterator<Item = (&str, i32)> {
        self.partitions.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Send one record, waiting while librdkafka's queue is full.
    pub(crate) async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        partition: Option<i32>,
    ) -> Result<(), SinkError> {
        self.send_with(topic, key, payload, partition, None).await
    }

    /// From now on, records the broker refuses for good (other than those of `topic`, the
    /// dead-letter topic) come out of the receiver instead of failing the tracker.
    pub(crate) fn park_refusals(
        &self,
        topic: &str,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Refusal>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let parking = Parking {
            topic: topic.to_string(),
            tx,
        };
        self.producer.context().parking.set(parking).ok()?;
        Some(rx)
    }

    /// [`KafkaSink::send`] with Kafka headers.
    pub(crate) async fn send_with(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        partition: Option<i32>,
        headers: Option<rdkafka::message::OwnedHeaders>,
    ) -> Result<(), SinkError> {
        let id = self.tracker.begin();
        self.send_for(id, topic, key, payload, partition, headers)
            .await
    }

    /// Send a record whose delivery completes tracker id `id` (already begun): a new record,
    /// or the dead-letter record of a [`Refusal`].
    pub(crate) async fn send_for(
        &self,
        id: u64,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        partition: Option<i32>,
        headers: Option<rdkafka::message::OwnedHeaders>,
    ) -> Result<(), SinkError> {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, id as usize).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        loop {
            // registered before the attempt, so a report arriving in between is not missed
            let space = self.producer.context().space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    if self.producer.in_flight_count() == 0 {
                        // nothing queued, and still no room: this record never fits
                        self.tracker.cancel(id);
                        return Err(SinkError::Rejected(format!(
                            "a record of topic {topic} ({} bytes) is larger than the producer's queue\n  fix: raise kafka.properties.\"queue.buffering.max.kbytes\" above the record's size in KB (by default it follows message.max.bytes)",
                            payload.len() + key.map_or(0, <[u8]>::len)
                        )));
                    }
                    if let Some(f) = self.tracker.failure() {
                        self.tracker.cancel(id);
                        return Err(f.into());
                    }
                    // woken by the next delivery report; the bound re-checks for a failure
                    let _ = tokio::time::timeout(Duration::from_millis(100), space).await;
                }
                Err((e, _)) => {
                    self.tracker.cancel(id);
                    return Err(SinkError::Produce {
                        topic: topic.into(),
                        source: e,
                    });
                }
            }
        }
    }

    /// `kafka.exactly_once`: commit the open transaction (everything sent since the last
    /// commit, flushed first) and begin the next. On failure the transaction is aborted.
    pub(crate) fn commit_transaction(&self) -> Result<(), SinkError> {
        if !self.transactional {
            return Ok(());
        }
        tokio::task::block_in_place(|| {
            if let Err(e) = self.producer.commit_transaction(TXN_TIMEOUT) {
                let _ = self.producer.abort_transaction(TXN_TIMEOUT);
                return Err(txn_error("cannot commit a transaction", e));
            }
            self.producer
                .begin_transaction()
                .map_err(|e| txn_error("cannot begin a transaction", e))
        })
    }

    /// `kafka.exactly_once`: abort the open transaction (its records are never visible to
    /// read_committed consumers; the next start sends them again).
    pub(crate) fn abort_transaction(&self) -> Result<(), SinkError> {
        if !self.transactional {
            return Ok(());
        }
        tokio::task::block_in_place(|| self.producer.abort_transaction(TXN_TIMEOUT))
            .map_err(|e| txn_error("cannot abort a transaction", e))
    }

    /// Wait until everything sent is acknowledged (or `timeout`).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
