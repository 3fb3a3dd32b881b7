//! `[errors]`: what a record that cannot go to its topic does — a row holding a value the
//! source cannot render, a record the broker refuses for good — and the dead-letter topic
//! such records are parked in (Kafka Connect's `errors.tolerance` and
//! `errors.deadletterqueue.topic.name`, DataWorks' dirty-data limit).
//!
//! Invariants:
//! - The defaults change nothing: a value that cannot be rendered becomes null, counted and
//!   logged (spec §2), and a record the broker refuses for good stops the connector.
//! - A policy that parks records needs `dead_letter_topic`; a parked record is never silent:
//!   it is in that topic, counted (`rowstream_records_parked_total`) and logged.

use super::error::push;
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorsConfig {
    /// A record the broker refuses for good (too large for the broker or the topic, a keyless
    /// record in a compacted topic, a timestamp the topic does not take): `none` stops the
    /// connector, `all` parks the record in `dead_letter_topic` and goes on.
    #[serde(default)]
    pub(crate) tolerance: Tolerance,
    /// A row holding a value the source cannot render (an infinite or zero date): `null`
    /// writes null in its place (spec §2), `park` sends the record to `dead_letter_topic`
    /// instead of its topic, `fail` stops the connector.
    #[serde(default)]
    pub(crate) bad_values: BadValues,
    /// Where parked records go (empty: nowhere, so no policy may park).
    #[serde(default)]
    pub(crate) dead_letter_topic: String,
    /// Stop the connector once more records than this were parked since it started (the
    /// dirty-data limit); 0: no limit.
    #[serde(default)]
    pub(crate) max_parked: u64,
}

/// `errors.tolerance`, as Kafka Connect names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Tolerance {
    #[default]
    None,
    All,
}

/// `errors.bad_values`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BadValues {
    #[default]
    Null,
    Park,
    Fail,
}

impl ErrorsConfig {
    /// The dead-letter topic, when one is set.
    pub(crate) fn topic(&self) -> Option<&str> {
        Some(self.dead_letter_topic.as_str()).filter(|t| !t.is_empty())
    }

    /// `others`: the keys of the topics the dead-letter topic must not be
    /// (`encode.side_topic`, `encode.transaction_topic`), with their values; `oversized_parks`:
    /// `kafka.oversized` (or a table's) is `park`; `exactly_once`: `kafka.exactly_once`.
    pub(super) fn validate(
        &self,
        others: &[(&str, Option<&str>)],
        oversized_parks: bool,
        exactly_once: bool,
        p: &mut Vec<String>,
    ) {
        let t = &self.dead_letter_topic;
        if !t.is_empty() && !super::runtime::topic_name_ok(t) {
            push(
                p,
                "errors.dead_letter_topic",
                format!("`{t}` is not a Kafka topic name (allowed: a-z A-Z 0-9 . _ -, at most 249 characters)"),
            );
        }
        for (key, other) in others {
            if !t.is_empty() && *other == Some(t.as_str()) {
                push(
                    p,
                    "errors.dead_letter_topic",
                    format!("`{t}` is {key} too; give the parked records a topic of their own"),
                );
            }
        }
        let fix = "set errors.dead_letter_topic (e.g. \"rowstream.dead-letter\")";
        if t.is_empty() {
            if self.tolerance == Tolerance::All {
                push(p, "errors.tolerance", format!("\"all\" parks the records the broker refuses, and no topic is named for them; {fix}, or set errors.tolerance = \"none\""));
            }
            if self.bad_values == BadValues::Park {
                push(p, "errors.bad_values", format!("\"park\" sends rows with values that cannot be rendered to the dead-letter topic, and none is named; {fix}, or set errors.bad_values = \"null\" or \"fail\""));
            }
            if oversized_parks {
                push(p, "kafka.oversized", format!("\"park\" sends records over message.max.bytes to the dead-letter topic, and none is named; {fix}"));
            }
        }
        if self.tolerance == Tolerance::All && exactly_once {
            push(
                p,
                "errors.tolerance",
                "\"all\" cannot be combined with kafka.exactly_once: a record the broker refuses aborts the Kafka transaction it is in, with every record of it; keep errors.tolerance = \"none\" (errors.bad_values = \"park\" and kafka.oversized = \"park\" decide before sending and work with exactly-once)",
            );
        }
    }
}
