//! What `rowstream check` reports: findings with a level and the exact fix, printed one per line.
//!
//! Invariants:
//! - A `Fail` finding means `run` cannot work; `run` evaluates the same prerequisite definitions
//!   (each source's `prereq` module) and stops on a `Fail` with the same words and fix.
//! - A `Warn` finding means `run` works but something is degraded (null keys, placeholders).
//! - The report never stops at the first problem: every finding is printed.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Finding {
    pub(crate) level: Level,
    pub(crate) what: String,
    pub(crate) fix: Option<String>,
}

impl Finding {
    pub(crate) fn ok(what: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            what: what.into(),
            fix: None,
        }
    }

    pub(crate) fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Warn,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Fail,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Print findings as `[ok  ] …` / `[WARN] …` / `[FAIL] …` lines with their fixes; returns the
/// number of failures.
pub(crate) fn print_report(
    findings: &[Finding],
    out: &mut impl std::io::Write,
) -> std::io::Result<usize> {
    let mut failed = 0;
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        writeln!(out, "[{tag}] {}", f.what)?;
        if let Some(fix) = &f.fix {
            writeln!(out, "       fix: {fix}")?;
        }
    }
    if failed > 0 {
        writeln!(out, "{failed} problem(s) block running rowstream")?;
    } else {
        writeln!(out, "ready to run")?;
    }
    Ok(failed)
}

impl Finding {
    /// `run`'s reading of a prerequisite: a failed one stops it with the same words and fix
    /// `check` prints.
    pub(crate) fn required(self) -> Result<(), crate::error::SetupError> {
        match self.level {
            Level::Fail => Err(crate::error::SetupError::new(
                self.what,
                self.fix.unwrap_or_else(|| "run `rowstream check`".into()),
            )),
            _ => Ok(()),
        }
    }
}
