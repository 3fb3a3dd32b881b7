//! What is wrong with a configuration: a file that cannot be read, or every problem found at
//! once, each naming its key ([`push`]: "`path`: what is wrong and what to write instead").
//!
//! Invariant: the section files (`source`, `kafka`, `runtime`, `lake`, `worker`) and `mod.rs`
//! report through here; this file imports nothing of `config`.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is invalid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl crate::error::Classify for ConfigError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Setup
    }
}

/// One problem with a key: "`path`: what is wrong and what to write instead".
pub(super) fn push(problems: &mut Vec<String>, path: &str, msg: impl fmt::Display) {
    problems.push(format!("`{path}`: {msg}"));
}
