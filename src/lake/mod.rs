//! `rowstream sink`: topics → Parquet files under a directory, HDFS (hdfs-native's object
//! store) or an object store, Kafka
//! Connect's HDFS-sink pattern: one sequence of files per partition, each named by the offsets
//! it holds, `<topic>/partition=<n>/<topic>+<n>+<first offset>+<last offset>.parquet`.
//!
//! What it may import: `config` (the sink's file and the reader settings), `format::record`
//! (the one reader of the envelope), `error`; never the connector runtime.
//!
//! Invariants:
//! - The files are the only state: at start, each partition resumes after the highest last
//!   offset in its file names (no consumer-group offsets; partitions are assigned, not
//!   subscribed). A file appears under its final name only when complete: it is written under
//!   a temporary name (`_tmp+...`) and renamed; temporary files left by a killed process are
//!   deleted at start. So after any crash no row is lost and none is written twice.
//! - A file holds rows of one partition and one table schema, in offset order; it is written
//!   at `flush_records` rows, when its first row waited `flush_interval_ms`, when the table's
//!   schema changes (a DDL record, or rows with other columns), and at a clean stop.
//! - Columns are typed from the records' `schema.dataColumn` and `rowstream.types` header,
//!   never from their values (see `columns`), so a table's files share one schema until a DDL
//!   changes it; each file's metadata holds the envelope's `schema` member (columns, key,
//!   source) under `rowstream.schema` and the header under `rowstream.types`.
//! - Heartbeats and DDL records are not rows: they are skipped (a DDL record closes the file),
//!   except TRUNCATE, which lands as a row with op `TRUNCATE` and every table column null.
//!   A record that is not DataWorks JSON, or a value that does not fit its column, stops the
//!   sink with its topic, partition and offset: nothing is skipped silently.
//! - Row values are never logged.
mod columns;
mod paimon;

use crate::config::{LakeConfig, LakeFormat};
use crate::error::Error;
use crate::format::record::{Envelope, RawValues};
use crate::model::schema::TYPES_HEADER;
use columns::{record_columns, Row, Rows};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run wrote.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) files: u64,
    pub(crate) rows: u64,
}

/// A partition's rows waiting for their file.
struct Pending {
    /// the table's identity and shape as written (columns, key, source, types header), to
    /// see a change
    schema: String,
    rows: Rows,
    first: i64,
    last: i64,
    since: Instant,
}

/// The store and the prefix everything goes under.
struct Lake {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// the directory, for a store on the local filesystem
    local: Option<std::path::PathBuf>,
}

/// `<topic>+<partition>+<first>+<last>.parquet` → (first, last).
pub(crate) fn offsets_of(name: &str, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let rest = name
        .strip_prefix(&format!("{topic}+{partition}+"))?
        .strip_suffix(".parquet")?;
    let (first, last) = rest.split_once('+')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

fn open_store(cfg: &LakeConfig) -> Result<Lake, Error> {
    let url = cfg.sink.url.trim();
    let setup = |e: &dyn std::fmt::Display| {
        Error::setup(
            format!("sink.url `{url}` cannot be used: {e}"),
            "give a directory (/var/lake, file:///var/lake), an HDFS URL (hdfs://namenode:8020/path) or an object store URL (s3://bucket/prefix, gs://bucket/prefix, az://container/prefix) with its settings in [sink.options]",
        )
    };
    if !url.contains("://") || url.starts_with("file://") {
        let dir = url.strip_prefix("file://").unwrap_or(url);
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::setup(
                format!("sink directory {dir} cannot be created: {e}"),
                "set sink.url to a directory rowstream can create and write",
            )
        })?;
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| setup(&e))?;
        return Ok(Lake {
            store: Arc::new(store),
            prefix: StorePath::default(),
            local: Some(dir.into()),
        });
    }
    let parsed = url::Url::parse(url).map_err(|e| setup(&e))?;
    if parsed.scheme() == "hdfs" {
        return hdfs_store(&parsed, &cfg.sink.options).map_err(|e| setup(&e));
    }
    let (store, prefix) =
        object_store::parse_url_opts(&parsed, cfg.sink.options.iter()).map_err(|e| setup(&e))?;
    Ok(Lake {
        store: Arc::from(store),
        prefix,
        local: None,
    })
}

/// Settings of the HDFS client unless `[sink.options]` gives them: a NameNode that does not
/// answer fails an operation in about a second (the client's default retries for three
/// minutes), and the sink restarts or stops with the reason.
const HDFS_DEFAULTS: [(&str, &str); 3] = [
    ("dfs.client.failover.max.attempts", "2"),
    ("dfs.client.failover.sleep.base.millis", "200"),
    ("dfs.client.failover.sleep.max.millis", "1000"),
];

/// `hdfs://namenode:port/path`: the store of the NameNode (paths from the file system's root)
/// and the path as the prefix. `[sink.options]` are Hadoop client settings (`dfs.*`, and the
/// nameservice settings of an HA cluster).
fn hdfs_store(
    u: &url::Url,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<Lake, String> {
    let authority = &u[url::Position::BeforeHost..url::Position::AfterPort];
    let mut config: HashMap<String, String> = HDFS_DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
        .with_url(format!("hdfs://{authority}"))
        .with_config(config)
        .build()
        .map_err(|e| brief(&e))?;
    let prefix = StorePath::from_url_path(u.path()).map_err(|e| e.to_string())?;
    Ok(Lake {
        store: Arc::new(store),
        prefix,
        local: None,
    })
}

/// An error's text without what a person cannot act on: the Java stack trace an HDFS
/// NameNode sends with its errors, and a Rust backtrace a library captured.
pub(crate) fn brief(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("at ") && t.contains('(') || t.starts_with("Backtrace") {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line.trim());
    }
    out
}

impl Lake {
    fn dir(&self, topic: &str, partition: i32) -> StorePath {
        let mut p = self.prefix.clone();
        for part in [topic.to_string(), format!("partition={partition}")] {
            p = p.join(part);
        }
        p
    }

    /// The offset a partition resumes at (after its files' highest last offset), deleting
    /// the temporary files a killed run left.
    async fn resume_at(&self, topic: &str, partition: i32) -> Result<Option<i64>, Error> {
        use futures_util::TryStreamExt as _;
        let dir = self.dir(topic, partition);
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| store_error("list", &dir, e))?;
        if let Some(root) = &self.local {
            // a put the run was killed in leaves `<name>#<n>`, which listings never show
            let path = root.join(dir.as_ref());
            for e in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().contains('#') {
                    let _ = std::fs::remove_file(e.path());
                    tracing::info!(file = %e.path().display(), "deleted a file a stopped run left unfinished");
                }
            }
        }
        let mut next = None;
        for m in listed {
            let Some(name) = m.location.filename() else {
                continue;
            };
            // `_tmp+<name>`: ours; `.<name>.tmp.<n>`: the HDFS store's own staging of a put
            if name.starts_with("_tmp+") || name.starts_with("._tmp+") {
                self.store
                    .delete(&m.location)
                    .await
                    .map_err(|e| store_error("delete", &m.location, e))?;
                tracing::info!(file = %m.location, "deleted a file a stopped run left unfinished");
            } else if let Some((_, last)) = offsets_of(name, topic, partition) {
                next = next.max(Some(last + 1));
            }
        }
        Ok(next)
    }

    /// Write `p` as one Parquet file: under a temporary name, then renamed.
    async fn write(&self, topic: &str, p: &Pending) -> Result<StorePath, Error> {
        let batch = p.rows.to_batch().map_err(|e| {
            Error::setup(
                format!("{topic}[{}]: {e}", p.rows.partition),
                "the record cannot be stored as Parquet; see docs/troubleshooting.md",
            )
        })?;
        let mut buf = Vec::with_capacity(64 * 1024);
        {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
                .map_err(|e| Error::fatal(format!("parquet writer: {e}")))?;
            w.write(&batch)
                .map_err(|e| Error::fatal(format!("parquet write: {e}")))?;
            w.close()
                .map_err(|e| Error::fatal(format!("parquet close: {e}")))?;
        }
        let partition = p.rows.partition;
        let name = format!("{topic}+{partition}+{}+{}.parquet", p.first, p.last);
        let dir = self.dir(topic, partition);
        let tmp = dir.clone().join(format!("_tmp+{name}"));
        let fin = dir.join(name);
        self.store
            .put(&tmp, buf.into())
            .await
            .map_err(|e| store_error("write", &tmp, e))?;
        self.store
            .rename(&tmp, &fin)
            .await
            .map_err(|e| store_error("rename", &tmp, e))?;
        Ok(fin)
    }
}

fn store_error(what: &str, path: &StorePath, e: object_store::Error) -> Error {
    Error::setup(
        format!("cannot {what} {path} in the sink's store: {}", brief(&e)),
        "check sink.url, the credentials in [sink.options], and that the location is writable",
    )
}

/// Land `cfg.sink.topics` until `stop` (or, with `idle`, until no record came for that long);
/// every row read is in a file when it returns `Ok`.
pub(crate) async fn run(
    cfg: &LakeConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
    idle: Option<Duration>,
) -> Result<Written, Error> {
    let lake = open_store(cfg)?;
    let consumer = consumer(cfg)?;
    if cfg.sink.format == LakeFormat::Paimon {
        return run_paimon(cfg, &lake, &consumer, stop, idle).await;
    }
    // per partition: the first offset not yet in a file
    let resume = assign(cfg, &lake, &consumer).await?;
    let mut files = Files {
        lake: &lake,
        pending: HashMap::new(),
        written: Written::default(),
        max_rows: cfg.sink.flush_records,
        max_age: Duration::from_millis(cfg.sink.flush_interval_ms),
        placeholder: serde_json::Value::from(cfg.sink.toast_placeholder.as_str()).to_string(),
    };
    let mut last_record = Instant::now();
    loop {
        let Some(msg) = next_message(&consumer, &mut stop).await else {
            break; // stopping: what is pending is written below
        };
        if let Some(m) = msg {
            last_record = Instant::now();
            let key = (m.topic().to_string(), m.partition());
            let offset = m.offset();
            if resume.get(&key).is_some_and(|&r| offset < r) {
                continue; // in a file already (see `config::read_from`)
            }
            let payload = m.payload().unwrap_or_default();
            if !files.land(key, offset, payload, types_header(&m)).await? {
                continue; // not a row (a heartbeat, a DDL record): on to the next record
            }
        }
        files.close_due().await?;
        if idle.is_some_and(|i| last_record.elapsed() >= i) {
            break;
        }
    }
    files.close_all().await
}

/// The record's `rowstream.types` header.
fn types_header(m: &rdkafka::message::OwnedMessage) -> Option<&str> {
    use rdkafka::message::Headers as _;
    m.headers().and_then(|h| {
        h.iter()
            .find(|x| x.key == TYPES_HEADER)
            .and_then(|x| x.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    })
}

/// `format = "paimon"`: land the topics into Paimon tables until `stop` (or `idle`); every
/// row read is committed when it returns `Ok`.
async fn run_paimon(
    cfg: &LakeConfig,
    lake: &Lake,
    consumer: &StreamConsumer,
    mut stop: tokio::sync::watch::Receiver<bool>,
    idle: Option<Duration>,
) -> Result<Written, Error> {
    let url = cfg.sink.url.trim();
    let warehouse = if url.starts_with("hdfs://") {
        // the store's client gives up on a NameNode that does not answer in about a second,
        // Paimon's after three minutes: ask through the store first
        lake.store
            .list_with_delimiter(Some(&lake.prefix))
            .await
            .map_err(|e| store_error("list", &lake.prefix, e))?;
        url.trim_end_matches('/').to_string()
    } else if url.contains("://") && !url.starts_with("file://") {
        return Err(Error::setup(
            format!("sink.url `{url}`: a Paimon warehouse is a directory or an HDFS URL here"),
            "give a directory (/var/lake, file:///var/lake) or hdfs://namenode:8020/path for format = \"paimon\"",
        ));
    } else {
        let dir = url.strip_prefix("file://").unwrap_or(url);
        std::fs::canonicalize(dir)
            .map_err(|e| {
                Error::setup(
                    format!("sink directory {dir}: {e}"),
                    "set sink.url to a directory rowstream can write",
                )
            })?
            .to_string_lossy()
            .into_owned()
    };
    let (mut tables, resume) = paimon::PaimonLake::open(&warehouse, lake, cfg).await?;
    let mut tpl = TopicPartitionList::new();
    for topic in &cfg.sink.topics {
        for p in partitions_of(cfg, consumer, topic)? {
            let at = match resume.get(&(topic.clone(), p)) {
                Some(&o) => Offset::Offset(crate::config::read_from(o)),
                None => Offset::Beginning,
            };
            match resume.get(&(topic.clone(), p)) {
                Some(&o) => {
                    tracing::info!(topic = %topic, partition = p, after_offset = o, "landing into paimon")
                }
                None => {
                    tracing::info!(topic = %topic, partition = p, "landing into paimon from the beginning")
                }
            }
            tpl.add_partition_offset(topic, p, at)
                .map_err(|e| Error::fatal(e.to_string()))?;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::fatal(format!("cannot read the topics: {e}")))?;
    let mut written = Written::default();
    let max_age = Duration::from_millis(cfg.sink.flush_interval_ms);
    let mut last_record = Instant::now();
    let mut since: Option<Instant> = None;
    loop {
        let Some(msg) = next_message(consumer, &mut stop).await else {
            break;
        };
        if let Some(m) = msg {
            last_record = Instant::now();
            if resume
                .get(&(m.topic().to_string(), m.partition()))
                .is_some_and(|&r| m.offset() < r)
            {
                continue;
            }
            let before = tables.pending();
            tables
                .land(
                    (m.topic(), m.partition()),
                    m.offset(),
                    m.payload().unwrap_or_default(),
                    types_header(&m),
                )
                .await?;
            if tables.pending() > before && since.is_none() {
                since = Some(Instant::now());
            }
        }
        let due = since.is_some_and(|s| s.elapsed() >= max_age);
        if tables.pending() >= cfg.sink.flush_records || due {
            written.rows += tables.pending() as u64;
            tables.flush().await?;
            written.files += 1;
            since = None;
        }
        if idle.is_some_and(|i| last_record.elapsed() >= i) {
            break;
        }
    }
    written.rows += tables.pending() as u64;
    if tables.pending() > 0 {
        written.files += 1;
    }
    tables.flush().await?;
    Ok(written)
}

/// The sink's Kafka consumer, with the reader settings of its config.
fn consumer(cfg: &LakeConfig) -> Result<StreamConsumer, Error> {
    cfg.kafka()
        .reader("rowstream-sink", crate::config::Fetch::Bulk)
        .create()
        .map_err(|e| {
            Error::setup(
                format!("kafka settings are not accepted: {e}"),
                "check the keys and values of [kafka.properties] in the sink's config",
            )
        })
}

/// Assign every partition of `cfg.sink.topics` to `consumer`, each at the offset after its
/// files (or at the beginning when it has none); returns, per partition with files, the first
/// offset not yet in a file.
async fn assign(
    cfg: &LakeConfig,
    lake: &Lake,
    consumer: &StreamConsumer,
) -> Result<HashMap<(String, i32), i64>, Error> {
    let mut tpl = TopicPartitionList::new();
    let mut resume: HashMap<(String, i32), i64> = HashMap::new();
    for topic in &cfg.sink.topics {
        for p in partitions_of(cfg, consumer, topic)? {
            let at = match lake.resume_at(topic, p).await? {
                Some(o) => {
                    resume.insert((topic.clone(), p), o);
                    Offset::Offset(crate::config::read_from(o))
                }
                None => Offset::Beginning,
            };
            match resume.get(&(topic.clone(), p)) {
                Some(&o) => {
                    tracing::info!(topic = %topic, partition = p, after_offset = o, "landing after the files' last offset")
                }
                None => tracing::info!(topic = %topic, partition = p, "landing from the beginning"),
            }
            tpl.add_partition_offset(topic, p, at)
                .map_err(|e| Error::fatal(e.to_string()))?;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::fatal(format!("cannot read the topics: {e}")))?;
    Ok(resume)
}

/// The partitions of `topic` on the broker; an error when the topic has none (does not exist).
fn partitions_of(
    cfg: &LakeConfig,
    consumer: &StreamConsumer,
    topic: &str,
) -> Result<Vec<i32>, Error> {
    let md = tokio::task::block_in_place(|| {
        consumer.fetch_metadata(Some(topic), Duration::from_secs(10))
    })
    .map_err(|e| {
        Error::setup(
            format!("kafka at {} does not answer: {e}", cfg.kafka.brokers),
            "check kafka.brokers, that the broker runs, and the TLS/SASL settings in [kafka.properties]",
        )
    })?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if parts.is_empty() {
        return Err(Error::setup(
            format!("topic {topic} does not exist on the broker"),
            "name existing topics in sink.topics (the run's kafka.topic template gives their names)",
        ));
    }
    Ok(parts)
}

/// The next message: `None` once `stop` is set, `Some(None)` when none came within 200 ms
/// (or the consumer reported an error, which is logged).
async fn next_message(
    consumer: &StreamConsumer,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Option<rdkafka::message::OwnedMessage>> {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => None,
        r = tokio::time::timeout(Duration::from_millis(200), consumer.recv()) => match r {
            Ok(Ok(m)) => Some(Some(m.detach())),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "kafka consumer");
                Some(None)
            }
            Err(_) => Some(None),
        },
    }
}

/// The files being gathered, at most one per partition, and what was written so far. A
/// partition's file is written at `max_rows` rows, when its first row waited `max_age`, when
/// its table's schema changes, and at the end.
struct Files<'a> {
    lake: &'a Lake,
    pending: HashMap<(String, i32), Pending>,
    written: Written,
    max_rows: usize,
    max_age: Duration,
    /// the JSON text of `sink.toast_placeholder`
    placeholder: String,
}

impl Files<'_> {
    /// Take the record of partition `key` at `offset` (with its `rowstream.types` header) into
    /// its file. `Ok(false)` for a record that is not a row (a heartbeat, a transaction marker,
    /// a DDL record other than TRUNCATE, which closes the file): the caller goes on to the next
    /// record.
    async fn land(
        &mut self,
        key: (String, i32),
        offset: i64,
        payload: &[u8],
        types: Option<&str>,
    ) -> Result<bool, Error> {
        let where_ = || format!("{}[{}]@{offset}", key.0, key.1);
        let rec: Envelope<RawValues> = Envelope::parse(payload).map_err(|e| {
            Error::setup(
                format!("{} is not a DataWorks JSON record: {e}", where_()),
                "land only topics rowstream (or DataWorks) writes",
            )
        })?;
        let sequence_id = rec.payload.sequence();
        let event_time = rec
            .payload
            .timestamp
            .as_ref()
            .and_then(|t| t.event_time)
            .unwrap_or(-1);
        let op = rec.payload.op.as_str();
        let ddl = rec.payload.ddl.is_some_and(|d| d.get() != "null");
        if op == "MHEARTBEAT" || op.starts_with("TRANSACTION_") {
            return Ok(false);
        }
        if ddl && op != "TRUNCATE" {
            // the table's schema changes: the rows before it close their file
            self.close(&key).await?;
            return Ok(false);
        }
        let image = match op {
            "INSERT" | "UPDATE_AFTER" => rec.payload.after.map(|i| i.data_column),
            "DELETE" | "UPDATE_BEFORE" => rec.payload.before.map(|i| i.data_column),
            "TRUNCATE" => Some(RawValues::default()),
            _ => None,
        };
        let table = rec
            .schema
            .as_ref()
            .and_then(|s| s.data_column.map(|c| (s, c)));
        let (Some(mut values), Some((s, columns))) = (image, table) else {
            return Err(Error::setup(
                format!(
                    "{} is a `{op}` record without its image or schema",
                    where_()
                ),
                "land only topics rowstream (or DataWorks) writes",
            ));
        };
        let source = s.source.as_ref();
        let identity = format!(
            "{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{}",
            columns.get(),
            s.primary_key.map_or("null", |k| k.get()),
            source.and_then(|s| s.db_name.as_deref()),
            source.and_then(|s| s.schema_name.as_deref()),
            source.and_then(|s| s.table_name.as_deref()),
            types.unwrap_or(""),
        );
        if self.pending.get(&key).is_some_and(|p| p.schema != identity) {
            self.close(&key).await?;
        }
        let p = match self.pending.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Pending::start(
                identity,
                columns,
                types,
                payload,
                &self.placeholder,
                (key.1, offset),
                &where_,
            )?),
        };
        let row = Row {
            op: op.to_string(),
            sequence_id,
            event_time,
            offset,
            values: p
                .rows
                .columns
                .iter()
                .map(|c| values.remove(&c.name))
                .collect(),
        };
        p.rows.rows.push(row);
        p.last = offset;
        if p.rows.rows.len() >= self.max_rows {
            self.close(&key).await?;
        }
        Ok(true)
    }

    /// Write the file of partition `key`, if it has one.
    async fn close(&mut self, key: &(String, i32)) -> Result<(), Error> {
        if let Some(p) = self.pending.remove(key) {
            flush(self.lake, &key.0, p, &mut self.written).await?;
        }
        Ok(())
    }

    /// Write the files whose first row waited `max_age`.
    async fn close_due(&mut self) -> Result<(), Error> {
        let due: Vec<(String, i32)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= self.max_age)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.close(&k).await?;
        }
        Ok(())
    }

    /// Write every file left; what the run wrote.
    async fn close_all(mut self) -> Result<Written, Error> {
        for ((topic, _), p) in self.pending.drain() {
            flush(self.lake, &topic, p, &mut self.written).await?;
        }
        Ok(self.written)
    }
}

impl Pending {
    /// An empty file of partition `at.0` starting at offset `at.1`, with the columns of
    /// `columns` (the record's `schema.dataColumn`) refined by `types` (its `rowstream.types`
    /// header), and the record's `schema` member (from `payload`) in its metadata.
    fn start(
        identity: String,
        columns: &serde_json::value::RawValue,
        types: Option<&str>,
        payload: &[u8],
        placeholder: &str,
        at: (i32, i64),
        where_: &dyn Fn() -> String,
    ) -> Result<Pending, Error> {
        let (partition, offset) = at;
        let columns = record_columns(columns, types).map_err(|err| {
            Error::setup(
                format!(
                    "{}: schema.dataColumn is not a column list: {err}",
                    where_()
                ),
                "land only topics rowstream (or DataWorks) writes",
            )
        })?;
        #[derive(serde::Deserialize)]
        struct Member<'a> {
            #[serde(borrow)]
            schema: &'a serde_json::value::RawValue,
        }
        let mut metadata = HashMap::new();
        if let Ok(m) = serde_json::from_slice::<Member<'_>>(payload) {
            metadata.insert("rowstream.schema".to_string(), m.schema.get().to_string());
        }
        if let Some(t) = types {
            metadata.insert(TYPES_HEADER.to_string(), t.to_string());
        }
        Ok(Pending {
            schema: identity,
            rows: Rows {
                columns,
                partition,
                rows: Vec::new(),
                metadata,
                placeholder: placeholder.to_string(),
            },
            first: offset,
            last: offset,
            since: Instant::now(),
        })
    }
}

async fn flush(lake: &Lake, topic: &str, p: Pending, written: &mut Written) -> Result<(), Error> {
    let n = p.rows.rows.len() as u64;
    let path = lake.write(topic, &p).await?;
    written.files += 1;
    written.rows += n;
    tracing::debug!(file = %path, rows = n, "file written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_offsets() {
        assert_eq!(
            offsets_of("shop.t+2+100+199.parquet", "shop.t", 2),
            Some((100, 199))
        );
        assert_eq!(offsets_of("shop.t+2+100+199.parquet", "shop.t", 1), None);
        assert_eq!(offsets_of("_tmp+shop.t+2+1+2.parquet", "shop.t", 2), None);
        assert_eq!(offsets_of("shop.t+2+x+2.parquet", "shop.t", 2), None);
    }
}
