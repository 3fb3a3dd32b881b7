//! Encoders from events to record bytes. One format today: DataWorks JSON.
pub mod dataworks;
pub mod json;
