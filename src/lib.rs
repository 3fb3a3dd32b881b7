//! rowstream: streams every row change of a database into Kafka, in the DataWorks JSON format.
//!
//! Layers, lowest first; a module only uses modules of its own layer or below
//! (docs/architecture.md has the map and the reasons):
//! 1. `model` (`time`, `value`, `schema`, `position`, `event`, `sequence`), `error`: the data model;
//!    `metrics` (every counter and gauge, fed by the layers above, read by `admin`).
//! 2. `config`, `check`: what the user asked for and what the databases must provide.
//! 3. `encode` (events → record bytes), `checkpoint` (delivery tracking, durable state),
//!    `source` (database logs → events), `kafka` (records → Kafka, and the one reader of topics).
//! 4. `pipeline` (encode + send + heartbeats), `run` (the wiring, retries, pause / resume /
//!    stop / restart), `progress` (what `run` shows on a terminal or in its log), `admin` and
//!    `rest` (the admin listener: health, metrics, the Kafka Connect REST API), `worker` (many
//!    connectors managed over REST), `verify` (topics read back and compared with the
//!    tables), `tail` (topics printed readably), `lake` (topics landed as Parquet files),
//!    `export` (a bounded read of a topic), `copy` (tables → topics once), `cli`.
pub(crate) mod check;
pub(crate) mod checkpoint;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod connect;
pub(crate) mod error;
pub(crate) mod format;
pub(crate) mod kafka;
pub(crate) mod lake;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod repeats;
pub(crate) mod source;
pub(crate) mod tools;

/// The `rowstream` command: parse the command line, run the subcommand, return its exit code.
pub fn main() -> std::process::ExitCode {
    cli::main()
}

/// The producer settings rowstream uses for `brokers` (for `examples/produce_raw`, the
/// benchmark's raw ceiling, so both produce alike).
#[doc(hidden)]
pub fn producer_settings(brokers: &str) -> rdkafka::ClientConfig {
    kafka::producer_config(&config::KafkaConfig::with_brokers(brokers))
}
