//! Values a source cannot render (an infinite date, a zero date, bytes that are not text):
//! the one policy both sources follow.
//!
//! Invariants (spec §2): such a value becomes `Value::Unrendered` (written as null), is counted
//! in [`RENDER_FAILURES`] (exported as `rowstream_render_failures_total`), and is logged once
//! per (table, column) with the reason, never with the value itself. A source never stops on
//! one: `errors.bad_values` decides in the pipeline what its record does (null by default).

use crate::model::value::Value;
use std::collections::HashSet;
use std::sync::atomic::Ordering;

// values that could not be rendered (null instead), over the process lifetime
use crate::metrics::RENDERED_AS_NULL as RENDER_FAILURES;

/// Remembers which columns were already warned about.
#[derive(Default)]
pub(crate) struct RenderWarnings {
    warned: HashSet<(String, String)>,
}

impl RenderWarnings {
    /// Count and (once per column) log a value of `table.column` that cannot be rendered;
    /// returns the `Unrendered` that replaces it.
    pub(crate) fn failed(&mut self, table: &str, column: &str, reason: &str) -> Value {
        RENDER_FAILURES.fetch_add(1, Ordering::Relaxed);
        if !self
            .warned
            .contains(&(table.to_string(), column.to_string()))
        {
            self.warned.insert((table.to_string(), column.to_string()));
            tracing::warn!(
                table = %table,
                column = %column,
                reason,
                "a value cannot be rendered and is written as null (logged once per column)"
            );
        }
        Value::Unrendered(reason.into())
    }

    /// The value, or `Unrendered` through [`RenderWarnings::failed`].
    pub(crate) fn value(&mut self, table: &str, column: &str, v: Result<Value, String>) -> Value {
        v.unwrap_or_else(|reason| self.failed(table, column, &reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_counted_and_remembered() {
        let mut w = RenderWarnings::default();
        let before = RENDER_FAILURES.load(Ordering::Relaxed);
        assert_eq!(w.value("s.t", "c", Ok(Value::Int(1))), Value::Int(1));
        let bad = Value::Unrendered("zero date".into());
        assert_eq!(w.value("s.t", "c", Err("zero date".into())), bad);
        assert_eq!(w.value("s.t", "c", Err("zero date".into())), bad);
        assert!(RENDER_FAILURES.load(Ordering::Relaxed) >= before + 2);
        assert_eq!(w.warned.len(), 1);
    }
}
