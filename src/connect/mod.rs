//! The connector runtime: `run` (one connector, standalone: the wiring, retries, pause /
//! resume / stop / restart), `worker` (many connectors over the Connect REST API, configs in a
//! compacted topic, distributed over Kafka's group protocol), `pipeline` (encode + send +
//! heartbeats, the exactly-once commits; `lease` keeps its sequenceId lease stored ahead,
//! `transactions` the count behind its transaction markers, `ddl_policy` what a DDL of each
//! type does, `dead_letter` the policy and count of parked records), `progress` (what a run shows on a terminal or in its
//! log), `control` (the connector state REST reads and steers) and `http` (the listener).
//!
//! Invariants: imports point down: `worker` → `run` → `pipeline`; `http` → `control`;
//! `run` and `worker` start `http::serve`; nothing below `connect` (model, config, format,
//! kafka, source, checkpoint) imports it, nor do the one-shot `tools`.
pub(crate) mod control;
pub(crate) mod ddl_policy;
pub(crate) mod dead_letter;
pub(crate) mod http;
pub(crate) mod lease;
pub(crate) mod pipeline;
pub(crate) mod progress;
pub(crate) mod run;
pub(crate) mod transactions;
pub(crate) mod worker;
