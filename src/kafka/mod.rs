//! Kafka, the one place that talks to it: client settings and probes (`client`), the producer
//! (`producer`), reading topics back (`reader`), and the errors of all three (`error`).
//!
//! Invariants: nothing outside this folder builds an rdkafka producer; it may import the model,
//! `config`, `checkpoint::tracker` (deliveries are reported there) and `error`, nothing above.
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod producer;
pub(crate) mod reader;

pub(crate) use client::{check, fence_transactions, producer_config, try_transaction};
pub(crate) use error::SinkError;
pub(crate) use producer::{KafkaSink, Refusal};
pub(crate) use reader::{read_topic, Record};
