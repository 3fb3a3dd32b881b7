//! One-shot commands that read what a connector wrote or copy a database once: `verify`
//! (topics rebuilt and compared with the tables), `copy` (tables into topics once), `export`
//! (a bounded read of a topic into files), `tail` (topics printed readably).
//!
//! Invariants: a tool runs to its end and exits; none of them runs a connector or stores a
//! position. They may import everything below the wiring (model, config, format, kafka,
//! source, checkpoint for reading state), never `connect`-level modules (`run`, `worker`,
//! `pipeline`, `admin`, `rest`).
pub(crate) mod copy;
pub(crate) mod export;
pub(crate) mod tail;
pub(crate) mod verify;
