//! Encoders from events to record bytes: DataWorks JSON, and the plain formats of `copy`.
pub(crate) mod dataworks;
pub(crate) mod json;
pub(crate) mod plain;
