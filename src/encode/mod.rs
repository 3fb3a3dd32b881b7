//! Encoders from events to record bytes. One format today: DataWorks JSON.
pub(crate) mod dataworks;
pub(crate) mod json;
