//! Every metric rowstream exports, in one place: the names, what each measures, the counters
//! behind them, and the Prometheus text they render to (`/metrics` on the admin listener).
//! `docs/metrics.md` documents each name; a test fails when one is missing there.
//!
//! Invariants:
//! - A connector's counters live as long as the connector (across in-process restarts, pauses
//!   and resumes), so counters only go up while the process runs.
//! - Updating a counter on the hot path is an atomic add or a per-batch merge of a local map:
//!   never a lock per record.
//! - Names are `rowstream_*`; per-table series carry `table` (`schema.table` / `db.table`) and
//!   `op` labels; a worker adds `connector="<name>"` to every series.
//! - Row values and secrets never appear in a label.

use crate::error::ErrorClass;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

pub(crate) const RECORDS: &str = "rowstream_records_total";
pub(crate) const TABLE_RECORDS: &str = "rowstream_table_records_total";
pub(crate) const TABLE_BYTES: &str = "rowstream_table_bytes_total";
pub(crate) const SNAPSHOT_ROWS: &str = "rowstream_snapshot_rows_total";
pub(crate) const SNAPSHOT_TABLE_ROWS: &str = "rowstream_snapshot_table_rows";
pub(crate) const SNAPSHOT_TABLE_ESTIMATE: &str = "rowstream_snapshot_table_rows_estimated";
pub(crate) const SNAPSHOT_TABLE_DONE: &str = "rowstream_snapshot_table_done";
pub(crate) const CHANGES: &str = "rowstream_changes_total";
pub(crate) const DDL: &str = "rowstream_ddl_records_total";
pub(crate) const OVERSIZED: &str = "rowstream_oversized_records_total";
pub(crate) const PARKED: &str = "rowstream_records_parked_total";
pub(crate) const HEARTBEATS: &str = "rowstream_heartbeats_total";
pub(crate) const TRANSACTION_MARKERS: &str = "rowstream_transaction_markers_total";
pub(crate) const IN_FLIGHT: &str = "rowstream_in_flight_records";
pub(crate) const RENDER_FAILURES: &str = "rowstream_render_failures_total";
pub(crate) const DELIVERED_EVENT_TIME: &str = "rowstream_delivered_event_time_ms";
pub(crate) const LAG: &str = "rowstream_lag_ms";
pub(crate) const DELIVERY_LATENCY: &str = "rowstream_delivery_latency_ms";
pub(crate) const ERRORS: &str = "rowstream_errors_total";
pub(crate) const RESTARTS: &str = "rowstream_restarts_total";
pub(crate) const CHECKPOINT_AGE: &str = "rowstream_checkpoint_age_ms";
pub(crate) const RETAINED_BYTES: &str = "rowstream_source_retained_bytes";
pub(crate) const WAL_STATUS: &str = "rowstream_source_wal_status";
pub(crate) const UP: &str = "rowstream_up";

/// Name, type and help of every metric family, in the order `/metrics` prints them.
pub(crate) const FAMILIES: &[(&str, &str, &str)] = &[
    (UP, "gauge", "1 while the connector runs (snapshot or stream), 0 while paused, stopped, failed or restarting."),
    (RECORDS, "counter", "Records handed to Kafka (rows, DDL)."),
    (TABLE_RECORDS, "counter", "Row records handed to Kafka, per table and op (INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE)."),
    (TABLE_BYTES, "counter", "Bytes of row records (value plus key) handed to Kafka, per table and op."),
    (CHANGES, "counter", "Change events streamed."),
    (SNAPSHOT_ROWS, "counter", "Snapshot rows read."),
    (SNAPSHOT_TABLE_ROWS, "gauge", "Rows read by the current or last snapshot of each table."),
    (SNAPSHOT_TABLE_ESTIMATE, "gauge", "The catalog's row estimate for each table being snapshotted (0: unknown)."),
    (SNAPSHOT_TABLE_DONE, "gauge", "1 once the snapshot of the table finished."),
    (DDL, "counter", "DDL records written."),
    (HEARTBEATS, "counter", "MHEARTBEAT records written."),
    (TRANSACTION_MARKERS, "counter", "TRANSACTION_BEGIN and TRANSACTION_END records written (encode.transaction_markers)."),
    (OVERSIZED, "counter", "Records over message.max.bytes (left out or shrunk by kafka.oversized)."),
    (PARKED, "counter", "Records sent to errors.dead_letter_topic instead of their topic, per table and reason (bad_value, oversized, refused)."),
    (RENDER_FAILURES, "counter", "Values that could not be rendered and were written as null."),
    (IN_FLIGHT, "gauge", "Producer queue depth: records sent and not yet acknowledged by Kafka."),
    (DELIVERY_LATENCY, "histogram", "Milliseconds from handing a record to the producer to Kafka's acknowledgement."),
    (DELIVERED_EVENT_TIME, "gauge", "Commit time (ms since the epoch) of the newest fully delivered source position."),
    (LAG, "gauge", "Source lag: now minus the commit time of the newest delivered change; heartbeats keep it current on an idle database."),
    (CHECKPOINT_AGE, "gauge", "Milliseconds since the position was last stored."),
    (RETAINED_BYTES, "gauge", "Log the source keeps for rowstream: Postgres pg_current_wal_lsn() - restart_lsn of the slot; MySQL/MariaDB binlog bytes after the stored position. -1: unknown."),
    (WAL_STATUS, "gauge", "Postgres: 1 for the slot's wal_status (reserved, extended, unreserved, lost)."),
    (ERRORS, "counter", "Failures that stopped a run, by class (transient, unreachable, setup, fatal)."),
    (RESTARTS, "counter", "In-process restarts after a transient failure."),
];

/// Values rendered as null because they could not be rendered (an infinite date, a zero date),
/// process-wide: counted where it happens (`source::render`).
pub(crate) static RENDERED_AS_NULL: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Upper bounds (ms) of the delivery latency buckets.
const LATENCY_BOUNDS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000];

/// A fixed-bucket histogram of milliseconds.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, ms: u64) {
        if let Some(i) = LATENCY_BOUNDS.iter().position(|&b| ms <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Records and bytes per (table, op).
pub(crate) type Traffic = BTreeMap<(String, &'static str), (u64, u64)>;

/// One table's snapshot as it goes.
#[derive(Clone, Debug, Default)]
pub(crate) struct TableSnapshot {
    pub(crate) rows: u64,
    pub(crate) estimate: Option<u64>,
    pub(crate) done: bool,
    /// when it started (for rate and ETA)
    pub(crate) started: Option<std::time::Instant>,
}

/// The gauges the source probe keeps (see `source::retention`).
#[derive(Default)]
pub(crate) struct SourceGauges {
    pub(crate) retained_bytes: AtomicI64,
    pub(crate) wal_status: Mutex<Option<String>>,
}

/// A connector's counters (see the module invariants).
pub(crate) struct Metrics {
    pub(crate) records: AtomicU64,
    pub(crate) snapshot_rows: AtomicU64,
    pub(crate) changes: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    /// TRANSACTION_BEGIN and TRANSACTION_END records
    pub(crate) transaction_markers: AtomicU64,
    pub(crate) ddl: AtomicU64,
    /// records over message.max.bytes (skipped, shrunk, or the one that stopped the run)
    pub(crate) oversized: AtomicU64,
    /// (table, reason) → records parked in the dead-letter topic
    parked: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// commit time (ms) of the newest fully delivered position; -1 before the first
    pub(crate) delivered_event_time: AtomicI64,
    /// when the position was last stored (ms); -1 before the first
    pub(crate) checkpointed_at: AtomicI64,
    pub(crate) latency: Histogram,
    /// (table, op) → (records, bytes)
    traffic: Mutex<Traffic>,
    snapshots: Mutex<BTreeMap<String, TableSnapshot>>,
    pub(crate) source: SourceGauges,
    errors: [AtomicU64; 4],
    pub(crate) restarts: AtomicU64,
    pub(crate) up: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            records: AtomicU64::new(0),
            snapshot_rows: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            transaction_markers: AtomicU64::new(0),
            ddl: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            parked: Mutex::default(),
            delivered_event_time: AtomicI64::new(-1),
            checkpointed_at: AtomicI64::new(-1),
            latency: Histogram::default(),
            traffic: Mutex::default(),
            snapshots: Mutex::default(),
            source: SourceGauges {
                retained_bytes: AtomicI64::new(-1),
                wal_status: Mutex::new(None),
            },
            errors: Default::default(),
            restarts: AtomicU64::new(0),
            up: AtomicI64::new(0),
        }
    }
}

const CLASSES: [(ErrorClass, &str); 4] = [
    (ErrorClass::Transient, "transient"),
    (ErrorClass::Unreachable, "unreachable"),
    (ErrorClass::Setup, "setup"),
    (ErrorClass::Fatal, "fatal"),
];

/// Per-table traffic gathered by the pipeline for one batch, merged into [`Metrics`] once.
/// Keyed by the table schema's address: the batch holds its tables' `Arc`s, so an address
/// names one table until the merge; the name is built once per table and batch.
#[derive(Default)]
pub(crate) struct TrafficBatch {
    map: std::collections::HashMap<(usize, &'static str), (String, u64, u64)>,
}

impl TrafficBatch {
    pub(crate) fn add(
        &mut self,
        t: &crate::model::schema::TableSchema,
        op: &'static str,
        bytes: usize,
    ) {
        let e = self
            .map
            .entry((t as *const _ as usize, op))
            .or_insert_with(|| (t.id.pattern_name(), 0, 0));
        e.1 += 1;
        e.2 += bytes as u64;
    }
}

impl Metrics {
    /// A record of `table` parked in the dead-letter topic for `reason`.
    pub(crate) fn parked(&self, table: &str, reason: &'static str) {
        let mut m = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((table.to_string(), reason)).or_default() += 1;
    }

    pub(crate) fn error(&self, class: ErrorClass) {
        if let Some(i) = CLASSES.iter().position(|c| c.0 == class) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Merge a batch's per-table traffic.
    pub(crate) fn merge(&self, batch: &mut TrafficBatch) {
        if batch.map.is_empty() {
            return;
        }
        let mut g = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
        for ((_, op), (t, n, b)) in batch.map.drain() {
            let e = g.entry((t, op)).or_default();
            e.0 += n;
            e.1 += b;
        }
    }

    /// Records handed to Kafka for `table` and `op` so far.
    pub(crate) fn table_records(&self) -> Traffic {
        self.traffic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The snapshot of `table` starts (again: its row count starts over).
    pub(crate) fn snapshot_started(&self, table: &str, estimate: Option<u64>) {
        let mut g = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(
            table.to_string(),
            TableSnapshot {
                rows: 0,
                estimate,
                done: false,
                started: Some(std::time::Instant::now()),
            },
        );
    }

    /// `rows` read so far by the snapshot of `table`, and whether it finished.
    pub(crate) fn snapshot_progress(&self, table: &str, rows: u64, done: bool) {
        let mut g = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        let e = g.entry(table.to_string()).or_default();
        e.rows = rows;
        e.done = done;
    }

    /// Every table snapshotted by this connector since it started, as it stands.
    pub(crate) fn snapshots(&self) -> BTreeMap<String, TableSnapshot> {
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The source lag in ms (None before anything was delivered).
    pub(crate) fn lag_ms(&self) -> Option<i64> {
        let et = self.delivered_event_time.load(Ordering::Relaxed);
        (et > 0).then(|| (crate::model::time::now_ms() - et).max(0))
    }

    /// Milliseconds since the position was last stored (None before the first).
    pub(crate) fn checkpoint_age_ms(&self) -> Option<i64> {
        let at = self.checkpointed_at.load(Ordering::Relaxed);
        (at > 0).then(|| (crate::model::time::now_ms() - at).max(0))
    }

    /// This connector's samples; `in_flight` is the current run's producer queue (0 between
    /// runs).
    pub(crate) fn samples(&self, in_flight: u64) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut s = |family: &'static str, suffix: &'static str, labels: String, v: f64| {
            out.push(Sample {
                family,
                suffix,
                labels,
                value: v,
            })
        };
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        s(
            UP,
            "",
            String::new(),
            self.up.load(Ordering::Relaxed) as f64,
        );
        s(RECORDS, "", String::new(), n(&self.records));
        for ((t, op), (r, b)) in self.table_records() {
            let l = format!("table=\"{}\",op=\"{op}\"", escape(&t));
            s(TABLE_RECORDS, "", l.clone(), r as f64);
            s(TABLE_BYTES, "", l, b as f64);
        }
        s(CHANGES, "", String::new(), n(&self.changes));
        s(SNAPSHOT_ROWS, "", String::new(), n(&self.snapshot_rows));
        for (t, p) in self.snapshots() {
            let l = format!("table=\"{}\"", escape(&t));
            s(SNAPSHOT_TABLE_ROWS, "", l.clone(), p.rows as f64);
            s(
                SNAPSHOT_TABLE_ESTIMATE,
                "",
                l.clone(),
                p.estimate.unwrap_or(0) as f64,
            );
            s(SNAPSHOT_TABLE_DONE, "", l, p.done as u8 as f64);
        }
        s(DDL, "", String::new(), n(&self.ddl));
        s(HEARTBEATS, "", String::new(), n(&self.heartbeats));
        s(
            TRANSACTION_MARKERS,
            "",
            String::new(),
            n(&self.transaction_markers),
        );
        s(OVERSIZED, "", String::new(), n(&self.oversized));
        let parked: Vec<((String, &str), u64)> = {
            let m = self.parked.lock().unwrap_or_else(|e| e.into_inner());
            m.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        for ((table, reason), count) in parked {
            let l = format!("table=\"{}\",reason=\"{reason}\"", escape(&table));
            s(PARKED, "", l, count as f64);
        }
        s(
            RENDER_FAILURES,
            "",
            String::new(),
            RENDERED_AS_NULL.load(Ordering::Relaxed) as f64,
        );
        s(IN_FLIGHT, "", String::new(), in_flight as f64);
        let mut cum = 0;
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            cum += self.latency.buckets[i].load(Ordering::Relaxed);
            s(
                DELIVERY_LATENCY,
                "_bucket",
                format!("le=\"{b}\""),
                cum as f64,
            );
        }
        let count = n(&self.latency.count);
        s(DELIVERY_LATENCY, "_bucket", "le=\"+Inf\"".into(), count);
        s(
            DELIVERY_LATENCY,
            "_sum",
            String::new(),
            n(&self.latency.sum),
        );
        s(DELIVERY_LATENCY, "_count", String::new(), count);
        let et = self.delivered_event_time.load(Ordering::Relaxed);
        s(DELIVERED_EVENT_TIME, "", String::new(), et as f64);
        if let Some(lag) = self.lag_ms() {
            s(LAG, "", String::new(), lag as f64);
        }
        if let Some(age) = self.checkpoint_age_ms() {
            s(CHECKPOINT_AGE, "", String::new(), age as f64);
        }
        let retained = self.source.retained_bytes.load(Ordering::Relaxed);
        s(RETAINED_BYTES, "", String::new(), retained as f64);
        let status = self
            .source
            .wal_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(st) = status {
            s(WAL_STATUS, "", format!("status=\"{}\"", escape(&st)), 1.0);
        }
        for (i, (_, name)) in CLASSES.iter().enumerate() {
            s(ERRORS, "", format!("class=\"{name}\""), n(&self.errors[i]));
        }
        s(RESTARTS, "", String::new(), n(&self.restarts));
        out
    }
}

/// One line of `/metrics`: `<family><suffix>{labels} value`.
pub(crate) struct Sample {
    family: &'static str,
    suffix: &'static str,
    labels: String,
    value: f64,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text for several connectors' samples: each labelled with `connector` when
/// `label` is given; one HELP/TYPE per family.
pub(crate) fn render(series: &[(Option<String>, Vec<Sample>)]) -> String {
    let mut out = String::new();
    for (family, kind, help) in FAMILIES {
        let mut head = false;
        for (connector, samples) in series {
            for smp in samples.iter().filter(|x| x.family == *family) {
                if !head {
                    let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
                    head = true;
                }
                let mut labels = match connector {
                    Some(c) => format!("connector=\"{}\"", escape(c)),
                    None => String::new(),
                };
                if !smp.labels.is_empty() {
                    if !labels.is_empty() {
                        labels.push(',');
                    }
                    labels.push_str(&smp.labels);
                }
                let labels = match labels.is_empty() {
                    true => String::new(),
                    false => format!("{{{labels}}}"),
                };
                let _ = writeln!(out, "{family}{}{labels} {}", smp.suffix, smp.value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_belongs_to_a_documented_family() {
        let m = Metrics::default();
        let t = crate::model::schema::TableSchema::new(
            crate::model::schema::DbType::PostgreSql,
            crate::model::schema::TableId {
                db: "d".into(),
                schema: Some("public".into()),
                table: "t".into(),
            },
            vec![],
            None,
            "topic".into(),
        );
        let mut b = TrafficBatch::default();
        b.add(&t, "INSERT", 100);
        b.add(&t, "INSERT", 50);
        m.merge(&mut b);
        assert_eq!(
            m.table_records().get(&("public.t".to_string(), "INSERT")),
            Some(&(2, 150))
        );
        m.snapshot_started("public.t", Some(10));
        m.source
            .wal_status
            .lock()
            .unwrap()
            .replace("reserved".into());
        m.delivered_event_time.store(1, Ordering::Relaxed);
        m.checkpointed_at.store(1, Ordering::Relaxed);
        for s in m.samples(0) {
            assert!(FAMILIES.iter().any(|f| f.0 == s.family), "{}", s.family);
        }
        let names: std::collections::HashSet<_> = FAMILIES.iter().map(|f| f.0).collect();
        assert_eq!(names.len(), FAMILIES.len(), "a family listed twice");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_merge() {
        let m = Metrics::default();
        for ms in [0, 3, 3, 40, 100_000] {
            m.latency.observe(ms);
        }
        let text = render(&[(Some("c\"1".into()), m.samples(7))]);
        assert!(
            text.contains(
                "rowstream_delivery_latency_ms_bucket{connector=\"c\\\"1\",le=\"1\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rowstream_delivery_latency_ms_bucket{connector=\"c\\\"1\",le=\"5\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rowstream_delivery_latency_ms_bucket{connector=\"c\\\"1\",le=\"30000\"} 4\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rowstream_delivery_latency_ms_bucket{connector=\"c\\\"1\",le=\"+Inf\"} 5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("rowstream_delivery_latency_ms_count{connector=\"c\\\"1\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("rowstream_in_flight_records{connector=\"c\\\"1\"} 7\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE rowstream_delivery_latency_ms histogram")
                .count(),
            1
        );
        let plain = render(&[(None, m.samples(0))]);
        assert!(plain.contains("rowstream_records_total 0\n"), "{plain}");
        assert!(
            plain.contains("rowstream_errors_total{class=\"transient\"} 0\n"),
            "{plain}"
        );
    }
}

#[cfg(test)]
mod docs {
    use super::FAMILIES;

    #[test]
    fn every_metric_is_documented_and_the_dashboard_uses_only_real_ones() {
        let doc = include_str!("../docs/metrics.md");
        for (name, kind, _) in FAMILIES {
            let row = format!("| `{name}` | {kind} |");
            assert!(doc.contains(&row), "docs/metrics.md lacks the row {row}");
        }
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../docs/grafana-dashboard.json")).unwrap();
        let mut used = 0;
        for p in dash["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    if word.starts_with("rowstream_") {
                        let base = word.trim_end_matches("_bucket");
                        assert!(
                            FAMILIES.iter().any(|f| f.0 == base),
                            "the dashboard uses {word}, which rowstream does not export"
                        );
                        used += 1;
                    }
                }
            }
        }
        assert!(used >= 10);
    }
}
