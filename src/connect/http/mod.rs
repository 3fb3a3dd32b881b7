//! rowstream's HTTP face: the listener (`serve`), health, readiness, metrics and
//! `POST /snapshot` (`health`), the Kafka Connect REST API (`rest`), and the client half that
//! calls a listener (`client`).
//!
//! Invariants: `serve` → `health`, `rest`; `rest` → `health`, `client`; all of them read and
//! steer connectors only through `connect::control`, never `run` or `worker`.
pub(crate) mod client;
pub(crate) mod health;
pub(crate) mod rest;
pub(crate) mod serve;
