//! Errors of the MySQL/MariaDB source and their classes (see `crate::error`).
//!
//! Invariant: the class comes from the error number where the server sent one: a server
//! shutting down (1053), a killed or idle-closed connection (1927, 4031), too many connections
//! (1040), lock timeouts and deadlocks (1205, 1213) and lost connections (2006, 2013) are
//! transient; access errors (1044, 1045, 1142, 1227), an unknown database (1049) and a purged
//! binlog (1236) need the user; anything else the server refuses is fatal. Network failures
//! and driver-level connection errors are transient.

use super::schema::HistoryError;
use crate::error::{Classify, ErrorClass, SetupError};
use crate::source::batch::Closed;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MySqlError {
    #[error("mysql: {0}")]
    Driver(#[from] mysql_async::Error),
    #[error("{0}")]
    History(#[from] HistoryError),
    #[error("binlog event could not be read: {0}")]
    Event(#[from] std::io::Error),
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The server cannot be reached (see `ErrorClass::Unreachable`).
    #[error(transparent)]
    Unreachable(SetupError),
    #[error(transparent)]
    Closed(#[from] Closed),
    /// A binlog event that cannot be read: retrying would meet it again.
    #[error("{0}")]
    Malformed(String),
}

/// A problem the user must fix, with its fix.
pub(super) fn setup(problem: impl Into<String>, fix: impl Into<String>) -> MySqlError {
    MySqlError::Setup(SetupError::new(problem, fix))
}

/// The class of a server error by its number.
pub(crate) fn server_error_class(code: u16) -> ErrorClass {
    match code {
        1053 | 1927 | 4031 | 1040 | 1205 | 1213 | 2006 | 2013 => ErrorClass::Transient,
        1044 | 1045 | 1142 | 1227 | 1049 | 1236 => ErrorClass::Setup,
        _ => ErrorClass::Fatal,
    }
}

impl Classify for mysql_async::Error {
    fn class(&self) -> ErrorClass {
        match self {
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ErrorClass::Transient,
            mysql_async::Error::Server(s) => server_error_class(s.code),
            mysql_async::Error::Url(_) => ErrorClass::Setup,
            mysql_async::Error::Other(_) => ErrorClass::Fatal,
        }
    }
}

impl Classify for MySqlError {
    fn class(&self) -> ErrorClass {
        match self {
            MySqlError::Driver(d) => d.class(),
            MySqlError::History(e) => e.class(),
            // a stream cut mid-event: reconnect and resume from the stored position
            MySqlError::Event(_) => ErrorClass::Transient,
            MySqlError::Setup(_) => ErrorClass::Setup,
            MySqlError::Unreachable(_) => ErrorClass::Unreachable,
            MySqlError::Closed(c) => c.class(),
            MySqlError::Malformed(_) => ErrorClass::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(server_error_class(1053), ErrorClass::Transient);
        assert_eq!(server_error_class(2013), ErrorClass::Transient);
        assert_eq!(server_error_class(1045), ErrorClass::Setup);
        assert_eq!(server_error_class(1142), ErrorClass::Setup);
        assert_eq!(server_error_class(1236), ErrorClass::Setup);
        assert_eq!(server_error_class(1064), ErrorClass::Fatal);
        let io = MySqlError::Driver(mysql_async::Error::Io(
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into(),
        ));
        assert_eq!(io.class(), ErrorClass::Transient);
        assert_eq!(
            MySqlError::Event(std::io::Error::other("eof")).class(),
            ErrorClass::Transient
        );
    }
}
