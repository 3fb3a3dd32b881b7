//! One error policy for the whole process.
//!
//! Every error type of the crate knows its [`ErrorClass`] ([`Classify`]); the class is decided
//! where the error is raised, by the module that understands it (a Postgres SQLSTATE, a MySQL
//! error number, a Kafka error code), and travels with it. `run` reads nothing but the class:
//!
//! | class | meaning | what `run` does |
//! |---|---|---|
//! | `Transient` | the world may heal: a lost connection, a restarting server, records Kafka did not acknowledge in time | restart in-process from the stored position, backoff 1 s doubling to 30 s |
//! | `Setup` | the user must change something: a prerequisite, a privilege, a config value | stop, exit 1, print the problem and its fix |
//! | `Unreachable` | the database cannot be reached (refused, reset, timed out, starting up) | at the first start: as `Setup` (a wrong host is a config problem); once rowstream has streamed: as `Transient` (the server is restarting) |
//! | `Fatal` | a bug or an unexpected state rowstream cannot reason about | stop, exit 1, print the cause chain |
//!
//! Invariants:
//! - Wrapping never changes the class: an [`Error`] built from a classified error keeps its
//!   class through any added context, and module enums that wrap another module's error
//!   delegate to it (a Kafka delivery failure inside a pipeline error is still transient).
//! - A `Setup` error always carries a fix ([`SetupError`] has no constructor without one).
//!
//! (Modelled on supabase/etl's error policy and Materialize's definite/transient errors.)

use std::fmt;

/// What can be done about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Retry from the stored position after a backoff.
    Transient,
    /// Stop; the user must fix something (the error names the fix).
    Setup,
    /// The database cannot be reached: `Setup` at the first start, `Transient` once streamed.
    Unreachable,
    /// Stop; nothing sensible to retry.
    Fatal,
}

/// Errors that know their class.
pub(crate) trait Classify {
    fn class(&self) -> ErrorClass;
}

/// A problem the user must fix, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}\n  fix: {fix}")]
pub(crate) struct SetupError {
    pub(crate) problem: String,
    pub(crate) fix: String,
}

impl SetupError {
    pub(crate) fn new(problem: impl Into<String>, fix: impl Into<String>) -> SetupError {
        SetupError {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl Classify for SetupError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Setup
    }
}

/// An error on its way up to `run`: its class and its cause chain.
pub(crate) struct Error {
    class: ErrorClass,
    inner: anyhow::Error,
}

impl Error {
    pub(crate) fn class(&self) -> ErrorClass {
        self.class
    }

    /// A setup problem raised outside any module error type.
    pub(crate) fn setup(problem: impl Into<String>, fix: impl Into<String>) -> Error {
        SetupError::new(problem, fix).into()
    }

    /// An unexpected state.
    pub(crate) fn fatal(msg: impl fmt::Display) -> Error {
        Error {
            class: ErrorClass::Fatal,
            inner: anyhow::anyhow!("{msg}"),
        }
    }

    /// The error and its causes, outermost first (for a caller that must tell one cause).
    pub(crate) fn chain(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        self.inner.chain()
    }

    /// Add context; the class stays.
    pub(crate) fn context(self, c: impl fmt::Display + Send + Sync + 'static) -> Error {
        Error {
            class: self.class,
            inner: self.inner.context(c),
        }
    }
}

impl<E> From<E> for Error
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Error {
        Error {
            class: e.class(),
            inner: anyhow::Error::new(e),
        }
    }
}

/// The error and its causes in one line, each text once (a driver error that repeats its
/// cause's text in its own is not printed three times over).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        for c in self.inner.chain() {
            let t = c.to_string();
            if text.contains(&t) {
                continue;
            }
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&t);
        }
        f.write_str(&text)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} error: {:#}", self.class, self.inner)
    }
}

/// `.context(..)` on results whose error converts into [`Error`].
/// An error and its causes in one line (`db error: FATAL: database "shop" does not exist`), each
/// cause once: for errors whose own text says little (tokio-postgres prints "db error").
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = c.source();
    }
    text
}

pub(crate) trait ResultExt<T> {
    fn context_err(self, c: impl fmt::Display + Send + Sync + 'static) -> Result<T, Error>;
}

impl<T, E: Into<Error>> ResultExt<T> for Result<T, E> {
    fn context_err(self, c: impl fmt::Display + Send + Sync + 'static) -> Result<T, Error> {
        self.map_err(|e| e.into().context(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(ErrorClass);
    impl Classify for Inner {
        fn class(&self) -> ErrorClass {
            self.0
        }
    }

    #[test]
    fn class_survives_context_and_setup_shows_its_fix() {
        let e: Error = Inner(ErrorClass::Transient).into();
        let e = e.context("streaming").context("run");
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(e.to_string(), "run: streaming: inner");
        let s = Error::setup(
            "wal_level is replica",
            "ALTER SYSTEM SET wal_level = logical",
        );
        assert_eq!(s.class(), ErrorClass::Setup);
        assert_eq!(
            s.to_string(),
            "wal_level is replica\n  fix: ALTER SYSTEM SET wal_level = logical"
        );
        let r: Result<(), Inner> = Err(Inner(ErrorClass::Fatal));
        assert_eq!(r.context_err("x").unwrap_err().class(), ErrorClass::Fatal);
    }

    /// The longest fixed part of a message literal (between `{..}` placeholders, first line).
    fn fixed_part(lit: &str) -> String {
        let first = lit.replace("\\\"", "\"");
        let first = first.split("\\n").next().unwrap_or_default();
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut depth = 0;
        for ch in first.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    parts.push(std::mem::take(&mut cur));
                }
                '}' if depth > 0 => depth -= 1,
                _ if depth == 0 => cur.push(ch),
                _ => {}
            }
        }
        parts.push(cur);
        parts
            .into_iter()
            .map(|p| p.trim().to_string())
            .max_by_key(|p| p.len())
            .unwrap_or_default()
    }

    /// Every error text in the code (the first string literal after a constructor of a
    /// user-facing error) appears in docs/troubleshooting.md.
    #[test]
    fn every_error_text_is_on_the_troubleshooting_page() {
        const MARKERS: [&str; 8] = [
            "Error::setup(",
            "SetupError::new(",
            "Finding::fail(",
            "Finding::warn(",
            "#[error(",
            "Error::fatal(",
            "setup(",
            "let what =",
        ];
        let doc = include_str!("../docs/troubleshooting.md");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root];
        let mut missing = Vec::new();
        let mut seen = 0;
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // the code, not its tests
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text,
            };
            for m in MARKERS {
                for (at, _) in code.match_indices(m) {
                    let rest = code[at + m.len()..].trim_start();
                    let rest = rest.strip_prefix("format!(").unwrap_or(rest).trim_start();
                    let Some(lit) = rest.strip_prefix('"') else {
                        continue;
                    };
                    let mut end = 0;
                    let b = lit.as_bytes();
                    while end < b.len() && b[end] != b'"' {
                        end += if b[end] == b'\\' { 2 } else { 1 };
                    }
                    let fixed = fixed_part(&lit[..end]);
                    if fixed.len() < 12 {
                        continue; // `{0}`: the text is another error's
                    }
                    seen += 1;
                    if !doc.contains(&fixed) {
                        missing.push(format!("{}: {fixed}", p.display()));
                    }
                }
            }
        }
        assert!(seen > 80, "only {seen} messages found: the scan is broken");
        missing.sort();
        missing.dedup();
        assert!(
            missing.is_empty(),
            "error texts missing from docs/troubleshooting.md:\n{}",
            missing.join("\n")
        );
    }
}
