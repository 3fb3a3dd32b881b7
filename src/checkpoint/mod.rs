//! Checkpoints: which source position is safe to resume from.
//!
//! `tracker` turns out-of-order Kafka delivery reports into an in-order stream of markers whose
//! every preceding record is delivered; `store` persists the folded state atomically, in a
//! directory or (`kafka`) in compacted topics.
mod kafka;
pub(crate) mod log;
pub(crate) mod store;
pub(crate) mod tracker;
