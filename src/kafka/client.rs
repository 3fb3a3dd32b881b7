//! The client side every Kafka connection shares: the producer settings, librdkafka's own
//! reports watched in one place ([`Watch`]), the metadata probe that tells a refusal (SASL,
//! TLS) from an outage, the `check` finding, and the transactional probes.
//!
//! Invariants:
//! - librdkafka's own reports (global errors, its log lines) go through one [`Watch`] per
//!   client: a repeated problem is logged once a minute, not once per client and retry, and a
//!   refusal (SASL credentials, TLS verification) is kept so the caller can stop with it: a
//!   refused connection is a configuration problem, not an outage to wait out.
//! - Defaults: idempotent producer, `acks=all`; `strict_order` adds
//!   `max.in.flight.requests.per.connection=1`. `kafka.properties` override everything else.

use super::error::{txn_error, SinkError};
use crate::config::KafkaConfig;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::sink::kafka";

/// How long a transactional call may take.
pub(super) const TXN_TIMEOUT: Duration = Duration::from_secs(60);

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
/// any record is sent and before the connector is claimed. A transaction that cannot be
/// committed is aborted, and the probe's transactions time out after 10 s on the broker, so a
/// refused probe never holds read_committed readers of `topic` (every connector's state) back.
pub(crate) fn try_transaction(
    cfg: &KafkaConfig,
    transactional_id: &str,
    topic: &str,
) -> Result<(), SinkError> {
    let p: ThreadedProducer<Watch> = producer_config(cfg)
        .set("transactional.id", format!("{transactional_id}-probe"))
        .set("transaction.timeout.ms", "10000")
        .create_with_context(Watch::quiet())
        .map_err(SinkError::Setup)?;
    tokio::task::block_in_place(|| {
        p.init_transactions(TXN_TIMEOUT)
            .map_err(|e| txn_error("cannot start transactions", e))?;
        p.begin_transaction()
            .map_err(|e| txn_error("cannot begin a transaction", e))?;
        let rec: BaseRecord<'_, str, [u8]> =
            BaseRecord::to(topic).key("rowstream-transaction-probe");
        let done = p
            .send(rec)
            .map_err(|(e, _)| txn_error("cannot write in a transaction", e))
            .and_then(|()| {
                p.commit_transaction(TXN_TIMEOUT)
                    .map_err(|e| txn_error("cannot commit a transaction", e))
            });
        if done.is_err() {
            // best effort: the refusal is what the user needs to read
            let _ = p.abort_transaction(Duration::from_secs(10));
        }
        done
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
pub(super) fn refusal(code: Option<RDKafkaErrorCode>) -> Option<&'static str> {
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
    pub(super) fn quiet() -> Watch {
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
            tracing::debug!(target: LOG_TARGET, error = %text, "kafka client");
            return;
        }
        let mut g = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        g.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        if g.insert(format!("{code:?}"), now).is_none() {
            tracing::warn!(target: LOG_TARGET, error = %text, "kafka client (repeats of this error are not logged for a minute)");
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
    // the queue must hold one record of the largest size allowed: a record larger than the
    // queue is refused as "queue full" for ever, and the send would wait for room that never
    // comes (a 50 MB value hung that way)
    if !cfg.properties.contains_key("queue.buffering.max.kbytes") {
        c.set(
            "queue.buffering.max.kbytes",
            queue_kbytes(cfg.message_max_bytes()).to_string(),
        );
    }
    c
}

/// librdkafka's queue bound for records of up to `max_record` bytes: 16 MB, or room for one
/// record of that size and 1 MB more.
pub(crate) fn queue_kbytes(max_record: usize) -> usize {
    (max_record / 1024 + 1024).max(16384)
}

/// Ask the brokers for metadata for up to 10 s; a refusal (credentials, TLS) ends it at once.
/// The client must be polled by a thread of its own (a `ThreadedProducer`): librdkafka reports
/// the refusal through a callback.
pub(super) fn probe<C: ClientContext>(
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
mod queue_tests {
    use super::*;

    #[test]
    fn the_queue_holds_the_largest_record() {
        assert_eq!(queue_kbytes(10_000_000), 16384);
        assert!(queue_kbytes(121_634_816) * 1024 > 121_634_816);
        let mut cfg = KafkaConfig::with_brokers("127.0.0.1:9092");
        cfg.properties
            .insert("message.max.bytes".into(), "121634816".into());
        let c = producer_config(&cfg);
        assert_eq!(c.get("queue.buffering.max.kbytes"), Some("119808"));
        cfg.properties
            .insert("queue.buffering.max.kbytes".into(), "200000".into());
        let c = producer_config(&cfg);
        assert_eq!(c.get("queue.buffering.max.kbytes"), Some("200000"));
    }
}
