//! rowstream: streams every row change of a database into Kafka, in the DataWorks JSON format.
//!
//! Stages (see `run` for the wiring): `source` → `pipeline` (`encode`) → `sink`, with
//! `checkpoint` closing the loop back to the source.
pub mod admin;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod encode;
pub mod event;
pub mod pipeline;
pub mod position;
pub mod run;
pub mod schema;
pub mod sequence;
pub mod sink;
pub mod source;
pub mod value;
