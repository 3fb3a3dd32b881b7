//! Reading a topic back: every partition from its beginning to the end it had when the read
//! started (`verify`).

use crate::config::KafkaConfig;
use rdkafka::error::KafkaError;
use std::time::Duration;

/// One record read back from a topic.
pub(crate) struct Record<'a> {
    pub(crate) partition: i32,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
}

/// Read `topic` from the beginning to its end (blocking): every partition up to its high
/// watermark, then, `settle` later, up to the watermarks then (a broker's watermark may trail
/// what it acknowledged). Returns the number of records.
pub(crate) fn read_topic(
    cfg: &KafkaConfig,
    topic: &str,
    settle: Duration,
    f: &mut dyn FnMut(Record<'_>) -> Result<(), crate::error::Error>,
) -> Result<u64, crate::error::Error> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::{Message as _, Offset, TopicPartitionList};
    let setup = |e: KafkaError| {
        crate::error::Error::setup(
            format!("cannot read topic {topic}: {e}"),
            "check kafka.brokers and the kafka.properties security settings",
        )
    };
    let consumer: BaseConsumer = cfg
        .reader("rowstream-verify", crate::config::Fetch::Few)
        .create()
        .map_err(setup)?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(setup)?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if parts.is_empty() {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(setup)?;
    }
    consumer.assign(&tpl).map_err(setup)?;
    let ends = |c: &BaseConsumer| -> Result<Vec<i64>, crate::error::Error> {
        parts
            .iter()
            .map(|p| {
                c.fetch_watermarks(topic, *p, Duration::from_secs(10))
                    .map(|(_, hi)| hi)
                    .map_err(setup)
            })
            .collect()
    };
    // the watermarks now, and once more after `settle` (a broker's watermark may trail what it
    // acknowledged); records written later (heartbeats) are not waited for
    let mut end = ends(&consumer)?;
    let mut next = vec![0i64; parts.len()];
    let mut n = 0u64;
    let mut rounds = 0;
    let mut reached_at: Option<std::time::Instant> = None;
    loop {
        if next.iter().zip(&end).all(|(a, b)| a >= b) {
            let at = *reached_at.get_or_insert_with(std::time::Instant::now);
            if rounds == 1 {
                return Ok(n);
            }
            if at.elapsed() >= settle {
                end = ends(&consumer)?;
                rounds = 1;
                reached_at = None;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let i = parts.iter().position(|p| *p == m.partition()).unwrap_or(0);
                next[i] = m.offset() + 1;
                n += 1;
                f(Record {
                    partition: m.partition(),
                    key: m.key(),
                    value: m.payload().unwrap_or_default(),
                })?;
            }
            Some(Err(e)) => return Err(setup(e)),
            None => {}
        }
    }
}
