//! The record formats: events written as DataWorks JSON (`dataworks`) and read back
//! (`record`: the one typed reader of the envelope, for `tail`, `verify` and the sink), and the
//! plain formats of `copy` (`plain`: delimited text, `json`: typed JSON).
//!
//! Invariants: an encoder is a pure function of the model (`crate::model`) and its settings:
//! it never knows where a record goes (Kafka, a file) or where an event came from.
pub(crate) mod dataworks;
pub(crate) mod json;
pub(crate) mod parked;
pub(crate) mod plain;
pub(crate) mod record;
