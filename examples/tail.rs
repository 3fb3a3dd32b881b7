//! Print the records of Kafka topics from the beginning, one JSON record a line, until no new
//! record arrived for `--idle` seconds. Used by `scripts/demo.sh`; handy for looking at output.
//!
//!   cargo run --release --example tail -- --brokers 127.0.0.1:9092 --idle 3 TOPIC...
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

fn main() {
    let mut brokers = "127.0.0.1:9092".to_string();
    let mut idle = 3u64;
    let mut heartbeats = false;
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--brokers" => brokers = args.next().expect("--brokers HOST:PORT"),
            "--idle" => {
                idle = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--idle SECONDS")
            }
            "--heartbeats" => heartbeats = true,
            t => topics.push(t.to_string()),
        }
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "rowstream-tail")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in &topics {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(5))
            .expect("metadata");
        for mt in md.topics() {
            for p in mt.partitions() {
                tpl.add_partition_offset(t, p.id(), Offset::Beginning)
                    .expect("partition");
            }
        }
    }
    c.assign(&tpl).expect("assign");
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(idle) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            last = Instant::now();
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default());
            if !heartbeats && v.contains("\"op\":\"MHEARTBEAT\"") {
                continue;
            }
            let key = m
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_else(|| "null".into());
            println!("{}[{}] key={key} {v}", m.topic(), m.partition());
        }
    }
}
