//! Sinks. One today: Kafka.
pub mod kafka;
