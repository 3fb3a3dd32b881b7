//! The data model every other part speaks: typed values (`value`, `time`), table schemas
//! (`schema`), source log positions and their order (`position`), the events a source emits
//! (`event`) and sequenceIds (`sequence`).
//!
//! Invariants: this folder imports nothing of the crate but `error` and its own files; it
//! does no I/O. Everything above it (config, stages, wiring) may use it.

pub(crate) mod event;
pub(crate) mod position;
pub(crate) mod schema;
pub(crate) mod sequence;
pub(crate) mod time;
pub(crate) mod value;
