//! Kafka Connect conformance, measured against the real thing: a group of two real Kafka Connect
//! workers (Apache Kafka's `connect-runtime` from Maven Central, distributed mode, run by
//! `scripts/connect.sh`; FileStreamSource connectors) and a group of two rowstream workers
//! (Postgres connectors of the same names) get the same REST calls, every read from every worker
//! of each group. Status codes, error messages, states and JSON shapes are compared key by key;
//! the differences rowstream keeps are named in [`ALLOWED`] (and in the README, with their
//! reasons).
//!
//! Also: `kafka-connect-py` (PyPI), a Connect REST client people use, manages rowstream
//! connectors unchanged.
mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Differences rowstream keeps, by the JSON path where they show (`*` for any connector name):
/// rowstream's own live figures in a connector's status; a connector's config and a task's
/// config hold each connector type's own keys; KIP-875 source partitions and offsets are each
/// connector's own maps.
const ALLOWED: &[&str] = &[
    ".rowstream",
    ".config.*",
    ".[].config.*",
    ".*.info.config.*",
    ".offsets.[].partition.*",
    ".offsets.[].offset.*",
];

/// One HTTP/1.0 call (no chunked answers): status code and body.
fn call(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (code, body.to_string())
}

/// A real Kafka Connect worker, killed when dropped.
struct ConnectWorker(std::process::Child);

impl Drop for ConnectWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_connect(dir: &std::path::Path, addr: &str, group: &str) -> ConnectWorker {
    let port = addr.rsplit(':').next().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join("worker.log")).unwrap();
    let child = std::process::Command::new("scripts/connect.sh")
        .args(["worker", dir.to_str().unwrap(), port, group, BROKER])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("scripts/connect.sh (Java 17 and Maven: scripts/services.sh up installs them)");
    ConnectWorker(child)
}

/// One group of workers under test and how its connectors are configured.
struct Side {
    what: &'static str,
    addrs: Vec<String>,
    /// the flat config of connector `name` (without `name`)
    config: Box<dyn Fn(&str) -> Value>,
}

impl Side {
    /// Connector `name`'s state and how many of its tasks are in it, as worker `via` shows
    /// it in the connector's status and in the expanded list (None when the two differ).
    fn state(&self, via: &str, name: &str) -> Option<(String, usize)> {
        let of = |v: &Value| {
            let state = v["connector"]["state"].as_str().unwrap_or("").to_string();
            let tasks = v["tasks"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter(|t| t["state"] == v["connector"]["state"])
                        .count()
                })
                .unwrap_or(0);
            (state, tasks)
        };
        let (_, body) = call(via, "GET", &format!("/connectors/{name}/status"), "");
        let one = of(&serde_json::from_str(&body).unwrap_or_default());
        let (_, body) = call(via, "GET", "/connectors?expand=status", "");
        let all: Value = serde_json::from_str(&body).unwrap_or_default();
        let listed = of(&all[name]["status"]);
        (one == listed).then_some(one)
    }

    /// Wait until every worker shows connector `name` in `state` with `tasks` tasks in it.
    async fn settle(&self, name: &str, state: &str, tasks: usize) {
        let what = format!(
            "{}: {name} {state} with {tasks} task(s) on every worker",
            self.what
        );
        wait_for(90, &what, || async {
            self.addrs
                .iter()
                .all(|a| self.state(a, name) == Some((state.to_string(), tasks)))
        })
        .await;
    }
}

/// The JSON paths where `a` and `b` differ in shape (keys, value types; arrays by their first
/// element, an empty array matching any), minus the allowed ones.
fn shape_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let allowed = |p: &str| {
        ALLOWED.iter().any(|pat| {
            let pat_parts: Vec<&str> = pat.split('.').collect();
            let parts: Vec<&str> = p.split('.').collect();
            parts.len() >= pat_parts.len()
                && pat_parts
                    .iter()
                    .zip(&parts)
                    .all(|(x, y)| *x == "*" || x == y)
        })
    };
    if allowed(path) {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => shape_diff(&p, u, v, out),
                    _ if allowed(&p) => {}
                    (Some(_), None) => out.push(format!("{p}: only in Kafka Connect's answer")),
                    (None, _) => out.push(format!("{p}: only in rowstream's answer")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if let (Some(u), Some(v)) = (x.first(), y.first()) {
                shape_diff(&format!("{path}.[]"), u, v, out);
            }
        }
        (x, y) => {
            let kind = |v: &Value| match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            if kind(x) != kind(y) {
                out.push(format!(
                    "{path}: {} in Kafka Connect's answer, {} in rowstream's",
                    kind(x),
                    kind(y)
                ));
            }
        }
    }
}

/// Is every connector config in `v` (the value of a `config` key, or `v` itself when
/// `is_config`) a map of strings?
fn configs_are_text(v: &Value, is_config: bool) -> bool {
    match v {
        Value::Object(m) if is_config => m.values().all(Value::is_string),
        Value::Object(m) => m.iter().all(|(k, x)| configs_are_text(x, k == "config")),
        Value::Array(xs) => xs.iter().all(|x| configs_are_text(x, false)),
        _ => true,
    }
}

/// Connector names in maps keyed by them are the same on both sides; `tasks` of a connector
/// both show; states compared separately.
struct Compare {
    problems: Vec<String>,
}

impl Compare {
    /// `method path` sent to `connect` and `rowstream` (writes through the worker at `via`,
    /// reads through every worker): the same code; every worker of a group the same answer;
    /// JSON shapes alike; error messages equal when `exact_message`.
    fn both(
        &mut self,
        sides: (&Side, &Side),
        method: &str,
        path: &str,
        body: &str,
        via: Option<usize>,
        exact_message: bool,
    ) -> (Value, Value) {
        let answers = |s: &Side| -> Vec<(u16, Value)> {
            let addrs: Vec<&String> = match via {
                Some(i) => vec![&s.addrs[i]],
                None => s.addrs.iter().collect(),
            };
            addrs
                .into_iter()
                .map(|a| {
                    let (code, b) = call(a, method, path, body);
                    (code, serde_json::from_str(&b).unwrap_or(Value::Null))
                })
                .collect()
        };
        let (c, r) = (answers(sides.0), answers(sides.1));
        let label = format!("{method} {path}");
        for (what, xs) in [("Kafka Connect", &c), ("rowstream", &r)] {
            // rowstream's live figures (rates, ages) move between two reads
            let strip = |x: &(u16, Value)| {
                let mut v = x.1.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("rowstream");
                }
                (x.0, v)
            };
            if xs.iter().any(|x| strip(x) != strip(&xs[0])) {
                self.problems.push(format!(
                    "{label}: {what}'s workers answer differently: {xs:?}"
                ));
            }
        }
        if c[0].0 != r[0].0 {
            self.problems.push(format!(
                "{label}: status {} from Kafka Connect, {} from rowstream ({} / {})",
                c[0].0, r[0].0, c[0].1, r[0].1
            ));
        }
        let mut diffs = Vec::new();
        // a connector's config (each type's own keys) is a map of strings on both sides
        let root = match path.ends_with("/config") && c[0].0 == 200 {
            true => ".config",
            false => "",
        };
        shape_diff(root, &c[0].1, &r[0].1, &mut diffs);
        for (what, v) in [("Kafka Connect", &c[0].1), ("rowstream", &r[0].1)] {
            if !configs_are_text(v, root == ".config") {
                diffs.push(format!(
                    "a config of {what} holds a value that is not a string"
                ));
            }
        }
        for d in diffs {
            self.problems
                .push(format!("{label}: {d} ({} / {})", c[0].1, r[0].1));
        }
        if exact_message && c[0].1["message"] != r[0].1["message"] {
            self.problems.push(format!(
                "{label}: message {} from Kafka Connect, {} from rowstream",
                c[0].1["message"], r[0].1["message"]
            ));
        }
        eprintln!("{label}: {} / {}", c[0].0, r[0].0);
        (c[0].1.clone(), r[0].1.clone())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_answers_as_a_real_kafka_connect_group_does() {
    let run = run_id();
    let names = ["conf_a", "conf_b", "conf_c"];
    // Kafka Connect: two workers, FileStreamSource connectors
    let group = format!("conf-connect-{run}");
    let root = std::env::temp_dir().join(format!("rowstream-test-connect-{run}"));
    let caddrs: Vec<String> = (0..2).map(|_| free_addr()).collect();
    let _cw: Vec<ConnectWorker> = caddrs
        .iter()
        .enumerate()
        .map(|(i, a)| start_connect(&root.join(format!("w{i}")), a, &group))
        .collect();
    let file = root.join("source.txt");
    std::fs::write(&file, "one\ntwo\n").unwrap();
    let file = file.to_str().unwrap().to_string();
    let connect = Side {
        what: "Kafka Connect",
        addrs: caddrs.clone(),
        config: Box::new(move |name| {
            json!({
                "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "tasks.max": "1",
                "file": file,
                "topic": format!("{name}-{run}-file"),
                "topic.creation.default.replication.factor": "1",
                "topic.creation.default.partitions": "1",
            })
        }),
    };
    // rowstream: two workers of one group, Postgres connectors
    let raddrs: Vec<String> = (0..2).map(|_| free_addr()).collect();
    let rgroup = format!("conf-rowstream-{run}");
    let mut rw = Vec::new();
    for (i, a) in raddrs.iter().enumerate() {
        let toml = format!(
            "[worker]\nlisten = \"{a}\"\ngroup_id = \"{rgroup}\"\nconfig_topic = \"{rgroup}-configs\"\n[kafka]\nbrokers = \"{BROKER}\"\n[state]\ntopic = \"{rgroup}-offsets\"\nhistory_topic = \"{rgroup}-history\"\n"
        );
        let n = format!("conf_w{i}");
        state_dir(&n);
        rw.push(Rowstream::start_worker(&n, &toml));
    }
    let mut dbs = Vec::new();
    for n in names {
        let db = fresh_db(n).await;
        db.batch_execute("CREATE TABLE t(id int primary key); INSERT INTO t VALUES (1);")
            .await
            .unwrap();
        dbs.push(db);
    }
    let rowstream = Side {
        what: "rowstream",
        addrs: raddrs.clone(),
        config: Box::new(move |name| {
            json!({
                "source.type": "postgres",
                "source.url": format!("{PG}/{name}"),
                "source.slot": name,
                "source.publication": name,
                "kafka.topic": format!("{name}-{run}.{{schema}}.{{table}}"),
            })
        }),
    };
    for a in caddrs.iter().chain(&raddrs) {
        wait_for(
            120,
            &format!("the REST API of the worker at {a}"),
            || async {
                std::net::TcpStream::connect(a).is_ok()
                    && call(a, "GET", "/connectors", "").0 == 200
            },
        )
        .await;
    }
    let sides = (&connect, &rowstream);
    let mut cmp = Compare {
        problems: Vec::new(),
    };
    let [a, b, c] = names;
    let create = |s: &Side, name: &str| json!({ "name": name, "config": (s.config)(name) });
    // POST /connectors through the second worker: 201 with the connector's info; both sides
    // answer the created config as a string map holding its name
    let bodies = (
        create(&connect, a).to_string(),
        create(&rowstream, a).to_string(),
    );
    let (cv, rv) = {
        let c = call(&connect.addrs[1], "POST", "/connectors", &bodies.0);
        let r = call(&rowstream.addrs[1], "POST", "/connectors", &bodies.1);
        assert_eq!((c.0, r.0), (201, 201), "{} / {}", c.1, r.1);
        (
            serde_json::from_str::<Value>(&c.1).unwrap(),
            serde_json::from_str::<Value>(&r.1).unwrap(),
        )
    };
    let mut d = Vec::new();
    shape_diff("", &cv, &rv, &mut d);
    assert!(d.is_empty(), "POST /connectors: {d:?}: {cv} / {rv}");
    for v in [&cv, &rv] {
        assert_eq!(v["config"]["name"], a, "{v}");
        assert!(
            v["config"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string),
            "{v}"
        );
    }
    connect.settle(a, "RUNNING", 1).await;
    rowstream.settle(a, "RUNNING", 1).await;
    // the same name again: 409, Connect's message
    let body = |s: &Side| create(s, a).to_string();
    let (cb, rb) = (body(&connect), body(&rowstream));
    for (s, b) in [(&connect, &cb), (&rowstream, &rb)] {
        let _ = (s, b);
    }
    let c409 = call(&connect.addrs[0], "POST", "/connectors", &cb);
    let r409 = call(&rowstream.addrs[0], "POST", "/connectors", &rb);
    assert_eq!((c409.0, r409.0), (409, 409));
    assert_eq!(
        serde_json::from_str::<Value>(&c409.1).unwrap(),
        serde_json::from_str::<Value>(&r409.1).unwrap()
    );
    // reads, from every worker, once both have stored offsets (Connect flushes them every
    // second)
    wait_for(60, "offsets stored on both sides", || async {
        caddrs.iter().chain(&raddrs).all(|w| {
            let (_, body) = call(w, "GET", &format!("/connectors/{a}/offsets"), "");
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            v["offsets"].as_array().is_some_and(|o| !o.is_empty())
        })
    })
    .await;
    for p in [
        "/".to_string(),
        "/connectors".into(),
        "/connectors?expand=status".into(),
        "/connectors?expand=info".into(),
        "/connectors?expand=status&expand=info".into(),
        format!("/connectors/{a}"),
        format!("/connectors/{a}/config"),
        format!("/connectors/{a}/status"),
        format!("/connectors/{a}/tasks"),
        format!("/connectors/{a}/tasks/0/status"),
        format!("/connectors/{a}/offsets"),
        "/connector-plugins".into(),
    ] {
        cmp.both(sides, "GET", &p, "", None, false);
    }
    for p in [
        format!("/connectors/{a}/tasks/9/status"),
        "/connectors/nosuch".into(),
        "/connectors/nosuch/status".into(),
        "/connectors/nosuch/config".into(),
        "/connectors/nosuch/tasks".into(),
    ] {
        cmp.both(sides, "GET", &p, "", None, true);
    }
    // pause, resume, stop: codes, then the settled states and what they show
    cmp.both(
        sides,
        "PUT",
        &format!("/connectors/{a}/pause"),
        "",
        Some(1),
        false,
    );
    connect.settle(a, "PAUSED", 1).await;
    rowstream.settle(a, "PAUSED", 1).await;
    cmp.both(
        sides,
        "GET",
        &format!("/connectors/{a}/status"),
        "",
        None,
        false,
    );
    cmp.both(
        sides,
        "PUT",
        &format!("/connectors/{a}/resume"),
        "",
        Some(1),
        false,
    );
    connect.settle(a, "RUNNING", 1).await;
    rowstream.settle(a, "RUNNING", 1).await;
    cmp.both(
        sides,
        "PUT",
        &format!("/connectors/{a}/stop"),
        "",
        Some(1),
        false,
    );
    connect.settle(a, "STOPPED", 0).await;
    rowstream.settle(a, "STOPPED", 0).await;
    for p in [
        format!("/connectors/{a}"),
        format!("/connectors/{a}/status"),
        format!("/connectors/{a}/tasks"),
        "/connectors?expand=info&expand=status".into(),
    ] {
        let (cv, rv) = cmp.both(sides, "GET", &p, "", None, false);
        if p.ends_with("/tasks") {
            assert_eq!(
                (cv, rv),
                (json!([]), json!([])),
                "a STOPPED connector has no tasks"
            );
        }
    }
    cmp.both(
        sides,
        "GET",
        &format!("/connectors/{a}/tasks/0/status"),
        "",
        None,
        true,
    );
    // KIP-875 on a STOPPED connector: a malformed alter is refused, a reset succeeds
    cmp.both(
        sides,
        "PATCH",
        &format!("/connectors/{a}/offsets"),
        "{}",
        Some(0),
        false,
    );
    cmp.both(
        sides,
        "DELETE",
        &format!("/connectors/{a}/offsets"),
        "",
        Some(0),
        true,
    );
    cmp.both(
        sides,
        "PUT",
        &format!("/connectors/{a}/resume"),
        "",
        Some(0),
        false,
    );
    connect.settle(a, "RUNNING", 1).await;
    rowstream.settle(a, "RUNNING", 1).await;
    // KIP-875 on a running connector: refused
    cmp.both(
        sides,
        "DELETE",
        &format!("/connectors/{a}/offsets"),
        "",
        Some(1),
        false,
    );
    // KIP-745 restarts
    cmp.both(
        sides,
        "POST",
        &format!("/connectors/{a}/restart"),
        "",
        Some(1),
        false,
    );
    connect.settle(a, "RUNNING", 1).await;
    rowstream.settle(a, "RUNNING", 1).await;
    let (cv, rv) = cmp.both(
        sides,
        "POST",
        &format!("/connectors/{a}/restart?includeTasks=true&onlyFailed=false"),
        "",
        Some(1),
        false,
    );
    assert_eq!(
        cv["connector"]["state"], rv["connector"]["state"],
        "{cv} / {rv}"
    );
    connect.settle(a, "RUNNING", 1).await;
    rowstream.settle(a, "RUNNING", 1).await;
    cmp.both(
        sides,
        "POST",
        &format!("/connectors/{a}/tasks/0/restart"),
        "",
        Some(0),
        false,
    );
    cmp.both(
        sides,
        "POST",
        &format!("/connectors/{a}/tasks/9/restart"),
        "",
        Some(0),
        true,
    );
    connect.settle(a, "RUNNING", 1).await;
    rowstream.settle(a, "RUNNING", 1).await;
    // unknown connectors: Connect's codes and messages
    for (m, p) in [
        ("PUT", "/connectors/nosuch/pause"),
        ("PUT", "/connectors/nosuch/resume"),
        ("PUT", "/connectors/nosuch/stop"),
        ("POST", "/connectors/nosuch/restart"),
        ("DELETE", "/connectors/nosuch"),
    ] {
        cmp.both(sides, m, p, "", Some(1), true);
    }
    // PUT config: a name other than the URL's is refused; a new name is created (201);
    // GET then PUT unchanged replaces it (200)
    let wrong = |s: &Side| {
        let mut v = (s.config)(a);
        v["name"] = json!("other");
        v.to_string()
    };
    let c400 = call(
        &connect.addrs[1],
        "PUT",
        &format!("/connectors/{a}/config"),
        &wrong(&connect),
    );
    let r400 = call(
        &rowstream.addrs[1],
        "PUT",
        &format!("/connectors/{a}/config"),
        &wrong(&rowstream),
    );
    assert_eq!((c400.0, r400.0), (400, 400), "{} / {}", c400.1, r400.1);
    assert_eq!(
        serde_json::from_str::<Value>(&c400.1).unwrap(),
        serde_json::from_str::<Value>(&r400.1).unwrap()
    );
    for s in [&connect, &rowstream] {
        let (code, body) = call(
            &s.addrs[1],
            "PUT",
            &format!("/connectors/{b}/config"),
            &(s.config)(b).to_string(),
        );
        assert_eq!(code, 201, "{}: {body}", s.what);
        s.settle(b, "RUNNING", 1).await;
        let (_, got) = call(&s.addrs[0], "GET", &format!("/connectors/{b}/config"), "");
        let (code, body) = call(&s.addrs[0], "PUT", &format!("/connectors/{b}/config"), &got);
        assert_eq!(code, 200, "{}: {body}", s.what);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["config"],
            serde_json::from_str::<Value>(&got).unwrap(),
            "{}",
            s.what
        );
        s.settle(b, "RUNNING", 1).await;
    }
    // KIP-980: created STOPPED
    for s in [&connect, &rowstream] {
        let mut v = create(s, c);
        v["initial_state"] = json!("STOPPED");
        let (code, body) = call(&s.addrs[0], "POST", "/connectors", &v.to_string());
        assert_eq!(code, 201, "{}: {body}", s.what);
        s.settle(c, "STOPPED", 0).await;
    }
    cmp.both(sides, "GET", &format!("/connectors/{c}"), "", None, false);
    // offsets of a connector that never ran: none, from every worker
    cmp.both(
        sides,
        "GET",
        &format!("/connectors/{c}/offsets"),
        "",
        None,
        false,
    );
    cmp.both(
        sides,
        "GET",
        "/connectors?expand=status&expand=info",
        "",
        None,
        false,
    );
    // DELETE: 204, then 404 with Connect's message
    for n in [b, c] {
        cmp.both(
            sides,
            "DELETE",
            &format!("/connectors/{n}"),
            "",
            Some(1),
            false,
        );
        cmp.both(
            sides,
            "DELETE",
            &format!("/connectors/{n}"),
            "",
            Some(0),
            true,
        );
    }
    wait_for(
        30,
        "both groups list one connector on every worker",
        || async {
            caddrs
                .iter()
                .chain(&raddrs)
                .all(|w| call(w, "GET", "/connectors", "").1 == format!("[\"{a}\"]"))
        },
    )
    .await;
    cmp.both(sides, "GET", "/connectors", "", None, false);
    // an unknown path
    let (c404, r404) = (
        call(&caddrs[0], "GET", "/nope", "").0,
        call(&raddrs[0], "GET", "/nope", "").0,
    );
    assert_eq!((c404, r404), (404, 404));
    assert!(
        cmp.problems.is_empty(),
        "differences from Kafka Connect:\n{}",
        cmp.problems.join("\n")
    );
    for w in rw {
        assert_eq!(w.stop(), 0);
    }
}

/// `kc`, the CLI of kafka-connect-py (PyPI), installed by `scripts/services.sh up`.
fn kc(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool("kc"))
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // kc exits 0 on HTTP errors too: it prints them
    assert!(
        out.status.success() && !text.contains("Client Error") && !text.contains("Server Error"),
        "kc {args:?}: {text}"
    );
    text
}

/// A Connect REST client people use manages rowstream connectors unchanged: kafka-connect-py's
/// `kc` creates, lists, reads, pauses, resumes, restarts, updates and deletes a Postgres
/// connector on a rowstream worker, each step checked through the REST API.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_connect_py_manages_rowstream_connectors() {
    let run = run_id();
    let n = "conf_kc";
    let db = fresh_db(n).await;
    db.batch_execute("CREATE TABLE t(id int primary key); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let addr = free_addr();
    let url = format!("http://{addr}");
    let toml = format!(
        "[worker]\nlisten = \"{addr}\"\nconfig_topic = \"{n}-{run}-configs\"\n[kafka]\nbrokers = \"{BROKER}\"\n[state]\ntopic = \"{n}-{run}-offsets\"\nhistory_topic = \"{n}-{run}-history\"\n"
    );
    state_dir(n);
    let w = Rowstream::start_worker(n, &toml);
    wait_for(60, "the worker's REST API", || async {
        std::net::TcpStream::connect(&addr).is_ok()
    })
    .await;
    let state = || {
        let (_, body) = call(&addr, "GET", &format!("/connectors/{n}/status"), "");
        serde_json::from_str::<Value>(&body).unwrap_or_default()["connector"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let config = json!({
        "source.type": "postgres",
        "source.url": format!("{PG}/{n}"),
        "source.slot": n,
        "source.publication": n,
        "kafka.topic": format!("{n}-{run}.{{schema}}.{{table}}"),
    });
    let out = kc(
        &url,
        &[
            "create",
            "-d",
            &json!({ "name": n, "config": config }).to_string(),
        ],
    );
    assert!(out.contains(n), "{out}");
    let mut r = Reader::new(&format!("{n}-{run}.public.t"));
    r.until(60, "the snapshot row", |x| count_data(x) >= 1);
    wait_for(60, "RUNNING", || async { state() == "RUNNING" }).await;
    assert!(kc(&url, &["list"]).contains(n));
    assert!(kc(&url, &["status", n]).contains("RUNNING"));
    assert!(kc(&url, &["config", n]).contains("source.slot"));
    assert!(kc(&url, &["list-tasks", n]).contains(n));
    kc(&url, &["pause", n]);
    wait_for(30, "PAUSED", || async { state() == "PAUSED" }).await;
    kc(&url, &["resume", n]);
    wait_for(30, "RUNNING again", || async { state() == "RUNNING" }).await;
    kc(&url, &["restart", n, "-i"]);
    wait_for(30, "RUNNING after the restart", || async {
        state() == "RUNNING"
    })
    .await;
    // an update through kc (PUT .../config): the connector runs on with it and streams
    let mut changed = config.clone();
    changed["snapshot.chunk_pages"] = json!("64");
    let out = kc(&url, &["update", n, "-d", &changed.to_string()]);
    assert!(out.contains("snapshot.chunk_pages"), "{out}");
    wait_for(30, "RUNNING after the update", || async {
        state() == "RUNNING"
    })
    .await;
    db.batch_execute("INSERT INTO t VALUES (2)").await.unwrap();
    r.until(60, "the row written after the update", |x| {
        x.iter().any(|x| x.after()["id"] == json!(2))
    });
    kc(&url, &["delete", n]);
    assert_eq!(call(&addr, "GET", &format!("/connectors/{n}"), "").0, 404);
    assert_eq!(kc(&url, &["list"]).trim(), "[]");
    assert_eq!(w.stop(), 0);
}
