//! `rowstream export`: a bounded read of one topic, as DataWorks' offline Kafka reader does it:
//! by offsets (`--begin-offset` / `--end-offset`) or by record time (`--begin-datetime` /
//! `--end-datetime`, `yyyymmddhhmmss`), one partition or all, into columns that mix record
//! attributes (`__key__`, `__value__`, `__partition__`, `__offset__`, `__timestamp__`,
//! `__headers__`), constants (`'abc'`) and JSON paths into the value (`event_id`, `tag.desc`),
//! written as CSV, JSON lines or Parquet; it exits when every partition reached its end.
//!
//! Invariants:
//! - Ranges are half-open: `begin` is included, `end` is not (offsets and times alike). A
//!   partition ends at `--end-offset`, or at the log end the broker reported when the export
//!   started, whichever comes first (DataWorks' reader's `endOffset` default): records written
//!   meanwhile are not exported, so an export of a busy topic ends. A partition is done when a
//!   record at its end is read or the read position passes it (a transactional topic's last
//!   offsets are commit markers, never delivered). With a time range every record
//!   up to that end is looked at and kept when its timestamp is in range; a begin time starts
//!   each partition at the broker's answer to ListOffsets by timestamp (`offsetsForTimes`: the
//!   earliest record at or after it), so the records before it are not read at all.
//! - Reading starts before the first wanted offset (`config::read_from`) and skips what is
//!   before it (tansu answers a fetch inside a record batch with the next batch).
//! - Read only: partitions are assigned, nothing is committed.
//! - A record whose value is not JSON still exports its attribute columns; its JSON-path
//!   columns are null.
use crate::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers as _;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value as J;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::export";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Csv,
    Json,
    Parquet,
}

/// One output column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Column {
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Headers,
    Const(String),
    /// a path into the value's JSON (`tag.desc`)
    Path(Vec<String>),
}

impl Column {
    pub(crate) fn parse(s: &str) -> Column {
        match s {
            "__key__" => Column::Key,
            "__value__" => Column::Value,
            "__partition__" => Column::Partition,
            "__offset__" => Column::Offset,
            "__timestamp__" => Column::Timestamp,
            "__headers__" => Column::Headers,
            c if c.len() >= 2 && c.starts_with('\'') && c.ends_with('\'') => {
                Column::Const(c[1..c.len() - 1].to_string())
            }
            path => Column::Path(path.split('.').map(String::from).collect()),
        }
    }

    fn name(&self) -> String {
        match self {
            Column::Key => "__key__".into(),
            Column::Value => "__value__".into(),
            Column::Partition => "__partition__".into(),
            Column::Offset => "__offset__".into(),
            Column::Timestamp => "__timestamp__".into(),
            Column::Headers => "__headers__".into(),
            Column::Const(c) => format!("'{c}'"),
            Column::Path(p) => p.join("."),
        }
    }
}

pub(crate) struct Options {
    pub(crate) topic: String,
    pub(crate) partition: Option<i32>,
    pub(crate) begin_offset: Option<i64>,
    pub(crate) end_offset: Option<i64>,
    /// ms since the epoch, included
    pub(crate) begin_time: Option<i64>,
    /// ms since the epoch, excluded
    pub(crate) end_time: Option<i64>,
    pub(crate) columns: Vec<Column>,
    pub(crate) format: Format,
    pub(crate) delimiter: char,
    pub(crate) null: String,
    pub(crate) header: bool,
    pub(crate) progress: bool,
}

/// `yyyymmddhhmmss` in the zone `tz` (`UTC` or `+08:00`) → ms since the epoch.
pub(crate) fn parse_datetime(s: &str, tz: &str) -> Result<i64, String> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
        .map_err(|_| format!("`{s}` is not yyyymmddhhmmss (e.g. 20241115093000)"))?;
    let offset_secs = crate::config::parse_tz(tz)?;
    Ok((t.and_utc().timestamp() - offset_secs as i64) * 1000)
}

/// One exported record's column values (None: null).
type Cells = Vec<Option<Cell>>;

#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Text(String),
    Int(i64),
    /// a JSON value from the record's value (kept typed in JSON lines)
    Json(J),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Json(J::String(s)) => s.clone(),
            Cell::Json(v) => v.to_string(),
        }
    }
    fn json(&self) -> J {
        match self {
            Cell::Text(s) => J::String(s.clone()),
            Cell::Int(i) => J::from(*i),
            Cell::Json(v) => v.clone(),
        }
    }
}

fn cells(m: &rdkafka::message::BorrowedMessage<'_>, columns: &[Column]) -> Cells {
    let value = m.payload().unwrap_or_default();
    let parsed: Option<J> = if columns.iter().any(|c| matches!(c, Column::Path(_))) {
        serde_json::from_slice(value).ok()
    } else {
        None
    };
    columns
        .iter()
        .map(|c| match c {
            Column::Key => m
                .key()
                .map(|k| Cell::Text(String::from_utf8_lossy(k).into())),
            Column::Value => m
                .payload()
                .map(|v| Cell::Text(String::from_utf8_lossy(v).into())),
            Column::Partition => Some(Cell::Int(m.partition() as i64)),
            Column::Offset => Some(Cell::Int(m.offset())),
            Column::Timestamp => m.timestamp().to_millis().map(Cell::Int),
            Column::Headers => m.headers().map(|h| {
                let map: serde_json::Map<String, J> = h
                    .iter()
                    .map(|x| {
                        (
                            x.key.to_string(),
                            J::String(String::from_utf8_lossy(x.value.unwrap_or_default()).into()),
                        )
                    })
                    .collect();
                Cell::Json(J::Object(map))
            }),
            Column::Const(s) => Some(Cell::Text(s.clone())),
            Column::Path(p) => {
                let mut cur = parsed.as_ref()?;
                for seg in p {
                    cur = cur.get(seg)?;
                }
                (!cur.is_null()).then(|| Cell::Json(cur.clone()))
            }
        })
        .collect()
}

// `rowstream export`'s command line (its help text is the doc comment of `cli::Command::Export`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The run's config (its brokers and [kafka.properties]); or give --brokers.
    #[arg(short, long, env = "ROWSTREAM_CONFIG")]
    pub(crate) config: Option<std::path::PathBuf>,
    #[arg(long)]
    pub(crate) brokers: Option<String>,
    #[arg(long)]
    topic: String,
    /// One partition (default: all).
    #[arg(long)]
    partition: Option<i32>,
    #[arg(long)]
    begin_offset: Option<i64>,
    #[arg(long)]
    end_offset: Option<i64>,
    /// Record time, yyyymmddhhmmss, included.
    #[arg(long)]
    begin_datetime: Option<String>,
    /// Record time, yyyymmddhhmmss, excluded.
    #[arg(long)]
    end_datetime: Option<String>,
    /// Zone of the datetimes: UTC or an offset like +08:00.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// Columns, comma-separated: __key__, __value__, __partition__, __offset__,
    /// __timestamp__, __headers__, a constant ('abc'), or a JSON path into the value
    /// (event_id, tag.desc).
    #[arg(long, value_delimiter = ',', default_value = "__key__,__value__")]
    column: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// CSV field delimiter.
    #[arg(long, default_value_t = ',')]
    field_delimiter: char,
    /// How CSV writes a null.
    #[arg(long, default_value = "")]
    null_value: String,
    /// CSV: a first line with the column names.
    #[arg(long)]
    header: bool,
    /// Write here instead of stdout (required for Parquet).
    #[arg(short, long)]
    pub(crate) output: Option<std::path::PathBuf>,
}

impl Args {
    /// The export's options; a usage error (its text names the fix) otherwise.
    pub(crate) fn options(&self) -> Result<Options, String> {
        let time = |s: &Option<String>| -> Result<Option<i64>, String> {
            s.as_deref()
                .map(|s| parse_datetime(s, &self.timezone))
                .transpose()
                .map_err(|e| format!("{e}\n  fix: write times as yyyymmddhhmmss, e.g. --begin-datetime 20241115000000"))
        };
        let (begin_time, end_time) = (time(&self.begin_datetime)?, time(&self.end_datetime)?);
        if self.format == Format::Parquet && self.output.is_none() {
            return Err(
                "Parquet is not written to a terminal\n  fix: give --output FILE.parquet".into(),
            );
        }
        Ok(Options {
            topic: self.topic.clone(),
            partition: self.partition,
            begin_offset: self.begin_offset,
            end_offset: self.end_offset,
            begin_time,
            end_time,
            columns: self.column.iter().map(|c| Column::parse(c)).collect(),
            format: self.format,
            delimiter: self.field_delimiter,
            null: self.null_value.clone(),
            header: self.header,
            progress: self.output.is_some(),
        })
    }
}

/// Where each partition starts and ends (half-open).
struct Range {
    start: i64,
    /// nothing at or after it is exported: `--end-offset`, or the log end at the start when
    /// that comes first
    end: i64,
}

/// Per partition, the offset of the first record whose timestamp is at or after `ms` (Kafka's
/// ListOffsets by timestamp), or `None` when there is none.
fn first_at_or_after(
    c: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    ms: i64,
) -> Result<BTreeMap<i32, Option<i64>>, String> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(ms))
            .map_err(|e| e.to_string())?;
    }
    let found = c
        .offsets_for_times(tpl, Duration::from_secs(10))
        .map_err(|e| format!("cannot find the offsets of {topic} at --begin-datetime: {e}\n  fix: check the broker and retry"))?;
    Ok(found
        .elements()
        .iter()
        .map(|e| {
            let at = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            (e.partition(), at)
        })
        .collect())
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    /// The output could not be written; a reader that went away (`export | head`) is one, and
    /// not a failure.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// Anything else, with its fix.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for ExportError {
    fn from(s: String) -> Self {
        ExportError::Failed(s)
    }
}

/// Export into `out`; returns the number of records written.
/// The partitions to read and where each starts and ends (the log's bounds now, narrowed by
/// the options); partitions with nothing in range are left out.
fn plan(
    c: &BaseConsumer,
    kafka: &KafkaConfig,
    o: &Options,
) -> Result<BTreeMap<i32, Range>, ExportError> {
    let md = c
        .fetch_metadata(Some(&o.topic), Duration::from_secs(10))
        .map_err(|e| format!("kafka at {} does not answer: {e}\n  fix: check the brokers (--brokers or kafka.brokers), that the broker runs, and the TLS/SASL settings", kafka.brokers))?;
    let mut partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == o.topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ExportError::Failed(format!(
            "topic {} does not exist on the broker\n  fix: name an existing topic",
            o.topic
        )));
    }
    if let Some(p) = o.partition {
        if !partitions.contains(&p) {
            return Err(ExportError::Failed(format!(
                "topic {} has no partition {p} (it has {})\n  fix: give one of its partitions, or leave --partition out for all",
                o.topic,
                partitions.len()
            )));
        }
        partitions = vec![p];
    }
    // each partition's range: the log's bounds now, narrowed by the options
    let by_time = match (o.begin_offset, o.begin_time) {
        (None, Some(t)) => first_at_or_after(c, &o.topic, &partitions, t)?,
        _ => BTreeMap::new(),
    };
    let mut ranges: BTreeMap<i32, Range> = BTreeMap::new();
    for &p in &partitions {
        let (low, high) = c
            .fetch_watermarks(&o.topic, p, Duration::from_secs(10))
            .map_err(|e| format!("cannot read the offsets of {}[{p}]: {e}", o.topic))?;
        let start = match by_time.get(&p) {
            // no record at or after the begin time: nothing to read
            Some(None) => high,
            Some(Some(at)) => *at,
            None => o.begin_offset.unwrap_or(low),
        }
        .max(low);
        if o.begin_offset.is_none() && o.begin_time.is_some() {
            tracing::info!(target: LOG_TARGET, partition = p, offset = start, skipped = start - low, "export starts at the first record at or after --begin-datetime");
        }
        ranges.insert(
            p,
            Range {
                start,
                end: o.end_offset.map_or(high, |t| t.min(high)),
            },
        );
    }
    ranges.retain(|_, r| r.start < r.end);
    Ok(ranges)
}

pub(crate) fn export(
    kafka: &KafkaConfig,
    o: &Options,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let c: BaseConsumer = kafka
        .reader("rowstream-export", crate::config::Fetch::Bulk)
        .create()
        .map_err(|e| format!("kafka settings are not accepted: {e}\n  fix: check the keys and values of [kafka.properties]"))?;
    let mut ranges = plan(&c, kafka, o)?;
    let mut tpl = TopicPartitionList::new();
    for (&p, r) in &ranges {
        tpl.add_partition_offset(
            &o.topic,
            p,
            Offset::Offset(crate::config::read_from(r.start)),
        )
        .map_err(|e| e.to_string())?;
    }
    let mut written = 0u64;
    let mut rows: Vec<Cells> = Vec::new();
    if o.header && o.format == Format::Csv {
        let names: Vec<String> = o.columns.iter().map(Column::name).collect();
        write_line(out, &csv_line(&names, o.delimiter))?;
    }
    if !ranges.is_empty() {
        c.assign(&tpl)
            .map_err(|e| format!("cannot read {}: {e}", o.topic))?;
    }
    let total: i64 = ranges.values().map(|r| r.end - r.start).sum();
    let mut done = 0i64;
    let mut last_report = Instant::now();
    let mut idle_since = Instant::now();
    while !ranges.is_empty() {
        let Some(r) = c.poll(Duration::from_millis(100)) else {
            // past the end without a record at it: commit markers, or records deleted
            if let Ok(at) = c.position() {
                for e in at.elements_for_topic(&o.topic) {
                    if let Offset::Offset(next) = e.offset() {
                        if ranges.get(&e.partition()).is_some_and(|r| next >= r.end) {
                            ranges.remove(&e.partition());
                        }
                    }
                }
            }
            if ranges.is_empty() {
                break;
            }
            if idle_since.elapsed() > Duration::from_secs(30) {
                return Err(ExportError::Failed(format!(
                    "{} stopped answering before every partition reached its end ({:?} left)\n  fix: check the broker and retry",
                    o.topic,
                    ranges.keys().collect::<Vec<_>>()
                )));
            }
            continue;
        };
        idle_since = Instant::now();
        let m = r.map_err(|e| format!("reading {}: {e}", o.topic))?;
        let p = m.partition();
        let Some(range) = ranges.get_mut(&p) else {
            continue;
        };
        let off = m.offset();
        if off < range.start {
            continue;
        }
        if off >= range.end {
            ranges.remove(&p);
            continue;
        }
        if off + 1 >= range.end {
            ranges.remove(&p);
        }
        done += 1;
        let ts = m.timestamp().to_millis();
        let in_time = o.begin_time.is_none_or(|b| ts.is_some_and(|t| t >= b))
            && o.end_time.is_none_or(|e| ts.is_some_and(|t| t < e));
        if !in_time {
            continue;
        }
        write_row(out, o, cells(&m, &o.columns), &mut rows)?;
        written += 1;
        if o.progress && last_report.elapsed() >= Duration::from_secs(2) {
            tracing::info!(target: LOG_TARGET, read = done, of = total, written, "export progress");
            last_report = Instant::now();
        }
    }
    if o.format == Format::Parquet {
        write_parquet(out, &o.columns, &rows)?;
    }
    out.flush()?;
    Ok(written)
}

/// One exported record: a CSV or JSON line now, or (Parquet) kept for the file at the end.
fn write_row(
    out: &mut dyn Write,
    o: &Options,
    row: Cells,
    rows: &mut Vec<Cells>,
) -> Result<(), ExportError> {
    match o.format {
        Format::Csv => {
            let texts: Vec<String> = row
                .iter()
                .map(|c| c.as_ref().map(Cell::text).unwrap_or_else(|| o.null.clone()))
                .collect();
            write_line(out, &csv_line(&texts, o.delimiter))
        }
        Format::Json => {
            let obj: serde_json::Map<String, J> = o
                .columns
                .iter()
                .zip(&row)
                .map(|(c, v)| (c.name(), v.as_ref().map(Cell::json).unwrap_or(J::Null)))
                .collect();
            write_line(out, &J::Object(obj).to_string())
        }
        Format::Parquet => {
            rows.push(row);
            Ok(())
        }
    }
}

fn write_line(out: &mut dyn Write, line: &str) -> Result<(), ExportError> {
    Ok(writeln!(out, "{line}")?)
}

/// One CSV line (RFC 4180 quoting: fields holding the delimiter, a quote or a line break are
/// quoted, quotes doubled).
fn csv_line(fields: &[String], delimiter: char) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains(delimiter) || f.contains('"') || f.contains('\n') || f.contains('\r') {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(&delimiter.to_string())
}

/// Parquet: `__partition__` int32, `__offset__` / `__timestamp__` int64, the rest text.
fn write_parquet(
    out: &mut dyn Write,
    columns: &[Column],
    rows: &[Cells],
) -> Result<(), ExportError> {
    use arrow_array::builder::{Int32Builder, Int64Builder, StringBuilder};
    use arrow_array::{ArrayRef, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let vals = rows.iter().map(|r| r[i].as_ref());
        match c {
            Column::Partition => {
                let mut b = Int32Builder::new();
                for v in vals {
                    b.append_option(v.and_then(|c| match c {
                        Cell::Int(i) => Some(*i as i32),
                        _ => None,
                    }));
                }
                fields.push(Field::new(c.name(), DataType::Int32, true));
                arrays.push(Arc::new(b.finish()));
            }
            Column::Offset | Column::Timestamp => {
                let mut b = Int64Builder::new();
                for v in vals {
                    b.append_option(v.and_then(|c| match c {
                        Cell::Int(i) => Some(*i),
                        _ => None,
                    }));
                }
                fields.push(Field::new(c.name(), DataType::Int64, true));
                arrays.push(Arc::new(b.finish()));
            }
            _ => {
                let mut b = StringBuilder::new();
                for v in vals {
                    b.append_option(v.map(Cell::text));
                }
                fields.push(Field::new(c.name(), DataType::Utf8, true));
                arrays.push(Arc::new(b.finish()));
            }
        }
    }
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None)
        .map_err(|e| e.to_string())?;
    w.write(&batch).map_err(|e| e.to_string())?;
    w.close().map_err(|e| e.to_string())?;
    Ok(out.write_all(&buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_times_parse() {
        assert_eq!(Column::parse("__key__"), Column::Key);
        assert_eq!(Column::parse("'abc'"), Column::Const("abc".into()));
        assert_eq!(
            Column::parse("tag.desc"),
            Column::Path(vec!["tag".into(), "desc".into()])
        );
        assert_eq!(
            parse_datetime("20241115093000", "UTC"),
            Ok(1_731_663_000_000)
        );
        assert_eq!(
            parse_datetime("20241115173000", "+08:00"),
            Ok(1_731_663_000_000)
        );
        assert!(parse_datetime("2024-11-15", "UTC").is_err());
        assert_eq!(
            csv_line(&["a,b".into(), "say \"hi\"".into(), "x".into()], ','),
            "\"a,b\",\"say \"\"hi\"\"\",x"
        );
    }
}
