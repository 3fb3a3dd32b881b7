//! Checkpoints: which source position is safe to resume from.
//!
//! `tracker` turns out-of-order Kafka delivery reports into an in-order stream of markers whose
//! every preceding record is delivered; `state` is what they fold into; `commit` is the one
//! committer (fold, then save, or hand the state to a Kafka transaction); `store` persists it
//! atomically, in a directory or (`kafka`) in compacted topics written through `log`.
//!
//! What it may import: `model`, `config`, `error`; never a source, `kafka` (the Kafka backend
//! drives its own producer through `log`), `connect` or `tools`.
//!
//! Invariants: `state` imports neither backend; `store` (the facade and the file backend)
//! imports `kafka`, which imports `state` and `log`, never `store`.
pub(crate) mod commit;
mod kafka;
pub(crate) mod log;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod tracker;
