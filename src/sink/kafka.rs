//! The Kafka sink: rdkafka producer (bundled librdkafka), topic creation, keys, partitioning,
//! delivery tracking and backpressure.
//!
//! Invariants:
//! - Every record sent is registered with the [`Tracker`] first; its delivery report (from
//!   librdkafka's poll thread) completes it, or poisons the tracker on a final error. Nothing is
//!   fire-and-forget.
//! - Keys are partitioned by librdkafka's `murmur2_random`, the Java client's default murmur2,
//!   so a key lands where a Java producer would put it. Heartbeats name their partition.
//! - Defaults: idempotent producer, `acks=all`; `strict_order` adds
//!   `max.in.flight.requests.per.connection=1`. `kafka.properties` override everything else.
//! - librdkafka's own reports (global errors, its log lines) go through one [`Watch`] per
//!   client: a repeated problem is logged once a minute, not once per client and retry, and a
//!   refusal (SASL credentials, TLS verification) is kept so the caller can stop with it: a
//!   refused connection is a configuration problem, not an outage to wait out.
//! - `KafkaSink::new` asks the brokers for metadata before anything else starts, so a wrong
//!   address, password or CA stops rowstream before it touches the database.
//! - When librdkafka's queue is full, `send` waits until a delivery report frees room (it is
//!   woken by the report, not by polling) instead of buffering: the source is slowed, memory
//!   stays bounded by `queue.buffering.max.*`.

use crate::checkpoint::tracker::{Failure, Tracker};
use crate::config::KafkaConfig;
use crate::error::{Classify, ErrorClass};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    #[error("kafka client setup failed: {0} (check [kafka] and [kafka.properties])")]
    Setup(KafkaError),
    #[error("cannot create topic {topic}: {reason}")]
    CreateTopic {
        topic: String,
        reason: String,
        /// the broker may accept it later (timeouts, brokers unreachable)
        transient: bool,
    },
    #[error(
        "topic {topic} has no partitions after {secs}s: is the broker at {brokers} reachable?"
    )]
    TopicNotReady {
        topic: String,
        secs: u64,
        brokers: String,
    },
    #[error("kafka at {brokers} refused the connection: {reason}\n  fix: {fix}")]
    Refused {
        brokers: String,
        reason: String,
        fix: &'static str,
    },
    #[error("kafka at {brokers} does not answer: {reason}\n  fix: check kafka.brokers (host:port of a broker), that the broker runs, and the TLS/SASL settings in [kafka.properties]")]
    Unreachable { brokers: String, reason: String },
    #[error("cannot produce to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("a record was not delivered: {0}; rowstream stops without moving its checkpoint past it (restart resumes there)")]
    Delivery(String),
    /// The broker refuses a record for good (too large, not authorized): retrying cannot help.
    #[error("{0}")]
    Rejected(String),
    /// A Kafka transaction failed (`kafka.exactly_once`); `fatal`: retrying cannot help.
    #[error("kafka transaction: {reason}")]
    Transaction { reason: String, fatal: bool },
}

/// A transactional call's error as the sink reports it: fenced (another process took the
/// transactional.id over) and a broker without transactions are for the user to fix.
fn txn_error(what: &str, e: KafkaError) -> SinkError {
    use RDKafkaErrorCode as C;
    let code = e.rdkafka_error_code();
    let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal())
        || matches!(
            code,
            Some(
                C::Fenced
                    | C::ProducerFenced
                    | C::InvalidProducerEpoch
                    | C::UnsupportedVersion
                    | C::UnsupportedFeature
                    | C::TransactionalIdAuthorizationFailed
            )
        );
    let reason = match code {
        Some(C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch) => format!(
            "{what}: {e}\n  fix: another producer took this connector's transactional.id over (another process runs the same state.connector); run each connector in one process"
        ),
        Some(C::UnsupportedVersion | C::UnsupportedFeature) => format!(
            "{what}: {e}\n  fix: kafka.exactly_once needs a broker with transactions (Apache Kafka 2.5 or newer); set kafka.exactly_once = false for this broker"
        ),
        _ => format!("{what}: {e}"),
    };
    SinkError::Transaction { reason, fatal }
}

impl From<Failure> for SinkError {
    fn from(f: Failure) -> SinkError {
        match f.permanent {
            true => SinkError::Rejected(f.message),
            false => SinkError::Delivery(f.message),
        }
    }
}

/// A failed delivery report as the tracker keeps it: the broker's permanent refusals (a record
/// over its size limit, a topic rowstream may not write) name the record and the fix.
fn delivery_failure(
    e: &KafkaError,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    size: usize,
) -> Failure {
    use RDKafkaErrorCode as C;
    let key = key.map(String::from_utf8_lossy).unwrap_or_default();
    let message = match e.rdkafka_error_code() {
        Some(C::MessageSizeTooLarge) => format!(
            "kafka refused a record of topic {topic} (key {key}, {size} bytes) as too large: the broker's message.max.bytes (or the topic's max.message.bytes) is below it\n  fix: raise the broker's message.max.bytes or the topic's max.message.bytes, or set kafka.properties.\"message.max.bytes\" to the broker's limit so that kafka.oversized (fail | skip | placeholder, per table: kafka.oversized_tables) decides"
        ),
        Some(C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed) => format!(
            "kafka refused to let rowstream write topic {topic}: {e}\n  fix: grant the user of kafka.properties sasl.username WRITE (and DESCRIBE, CREATE) on the topic"
        ),
        _ => return Failure::transient(format!("topic {topic} partition {partition}: {e}")),
    };
    Failure {
        message,
        permanent: true,
    }
}

/// Topic creation errors retrying cannot fix: the request itself is refused.
fn refused_for_good(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::PolicyViolation
            | C::InvalidReplicationFactor
            | C::InvalidPartitions
            | C::InvalidTopic
            | C::InvalidConfig
            | C::InvalidRequest
    )
}

impl Classify for SinkError {
    fn class(&self) -> ErrorClass {
        match self {
            SinkError::Setup(_) | SinkError::Refused { .. } | SinkError::Rejected(_) => {
                ErrorClass::Setup
            }
            SinkError::Unreachable { .. } => ErrorClass::Unreachable,
            SinkError::CreateTopic { transient, .. } => {
                if *transient {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Setup
                }
            }
            SinkError::TopicNotReady { .. } | SinkError::Delivery(_) => ErrorClass::Transient,
            SinkError::Transaction { fatal, .. } => match fatal {
                true => ErrorClass::Setup,
                false => ErrorClass::Transient,
            },
            SinkError::Produce { .. } => ErrorClass::Fatal,
        }
    }
}

/// How long a transactional call may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// `kafka.exactly_once`, before the state is read: fence older producers of the connector's
/// transactional.id, so their open transaction is aborted and reading the state topic (read
/// committed) does not wait for it to time out.
pub(crate) fn fence_transactions(
    cfg: &KafkaConfig,
    transactional_id: &str,
) -> Result<(), SinkError> {
    let p: ThreadedProducer<Watch> = producer_config(cfg)
        .set("transactional.id", transactional_id)
        .create_with_context(Watch::quiet())
        .map_err(SinkError::Setup)?;
    probe(p.client(), p.context(), cfg)?;
    tokio::task::block_in_place(|| p.init_transactions(TXN_TIMEOUT))
        .map_err(|e| txn_error("cannot start transactions", e))
}

/// `kafka.exactly_once`: commit one transaction (a tombstone of an unused key in `topic`)
/// with a producer of its own, so a broker without transactions is refused at start, before
/// any record is sent.
pub(crate) fn try_transaction(
    cfg: &KafkaConfig,
    transactional_id: &str,
    topic: &str,
) -> Result<(), SinkError> {
    let p: ThreadedProducer<Watch> = producer_config(cfg)
        .set("transactional.id", format!("{transactional_id}-probe"))
        .create_with_context(Watch::quiet())
        .map_err(SinkError::Setup)?;
    tokio::task::block_in_place(|| {
        p.init_transactions(TXN_TIMEOUT)
            .map_err(|e| txn_error("cannot start transactions", e))?;
        p.begin_transaction()
            .map_err(|e| txn_error("cannot begin a transaction", e))?;
        let rec: BaseRecord<'_, str, [u8]> =
            BaseRecord::to(topic).key("rowstream-transaction-probe");
        p.send(rec)
            .map_err(|(e, _)| txn_error("cannot write in a transaction", e))?;
        p.commit_transaction(TXN_TIMEOUT)
            .map_err(|e| txn_error("cannot commit a transaction", e))
    })
}

/// A refusal librdkafka reported (its reason) and the fix for it.
type Refusal = (String, &'static str);

/// What librdkafka reports on its own, outside any request: global errors and log lines.
#[derive(Default)]
pub(crate) struct Watch {
    /// the last global error, and the last refusal (credentials, TLS)
    last: std::sync::Mutex<(Option<String>, Option<Refusal>)>,
    /// error codes logged in the last minute, and when (a repeat is not logged again)
    logged: std::sync::Mutex<HashMap<String, Instant>>,
    /// only record, never log (a second client of the same brokers, or while `probe` asks:
    /// its answer reports the problem)
    quiet: std::sync::atomic::AtomicBool,
}

/// The fix for a refusal, or None when the error is not one.
fn refusal(code: Option<RDKafkaErrorCode>) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    match code? {
        C::Authentication | C::SaslAuthenticationFailed | C::IllegalSASLState
        | C::UnsupportedSASLMechanism => Some(
            "check sasl.username, sasl.password and sasl.mechanisms in [kafka.properties] (and that the user exists on the broker)",
        ),
        C::SSL => Some(
            "check ssl.ca.location (the CA that signed the broker's certificate), ssl.endpoint.identification.algorithm, and that the broker serves TLS on that port (security.protocol = \"SSL\" or \"SASL_SSL\")",
        ),
        _ => None,
    }
}

impl Watch {
    fn quiet() -> Watch {
        Watch {
            quiet: true.into(),
            ..Watch::default()
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka appends "(after 5ms in state UP, 3 identical error(s) suppressed)"
        let reason = reason.split(" (after ").next().unwrap_or(reason);
        let text = format!("{error}: {reason}");
        let code = error.rdkafka_error_code();
        {
            let mut g = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(fix) = refusal(code) {
                g.1 = Some((reason.to_string(), fix));
            }
            // "all brokers are down" follows the error that says why
            if code != Some(RDKafkaErrorCode::AllBrokersDown) || g.0.is_none() {
                g.0 = Some(text.clone());
            }
        }
        let quiet = self.quiet.load(std::sync::atomic::Ordering::Relaxed);
        if quiet || code == Some(RDKafkaErrorCode::AllBrokersDown) {
            tracing::debug!(error = %text, "kafka client");
            return;
        }
        let mut g = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        g.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        if g.insert(format!("{code:?}"), now).is_none() {
            tracing::warn!(error = %text, "kafka client (repeats of this error are not logged for a minute)");
        }
    }

    /// librdkafka's log lines: failures also arrive as global errors (logged there), so they
    /// are kept at debug; other warnings pass through.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
                if fac != "FAIL" && !self.quiet.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                tracing::warn!(target: "librdkafka", "{fac} {msg}")
            }
            _ => tracing::debug!(target: "librdkafka", "{fac} {msg}"),
        }
    }

    /// The last global error.
    pub(crate) fn last(&self) -> Option<String> {
        self.last.lock().map(|g| g.0.clone()).unwrap_or_default()
    }

    /// The last refusal (credentials, TLS) and its fix.
    pub(crate) fn refused(&self) -> Option<Refusal> {
        self.last.lock().map(|g| g.1.clone()).unwrap_or_default()
    }
}

impl ClientContext for Watch {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        Watch::log(self, level, fac, msg)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Watch::error(self, error, reason)
    }
}

pub(crate) struct DeliveryCtx {
    tracker: Arc<Tracker>,
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
                let f = delivery_failure(e, m.topic(), m.partition(), m.key(), m.payload_len());
                if !f.permanent {
                    tracing::error!(error = %f, "kafka delivery failed");
                }
                self.tracker.delivered(id as u64, Err(f))
            }
        }
        self.space.notify_one();
    }
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

/// The producer settings rowstream uses, before `kafka.properties` are applied.
pub(crate) fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", "rowstream")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "50000")
        .set("queue.buffering.max.kbytes", "16384")
        .set(
            "message.max.bytes",
            crate::config::DEFAULT_MESSAGE_MAX_BYTES.to_string(),
        );
    if cfg.strict_order {
        c.set("max.in.flight.requests.per.connection", "1");
    }
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// One record read back from a topic.
pub(crate) struct Record<'a> {
    pub(crate) partition: i32,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
}

/// Read `topic` from the beginning to its end (blocking): every partition up to its high
/// watermark, then, `settle` later, up to the watermarks then (a broker's watermark may trail
/// what it acknowledged). Returns the number of records.
pub(crate) fn read_topic(
    cfg: &KafkaConfig,
    topic: &str,
    settle: Duration,
    f: &mut dyn FnMut(Record<'_>) -> Result<(), crate::error::Error>,
) -> Result<u64, crate::error::Error> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::{Message as _, Offset, TopicPartitionList};
    let setup = |e: KafkaError| {
        crate::error::Error::setup(
            format!("cannot read topic {topic}: {e}"),
            "check kafka.brokers and the kafka.properties security settings",
        )
    };
    let consumer: BaseConsumer = cfg
        .connection()
        .set(
            "group.id",
            format!("rowstream-verify-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(setup)?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(setup)?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if parts.is_empty() {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(setup)?;
    }
    consumer.assign(&tpl).map_err(setup)?;
    let ends = |c: &BaseConsumer| -> Result<Vec<i64>, crate::error::Error> {
        parts
            .iter()
            .map(|p| {
                c.fetch_watermarks(topic, *p, Duration::from_secs(10))
                    .map(|(_, hi)| hi)
                    .map_err(setup)
            })
            .collect()
    };
    // the watermarks now, and once more after `settle` (a broker's watermark may trail what it
    // acknowledged); records written later (heartbeats) are not waited for
    let mut end = ends(&consumer)?;
    let mut next = vec![0i64; parts.len()];
    let mut n = 0u64;
    let mut rounds = 0;
    let mut reached_at: Option<std::time::Instant> = None;
    loop {
        if next.iter().zip(&end).all(|(a, b)| a >= b) {
            let at = *reached_at.get_or_insert_with(std::time::Instant::now);
            if rounds == 1 {
                return Ok(n);
            }
            if at.elapsed() >= settle {
                end = ends(&consumer)?;
                rounds = 1;
                reached_at = None;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let i = parts.iter().position(|p| *p == m.partition()).unwrap_or(0);
                next[i] = m.offset() + 1;
                n += 1;
                f(Record {
                    partition: m.partition(),
                    key: m.key(),
                    value: m.payload().unwrap_or_default(),
                })?;
            }
            Some(Err(e)) => return Err(setup(e)),
            None => {}
        }
    }
}

/// Ask the brokers for metadata for up to 10 s; a refusal (credentials, TLS) ends it at once.
/// The client must be polled by a thread of its own (a `ThreadedProducer`): librdkafka reports
/// the refusal through a callback.
fn probe<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    watch: &Watch,
    cfg: &KafkaConfig,
) -> Result<(), SinkError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = tokio::task::block_in_place(|| client.fetch_metadata(None, Duration::from_secs(1)));
        let e = match r {
            Ok(_) => {
                watch
                    .quiet
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
            Err(e) => e,
        };
        if let Some((reason, fix)) = watch.refused() {
            return Err(SinkError::Refused {
                brokers: cfg.brokers.clone(),
                reason,
                fix,
            });
        }
        if Instant::now() >= deadline {
            return Err(SinkError::Unreachable {
                brokers: cfg.brokers.clone(),
                reason: watch.last().unwrap_or_else(|| e.to_string()),
            });
        }
    }
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
        tracing::info!(topic, partitions = self.cfg.partitions, "created topic");
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
                tracing::warn!(topic, error = %e, "metadata request failed");
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
        let id = self.tracker.begin();
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, id as usize).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
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

    /// Wait until everything sent is acknowledged (or `timeout`).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

impl rdkafka::producer::ProducerContext for Watch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// `check`'s broker prerequisite: the brokers answer a metadata request with these settings.
/// The [`Watch`] tells a refusal (SASL, TLS) from silence: a metadata request then only says
/// "transport failure".
pub(crate) fn check(cfg: &KafkaConfig) -> crate::check::Finding {
    use crate::check::Finding;
    let p: Result<ThreadedProducer<Watch>, _> =
        producer_config(cfg).create_with_context(Watch::quiet());
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            return Finding::fail(
                format!("kafka settings are not accepted: {e}"),
                "check the keys and values of [kafka.properties] (librdkafka's names)",
            )
        }
    };
    match probe(p.client(), p.context(), cfg) {
        Ok(()) => {
            let n = p
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| m.brokers().len())
                .unwrap_or(0);
            Finding::ok(format!("kafka at {} answers ({n} broker(s))", cfg.brokers))
        }
        Err(SinkError::Unreachable { brokers, reason })
            if !cfg.properties.keys().any(|k| k.starts_with("sasl.")) =>
        {
            Finding::fail(
                format!("kafka at {brokers} does not answer: {reason}"),
                "check kafka.brokers, that the broker runs, and the TLS/SASL settings in [kafka.properties]",
            )
        }
        Err(SinkError::Refused { brokers, reason, fix }) => {
            Finding::fail(format!("kafka at {brokers} refused the connection: {reason}"), fix)
        }
        // a broker that refuses the credentials may just close the connection
        Err(SinkError::Unreachable { brokers, reason })
            if cfg.properties.keys().any(|k| k.starts_with("sasl.")) =>
        {
            Finding::fail(
                format!("kafka at {brokers} refused the connection or does not answer: {reason}"),
                "with SASL configured this is most often a wrong sasl.username / sasl.password or sasl.mechanisms; else check kafka.brokers and that the broker runs",
            )
        }
        Err(e) => Finding::fail(
            format!("kafka at {} does not answer: {e}", cfg.brokers).replace("\n  fix: ", "; "),
            "check kafka.brokers, that the broker runs, and the TLS/SASL settings in [kafka.properties]",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_failures_name_the_record_and_the_fix() {
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let f = delivery_failure(&too_large, "shop.orders", 2, Some(b"42"), 3_000_000);
        assert!(f.permanent);
        assert!(
            f.message
                .contains("topic shop.orders (key 42, 3000000 bytes)"),
            "{f}"
        );
        assert!(f.message.contains("max.message.bytes") && f.message.contains("kafka.oversized"));
        let e: SinkError = f.into();
        assert_eq!(e.class(), ErrorClass::Setup);
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let f = delivery_failure(&timeout, "shop.orders", 2, None, 10);
        assert!(!f.permanent);
        assert_eq!(SinkError::from(f).class(), ErrorClass::Transient);
    }
}
