//! `rowstream tail`: follow topics and print each record readably, one line per change.
//!
//! A line is `time  table  op  key  columns`: the commit time (UTC, ms; `snapshot` for snapshot
//! rows), the source table (`db.schema.table` / `db.table`), the op, the Kafka key (`-` when
//! null), then the changed columns (for an update only the columns whose value differs between
//! the images, as `col: old → new`; for an insert every column; for a delete the old image) or
//! the DDL statement. `--json` prints the record as it is instead. A transaction marker is
//! `time  db  BEGIN txn <id>` or `time  db  END txn <id>  <n> records (<table> <n>, ...)`. A
//! parked record (`errors.dead_letter_topic`) is `time  table  PARKED <op>  key  <why> at
//! <position>: <error>  (for <topic>)`, its time the time it was parked.
//!
//! Invariants:
//! - Read only: no consumer group offsets are committed (partitions are assigned, not
//!   subscribed), so tailing never moves anyone's position.
//! - Without named topics, every topic the config's `kafka.topic` template can name is
//!   followed (and its `encode.transaction_topic` when `encode.transaction_markers` is on, and
//!   its `errors.dead_letter_topic`),
//!   and topics created later (new tables) join within [`RESCAN`].
//! - Lines are printed in source order across every followed partition, merged: snapshot rows
//!   (`sequenceId` `"-1"`) first, then by `payload.sequenceId` (DDL records and transaction
//!   markers included), ties by topic, partition and offset. A record is held until no
//!   followed partition can still deliver an older one: each partition has delivered a later
//!   record, or has been read to its end (the consumer's position at the high watermark) and
//!   the record was held [`GRACE`]. Records without a `sequenceId` (heartbeats, text that is
//!   not DataWorks JSON) take no part in the order and are printed as they arrive.
//! - Memory is bounded: at most [`MAX_HELD`] records are held, none longer than [`MAX_HOLD`]
//!   (a partition that stops answering delays the lines by that much, no more); past either
//!   the oldest held record is printed anyway. A snapshot taken while following (`POST
//!   /snapshot`) is printed as it arrives, after the changes already printed. Stopping (idle,
//!   `--max`) prints what is held, in order, up to `--max`.
//! - The readable form renders `DATE` column values (per `schema.dataColumn`) as ISO-8601 UTC
//!   (`2024-11-15T09:30:00.123Z`; the µs form `1590315269123.456000` as
//!   `2020-05-24T10:14:29.123456Z`); `--json` prints the record's bytes exactly as in Kafka.
//! - A record that is not DataWorks JSON is printed as its text, never dropped.
//! - A reader that goes away (`rowstream tail | head`) ends the command quietly with exit 0.
use crate::config::KafkaConfig;
use crate::format::parked::{Parked, Why};
use crate::format::record::{Envelope, Image, Values};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value as J;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::tail";

/// How often the topic list is read again for topics that appeared.
const RESCAN: Duration = Duration::from_secs(5);
/// How long a record is held at least when a partition that has not passed it is read to its
/// end: the time a record sent before it to another partition needs to arrive.
const GRACE: Duration = Duration::from_millis(200);
/// The longest a record is held waiting for a partition that neither passes it nor reaches
/// its end (a broker that stops answering): then it is printed anyway.
const MAX_HOLD: Duration = Duration::from_secs(5);
/// The most records held for ordering; past it the oldest is printed anyway.
const MAX_HELD: usize = 100_000;
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
    /// Topics followed besides `template`'s when none is named (the transaction markers', the
    /// dead-letter topic).
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

/// Where a record sits in the source order: its sequenceId (`-1` for snapshot rows, so they
/// come first), then its topic, partition and offset.
type Place = (i64, String, i32, i64);

/// A followed partition, as the merge knows it.
struct Part {
    /// the next offset to read, as far as known here (the start, then each record read)
    next: i64,
    /// the high watermark last read from the broker, and when
    high: (i64, Instant),
    /// the place of the latest record read from it (places grow within a partition)
    last: Option<Place>,
}

/// The lowest `last` of `parts`: `None` when there is no partition, `Some(None)` when one has
/// delivered no ordered record yet.
fn lowest<'a>(parts: impl Iterator<Item = &'a Part>) -> Option<Option<&'a Place>> {
    parts.map(|p| p.last.as_ref()).min()
}

/// Is `place` at or before `bound` (see [`lowest`]): no partition bounding it can still
/// deliver an older record.
fn not_after(place: &Place, bound: Option<Option<&Place>>) -> bool {
    match bound {
        None => true,
        Some(None) => false,
        Some(Some(l)) => place <= l,
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
    let mut parts: HashMap<(String, i32), Part> = HashMap::new();
    // records waiting for every partition to pass them: (place → (held since, line))
    let mut held: BTreeMap<Place, (Instant, String)> = BTreeMap::new();
    let mut scanned: Option<Instant> = None;
    let mut last = Instant::now();
    let mut printed = 0u64;
    loop {
        if scanned.is_none_or(|s| s.elapsed() >= RESCAN) {
            follow_new(&c, kafka, opts, &pattern, &mut parts, scanned.is_none())?;
            scanned = Some(Instant::now());
        }
        if let Some(idle) = opts.idle {
            if last.elapsed() >= idle {
                // nothing older can come now: what is held, in order
                for (_, (_, line)) in std::mem::take(&mut held) {
                    if !emit(out, &line, &mut printed, opts)? {
                        break;
                    }
                }
                return Ok(());
            }
        }
        let wait = if held.is_empty() { 200 } else { 20 };
        match c.poll(Duration::from_millis(wait)) {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(target: LOG_TARGET, error = %e, "kafka consumer");
            }
            Some(Ok(m)) => {
                last = Instant::now();
                let (line, place) = line_of(&m, opts);
                let part = parts.get_mut(&(m.topic().to_string(), m.partition()));
                if let Some(part) = part {
                    part.next = part.next.max(m.offset() + 1);
                    if let Some(place) = &place {
                        if part.last.as_ref().is_none_or(|l| l < place) {
                            part.last = Some(place.clone());
                        }
                    }
                }
                match (line, place) {
                    (Some(line), Some(place)) => {
                        held.insert(place, (last, line));
                    }
                    (Some(line), None) => {
                        if !emit(out, &line, &mut printed, opts)? {
                            return Ok(());
                        }
                    }
                    (None, _) => {}
                }
            }
        }
        if held.is_empty() {
            continue;
        }
        let passed = lowest(parts.values()).map(|l| l.cloned());
        // the lowest of the partitions not read to their end, once needed
        let mut lagging: Option<Option<Option<Place>>> = None;
        loop {
            let over = held.len() > MAX_HELD;
            let Some((place, (since, _))) = held.first_key_value() else {
                break;
            };
            let age = since.elapsed();
            let ready = over
                || age >= MAX_HOLD
                || not_after(place, passed.as_ref().map(Option::as_ref))
                || (age >= GRACE && {
                    let l = lagging.get_or_insert_with(|| lowest_lagging(&c, &mut parts));
                    not_after(place, l.as_ref().map(Option::as_ref))
                });
            if !ready {
                break;
            }
            if let Some((_, (_, line))) = held.pop_first() {
                if !emit(out, &line, &mut printed, opts)? {
                    return Ok(());
                }
            }
        }
    }
}

/// The lowest `last` (see [`lowest`]) of the partitions not read to their end: the
/// consumer's position (or the next offset known here) is below the high watermark, read
/// from the broker again when older than [`GRACE`] (kept when the broker does not answer).
fn lowest_lagging(
    c: &BaseConsumer,
    parts: &mut HashMap<(String, i32), Part>,
) -> Option<Option<Place>> {
    let positions: HashMap<(String, i32), i64> = c
        .position()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut lowest: Option<Option<Place>> = None;
    for ((t, p), part) in parts.iter_mut() {
        let at = positions
            .get(&(t.clone(), *p))
            .map_or(part.next, |&o| o.max(part.next));
        if at >= part.high.0 && part.high.1.elapsed() >= GRACE {
            if let Ok((_, h)) = c.fetch_watermarks(t, *p, Duration::from_secs(1)) {
                part.high = (h, Instant::now());
            }
        }
        if at < part.high.0 && lowest.as_ref().is_none_or(|l| part.last < *l) {
            lowest = Some(part.last.clone());
        }
    }
    lowest
}

/// Print one line and count it; `false` once the tail is done: the reader went away or
/// `--max` lines are printed.
fn emit(
    out: &mut dyn Write,
    line: &str,
    printed: &mut u64,
    opts: &Options,
) -> Result<bool, TailError> {
    if !write_line(out, line)? {
        return Ok(false);
    }
    *printed += 1;
    Ok(opts.max.is_none_or(|n| *printed < n))
}

/// Read the topics on the broker and follow the partitions of the wanted ones that are not
/// followed yet (`parts` keeps them): from their end on the `first` scan, from their
/// beginning with `--from-beginning` and for topics that appeared while following. Named
/// topics of which none exists at the first scan are an error.
fn follow_new(
    c: &BaseConsumer,
    kafka: &KafkaConfig,
    opts: &Options,
    pattern: &str,
    parts: &mut HashMap<(String, i32), Part>,
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
            let id = (t.name().to_string(), p.id());
            if parts.contains_key(&id) {
                continue;
            }
            // a topic that appeared while following is read whole
            let beginning = opts.from_beginning || !first;
            // unknown offsets read as 0: the merge reads the high watermark again before
            // taking the partition as read to its end
            let (low, high) = c
                .fetch_watermarks(t.name(), p.id(), Duration::from_secs(10))
                .unwrap_or_else(|e| {
                    tracing::warn!(target: LOG_TARGET, topic = t.name(), partition = p.id(),
                        error = %e, "cannot read the partition's offsets");
                    (0, 0)
                });
            let from = if beginning {
                Offset::Beginning
            } else {
                Offset::End
            };
            tpl.add_partition_offset(t.name(), p.id(), from)
                .map_err(|e| format!("cannot follow {}: {e}", t.name()))?;
            let next = if beginning { low } else { high };
            parts.insert(
                id,
                Part {
                    next,
                    high: (high, Instant::now()),
                    last: None,
                },
            );
        }
    }
    if tpl.count() > 0 {
        // added to what is followed; the partitions followed already keep their place
        c.incremental_assign(&tpl)
            .map_err(|e| format!("cannot follow the topics: {e}"))?;
    }
    if first && parts.is_empty() && !opts.topics.is_empty() {
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
/// one that is not DataWorks JSON (`None` for a heartbeat left out); and its place in the
/// source order (`None` for a record without a `sequenceId`: heartbeats, text).
fn line_of(m: &BorrowedMessage<'_>, opts: &Options) -> (Option<String>, Option<Place>) {
    let payload = m.payload().unwrap_or_default();
    let record: Option<Envelope<Values>> = Envelope::parse(payload).ok();
    let op = record.as_ref().map_or("", |r| r.payload.op.as_str());
    let place = record
        .as_ref()
        .filter(|_| op != "MHEARTBEAT")
        .and_then(|r| r.payload.sequence_id.as_deref())
        .and_then(|s| s.parse::<i64>().ok())
        .map(|seq| (seq, m.topic().to_string(), m.partition(), m.offset()));
    if op == "MHEARTBEAT" && !opts.heartbeats {
        return (None, place);
    }
    let key = m.key().map(String::from_utf8_lossy);
    let line = if opts.json {
        String::from_utf8_lossy(payload).into_owned()
    } else {
        match (&record, Parked::read(payload)) {
            (Some(r), _) => readable(r, key.as_deref()),
            (None, Some(p)) => parked_line(&p),
            (None, None) => format!(
                "{}[{}]@{} (not DataWorks JSON) {}",
                m.topic(),
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(payload)
            ),
        }
    };
    (Some(line), place)
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
    let columns = r.schema.as_ref().map(|s| s.columns()).unwrap_or_default();
    let order: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    // a value as shown: a DATE column's as ISO-8601, any other as JSON text
    let shown = |name: &str, v: &J| -> String {
        columns
            .iter()
            .find(|c| c.name == name && c.ltype == "DATE")
            .and_then(|_| iso_date(v))
            .unwrap_or_else(|| short(v))
    };
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
            .map(|(k, v)| format!("{k}={}", shown(k, v)))
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
                    .map(|(k, v)| {
                        format!("{k}: {} → {}", shown(k, &before[k.as_str()]), shown(k, v))
                    })
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

/// A parked record as a line (see the module doc).
fn parked_line(p: &Parked<'_>) -> String {
    let time = chrono::DateTime::from_timestamp_millis(p.parked_at)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| p.parked_at.to_string());
    let table = p.table.as_deref().unwrap_or("-");
    let op = format!("PARKED {}", p.op.as_deref().unwrap_or("-"));
    let key = p.key.as_deref().unwrap_or("-");
    let why = match p.parked {
        Why::BadValue => "BAD_VALUE",
        Why::Oversized => "OVERSIZED",
        Why::Refused => "REFUSED",
    };
    let at = match &p.position {
        Some(pos) => pos.describe(),
        None => "snapshot".into(),
    };
    let error = p.error.lines().next().unwrap_or("");
    format!(
        "{time}  {table}  {op:<12}  {key}  {why} at {at}: {error}  (for {})",
        p.topic
    )
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

/// A `DATE` value as ISO-8601 UTC: integer ms (`1731663000123`, negative before 1970) with
/// 3 decimals of seconds, ms with 6 decimals (`1590315269123.456000`, as text or number) with
/// 6 (9 when the ns are not whole µs); `None` for anything else (null, unreadable).
fn iso_date(v: &J) -> Option<String> {
    let text = match v {
        J::Number(n) => n.to_string(),
        J::String(s) => s.clone(),
        _ => return None,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.as_str()),
    };
    let (ms, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if ms.is_empty() || ms.len() > 18 || frac.len() > 6 || !all_digits(ms) || !all_digits(frac) {
        return None;
    }
    let ns = i128::from(ms.parse::<i64>().ok()?) * 1_000_000
        + i128::from(format!("{frac:0<6}").parse::<i64>().ok()?);
    let ns = if negative { -ns } else { ns };
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).ok()?;
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).ok()?;
    let t = chrono::DateTime::from_timestamp(secs, nanos)?;
    let decimals = match (frac.is_empty(), nanos % 1000) {
        (true, _) => "%.3f",
        (false, 0) => "%.6f",
        _ => "%.9f",
    };
    Some(
        t.format(&format!("%Y-%m-%dT%H:%M:%S{decimals}Z"))
            .to_string(),
    )
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
    fn parked_records_in_one_line() {
        let rec = r#"{"parked":"BAD_VALUE","error":"column d (infinite date has no epoch value) cannot be rendered\n  fix: x","table":"public.ev","topic":"pg.public.ev","key":"7","op":"INSERT","position":{"lsn":"0/16B3748"},"order":"0000000016b3748.00000000","columns":[{"name":"d","reason":"infinite date has no epoch value"}],"size":300,"parkedAt":1700000000123,"record":{"schema":null,"payload":{"op":"INSERT"}}}"#;
        assert_eq!(
            parked_line(&Parked::read(rec.as_bytes()).unwrap()),
            "2023-11-14T22:13:20.123Z  public.ev  PARKED INSERT  7  BAD_VALUE at lsn 0/16B3748: column d (infinite date has no epoch value) cannot be rendered  (for pg.public.ev)"
        );
        let refused = r#"{"parked":"REFUSED","error":"too large","table":"shop.t","topic":"my.shop.t","key":null,"op":"INSERT","position":{"binlogFileNumber":3,"offset":4567},"order":null,"size":2000000,"parkedAt":1700000000123,"record":null}"#;
        assert_eq!(
            parked_line(&Parked::read(refused.as_bytes()).unwrap()),
            "2023-11-14T22:13:20.123Z  shop.t  PARKED INSERT  -  REFUSED at binlog file 000003, offset 4567: too large  (for my.shop.t)"
        );
    }

    #[test]
    fn date_values_read_as_iso_8601() {
        let iso = |v: J| iso_date(&v);
        assert_eq!(
            iso(serde_json::json!(1_731_663_000_123i64)).as_deref(),
            Some("2024-11-15T09:30:00.123Z")
        );
        assert_eq!(
            iso(serde_json::json!("1590315269123.456000")).as_deref(),
            Some("2020-05-24T10:14:29.123456Z")
        );
        assert_eq!(
            iso(serde_json::json!(-14_256_000_000i64)).as_deref(),
            Some("1969-07-20T00:00:00.000Z")
        );
        assert_eq!(
            iso(serde_json::json!("-1.500000")).as_deref(),
            Some("1969-12-31T23:59:59.998500Z")
        );
        assert_eq!(iso(J::Null), None);
        assert_eq!(iso(serde_json::json!("soon")), None);
        // only DATE columns are rendered, the rest stays JSON text
        let r = serde_json::json!({
            "schema": {"dataColumn": [{"name": "id", "type": "LONG"}, {"name": "at", "type": "DATE"}], "primaryKey": ["id"],
                       "source": {"dbType": "PostgreSQL", "dbName": "shop", "schemaName": "public", "tableName": "orders"}},
            "payload": {"before": null, "after": {"dataColumn": {"id": 1731663000123i64, "at": 1731663000123i64}},
                        "sequenceId": "1", "op": "INSERT", "ddl": null,
                        "timestamp": {"eventTime": 1_700_000_000_000i64, "systemTime": 1, "checkpointTime": 1}},
            "version": "0.0.1"
        })
        .to_string();
        assert_eq!(
            readable(&r, Some("1")),
            "2023-11-14T22:13:20.000Z  shop.public.orders  INSERT        1  id=1731663000123 at=2024-11-15T09:30:00.123Z"
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
