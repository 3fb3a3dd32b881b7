//! Kafka side of the harness: reading topics from the beginning, the records as JSON, a private
//! Apache Kafka node to pause, kill or configure, and the assertions over per-key histories.

use super::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BROKER: &str = "127.0.0.1:9092";

#[derive(Debug, Clone)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: J,
    /// the record exactly as written
    pub raw: String,
    /// its `rowstream.order` header
    pub order: Option<String>,
}

impl Rec {
    pub fn op(&self) -> &str {
        self.value["payload"]["op"].as_str().unwrap_or("")
    }
    pub fn after(&self) -> &J {
        &self.value["payload"]["after"]["dataColumn"]
    }
    pub fn before(&self) -> &J {
        &self.value["payload"]["before"]["dataColumn"]
    }
    pub fn seq(&self) -> &str {
        self.value["payload"]["sequenceId"].as_str().unwrap_or("")
    }
}

/// Reads a topic from the beginning, all partitions, accumulating records.
pub struct Reader {
    consumer: BaseConsumer,
    pub topic: String,
    pub records: Vec<Rec>,
    assigned: bool,
}

impl Reader {
    pub fn new(topic: &str) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", BROKER)
            .set("group.id", format!("test-{topic}-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // a partition whose start offset cannot be looked up yet (a topic just created,
            // a leader moving) falls back to this: never "latest", which would skip records
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        Reader {
            consumer,
            topic: topic.to_string(),
            records: vec![],
            assigned: false,
        }
    }

    fn assign(&self) -> bool {
        let Ok(md) = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
        else {
            return false;
        };
        let Some(t) = md.topics().iter().find(|t| t.name() == self.topic) else {
            return false;
        };
        if t.error().is_some() || t.partitions().is_empty() {
            return false;
        }
        let mut tpl = TopicPartitionList::new();
        for p in t.partitions() {
            tpl.add_partition_offset(&self.topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        self.consumer.assign(&tpl).is_ok()
    }

    /// Poll until `done(records)` or the deadline; panics with the records on timeout.
    /// The first `n` records (key, value text) of a topic whose values need not be JSON.
    pub fn until_raw(&mut self, secs: u64, n: usize) -> Vec<(Option<String>, String)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "{}: {} of {n} records",
                self.topic,
                out.len()
            );
            if !self.assigned {
                self.assigned = self.assign();
                if !self.assigned {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            // a broker going away is reported here too; librdkafka reconnects by itself
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                out.push((
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ));
            }
        }
        out
    }

    pub fn until(&mut self, secs: u64, what: &str, done: impl Fn(&[Rec]) -> bool) -> &[Rec] {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if !self.assigned {
                self.assigned = self.assign();
            }
            if self.assigned {
                // `done` is asked at least every 200 ms, also while records keep coming
                let drained = Instant::now();
                while let Some(m) = self.consumer.poll(Duration::from_millis(100)) {
                    // a broker going away is reported here too; librdkafka reconnects by itself
                    let Ok(m) = m else { continue };
                    let value: J = serde_json::from_slice(m.payload().unwrap_or(b"null"))
                        .expect("record is JSON");
                    let raw = String::from_utf8_lossy(m.payload().unwrap_or(b"")).into_owned();
                    self.records.push(Rec {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        value,
                        raw,
                        order: m.headers().and_then(|h| {
                            use rdkafka::message::Headers as _;
                            h.iter()
                                .find(|x| x.key == "rowstream.order")
                                .and_then(|x| x.value)
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                        }),
                    });
                    if drained.elapsed() > Duration::from_millis(200) {
                        break;
                    }
                }
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
            if done(&self.records) {
                return &self.records;
            }
            if Instant::now() > deadline {
                let ops: Vec<String> = self
                    .records
                    .iter()
                    .filter(|r| r.op() != "MHEARTBEAT")
                    .map(|r| format!("{} {:?} {}", r.op(), r.key, r.value["payload"]["after"]))
                    .collect();
                panic!(
                    "timed out waiting for {what} on {}; {} records:\n{}",
                    self.topic,
                    self.records.len(),
                    ops.join("\n")
                );
            }
        }
    }

    /// Consume without keeping records until `n` distinct `id`s were inserted (for large
    /// volumes); returns how many INSERT records there were.
    pub fn count_inserted_ids(&mut self, secs: u64, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut ids = std::collections::HashSet::new();
        let mut inserts = 0;
        while ids.len() < n {
            if !self.assigned {
                self.assigned = self.assign();
            }
            // a broker going away is reported here too; librdkafka reconnects by itself
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                let v: J = serde_json::from_slice(m.payload().unwrap_or(b"null")).unwrap();
                if v["payload"]["op"] == "INSERT" {
                    inserts += 1;
                    ids.insert(v["payload"]["after"]["dataColumn"]["id"].as_i64().unwrap());
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out: {} of {n} ids on {}",
                ids.len(),
                self.topic
            );
        }
        inserts
    }

    /// How many records the topic holds now: the sum of its partitions' high watermarks
    /// (exact on Apache Kafka for a topic written without transactions).
    pub fn end_offsets_total(&self) -> i64 {
        let md = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .unwrap();
        let t = md.topics().iter().find(|t| t.name() == self.topic).unwrap();
        t.partitions()
            .iter()
            .map(|p| {
                self.consumer
                    .fetch_watermarks(&self.topic, p.id(), Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .sum()
    }

    /// Records other than heartbeats.
    pub fn data(&self) -> Vec<Rec> {
        self.records
            .iter()
            .filter(|r| r.op() != "MHEARTBEAT")
            .cloned()
            .collect()
    }
}

pub fn count_data(r: &[Rec]) -> usize {
    r.iter().filter(|r| r.op() != "MHEARTBEAT").count()
}

/// A private Apache Kafka node (broker and controller in one JVM, started by
/// `scripts/kafka.sh node`) for tests that pause, kill or configure the broker. Its log lives in
/// a fresh temporary folder, removed on drop.
pub struct Broker {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Broker {
    pub fn start(port: u16) -> Broker {
        Broker::with(port, |_| vec![])
    }

    /// A node whose plaintext listener is on `port`, with extra broker settings (`key=value`,
    /// they override scripts/kafka.sh's defaults; `scram=...` adds a SCRAM user at format time).
    /// `settings` gets the controller's port (a `listeners` setting must name it).
    pub fn with(port: u16, settings: impl FnOnce(u16) -> Vec<String>) -> Broker {
        let dir = std::env::temp_dir().join(format!("rowstream-kafka-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("broker.log")).unwrap();
        let controller = free_port();
        let child = Command::new(repo_root().join("scripts/kafka.sh"))
            .arg("node")
            .arg(&dir)
            .arg(port.to_string())
            .arg(controller.to_string())
            .args(settings(controller))
            .env("KAFKA_HEAP", "256m")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start scripts/kafka.sh: {e}"));
        let mut broker = Broker { child, port, dir };
        broker.wait_listening(port);
        broker
    }

    /// A node that requires SASL/SCRAM-SHA-512 on `port`, knowing `user` (the brokers talk to
    /// each other on a second, plaintext listener).
    pub fn start_with_user(port: u16, user: &str, password: &str) -> Broker {
        Broker::start_with_sasl(port, "SCRAM-SHA-512", user, password)
    }

    /// A node that requires SASL with `mechanism` (`PLAIN` or `SCRAM-SHA-512`) on `port`,
    /// knowing `user`.
    pub fn start_with_sasl(port: u16, mechanism: &str, user: &str, password: &str) -> Broker {
        let inner = free_port();
        let (module, users) = match mechanism {
            "PLAIN" => (
                format!("org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}=\"{password}\";"),
                None,
            ),
            _ => (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_string(),
                Some(format!("scram={mechanism}=[name={user},password={password}]")),
            ),
        };
        let lower = mechanism.to_ascii_lowercase();
        Broker::with(port, |controller| {
            vec![
                format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{inner},CONTROLLER://127.0.0.1:{controller}"),
                format!("advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{inner}"),
                format!("sasl.enabled.mechanisms={mechanism}"),
                format!("listener.name.sasl_plaintext.{lower}.sasl.jaas.config={module}"),
            ]
            .into_iter()
            .chain(users)
            .collect()
        })
    }

    /// A node that serves TLS itself on `port` with the PEM certificate `cert` and key `key`.
    pub fn start_tls(port: u16, cert: &Path, key: &Path) -> Broker {
        let inner = free_port();
        let pem = cert.with_extension("keystore.pem");
        let both = std::fs::read_to_string(key).unwrap() + &std::fs::read_to_string(cert).unwrap();
        std::fs::write(&pem, both).unwrap();
        Broker::with(port, |controller| {
            vec![
                format!("listeners=SSL://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{inner},CONTROLLER://127.0.0.1:{controller}"),
                format!("advertised.listeners=SSL://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{inner}"),
                "ssl.keystore.type=PEM".into(),
                format!("ssl.keystore.location={}", pem.display()),
            ]
        })
    }

    fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "Kafka on {port} did not start ({}; scripts/services.sh up resolves its jars); its log ends:\n{}",
                    exited.map_or("not listening after 120 s".into(), |s| format!("exited: {s}")),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pause(&self) {
        unsafe_kill(self.child.id(), "STOP");
    }
    pub fn resume(&self) {
        unsafe_kill(self.child.id(), "CONT");
    }
}

/// The repository's root (where scripts/ is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Drop for Broker {
    fn drop(&mut self) {
        unsafe_kill(self.child.id(), "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Reader {
    pub fn on(brokers: &str, topic: &str) -> Reader {
        let mut r = Reader::new(topic);
        r.consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("test-{topic}-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        r
    }
}

/// Has every key of `fin` reached its final `v`, and every other key been deleted?
pub fn reached_final_state(recs: &[Rec], fin: &std::collections::HashMap<String, i64>) -> bool {
    let mut last: std::collections::HashMap<String, Option<i64>> = std::collections::HashMap::new();
    for x in recs.iter().filter(|x| x.op() != "MHEARTBEAT") {
        let v = if x.op() == "DELETE" {
            None
        } else {
            x.after()["v"].as_i64()
        };
        last.insert(x.key.clone().unwrap_or_default(), v);
    }
    last.values().filter(|v| v.is_some()).count() == fin.len()
        && fin.iter().all(|(k, v)| last.get(k) == Some(&Some(*v)))
}

/// Each key's records, in partition order, are its exact history: all in one partition, an
/// INSERT first (a snapshot row at most once), then UPDATE_AFTERs raising `v` by exactly 1 (no
/// gap, no duplicate) whose before image, when carried, holds the previous `v`; DELETEs allowed.
/// Returns how many keys start with a snapshot row.
pub fn assert_exact_histories(recs: &[Rec]) -> usize {
    let mut hist: std::collections::BTreeMap<String, Vec<&Rec>> = std::collections::BTreeMap::new();
    for x in recs.iter().filter(|x| x.op() != "MHEARTBEAT") {
        hist.entry(x.key.clone().expect("keyed table"))
            .or_default()
            .push(x);
    }
    let mut snapshot_rows = 0;
    for (k, h) in &hist {
        let parts: Vec<i32> = h.iter().map(|x| x.partition).collect();
        assert!(
            parts.windows(2).all(|w| w[0] == w[1]),
            "key {k} spread over partitions {parts:?}"
        );
        assert_eq!(h[0].op(), "INSERT", "key {k} does not start with an INSERT");
        if h[0].seq() == "-1" {
            snapshot_rows += 1;
            assert_eq!(
                h[0].value["payload"]["timestamp"]["eventTime"],
                serde_json::json!(-1)
            );
        }
        assert!(
            h.iter().filter(|x| x.seq() == "-1").count() <= 1,
            "key {k} snapshotted twice"
        );
        let mut v = h[0].after()["v"].as_i64().unwrap();
        for x in &h[1..] {
            match x.op() {
                "UPDATE_AFTER" => {
                    let nv = x.after()["v"].as_i64().unwrap();
                    assert_eq!(nv, v + 1, "key {k}: gap or duplicate ({v} -> {nv})");
                    if let Some(bv) = x.before()["v"].as_i64() {
                        assert_eq!(bv, v, "key {k}: before image");
                    }
                    v = nv;
                }
                "DELETE" => {}
                op => panic!("key {k}: unexpected {op} after its first record"),
            }
        }
    }
    snapshot_rows
}

/// Write a record into `topic` as rowstream would place it (murmur2 on the key), e.g. to plant
/// a difference for `verify`.
pub fn produce(topic: &str, key: &str, value: &J) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let body = value.to_string();
    p.send(BaseRecord::to(topic).key(key).payload(&body))
        .map_err(|(e, _)| e)
        .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
}

/// What at-least-once with order allows: each key's records in one partition, its `v` never
/// going back (a record delivered again is equal or newer, never older). Returns how many
/// snapshot records there are and how many keys have more than one.
pub fn assert_never_older(recs: &[Rec]) -> (usize, usize) {
    let mut last: std::collections::HashMap<String, (i32, i64)> = Default::default();
    let mut snaps: std::collections::HashMap<String, usize> = Default::default();
    for x in recs.iter().filter(|x| x.op() != "MHEARTBEAT") {
        let k = x.key.clone().expect("keyed table");
        if x.seq() == "-1" {
            *snaps.entry(k.clone()).or_default() += 1;
        }
        if x.op() == "DELETE" {
            last.remove(&k);
            continue;
        }
        let v = x.after()["v"].as_i64().expect("v");
        if let Some((p, prev)) = last.get(&k) {
            assert_eq!(*p, x.partition, "key {k} spread over partitions");
            assert!(
                v >= *prev,
                "key {k} went back from v={prev} to v={v} ({} at offset {})",
                x.op(),
                x.offset
            );
        }
        last.insert(k, (x.partition, v));
    }
    (
        snaps.values().sum(),
        snaps.values().filter(|&&n| n > 1).count(),
    )
}

/// The `{"schema":..,"after":..}` part of a raw record, byte for byte.
pub fn schema_and_after(raw: &str) -> String {
    let s = raw.find("\"schema\":").unwrap();
    let e = raw.find(",\"payload\"").unwrap();
    let a = raw.find("\"after\":").unwrap();
    let b = raw.find(",\"sequenceId\"").unwrap();
    format!("{{{},{}}}", &raw[s..e], &raw[a..b])
}

/// Three private Kafka nodes forming one cluster (each broker and controller; replication
/// factor 3, min.insync.replicas 2), for the broker-loss tests. Nodes can be killed and
/// started again on their own log.
pub struct Cluster {
    pub dir: PathBuf,
    pub ports: Vec<u16>,
    cports: Vec<u16>,
    pub nodes: Vec<Option<Child>>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("rowstream-kafka-cluster-{}", ports[0]));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = Cluster {
            dir,
            ports,
            cports,
            nodes: vec![None, None, None],
        };
        for n in 1..=3 {
            c.start_node(n);
        }
        for n in 1..=3 {
            c.wait_node(n);
        }
        c
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`
    pub fn brokers(&self) -> String {
        let a: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        a.join(",")
    }

    /// Start node `n` (1-based) on its own log.
    pub fn start_node(&mut self, n: usize) {
        let join = |v: &[u16]| {
            v.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{n}.log")))
            .unwrap();
        let child = Command::new(repo_root().join("scripts/kafka.sh"))
            .arg("cluster")
            .arg(&self.dir)
            .arg(join(&self.ports))
            .arg(join(&self.cports))
            .arg(n.to_string())
            .env("KAFKA_HEAP", "256m")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start scripts/kafka.sh: {e}"));
        self.nodes[n - 1] = Some(child);
    }

    pub fn wait_node(&mut self, n: usize) {
        let port = self.ports[n - 1];
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let child = self.nodes[n - 1].as_mut().unwrap();
            let exited = child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join(format!("node{n}.log")))
                    .unwrap_or_default();
                panic!("Kafka node {n} on {port} did not start ({exited:?}); its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9 node `n` (1-based).
    pub fn kill9(&mut self, n: usize) {
        if let Some(mut c) = self.nodes[n - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node (1-based) leading `partition` of `topic`, by the cluster's metadata.
    pub fn leader(&self, topic: &str, partition: i32) -> usize {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let t = md.topics().iter().find(|t| t.name() == topic).unwrap();
        let p = t.partitions().iter().find(|p| p.id() == partition).unwrap();
        p.leader() as usize
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in 1..=3 {
            self.kill9(n);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
