//! The raw produce ceiling for benchmarks: N records of S bytes with keys, through the same
//! producer settings rowstream uses, timed until every one is acknowledged.
//!
//!   cargo run --release --example produce_raw -- TOPIC N SIZE
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::time::{Duration, Instant};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (topic, n, size) = (
        &a[1],
        a[2].parse::<usize>().unwrap(),
        a[3].parse::<usize>().unwrap(),
    );
    // an optional fourth argument: the brokers (scripts/bench.sh's ratios step has its own)
    let brokers = a.get(4).map_or("127.0.0.1:9092", String::as_str);
    let p: ThreadedProducer<_> = rowstream::producer_settings(brokers).create().unwrap();
    let payload = vec![b'x'; size];
    let t0 = Instant::now();
    for i in 0..n {
        let key = i.to_string();
        let mut rec = BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(&payload[..]);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
    let s = t0.elapsed().as_secs_f64();
    println!("DONE events={n} secs={s:.3} rate={:.0}", n as f64 / s);
}
