//! Parking records that cannot go to their topic (`[errors]`, `kafka.oversized = "park"`): the
//! policy, the count and the limit. The pipeline sends the record (`format::parked`) to
//! `errors.dead_letter_topic` through the same producer and tracker as every record, so a
//! parked record is covered by the checkpoint like any other: a restart never loses one.
//!
//! Invariants:
//! - Only the values a record shows count as bad: a left-out or always-null column
//!   (`source.column_exclude`, a `null` mask) never parks its record.
//! - Every parked record is counted (`rowstream_records_parked_total`, per table and reason)
//!   and logged once a minute per table and reason with the count, never with its values;
//!   more than `errors.max_parked` since the connector started stop it.

use crate::config::{BadValues, ErrorsConfig, Tolerance};
use crate::format::parked::{BadColumn, Why};
use crate::model::schema::{Shown, TableSchema};
use crate::model::value::Value;
use std::sync::Arc;

const LOG_TARGET: &str = "rowstream::pipeline";

pub(crate) struct DeadLetter {
    /// `errors.dead_letter_topic`
    pub(crate) topic: Option<String>,
    /// `errors.bad_values`
    pub(crate) bad_values: BadValues,
    /// `errors.tolerance = "all"`: records the broker refuses are parked
    pub(crate) refused: bool,
    /// `errors.max_parked` (0: no limit)
    max: u64,
    /// parked since the connector started
    parked: u64,
    repeats: crate::repeats::Repeats,
    metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ParkError {
    #[error("a row of {table} (key {key}) holds a value that cannot be rendered, and errors.bad_values = \"fail\" stops the connector: {columns}; the position stays before it\n  fix: correct the value in the source, or set errors.bad_values = \"null\" (write null, counted and logged) or \"park\" (send the record to errors.dead_letter_topic) and start again")]
    BadValue {
        table: String,
        key: String,
        columns: String,
    },
    /// unreachable after validation: a policy parks and no topic is named
    #[error("a record is to be parked and errors.dead_letter_topic is not set\n  fix: set errors.dead_letter_topic")]
    NoTopic,
    #[error("{parked} records were parked in {topic} since the connector started, more than errors.max_parked ({max}); the last: {last}\n  fix: read the parked records (rowstream tail {topic}) and correct their cause, or raise errors.max_parked (0: no limit), and start again")]
    TooMany {
        parked: u64,
        max: u64,
        topic: String,
        last: String,
    },
}

impl DeadLetter {
    pub(crate) fn new(cfg: &ErrorsConfig, metrics: Arc<crate::metrics::Metrics>) -> DeadLetter {
        DeadLetter {
            topic: cfg.topic().map(String::from),
            bad_values: cfg.bad_values,
            refused: cfg.tolerance == Tolerance::All,
            max: cfg.max_parked,
            parked: 0,
            repeats: Default::default(),
            metrics,
        }
    }

    /// Does a record's values need looking at (`errors.bad_values` is not `null`)?
    pub(crate) fn checks_values(&self) -> bool {
        self.bad_values != BadValues::Null
    }

    /// The shown columns of `images` that hold a value the source could not render.
    pub(crate) fn unrendered(t: &TableSchema, images: [Option<&[Value]>; 2]) -> Vec<BadColumn> {
        let mut out: Vec<BadColumn> = Vec::new();
        for row in images.into_iter().flatten() {
            for (i, v) in row.iter().enumerate() {
                let Value::Unrendered(reason) = v else {
                    continue;
                };
                if matches!(t.shown(i), Shown::Dropped | Shown::Null) {
                    continue;
                }
                let name = t.columns.get(i).map_or("", |c| c.name.as_str());
                if !out.iter().any(|c| c.name == name) {
                    out.push(BadColumn {
                        name: name.to_string(),
                        reason: reason.to_string(),
                    });
                }
            }
        }
        out
    }

    /// `errors.bad_values = "fail"`: the error that stops the connector.
    pub(crate) fn bad_value_error(table: &str, key: &str, columns: &[BadColumn]) -> ParkError {
        ParkError::BadValue {
            table: table.to_string(),
            key: key.to_string(),
            columns: describe(columns),
        }
    }

    /// One record parked: count it, log it (once a minute per table and reason), and stop
    /// once more than `errors.max_parked` were.
    pub(crate) fn counted(&mut self, why: Why, table: &str, error: &str) -> Result<(), ParkError> {
        self.parked += 1;
        self.metrics.parked(table, why.label());
        let topic = self.topic.as_deref().unwrap_or("");
        if let Some(count) = self.repeats.hit(&format!("{table}/{}", why.label())) {
            tracing::warn!(target: LOG_TARGET, table = %table, reason = why.label(), dead_letter_topic = %topic, count, error = %first_line(error), "record parked in the dead-letter topic (logged once a minute per table and reason, with the count)");
        }
        if self.max > 0 && self.parked > self.max {
            return Err(ParkError::TooMany {
                parked: self.parked,
                max: self.max,
                topic: topic.to_string(),
                last: format!("{table}: {}", first_line(error)),
            });
        }
        Ok(())
    }
}

/// `d (infinite date has no epoch value), e (...)`
pub(crate) fn describe(columns: &[BadColumn]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("column {} ({})", c.name, c.reason))
        .collect();
    parts.join(", ")
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{Column, DbType, LogicalType, TableId};

    #[test]
    fn only_shown_columns_count() {
        let col = |n: &str| Column {
            name: n.into(),
            ltype: LogicalType::Date,
            fsp: 0,
            refine: Default::default(),
        };
        let t = TableSchema::new_routed(
            DbType::PostgreSql,
            TableId {
                db: "d".into(),
                schema: Some("s".into()),
                table: "t".into(),
            },
            vec![col("a"), col("b"), col("c")],
            None,
            "x".into(),
            Some(vec![Shown::Value, Shown::Dropped, Shown::Null].into()),
            None,
        );
        let bad = || Value::Unrendered("infinite".into());
        let row = vec![bad(), bad(), bad()];
        let found = DeadLetter::unrendered(&t, [Some(&row), Some(&row)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "a");
        assert_eq!(describe(&found), "column a (infinite)");
        let fine = vec![Value::Null, Value::Int(1), Value::Null];
        assert!(DeadLetter::unrendered(&t, [Some(&fine), None]).is_empty());
    }
}
