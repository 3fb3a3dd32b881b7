//! Shared harness for integration tests against real Postgres (127.0.0.1:5432, logical),
//! a real Kafka-protocol broker (127.0.0.1:9092) and the real `rowstream` binary.
//! Each test owns its database, slot, publication, topics and state dir (named after the test),
//! and cleans up leftovers of earlier runs when it starts. Waits are on conditions with deadlines.
#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value as J;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

pub const PG: &str = "postgres://postgres@127.0.0.1:5432";
pub const BROKER: &str = "127.0.0.1:9092";

pub async fn connect(db: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(&format!("{PG}/{db}"), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {db}: {e} (run scripts/services.sh up)"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// A fresh database `name` (with its slots dropped first), returning a client on it.
pub async fn fresh_db(name: &str) -> Client {
    let admin = connect("postgres").await;
    // terminate walsenders on our slots, drop slots on this db, then the db
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '{name}' AND active_pid IS NOT NULL"
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin
            .batch_execute(&format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'"
            ))
            .await;
        if r.is_ok() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    connect(name).await
}

/// A prefix unique to this test process, so topics of earlier runs never mix in.
pub fn run_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// The topic of `table` (schema public) for test `name`.
pub fn topic(name: &str, table: &str) -> String {
    format!("{name}-{}.public.{table}", run_id())
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rowstream")
}

pub fn state_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rowstream-test-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("rowstream-test-{name}.log")));
    d
}

/// A config for test `name`: database `name`, slot/publication `name`, topics
/// `name.{schema}.{table}`; `source_extra` lands in [source], `rest` after the other sections.
pub fn config(name: &str, source_extra: &str, rest: &str) -> String {
    format!(
        r#"
[source]
type = "postgres"
url = "{PG}/{name}"
slot = "{name}"
publication = "{name}"
{source_extra}
{tail}"#,
        tail = sink_sections(name, "{schema}", rest)
    )
}

/// The [kafka], [heartbeat] and [state] sections every test config shares, then `rest`.
fn sink_sections(name: &str, middle: &str, rest: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rowstream-test-{name}"));
    format!(
        r#"[kafka]
brokers = "{BROKER}"
topic = "{name}-{run}.{middle}.{{table}}"
partitions = 3
[heartbeat]
interval_ms = 1000
[state]
dir = "{dir}"
commit_interval_ms = 50
{rest}
"#,
        dir = dir.display(),
        run = run_id()
    )
}

pub struct Rowstream {
    pub child: Child,
    pub log: PathBuf,
    pub cfg: PathBuf,
}

impl Rowstream {
    pub fn start(name: &str, cfg_text: &str) -> Rowstream {
        let dir = std::env::temp_dir();
        let cfg = dir.join(format!("rowstream-test-{name}.toml"));
        std::fs::write(&cfg, cfg_text).unwrap();
        let log = dir.join(format!("rowstream-test-{name}.log"));
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .env("ROWSTREAM_LOG", "info,rowstream=debug")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn rowstream");
        Rowstream { child, log, cfg }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> i32 {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "rowstream did not stop on SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn assert_running(&mut self) {
        if let Some(s) = self.child.try_wait().unwrap() {
            panic!("rowstream exited early ({s}):\n{}", self.log_text());
        }
    }
}

impl Drop for Rowstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[derive(Debug, Clone)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: J,
    /// the record exactly as written
    pub raw: String,
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
    pub fn until(&mut self, secs: u64, what: &str, done: impl Fn(&[Rec]) -> bool) -> &[Rec] {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if !self.assigned {
                self.assigned = self.assign();
            }
            if self.assigned {
                while let Some(m) = self.consumer.poll(Duration::from_millis(100)) {
                    let m = m.expect("consume");
                    let value: J = serde_json::from_slice(m.payload().unwrap_or(b"null"))
                        .expect("record is JSON");
                    let raw = String::from_utf8_lossy(m.payload().unwrap_or(b"")).into_owned();
                    self.records.push(Rec {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        value,
                        raw,
                    });
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

/// Wait for an async condition with a deadline.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The slot's confirmed_flush_lsn as a number.
pub async fn confirmed_lsn(c: &Client, slot: &str) -> Option<u64> {
    let r = c
        .query_opt("SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()?;
    r.get::<_, Option<i64>>(0).map(|x| x as u64)
}

/// A private tansu broker on `port` (for tests that pause or kill the broker).
pub struct Broker {
    pub child: Child,
    pub port: u16,
}

impl Broker {
    pub fn start(port: u16) -> Broker {
        let cache = std::env::var("ROWSTREAM_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                    .join(".cache/rowstream")
            });
        let bin = cache.join("tansu/bin/tansu");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {}: {e} (run scripts/services.sh up)", bin.display())
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu on {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port }
    }
    pub fn pause(&self) {
        unsafe_kill(self.child.id(), "STOP");
    }
    pub fn resume(&self) {
        unsafe_kill(self.child.id(), "CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        unsafe_kill(self.child.id(), "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Reader {
    pub fn on(brokers: &str, topic: &str) -> Reader {
        let mut r = Reader::new(topic);
        r.consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("test-{topic}-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        r
    }
}

/// The walsender pid streaming `slot`, once rowstream started replication.
pub async fn streaming_pid(c: &Client, slot: &str) -> Option<i32> {
    c.query_opt(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .and_then(|r| r.get::<_, Option<i32>>(0))
}

/// Wait until rowstream streams from `slot`.
pub async fn wait_streaming(c: &Client, slot: &str) {
    wait_for(60, "streaming", || async {
        streaming_pid(c, slot).await.is_some()
    })
    .await;
}

pub const MY: &str = "mysql://rowstream:rowstream@127.0.0.1:3306";

/// A fresh MariaDB database `name`, returning a connection on it.
pub async fn fresh_mydb(name: &str) -> mysql_async::Conn {
    use mysql_async::prelude::*;
    let mut c =
        mysql_async::Conn::new(mysql_async::Opts::from_url(&format!("{MY}/mysql")).unwrap())
            .await
            .unwrap_or_else(|e| panic!("connect to mariadb: {e} (run scripts/services.sh up)"));
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    c.query_drop(format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    c.query_drop(format!("USE {name}")).await.unwrap();
    c
}

pub async fn myconn(db: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(&format!("{MY}/{db}")).unwrap())
        .await
        .unwrap()
}

/// A MySQL-source config for test `name` (database `name`), with its own replica id.
pub fn myconfig(name: &str, server_id: u32, source_extra: &str, rest: &str) -> String {
    format!(
        r#"
[source]
type = "mysql"
url = "{MY}/{name}"
server_id = {server_id}
{source_extra}
{tail}"#,
        tail = sink_sections(name, "{db}", rest)
    )
}

/// The topic of `db.table` for a MySQL test.
pub fn mytopic(name: &str, table: &str) -> String {
    format!("{name}-{}.{name}.{table}", run_id())
}

/// Peak RSS (VmHWM) of a process in KiB.
pub fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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

/// The `{"schema":..,"after":..}` part of a raw record, byte for byte.
pub fn schema_and_after(raw: &str) -> String {
    let s = raw.find("\"schema\":").unwrap();
    let e = raw.find(",\"payload\"").unwrap();
    let a = raw.find("\"after\":").unwrap();
    let b = raw.find(",\"sequenceId\"").unwrap();
    format!("{{{},{}}}", &raw[s..e], &raw[a..b])
}

/// `rowstream check --config <text>`: exit code and stdout.
pub fn run_check(name: &str, cfg: &str) -> (Option<i32>, String) {
    run_check_with(name, cfg, &[])
}

/// `rowstream check --config <text> <extra...>`: exit code and stdout.
pub fn run_check_with(name: &str, cfg: &str, extra: &[&str]) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!("rowstream-test-{name}-check.toml"));
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
