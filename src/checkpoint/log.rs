//! A compacted Kafka topic as a small keyed log: writes that return once acknowledged, reads
//! through a known offset. Under the Kafka state store (`checkpoint::kafka`) and the worker's
//! connector configs.
//!
//! Invariants:
//! - `write` returns the record's offset only after the broker acknowledged it (idempotent
//!   producer, acks=all); an error otherwise, never a silent drop.
//! - `read_through` ends at an offset the caller knows exists (one of its own acknowledged
//!   writes), never at the high watermark, which tansu may report late.
//!
//! Written on rdkafka's clients (no maintained crate keeps a keyed log in a compacted topic).

use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Called with each record read back: offset, key (without the prefix asked for), value
/// (None: a tombstone).
pub(crate) type Visit<'a> = dyn FnMut(i64, &str, Option<&[u8]>) + 'a;

/// How long a write or a read may take before it gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Delivery reports of the log's producer, by request id: the offset or the error.
#[derive(Default)]
struct Acks(Mutex<HashMap<usize, Result<i64, String>>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, id: usize) {
        let v = match r {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, v);
    }
}

pub(crate) struct TopicLog {
    producer: BaseProducer<Acks>,
    ids: AtomicUsize,
    kafka: KafkaConfig,
}

impl TopicLog {
    pub(crate) fn new(cfg: &KafkaConfig) -> Result<TopicLog, String> {
        let producer: BaseProducer<Acks> = cfg
            .connection()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", TIMEOUT.as_millis().to_string())
            .create_with_context(Acks::default())
            .map_err(|e| format!("cannot create a producer: {e}"))?;
        Ok(TopicLog {
            producer,
            ids: AtomicUsize::new(0),
            kafka: cfg.clone(),
        })
    }

    /// Wait (5 s at most) for anything still in flight.
    pub(crate) fn flush(&self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }

    /// Append one record and wait for its acknowledgement; its offset.
    pub(crate) fn write(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<i64, String> {
        self.write_all(topic, partition, &[(key, value)])
            .map(|o| o.last().copied().unwrap_or(-1))
    }

    /// Append records in order and wait for every acknowledgement (one wait, not one per
    /// record: 10,000 schema history entries took seconds one by one); their offsets. The
    /// idempotent producer keeps them in order within the partition.
    pub(crate) fn write_all(
        &self,
        topic: &str,
        partition: i32,
        records: &[(&str, Option<&[u8]>)],
    ) -> Result<Vec<i64>, String> {
        let mut ids = Vec::with_capacity(records.len());
        for &(key, value) in records {
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            let mut rec: BaseRecord<'_, str, [u8], usize> = BaseRecord::with_opaque_to(topic, id)
                .key(key)
                .partition(partition);
            if let Some(v) = value {
                rec = rec.payload(v);
            }
            let mut rec = rec;
            // a full queue: serve acknowledgements until there is room
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        rec = r;
                        self.producer.poll(Duration::from_millis(20));
                    }
                    Err((e, _)) => return Err(format!("cannot write {key} to {topic}: {e}")),
                }
            }
            ids.push((id, key));
        }
        let deadline = Instant::now() + TIMEOUT + Duration::from_secs(5);
        let mut offsets: Vec<Option<i64>> = vec![None; ids.len()];
        let mut left = ids.len();
        while left > 0 {
            self.producer.poll(Duration::from_millis(20));
            let mut acks = self
                .producer
                .context()
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for (i, (id, key)) in ids.iter().enumerate() {
                if offsets[i].is_some() {
                    continue;
                }
                match acks.remove(id) {
                    Some(Ok(offset)) => {
                        offsets[i] = Some(offset);
                        left -= 1;
                    }
                    Some(Err(e)) => return Err(format!("{topic} did not take {key}: {e}")),
                    None => {}
                }
            }
            drop(acks);
            if left > 0 && Instant::now() > deadline {
                let key = (ids.iter().zip(&offsets))
                    .find(|(_, o)| o.is_none())
                    .map_or("", |((_, k), _)| *k);
                return Err(format!("{topic} did not acknowledge {key} in time"));
            }
        }
        Ok(offsets.into_iter().flatten().collect())
    }

    pub(crate) fn consumer(
        &self,
        topic: &str,
        partition: i32,
        from: Offset,
    ) -> Result<BaseConsumer, String> {
        let c: BaseConsumer = self
            .kafka
            .reader("rowstream-state", crate::config::Fetch::Few)
            .create()
            .map_err(|e| format!("cannot read {topic}: {e}"))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, from)
            .map_err(|e| format!("cannot read {topic}: {e}"))?;
        c.assign(&tpl)
            .map_err(|e| format!("cannot read {topic}: {e}"))?;
        Ok(c)
    }

    /// Read `partition` of `topic` from the beginning through offset `end`, handing each
    /// record whose key starts with `prefix` (the key without it) to `f`.
    pub(crate) fn read_through(
        &self,
        topic: &str,
        partition: i32,
        end: i64,
        prefix: &str,
        f: &mut Visit<'_>,
    ) -> Result<(), String> {
        let c = self.consumer(topic, partition, Offset::Beginning)?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                    if let Some(k) = key.strip_prefix(prefix) {
                        f(m.offset(), k, m.payload());
                    }
                    if m.offset() >= end {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(format!("cannot read {topic}: {e}")),
                None if Instant::now() > deadline => {
                    return Err(format!(
                    "{topic} partition {partition} was not readable up to offset {end} within {} s",
                    TIMEOUT.as_secs()
                ))
                }
                None => {}
            }
        }
    }
}

/// Create the compacted topics if missing (one partition, the data topics' replication factor);
/// their partition counts.
pub(crate) async fn ensure_topics(cfg: &KafkaConfig, topics: &[&str]) -> Result<Vec<i32>, String> {
    let admin: AdminClient<DefaultClientContext> = cfg
        .connection()
        .create()
        .map_err(|e| format!("cannot create the admin client: {e}"))?;
    let partitions = |t: &str| -> Option<i32> {
        let md = tokio::task::block_in_place(|| {
            admin
                .inner()
                .fetch_metadata(Some(t), Duration::from_secs(5))
        });
        md.ok().and_then(|m| {
            m.topics()
                .iter()
                .find(|x| x.name() == t && x.error().is_none() && !x.partitions().is_empty())
                .map(|x| x.partitions().len() as i32)
        })
    };
    let missing: Vec<&str> = topics
        .iter()
        .copied()
        .filter(|t| partitions(t).is_none())
        .collect();
    if !missing.is_empty() {
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                NewTopic::new(t, 1, TopicReplication::Fixed(cfg.replication_factor))
                    .set("cleanup.policy", "compact")
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let fix = "create it with cleanup.policy=compact, or set state.topic / state.history_topic";
        match admin.create_topics(&new, &opts).await {
            Ok(results) => {
                for r in results {
                    if let Err((t, code)) = r {
                        if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                            return Err(format!(
                                "cannot create the state topic {t}: {code} ({fix})"
                            ));
                        }
                    }
                }
            }
            Err(e) => {
                return Err(format!(
                    "cannot create the state topics {missing:?}: {e} ({fix})"
                ))
            }
        }
        tracing::info!(topics = ?missing, "created the state topics (cleanup.policy=compact)");
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    for t in topics {
        loop {
            match partitions(t) {
                Some(n) => {
                    out.push(n);
                    break;
                }
                None if Instant::now() > deadline => {
                    return Err(format!("state topic {t} has no partitions"))
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(out)
}
