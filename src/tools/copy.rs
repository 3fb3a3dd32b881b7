//! `rowstream copy`: a one-shot table → topic copy (DataWorks' offline Kafka writer): every
//! row of the matched tables as it is now, then exit. No slot, no binlog position, no state.
//!
//! Invariants:
//! - Records are snapshot records: `op` INSERT, `sequenceId` "-1", `eventTime` and
//!   `checkpointTime` -1 (the envelope), or the writer's plain `text` / `json` formats.
//! - Keys: the table's key (envelope), or the `--key-index` columns (plain formats; none: a
//!   null key). Partitions: murmur2 of the key, as every rowstream producer.
//! - Tables are read in chunks through the one snapshot driver (`source::Dump`); memory stays
//!   bounded by a chunk and librdkafka's queue.
//! - It exits 0 only when Kafka acknowledged every record (`acks`, default all); a record
//!   Kafka refused stops it with exit 1 naming the table.
use crate::config::Config;
use crate::error::Error;
use crate::format::dataworks::{self, RowOp, Shape, Times};
use crate::format::plain::{self, JsonType};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::copy";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// The DataWorks envelope.
    Dataworks,
    /// Columns' text joined by a delimiter.
    Text,
    /// An object of typed columns.
    Json,
}

pub(crate) struct Options {
    pub(crate) format: Format,
    /// all tables' records go here (default: the `kafka.topic` template)
    pub(crate) topic: Option<String>,
    pub(crate) delimiter: String,
    pub(crate) null_value: String,
    pub(crate) key_indexes: Vec<usize>,
    pub(crate) json_types: BTreeMap<String, JsonType>,
    pub(crate) acks: Option<String>,
    /// the tables `--tables` named (each must exist)
    pub(crate) named_tables: Vec<String>,
}

// `rowstream copy`'s command line (its help text is the doc comment of `cli::Command::Copy`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[arg(short, long, env = "ROWSTREAM_CONFIG")]
    pub(crate) config: std::path::PathBuf,
    /// Tables as `schema.table` / `db.table`, comma-separated (default: source.tables).
    #[arg(long, value_delimiter = ',')]
    pub(crate) tables: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Dataworks)]
    format: Format,
    /// Every table's records into this topic (default: the kafka.topic template).
    #[arg(long)]
    topic: Option<String>,
    /// text: the field delimiter.
    #[arg(long, default_value = ",")]
    field_delimiter: String,
    /// text: how a null is written.
    #[arg(long, default_value = "")]
    null_value: String,
    /// text / json: the key is these columns (0-based positions, comma-separated), joined
    /// by the delimiter; none: a null key.
    #[arg(long, value_delimiter = ',')]
    key_index: Vec<usize>,
    /// json: a column's JSON type, `column=JSON_STRING|JSON_NUMBER|JSON_BOOL|JSON_ARRAY|
    /// JSON_MAP|JSON_BASE64|JSON_HEX` (repeatable; default from the column's type).
    #[arg(long)]
    json_type: Vec<String>,
    /// The producer's acks: all (default), 1 or 0.
    #[arg(long)]
    acks: Option<String>,
}

impl Args {
    /// The copy's options; a usage error (its text names the fix) otherwise.
    pub(crate) fn options(&self) -> Result<Options, String> {
        let mut json_types = BTreeMap::new();
        for jt in &self.json_type {
            let (c, t) = jt
                .split_once('=')
                .and_then(|(c, t)| Some((c, JsonType::parse(t)?)))
                .ok_or_else(|| format!("--json-type `{jt}` is not column=JSON_STRING|JSON_NUMBER|JSON_BOOL|JSON_ARRAY|JSON_MAP|JSON_BASE64|JSON_HEX\n  fix: write it as e.g. --json-type tags=JSON_ARRAY"))?;
            json_types.insert(c.to_string(), t);
        }
        if let Some(a) = &self.acks {
            if !["all", "-1", "1", "0"].contains(&a.as_str()) {
                return Err(format!(
                    "--acks `{a}` is not all, 1 or 0\n  fix: give --acks all (the default), 1 or 0"
                ));
            }
        }
        Ok(Options {
            format: self.format,
            topic: self.topic.clone(),
            delimiter: self.field_delimiter.clone(),
            null_value: self.null_value.clone(),
            key_indexes: self.key_index.clone(),
            json_types,
            acks: self.acks.clone(),
            named_tables: self.tables.clone(),
        })
    }
}

/// Counts deliveries; keeps the first failure.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                use rdkafka::Message as _;
                let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                f.get_or_insert_with(|| format!("{} refused a record: {e}", m.topic()));
            }
        }
    }
}

impl Deliveries {
    /// The first record Kafka refused, as the error that stops the copy.
    fn first_failure(&self) -> Result<(), Error> {
        match self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(f) => Err(Error::setup(f, "check the topic, its ACLs and the broker")),
            None => Ok(()),
        }
    }
}

/// Copy every matched table; returns (tables, rows).
pub(crate) async fn copy(cfg: &Config, o: &Options) -> Result<(usize, u64), Error> {
    let mut dump = crate::source::Dump::open(cfg).await?;
    let tables = dump.schemas().await?;
    names_exist(o, &tables)?;
    create_topics(cfg, o, &tables).await?;
    let producer = producer(cfg, o)?;
    let ctx = producer.context().clone();
    let mut sent = 0u64;
    for (i, t) in tables.iter().enumerate() {
        let topic = o.topic.clone().unwrap_or_else(|| t.topic.clone());
        let mut rows_of_table = 0u64;
        let mut key = Vec::new();
        let mut f = |rows: &[crate::model::value::Row]| -> Result<(), Error> {
            for row in rows {
                let (k, value) = encode(cfg, o, t, row, &mut key)?;
                send(&producer, &topic, k.as_deref(), &value)?;
                ctx.first_failure()?;
                rows_of_table += 1;
            }
            Ok(())
        };
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(dump.rows(i, &mut f))
        })?;
        sent += rows_of_table;
        tracing::info!(target: LOG_TARGET, table = %t.id, rows = rows_of_table, topic = %topic, "copied");
    }
    acknowledged(&producer, sent)?;
    Ok((tables.len(), sent))
}

/// Every option that names a table, a column or a column's position names one the copy has:
/// a copy of nothing, or with keys or types that apply to nothing, is a mistake to report
/// before anything is written.
fn names_exist(
    o: &Options,
    tables: &[Arc<crate::model::schema::TableSchema>],
) -> Result<(), Error> {
    let mut problems = Vec::new();
    let found: Vec<String> = tables.iter().map(|t| t.id.to_string()).collect();
    for n in o.named_tables.iter().filter(|n| !n.contains('*')) {
        if !found.contains(n) {
            problems.push(format!(
                "--tables {n}: no such table (or not readable by the user)"
            ));
        }
    }
    if tables.is_empty() && problems.is_empty() {
        problems.push("no table matched source.tables / --tables: nothing to copy".into());
    }
    for &i in &o.key_indexes {
        for t in tables.iter().filter(|t| i >= t.columns.len()) {
            problems.push(format!(
                "--key-index {i}: {} has {} columns (positions 0..={})",
                t.id,
                t.columns.len(),
                t.columns.len().saturating_sub(1)
            ));
        }
    }
    for c in o.json_types.keys() {
        if !tables
            .iter()
            .any(|t| t.columns.iter().any(|col| col.name == *c))
        {
            problems.push(format!(
                "--json-type {c}=...: no copied table has a column `{c}`"
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Error::setup(
            problems.join("; "),
            format!(
                "name what exists (tables found: {})",
                match found.is_empty() {
                    true => "none".to_string(),
                    false => found.join(", "),
                }
            ),
        )),
    }
}

/// Create the tables' topics (or `--topic`) where missing: the producer does not create them.
async fn create_topics(
    cfg: &Config,
    o: &Options,
    tables: &[Arc<crate::model::schema::TableSchema>],
) -> Result<(), Error> {
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let tracker = Arc::new(crate::checkpoint::tracker::Tracker::new());
    let mut sink = crate::kafka::KafkaSink::new(&cfg.kafka, tracker, metrics, None)?;
    for t in tables {
        sink.ensure_topic(o.topic.as_deref().unwrap_or(&t.topic))
            .await?;
    }
    Ok(())
}

/// The copy's producer: the run's Kafka settings, with `--acks` (and without idempotence
/// when that is not all).
fn producer(cfg: &Config, o: &Options) -> Result<ThreadedProducer<Deliveries>, Error> {
    let mut pc = crate::kafka::producer_config(&cfg.kafka);
    if let Some(acks) = &o.acks {
        pc.set("acks", acks);
        if acks != "all" && acks != "-1" {
            // the idempotent producer needs acks=all
            pc.set("enable.idempotence", "false");
        }
    }
    pc.create_with_context(Deliveries::default()).map_err(|e| {
        Error::setup(
            format!("kafka settings are not accepted: {e}"),
            "check [kafka] and [kafka.properties]",
        )
    })
}

/// One row of `t` as a record in the copy's format: (key, value). `key` is a buffer kept
/// across rows.
fn encode(
    cfg: &Config,
    o: &Options,
    t: &crate::model::schema::TableSchema,
    row: &crate::model::value::Row,
    key: &mut Vec<u8>,
) -> Result<(Option<Vec<u8>>, Vec<u8>), Error> {
    Ok(match o.format {
        Format::Dataworks => {
            let has = dataworks::write_key(key, t, row, &cfg.kafka.key_separator);
            let mut b = Vec::with_capacity(256);
            dataworks::encode_row(
                &mut b,
                t,
                Shape {
                    empty_key_list: cfg.encode.profile == crate::config::Profile::Paimon,
                    schema_in_table_name: cfg.encode.schema_in_table_name,
                    text_values: cfg.encode.profile == crate::config::Profile::Paimon,
                },
                RowOp::Insert,
                None,
                Some(row),
                None,
                Times {
                    event: -1,
                    system: crate::model::time::now_ms(),
                    checkpoint: -1,
                },
            );
            (has.then(|| key.clone()), b)
        }
        Format::Text => (
            plain::key_of(t, row, &o.key_indexes, &o.delimiter),
            plain::encode_text(t, row, &o.delimiter, &o.null_value),
        ),
        Format::Json => (
            plain::key_of(t, row, &o.key_indexes, &cfg.kafka.key_separator),
            plain::encode_json(t, row, &o.json_types).map_err(|e| {
                Error::setup(
                    e,
                    "choose a --json-type the column's values fit (JSON_STRING holds anything)",
                )
            })?,
        ),
    })
}

/// Hand one record to the producer, waiting while its queue is full.
fn send(
    producer: &ThreadedProducer<Deliveries>,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<(), Error> {
    let mut rec: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic).payload(value);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((e, r))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                rec = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => {
                return Err(Error::setup(
                    format!("cannot produce to {topic}: {e}"),
                    "check the topic and the broker",
                ))
            }
        }
    }
}

/// Wait until Kafka acknowledged all `sent` records; an error when it refused one or
/// acknowledged fewer.
fn acknowledged(producer: &ThreadedProducer<Deliveries>, sent: u64) -> Result<(), Error> {
    producer.flush(Duration::from_secs(120)).map_err(|e| {
        Error::setup(
            format!("kafka did not acknowledge every record: {e}"),
            "check the broker and run the copy again (it writes every row again)",
        )
    })?;
    let ctx = producer.context();
    ctx.first_failure()?;
    let ok = ctx.ok.load(Ordering::Relaxed);
    if ok != sent {
        return Err(Error::setup(
            format!("kafka acknowledged {ok} of {sent} records"),
            "check the broker and run the copy again (it writes every row again)",
        ));
    }
    Ok(())
}
