//! Commit-to-consumable latency for benchmarks: reads a topic from its start and, for every
//! change record whose after image carries a column `ts` (the source's clock at the write, µs
//! since the epoch), takes the time the record became readable here minus `ts`.
//!
//!   cargo run --release --example latency -- TOPIC EXPECTED TIMEOUT_SECS [WARMUP]
//!
//! Rows whose `id` is at most WARMUP (default 0) are read but not counted: the first second of
//! a run measures connection set-up and the broker warming up, not the stream.
//! Prints one line: `LATENCY n=… p50=… p99=… max=… missing=…` (ms; missing: how many of
//! EXPECTED records had not arrived at the timeout). `LATENCY_DUMP=FILE` also writes a line per
//! record: its arrival, its latency, the part of it before rowstream made the record
//! (`systemTime`) and before its Kafka timestamp (µs), to look for periodic stalls and where
//! they sit. The database and this program read the same clock (one machine), so no skew
//! enters the figures. The consumer fetches with `fetch.wait.max.ms=5`, so its own long poll
//! adds at most a few ms.
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The after image's `ts` and the record's `systemTime` (ms, when rowstream made it), when the
/// record is a change that has them and its `id` is past the warm-up.
fn ts_of(payload: &[u8], warmup: i64) -> Option<(i64, i64)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let after = &v["payload"]["after"]["dataColumn"];
    if after["id"].as_i64().is_some_and(|id| id <= warmup) {
        return None;
    }
    let ts = after["ts"].as_i64()?;
    let made = v["payload"]["timestamp"]["systemTime"]
        .as_i64()
        .unwrap_or(0);
    Some((ts, made))
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 && a.len() != 5 {
        eprintln!("usage: latency TOPIC EXPECTED TIMEOUT_SECS [WARMUP]");
        std::process::exit(2);
    }
    let (topic, expected, timeout) = (
        &a[1],
        a[2].parse::<usize>().expect("EXPECTED: a number"),
        Duration::from_secs(a[3].parse().expect("TIMEOUT_SECS: a number")),
    );
    let warmup: i64 = a.get(4).map_or(0, |w| w.parse().expect("WARMUP: a number"));
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .set("group.id", "rowstream-latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(md) = md {
            let n = md.topics().first().map_or(0, |t| t.partitions().len());
            if n > 0 {
                break n;
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    println!("READY");
    // LATENCY_DUMP=FILE: one line per record, "arrival_us latency_us made_us stamped_us" (from `ts` to the record's systemTime and to its Kafka timestamp), to look for periodic stalls
    let mut dump = std::env::var_os("LATENCY_DUMP").map(|f| {
        std::io::BufWriter::new(std::fs::File::create(f).expect("LATENCY_DUMP: cannot create"))
    });
    let mut lat_us: Vec<i64> = Vec::with_capacity(expected);
    while lat_us.len() < expected && Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let at = now_us();
                if let Some((ts, made_ms)) = m.payload().and_then(|p| ts_of(p, warmup)) {
                    lat_us.push(at - ts);
                    if let Some(d) = dump.as_mut() {
                        use std::io::Write;
                        let stamp = m.timestamp().to_millis().unwrap_or(0);
                        let _ = writeln!(
                            d,
                            "{at} {} {} {}",
                            at - ts,
                            made_ms * 1000 - ts,
                            stamp * 1000 - ts
                        );
                    }
                }
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    let n = lat_us.len();
    lat_us.sort_unstable();
    let pick = |q: f64| -> f64 {
        if n == 0 {
            return f64::NAN;
        }
        let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        lat_us[i] as f64 / 1000.0
    };
    println!(
        "LATENCY n={n} p50={:.1} p99={:.1} max={:.1} missing={}",
        pick(0.50),
        pick(0.99),
        pick(1.0),
        expected.saturating_sub(n)
    );
}
