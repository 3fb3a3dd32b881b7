//! rowstream: streams every row change of a database into Kafka, in the DataWorks JSON format.
//!
//! Layers, lowest first; a module only uses modules of its own layer or below
//! (docs/architecture.md has the map and the reasons; `tests/layout.rs` fails on an import
//! cycle):
//! 1. `model` (`time`, `value`, `schema`, `position`, `event`, `sequence`), `error`, `repeats`:
//!    the data model; `metrics` (every counter and gauge, fed by the layers above, read by
//!    `connect::http`).
//! 2. `config`, `check`: what the user asked for and what the databases must provide.
//! 3. `format` (events → record bytes), `checkpoint` (delivery tracking, durable state),
//!    `source` (database logs → events), `kafka` (records → Kafka, and the one reader of topics).
//! 4. `connect` (the connector runtime: `pipeline`, `run`, `worker`, `progress`, `control`,
//!    `http`), `tools` (one-shot commands: `verify`, `copy`, `export`, `tail`), `lake` (topics
//!    landed as Parquet files), `cli`.
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
