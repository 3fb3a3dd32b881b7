//! What can go wrong with Kafka, and its class: a delivery that failed for good (the record
//! names topic, key and size with the setting to change), a transaction the broker refused,
//! a broker that cannot be reached or that refuses the credentials.
//!
//! Invariant: the class follows the broker's error code; a record the broker refuses for good
//! is a setup problem (no retry loop), a timeout is transient.

use crate::checkpoint::tracker::Failure;
use crate::error::{Classify, ErrorClass};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

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
pub(super) fn txn_error(what: &str, e: KafkaError) -> SinkError {
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
        Some(C::TransactionalIdAuthorizationFailed) => format!(
            "{what}: {e}\n  fix: grant the user of kafka.properties sasl.username WRITE and DESCRIBE on the transactional ids rowstream-<state.connector> and rowstream-<state.connector>-probe (an ACL on the prefix rowstream-), or set kafka.exactly_once = false"
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
pub(super) fn delivery_failure(
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
        Some(C::InvalidRecord) => format!(
            "kafka refused a record of topic {topic} (key {key}, {size} bytes) as invalid: {e}; a topic with cleanup.policy=compact takes no record without a key\n  fix: give the table a key (a primary key, or source.keys), or write it to a topic that is not compacted"
        ),
        Some(C::InvalidTimestamp) => format!(
            "kafka refused a record of topic {topic} (key {key}) for its timestamp: {e}; the topic's message.timestamp.before.max.ms / after.max.ms (or message.timestamp.difference.max.ms) do not take it\n  fix: widen those settings of the topic, or set its message.timestamp.type to LogAppendTime"
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
pub(super) fn refused_for_good(code: RDKafkaErrorCode) -> bool {
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
