//! Errors of the Postgres source and their classes (see `crate::error`).
//!
//! Invariant: the class comes from the SQLSTATE where the server sent one: connection
//! exceptions (08), operator intervention such as a shutdown (57), insufficient resources (53),
//! transaction rollbacks (40) and an object in use (55006, a slot still held) are transient;
//! privilege (42501), authorization (28) and unknown-database (3D000) errors need the user;
//! anything else the server refuses is fatal. A closed connection with no SQLSTATE is transient.

use super::replication::PgError;
use crate::error::{Classify, ErrorClass, SetupError};
use crate::source::batch::Closed;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error(transparent)]
    Protocol(#[from] PgError),
    #[error("postgres query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The server cannot be reached (see `ErrorClass::Unreachable`).
    #[error(transparent)]
    Unreachable(SetupError),
    #[error(transparent)]
    Closed(#[from] Closed),
}

/// The class of a server error by its SQLSTATE.
pub(crate) fn sqlstate_class(code: &str) -> ErrorClass {
    match code {
        "42501" | "3D000" => ErrorClass::Setup,
        "55006" => ErrorClass::Transient,
        c if c.starts_with("28") => ErrorClass::Setup,
        c if ["08", "57", "53", "40"].iter().any(|p| c.starts_with(p)) => ErrorClass::Transient,
        _ => ErrorClass::Fatal,
    }
}

impl Classify for PgError {
    fn class(&self) -> ErrorClass {
        match self {
            PgError::Io(_) => ErrorClass::Transient,
            PgError::Server { code, .. } => sqlstate_class(code),
            PgError::Auth(_) => ErrorClass::Setup,
            PgError::Protocol(_) => ErrorClass::Fatal,
        }
    }
}

impl Classify for SourceError {
    fn class(&self) -> ErrorClass {
        match self {
            SourceError::Protocol(e) => e.class(),
            SourceError::Query(q) => match q.code() {
                Some(c) => sqlstate_class(c.code()),
                None if q.is_closed() => ErrorClass::Transient,
                // no SQLSTATE: the connection broke (io, unexpected EOF)
                None => ErrorClass::Transient,
            },
            SourceError::Setup(_) => ErrorClass::Setup,
            SourceError::Unreachable(_) => ErrorClass::Unreachable,
            // the pipeline's own error is the one that tells what happened
            SourceError::Closed(c) => c.class(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let io = SourceError::Protocol(PgError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )));
        assert_eq!(io.class(), ErrorClass::Transient);
        let server = |code: &str| {
            SourceError::Protocol(PgError::Server {
                code: code.into(),
                message: "m".into(),
                hint: None,
            })
            .class()
        };
        assert_eq!(server("57P01"), ErrorClass::Transient);
        assert_eq!(server("08006"), ErrorClass::Transient);
        assert_eq!(server("55006"), ErrorClass::Transient);
        assert_eq!(server("28P01"), ErrorClass::Setup);
        assert_eq!(server("42501"), ErrorClass::Setup);
        assert_eq!(server("42P01"), ErrorClass::Fatal);
        assert_eq!(
            SourceError::Setup(SetupError::new("p", "f")).class(),
            ErrorClass::Setup
        );
    }
}
