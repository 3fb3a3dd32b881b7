//! `rowstream tail`: follow topics and print each record readably, one line per change.
//!
//! A line is `time  table  op  key  columns`: the commit time (UTC, ms; `snapshot` for snapshot
//! rows), the source table (`db.schema.table` / `db.table`), the op, the Kafka key (`-` when
//! null), then the changed columns (for an update only the columns whose value differs between
//! the images, as `col: old → new`; for an insert every column; for a delete the old image) or
//! the DDL statement. `--json` prints the record as it is instead. A transaction marker is
//! `time  db  BEGIN txn <id>` or `time  db  END txn <id>  <n> records (<table> <n>, ...)`.
//!
//! Invariants:
//! - Read only: no consumer group offsets are committed (partitions are assigned, not
//!   subscribed), so tailing never moves anyone's position.
//! - Without named topics, every topic the config's `kafka.topic` template can name is
//!   followed (and its `encode.transaction_topic` when `encode.transaction_markers` is on),
//!   and topics created later (new tables) join within [`RESCAN`]. Lines are printed in the
//!   order the consumer hands the records over: in order within a partition, not across.
//! - A record that is not DataWorks JSON is printed as its text, never dropped.
//! - A reader that goes away (`rowstream tail | head`) ends the command quietly with exit 0.
use crate::config::KafkaConfig;
use crate::format::record::{Envelope, Image, Values};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value as J;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::tail";

/// How often the topic list is read again for topics that appeared.
const RESCAN: Duration = Duration::from_secs(5);
/// Longest value printed in the readable form (longer ones are cut with `…`).
const VALUE_CHARS: usize = 80;

// `rowstream tail`'s command line (its help text is the doc comment of `cli::Command::Tail`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The run's config: its brokers and [kafka.properties], and (when no topic is named)
    /// its kafka.topic template, whose topics are all followed, new ones as they appear (and
    /// encode.transaction_topic when encode.transaction_markers is on).
    #[arg(short, long, env = "ROWSTREAM_CONFIG")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Brokers (host:port,...) when no config is given.
    #[arg(long)]
    pub(crate) brokers: Option<String>,
    /// Topics to follow (default: every topic of the config's kafka.topic template).
    topics: Vec<String>,
    /// Start at the oldest record of each partition (default: only new records).
    #[arg(long)]
    from_beginning: bool,
    /// Print each record's JSON as it is.
    #[arg(long)]
    json: bool,
    /// Print heartbeats too (left out by default).
    #[arg(long)]
    heartbeats: bool,
    /// Stop once no record arrived for this many seconds (default: follow until Ctrl-C).
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Stop after printing this many records.
    #[arg(long)]
    max: Option<u64>,
}

impl Args {
    /// The tail's options, following `template`'s topics and `also` but never `skip`'s unless
    /// named.
    pub(crate) fn options(
        &self,
        template: String,
        also: Vec<String>,
        skip: Vec<String>,
    ) -> Options {
        Options {
            topics: self.topics.clone(),
            template,
            also,
            skip,
            from_beginning: self.from_beginning,
            json: self.json,
            heartbeats: self.heartbeats,
            idle: self.idle_secs.map(Duration::from_secs),
            max: self.max,
        }
    }
}

pub(crate) struct Options {
    /// Named topics; empty: every topic `template` can name.
    pub(crate) topics: Vec<String>,
    pub(crate) template: String,
    /// Topics followed besides `template`'s when none is named (the transaction markers').
    pub(crate) also: Vec<String>,
    /// Topics never followed without being named (the state topics).
    pub(crate) skip: Vec<String>,
    pub(crate) from_beginning: bool,
    pub(crate) json: bool,
    pub(crate) heartbeats: bool,
    /// Stop once nothing arrived for this long.
    pub(crate) idle: Option<Duration>,
    /// Stop after this many printed records.
    pub(crate) max: Option<u64>,
}

/// Why `tail` stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TailError {
    /// Standard output could not be written (a reader that went away is not this: `tail`
    /// then ends with success).
    #[error("cannot write to stdout: {0}")]
    Output(std::io::Error),
    /// The broker or the topics, with the fix.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for TailError {
    fn from(s: String) -> Self {
        TailError::Failed(s)
    }
}

/// Follow until interrupted, idle or `max` records; `Err` is one line for the user.
pub(crate) fn tail(
    kafka: &KafkaConfig,
    opts: &Options,
    out: &mut dyn Write,
) -> Result<(), TailError> {
    let c: BaseConsumer = kafka
        .reader("rowstream-tail", crate::config::Fetch::Bulk)
        .create()
        .map_err(|e| format!("kafka settings are not accepted: {e}\n  fix: check the keys and values of [kafka.properties]"))?;
    let pattern = topic_glob(&opts.template);
    let mut followed: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut scanned: Option<Instant> = None;
    let mut last = Instant::now();
    let mut printed = 0u64;
    loop {
        if scanned.is_none_or(|s| s.elapsed() >= RESCAN) {
            follow_new(&c, kafka, opts, &pattern, &mut followed, scanned.is_none())?;
            scanned = Some(Instant::now());
        }
        if let Some(idle) = opts.idle {
            if last.elapsed() >= idle {
                return Ok(());
            }
        }
        let Some(r) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = match r {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, error = %e, "kafka consumer");
                continue;
            }
        };
        last = Instant::now();
        let Some(line) = line_of(&m, opts) else {
            continue;
        };
        if !write_line(out, &line)? {
            return Ok(());
        }
        printed += 1;
        if opts.max.is_some_and(|n| printed >= n) {
            return Ok(());
        }
    }
}

/// Read the topics on the broker and follow the partitions of the wanted ones that are not
/// followed yet (`followed` keeps them): from their end on the `first` scan, from their
/// beginning with `--from-beginning` and for topics that appeared while following. Named
/// topics of which none exists at the first scan are an error.
fn follow_new(
    c: &BaseConsumer,
    kafka: &KafkaConfig,
    opts: &Options,
    pattern: &str,
    followed: &mut BTreeSet<(String, i32)>,
    first: bool,
) -> Result<(), TailError> {
    let md = c.fetch_metadata(None, Duration::from_secs(10)).map_err(|e| {
        format!("kafka at {} does not answer: {e}\n  fix: check the brokers (--brokers or kafka.brokers), that the broker runs, and the TLS/SASL settings in [kafka.properties]", kafka.brokers)
    })?;
    let mut tpl = TopicPartitionList::new();
    tracing::debug!(target: LOG_TARGET, topics = md.topics().len(), "topics on the broker");
    for t in md.topics() {
        if !wanted(opts, pattern, t.name()) {
            continue;
        }
        for p in t.partitions() {
            if followed.insert((t.name().to_string(), p.id())) {
                let from = if opts.from_beginning || !first {
                    // a topic that appeared while following is read whole
                    Offset::Beginning
                } else {
                    Offset::End
                };
                tpl.add_partition_offset(t.name(), p.id(), from)
                    .map_err(|e| format!("cannot follow {}: {e}", t.name()))?;
            }
        }
    }
    if tpl.count() > 0 {
        // added to what is followed; the partitions followed already keep their place
        c.incremental_assign(&tpl)
            .map_err(|e| format!("cannot follow the topics: {e}"))?;
    }
    if first && followed.is_empty() && !opts.topics.is_empty() {
        return Err(TailError::Failed(format!(
            "no topic named {} on the broker\n  fix: name topics that exist (see `kafka.topic` of the run's config), or leave them out to follow every topic of the config",
            opts.topics.join(", ")
        )));
    }
    Ok(())
}

/// Is topic `name` followed: a named one, or without names one that `pattern` (the template
/// as a glob) matches, neither internal (`__…`) nor one of the skipped.
fn wanted(opts: &Options, pattern: &str, name: &str) -> bool {
    if opts.topics.is_empty() {
        !name.starts_with("__")
            && !opts.skip.iter().any(|s| s == name)
            && (crate::model::schema::glob_match(pattern, name)
                || opts.also.iter().any(|a| a == name))
    } else {
        opts.topics.iter().any(|n| n == name)
    }
}

/// The line printed for a message: its record as it is (`--json`), readable, or the text of
/// one that is not DataWorks JSON; `None` for a heartbeat left out.
fn line_of(m: &BorrowedMessage<'_>, opts: &Options) -> Option<String> {
    let payload = m.payload().unwrap_or_default();
    let record: Option<Envelope<Values>> = Envelope::parse(payload).ok();
    let op = record.as_ref().map_or("", |r| r.payload.op.as_str());
    if op == "MHEARTBEAT" && !opts.heartbeats {
        return None;
    }
    let key = m.key().map(String::from_utf8_lossy);
    Some(if opts.json {
        String::from_utf8_lossy(payload).into_owned()
    } else {
        match &record {
            Some(r) => readable(r, key.as_deref()),
            None => format!(
                "{}[{}]@{} (not DataWorks JSON) {}",
                m.topic(),
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(payload)
            ),
        }
    })
}

/// Write one line and flush it; `false` when the reader went away (the tail then ends with
/// success).
fn write_line(out: &mut dyn Write, line: &str) -> Result<bool, TailError> {
    match writeln!(out, "{line}").and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(TailError::Output(e)),
    }
}

/// The topic template as a glob: each placeholder stands for any run of characters.
fn topic_glob(template: &str) -> String {
    template
        .replace("{db}", "*")
        .replace("{schema}", "*")
        .replace("{table}", "*")
}

/// One record as a line (see the module doc).
pub(crate) fn readable(r: &Envelope<'_, Values>, key: Option<&str>) -> String {
    let p = &r.payload;
    let op = p.op.as_str();
    let time = match p.event_time() {
        Some(ms) => chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| ms.to_string()),
        None => format!("{:<24}", "snapshot"),
    };
    let src = r.schema.as_ref().and_then(|s| s.source.as_ref());
    if let Some(t) = p.transaction() {
        let db = src.and_then(|s| s.db_name.as_deref()).unwrap_or("-");
        return marker_line(&time, db, op, &t);
    }
    let table = match src.map(|s| (&s.db_name, &s.schema_name, &s.table_name)) {
        Some((Some(db), Some(s), Some(t))) => format!("{db}.{s}.{t}"),
        Some((Some(db), None, Some(t))) => format!("{db}.{t}"),
        _ => "-".into(),
    };
    let key = key.unwrap_or("-");
    // columns in table order (schema.dataColumn), whatever order the parsed images keep
    let order: Vec<String> = r
        .schema
        .as_ref()
        .map(|s| s.columns().into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    let in_order = |img: &Option<Image<Values>>| -> Vec<(String, J)> {
        let Some(o) = img.as_ref().map(|i| &i.data_column) else {
            return Vec::new();
        };
        let mut v: Vec<(String, J)> = order
            .iter()
            .filter_map(|n| o.get(n).map(|x| (n.clone(), x.clone())))
            .collect();
        v.extend(
            o.iter()
                .filter(|(k, _)| !order.contains(k))
                .map(|(k, x)| (k.clone(), x.clone())),
        );
        v
    };
    let cols = |img: &Option<Image<Values>>| -> Vec<String> {
        in_order(img)
            .iter()
            .map(|(k, v)| format!("{k}={}", short(v)))
            .collect()
    };
    let detail = if let Some(text) = p.ddl_text() {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        match (op, &p.before) {
            ("UPDATE_AFTER" | "UPDATE_BEFORE", Some(before)) if p.after.is_some() => {
                let before = &before.data_column;
                in_order(&p.after)
                    .iter()
                    .filter(|(k, v)| before.get(k.as_str()).is_some_and(|b| b != v))
                    .map(|(k, v)| format!("{k}: {} → {}", short(&before[k.as_str()]), short(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            ("DELETE" | "UPDATE_BEFORE", _) => cols(&p.before).join(" "),
            _ => cols(&p.after).join(" "),
        }
    };
    format!("{time}  {table}  {op:<12}  {key}  {detail}")
        .trim_end()
        .to_string()
}

/// A transaction marker as a line: `time  db  BEGIN txn <id>`, or `time  db  END txn <id>  <n>
/// records (<table> <n>, ...)`.
fn marker_line(time: &str, db: &str, op: &str, t: &crate::format::record::Transaction) -> String {
    let id = &t.id;
    match op {
        "TRANSACTION_BEGIN" => format!("{time}  {db}  BEGIN txn {id}"),
        "TRANSACTION_END" => {
            let n = t.event_count.unwrap_or(0);
            let tables: Vec<String> = t
                .tables
                .iter()
                .flatten()
                .map(|(name, c)| format!("{name} {c}"))
                .collect();
            let records = if n == 1 { "record" } else { "records" };
            format!(
                "{time}  {db}  END txn {id}  {n} {records} ({})",
                tables.join(", ")
            )
        }
        op => format!("{time}  {db}  {op} txn {id}"),
    }
}

/// A value as JSON text, cut to [`VALUE_CHARS`].
fn short(v: &J) -> String {
    let s = v.to_string();
    if s.chars().count() <= VALUE_CHARS {
        return s;
    }
    let mut cut: String = s.chars().take(VALUE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: &str, before: J, after: J, event: i64, ddl: J) -> String {
        let r = serde_json::json!({
            "schema": {"dataColumn": [{"name": "id", "type": "LONG"}, {"name": "status", "type": "STRING"}, {"name": "amount", "type": "DOUBLE"}], "primaryKey": ["id"],
                       "source": {"dbType": "PostgreSQL", "dbName": "shop", "schemaName": "public", "tableName": "orders"}},
            "payload": {"before": before, "after": after, "sequenceId": "1", "op": op, "ddl": ddl,
                        "timestamp": {"eventTime": event, "systemTime": 1, "checkpointTime": event}},
            "version": "0.0.1"
        });
        r.to_string()
    }

    fn readable(r: &str, key: Option<&str>) -> String {
        super::readable(&Envelope::parse(r.as_bytes()).unwrap(), key)
    }

    #[test]
    fn one_line_per_change_with_the_changed_columns() {
        let b = serde_json::json!({"dataColumn": {"id": 3, "status": "new", "amount": "12.50"}});
        let a = serde_json::json!({"dataColumn": {"id": 3, "status": "paid", "amount": "12.50"}});
        assert_eq!(
            readable(&rec("UPDATE_AFTER", b.clone(), a.clone(), 1_700_000_000_123, J::Null), Some("3")),
            "2023-11-14T22:13:20.123Z  shop.public.orders  UPDATE_AFTER  3  status: \"new\" → \"paid\""
        );
        assert_eq!(
            readable(&rec("INSERT", J::Null, a, -1, J::Null), Some("3")),
            "snapshot                  shop.public.orders  INSERT        3  id=3 status=\"paid\" amount=\"12.50\""
        );
        assert_eq!(
            readable(&rec("DELETE", b, J::Null, 1_700_000_000_000, J::Null), Some("3")),
            "2023-11-14T22:13:20.000Z  shop.public.orders  DELETE        3  id=3 status=\"new\" amount=\"12.50\""
        );
        let ddl =
            serde_json::json!({"text": "ALTER TABLE orders\n  ADD note text", "ddlMeta": null});
        assert_eq!(
            readable(&rec("ALTER", J::Null, J::Null, 1_700_000_000_000, ddl), None),
            "2023-11-14T22:13:20.000Z  shop.public.orders  ALTER         -  ALTER TABLE orders ADD note text"
        );
        let long = serde_json::json!({"dataColumn": {"doc": "x".repeat(200)}});
        let line = readable(&rec("INSERT", J::Null, long, 1, J::Null), None);
        assert!(line.ends_with('…') && line.chars().count() < 160, "{line}");
    }

    #[test]
    fn transaction_markers_in_one_line() {
        let marker = |op: &str, txn: J| {
            serde_json::json!({
                "schema": {"dataColumn": null, "primaryKey": null, "source": {"dbType": "PostgreSQL", "dbName": "shop"}},
                "payload": {"before": null, "after": null, "sequenceId": "1", "op": op, "ddl": null,
                            "timestamp": {"eventTime": 1_700_000_000_123i64, "systemTime": 1, "checkpointTime": 1_700_000_000_123i64},
                            "transaction": txn},
                "version": "0.0.1"
            })
            .to_string()
        };
        assert_eq!(
            readable(
                &marker(
                    "TRANSACTION_BEGIN",
                    serde_json::json!({"id": "0000000001a2b3c4"})
                ),
                Some("shop")
            ),
            "2023-11-14T22:13:20.123Z  shop  BEGIN txn 0000000001a2b3c4"
        );
        let end = serde_json::json!({"id": "0000000001a2b3c4", "eventCount": 5, "tables": {"public.a": 3, "public.b": 2}});
        assert_eq!(
            readable(&marker("TRANSACTION_END", end), Some("shop")),
            "2023-11-14T22:13:20.123Z  shop  END txn 0000000001a2b3c4  5 records (public.a 3, public.b 2)"
        );
    }

    #[test]
    fn the_template_becomes_a_glob() {
        let g = topic_glob("{db}.{schema}.{table}");
        assert!(crate::model::schema::glob_match(&g, "shop.public.orders"));
        assert!(!crate::model::schema::glob_match(&g, "rowstream-offsets"));
        assert!(crate::model::schema::glob_match(
            &topic_glob("cdc-{table}"),
            "cdc-orders"
        ));
    }
}
