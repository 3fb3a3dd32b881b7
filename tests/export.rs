//! `rowstream export`: a bounded read of a topic by offsets or by time range returns exactly
//! the records in range, in the columns asked for, as JSON lines, CSV or Parquet.
mod common;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::{json, Value as J};
use std::time::Duration;

/// 2024-11-15 00:00:00 UTC: record i has timestamp BASE + i s.
const BASE: i64 = 1_731_628_800_000;

/// A new topic `<name>-<run>` of `partitions` partitions, and a producer for it.
async fn new_topic(name: &str, partitions: i32) -> (String, BaseProducer) {
    let topic = format!("{name}-{}", run_id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("linger.ms", "50")
        .create()
        .unwrap();
    (topic, p)
}

/// A topic of two partitions holding records 0..40: record i in partition i % 2 (so at offset
/// i / 2), key `k<i>`, value `{"event_id": i, "tag": {"desc": "d<i>"}, "n": null}`, timestamp
/// BASE + i s, header `h: v<i>`; produced in batches, as producers do.
async fn known_topic(name: &str) -> String {
    let (topic, p) = new_topic(name, 2).await;
    for i in 0..40i64 {
        let body = json!({"event_id": i, "tag": {"desc": format!("d{i}")}, "n": null}).to_string();
        let key = format!("k{i}");
        let hv = format!("v{i}");
        let rec = BaseRecord::to(&topic)
            .partition((i % 2) as i32)
            .key(&key)
            .payload(&body)
            .timestamp(BASE + i * 1000)
            .headers(OwnedHeaders::new().insert(Header {
                key: "h",
                value: Some(&hv),
            }));
        p.send(rec).map_err(|(e, _)| e).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    topic
}

fn export(topic: &str, args: &[&str]) -> String {
    rowstream_ok(&[&["export", "--brokers", BROKER, "--topic", topic], args].concat())
}

fn lines(text: &str) -> Vec<J> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_by_offsets_and_by_time_returns_exactly_the_range() {
    let topic = known_topic("rs_export").await;
    let cols = "__partition__,__offset__,__key__,event_id,tag.desc,'abc',__timestamp__,__headers__";
    // one partition, offsets [5, 12): records 10, 12, ..., 22
    let got = lines(&export(
        &topic,
        &[
            "--partition",
            "0",
            "--begin-offset",
            "5",
            "--end-offset",
            "12",
            "--column",
            cols,
        ],
    ));
    let want: Vec<J> = (5..12)
        .map(|off| {
            let i = off * 2;
            json!({"__partition__": 0, "__offset__": off, "__key__": format!("k{i}"),
                   "event_id": i, "tag.desc": format!("d{i}"), "'abc'": "abc",
                   "__timestamp__": BASE + i * 1000, "__headers__": {"h": format!("v{i}")}})
        })
        .collect();
    assert_eq!(got, want);
    // every partition, offsets [3, 6): three of each
    let got = lines(&export(
        &topic,
        &[
            "--begin-offset",
            "3",
            "--end-offset",
            "6",
            "--column",
            "__key__",
        ],
    ));
    let mut keys: Vec<String> = got
        .iter()
        .map(|r| r["__key__"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["k10", "k11", "k6", "k7", "k8", "k9"]);
    // by time: [BASE + 10 s, BASE + 20 s) in UTC, and the same instants at +08:00
    for (zone, begin, end) in [
        ("UTC", "20241115000010", "20241115000020"),
        ("+08:00", "20241115080010", "20241115080020"),
    ] {
        let got = lines(&export(
            &topic,
            &[
                "--begin-datetime",
                begin,
                "--end-datetime",
                end,
                "--timezone",
                zone,
                "--column",
                "event_id",
            ],
        ));
        let mut ids: Vec<i64> = got
            .iter()
            .map(|r| r["event_id"].as_i64().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (10..20).collect::<Vec<_>>(), "{zone}");
    }
    // the begin time is found by the broker (ListOffsets by timestamp): records 0..10 are
    // skipped without being read, 5 in each partition
    let (code, _, err) = rowstream(&[
        "export",
        "--brokers",
        BROKER,
        "--topic",
        &topic,
        "--begin-datetime",
        "20241115000010",
        "--timezone",
        "UTC",
        "--column",
        "event_id",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let starts: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("export starts at the first record at or after --begin-datetime"))
        .collect();
    assert_eq!(starts.len(), 2, "{err}");
    assert!(
        starts
            .iter()
            .all(|l| l.contains("offset=5") && l.contains("skipped=5")),
        "{err}"
    );
    // no end: to the end of every partition
    let all = lines(&export(&topic, &["--column", "event_id"]));
    assert_eq!(all.len(), 40);
    // CSV: delimiter, null text, header, RFC 4180 quoting (a value holding quotes is quoted)
    let csv = export(
        &topic,
        &[
            "--partition",
            "1",
            "--begin-offset",
            "0",
            "--end-offset",
            "2",
            "--format",
            "csv",
            "--field-delimiter",
            "|",
            "--null-value",
            "NULL",
            "--header",
            "--column",
            "__offset__,event_id,n,__value__",
        ],
    );
    assert_eq!(
        csv,
        "__offset__|event_id|n|__value__\n\
         0|1|NULL|\"{\"\"event_id\"\":1,\"\"n\"\":null,\"\"tag\"\":{\"\"desc\"\":\"\"d1\"\"}}\"\n\
         1|3|NULL|\"{\"\"event_id\"\":3,\"\"n\"\":null,\"\"tag\"\":{\"\"desc\"\":\"\"d3\"\"}}\"\n"
    );
    // Parquet
    let file = std::env::temp_dir().join(format!("rowstream-test-export-{}.parquet", run_id()));
    export(
        &topic,
        &[
            "--begin-offset",
            "18",
            "--format",
            "parquet",
            "--output",
            file.to_str().unwrap(),
            "--column",
            "__partition__,__offset__,event_id",
        ],
    );
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(std::fs::read(&file).unwrap()),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut offsets = Vec::new();
    for b in reader {
        let b = b.unwrap();
        offsets.extend(
            b.column(1)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied(),
        );
        assert_eq!(b.schema().field(2).name(), "event_id");
    }
    offsets.sort();
    assert_eq!(offsets, [18, 18, 19, 19]);
}

/// A topic or partition that does not exist is one clear line, exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn export_names_a_missing_topic() {
    let (code, _, err) = rowstream(&["export", "--brokers", BROKER, "--topic", "no-such-topic-rs"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("error: topic no-such-topic-rs does not exist on the broker"),
        "{err}"
    );
}

/// `rowstream export | head -1`: the reader goes away after one line while the export still has
/// ~2 MB to write (far more than a pipe holds), so its writes meet a broken pipe: exit 0 and no
/// error (a closed output is not a failure).
#[tokio::test(flavor = "multi_thread")]
async fn export_into_a_closed_pipe_exits_0() {
    use std::io::BufRead as _;
    let (topic, p) = new_topic("rs_export_pipe", 1).await;
    let body = json!({"pad": "x".repeat(1000)}).to_string();
    for i in 0..2000 {
        let key = format!("k{i}");
        let mut rec = BaseRecord::to(&topic).key(&key).payload(&body);
        while let Err((e, r)) = p.send(rec) {
            assert!(
                matches!(
                    e,
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull
                    )
                ),
                "{e}"
            );
            p.poll(Duration::from_millis(10));
            rec = r;
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["export", "--brokers", BROKER, "--topic", &topic])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with('{'), "{first}");
    drop(stdout); // the read end is closed: the export's next writes fail with a broken pipe
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("error"), "{err}");
}

/// On a busy topic the export ends at the log end taken when it started (DataWorks' reader's
/// `endOffset` default): a producer writes on throughout, the export still exits 0 (the old
/// "quiet for a second" rule never ended), and what it wrote is offsets 0.. without a gap, at
/// least every record written before it started.
#[tokio::test(flavor = "multi_thread")]
async fn export_of_a_busy_topic_ends_at_the_end_taken_at_its_start() {
    let (topic, p) = new_topic("rs_export_busy", 1).await;
    for i in 0..200 {
        let key = format!("k{i}");
        p.send(BaseRecord::to(&topic).key(&key).payload("{}"))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // records handed to the producer (an upper bound of the log), and records it flushed
    // (in the log: a lower bound)
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(200));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(200));
    let writer = {
        let (stop, sent, acked, topic) = (stop.clone(), sent.clone(), acked.clone(), topic.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                p.send(BaseRecord::to(&topic).key("busy").payload("{}"))
                    .map_err(|(e, _)| e)
                    .unwrap();
                p.flush(Duration::from_secs(10)).unwrap();
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    // the producer is writing when the export starts (250 records in the log), and goes on
    // until it has ended
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.load(std::sync::atomic::Ordering::Relaxed) < 250 {
        assert!(
            std::time::Instant::now() < deadline,
            "the producer does not write"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = export(&topic, &["--column", "__offset__"]);
    let produced_by_then = sent.load(std::sync::atomic::Ordering::Relaxed);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let offsets: Vec<i64> = lines(&out)
        .iter()
        .map(|l| l["__offset__"].as_i64().unwrap())
        .collect();
    assert!(offsets.len() >= 250, "{} exported", offsets.len());
    assert!(
        offsets.len() as u64 <= produced_by_then,
        "{} exported of {produced_by_then} written",
        offsets.len()
    );
    assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
}
