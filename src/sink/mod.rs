//! Sinks. One today: Kafka.
pub(crate) mod kafka;
