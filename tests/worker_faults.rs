//! Fault rounds for distributed workers (issue 21, item 1). Three workers of one group run six
//! connectors (three Postgres, three MariaDB, each its own database with one table
//! `t(id int primary key, v int)`) while a writer changes every table (~20 changes/s each:
//! inserts, updates, deletes, a few two-statement transactions). Round after round a random
//! worker gets a random fault:
//!
//! - `kill -9`, then started again at once (same config, same listen address, same name);
//! - SIGTERM (exit code 0 expected), then started again at once;
//! - SIGSTOP for 15 s (longer than the group's 10 s session timeout), then SIGCONT.
//!
//! After each round, within 45 s of the fault's end: every connector RUNNING, confirmed by the
//! live worker running it (its own status) and reported so by another live worker's
//! `GET /connectors?expand=status`; a row written after the fault in every topic; every live
//! worker's `GET /connectors?expand=status` naming each connector RUNNING on the worker that
//! runs it ("any worker answers the status of any connector", src/connect/worker.rs). Each
//! round prints the fault, the victim and those three times (from the fault's end: the restart
//! or SIGCONT). At the end the writer stops and each topic must hold its table exactly: per
//! key the record with the highest `rowstream.order` (snapshot rows, which carry none, below
//! any change; docs/message-format.md "Replays") holds the row's last value, deleted keys end
//! with a DELETE. Every worker then stops on SIGTERM with exit code 0.
//!
//! `ROWSTREAM_FAULT_ROUNDS` sets the rounds (default 4; `scripts/worker-faults.sh` runs 20),
//! `ROWSTREAM_FAULT_SEED` repeats a schedule (the seed is printed first). The workers' logs are
//! `$TMPDIR/rowstream-test-rs_faults_w{0,1,2}.log` (kept over restarts, each fault marked).
mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The group's `session.timeout.ms` (src/config/kafka.rs `group_member`).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SIGSTOP holds a worker: past the session timeout, so the group moves its
/// connectors while it is frozen.
const FREEZE: Duration = Duration::from_secs(15);
/// After the fault's end: the session timeout, a rebalance and the connectors' starts.
const RECOVERY: Duration = Duration::from_secs(45);
const WORKERS: usize = 3;

/// SplitMix64: the fault schedule and the writers' choices, repeatable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Kill9,
    Term,
    Freeze,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill -9 + restart",
            Fault::Term => "SIGTERM + restart",
            Fault::Freeze => "SIGSTOP 15 s + SIGCONT",
        }
    }
}

/// One change of a writer: its `v` is the writer's sequence number, so a later change always
/// holds a higher `v`.
#[derive(Clone, Copy)]
enum Op {
    Insert(i32, i32),
    Update(i32, i32),
    Delete(i32),
    /// one transaction: insert the first id, update the second
    Txn(i32, i32, i32),
}

/// What a writer did to its table: the content it must end with, and its counts.
#[derive(Default)]
struct Written {
    rows: BTreeMap<i64, i64>,
    live: Vec<i32>,
    next_id: i32,
    seq: i32,
    inserts: u64,
    updates: u64,
    deletes: u64,
    txns: u64,
}

impl Written {
    /// The next change: mostly inserts, some updates and deletes of live rows, a few
    /// two-statement transactions.
    fn next_op(&mut self, rng: &mut Rng) -> Op {
        self.seq += 1;
        let v = self.seq;
        let r = rng.below(100);
        let any = |rng: &mut Rng, live: &[i32]| live[rng.below(live.len())];
        if self.live.len() < 10 || r < 60 {
            self.next_id += 1;
            Op::Insert(self.next_id, v)
        } else if r < 88 {
            Op::Update(any(rng, &self.live), v)
        } else if r < 93 {
            Op::Delete(any(rng, &self.live))
        } else {
            self.next_id += 1;
            Op::Txn(self.next_id, any(rng, &self.live), v)
        }
    }

    /// `op` committed.
    fn apply(&mut self, op: Op) {
        match op {
            Op::Insert(id, v) => {
                self.rows.insert(id.into(), v.into());
                self.live.push(id);
                self.inserts += 1;
            }
            Op::Update(id, v) => {
                self.rows.insert(id.into(), v.into());
                self.updates += 1;
            }
            Op::Delete(id) => {
                self.rows.remove(&id.into());
                let at = self.live.iter().position(|x| *x == id).unwrap();
                self.live.swap_remove(at);
                self.deletes += 1;
            }
            Op::Txn(new, upd, v) => {
                self.apply(Op::Insert(new, v));
                self.apply(Op::Update(upd, v));
                self.txns += 1;
            }
        }
    }
}

/// Write to a Postgres table every 50 ms until `stop`; `last` follows the `v` last committed.
async fn pg_writer(
    mut c: tokio_postgres::Client,
    seed: u64,
    stop: Arc<AtomicBool>,
    last: Arc<AtomicI64>,
) -> Written {
    let mut rng = Rng(seed);
    let mut w = Written::default();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    const INSERT: &str = "INSERT INTO t VALUES ($1, $2)";
    const UPDATE: &str = "UPDATE t SET v = $2 WHERE id = $1";
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let op = w.next_op(&mut rng);
        let r = match op {
            Op::Insert(id, v) => c.execute(INSERT, &[&id, &v]).await.map(drop),
            Op::Update(id, v) => c.execute(UPDATE, &[&id, &v]).await.map(drop),
            Op::Delete(id) => c
                .execute("DELETE FROM t WHERE id = $1", &[&id])
                .await
                .map(drop),
            Op::Txn(new, upd, v) => {
                async {
                    let tx = c.transaction().await?;
                    tx.execute(INSERT, &[&new, &v]).await?;
                    tx.execute(UPDATE, &[&upd, &v]).await?;
                    tx.commit().await
                }
                .await
            }
        };
        r.unwrap_or_else(|e| panic!("postgres writer: {e}"));
        w.apply(op);
        last.store(w.seq.into(), Ordering::Relaxed);
    }
    w
}

/// Write to a MariaDB table every 50 ms until `stop`; `last` follows the `v` last committed.
async fn my_writer(
    mut c: mysql_async::Conn,
    seed: u64,
    stop: Arc<AtomicBool>,
    last: Arc<AtomicI64>,
) -> Written {
    use mysql_async::prelude::*;
    let mut rng = Rng(seed);
    let mut w = Written::default();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    const INSERT: &str = "INSERT INTO t VALUES (?, ?)";
    const UPDATE: &str = "UPDATE t SET v = ? WHERE id = ?";
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let op = w.next_op(&mut rng);
        let r = match op {
            Op::Insert(id, v) => c.exec_drop(INSERT, (id, v)).await,
            Op::Update(id, v) => c.exec_drop(UPDATE, (v, id)).await,
            Op::Delete(id) => c.exec_drop("DELETE FROM t WHERE id = ?", (id,)).await,
            Op::Txn(new, upd, v) => {
                async {
                    let mut tx = c.start_transaction(Default::default()).await?;
                    tx.exec_drop(INSERT, (new, v)).await?;
                    tx.exec_drop(UPDATE, (v, upd)).await?;
                    tx.commit().await
                }
                .await
            }
        };
        r.unwrap_or_else(|e| panic!("mariadb writer: {e}"));
        w.apply(op);
        last.store(w.seq.into(), Ordering::Relaxed);
    }
    w
}

/// A connector's state as one worker reports it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    state: String,
    worker_id: String,
    /// the worker runs it itself (the status names the worker asked, whose id is its address)
    local: bool,
    /// the error of a FAILED connector
    trace: String,
}

/// Every connector's status as the worker at `via` reports it (`GET /connectors?expand=status`);
/// None when it does not answer.
fn view(via: &str, names: &[String]) -> Option<BTreeMap<String, Seen>> {
    let (code, body) = http_within(via, "GET", "/connectors?expand=status", "", 10)?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let seen = names
        .iter()
        .map(|n| {
            let st = &v[n]["status"];
            let s = |k: &str| st["connector"][k].as_str().unwrap_or("").to_string();
            let seen = Seen {
                state: s("state"),
                worker_id: s("worker_id"),
                local: s("worker_id") == via,
                trace: s("trace"),
            };
            (n.clone(), seen)
        })
        .collect();
    Some(seen)
}

/// The three workers: their names, addresses, configs and processes (None: down).
struct Workers {
    names: Vec<String>,
    addrs: Vec<String>,
    tomls: Vec<String>,
    procs: Vec<Option<Rowstream>>,
    frozen: Option<usize>,
    connectors: Vec<String>,
}

/// How far the connectors are after a fault.
#[derive(Default, Debug)]
struct Progress {
    /// every connector RUNNING on a live worker that confirms it, and so reported by `observer`
    running: bool,
    /// every live worker reports every connector RUNNING on its owner
    agreed: bool,
    /// connector -> index of the live worker running it
    owners: BTreeMap<String, usize>,
    /// each live worker's report (None: no answer)
    views: BTreeMap<usize, Option<BTreeMap<String, Seen>>>,
}

impl Workers {
    fn start(&mut self, i: usize) {
        self.procs[i] = Some(Rowstream::start_worker(&self.names[i], &self.tomls[i]));
    }

    /// Workers that run and are not frozen.
    fn live(&self) -> Vec<usize> {
        (0..WORKERS)
            .filter(|i| self.procs[*i].is_some() && self.frozen != Some(*i))
            .collect()
    }

    /// A line in worker `i`'s log, to find each fault in it.
    fn mark(&self, i: usize, text: &str) {
        use std::io::Write;
        let log = std::env::temp_dir().join(format!("rowstream-test-{}.log", self.names[i]));
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
            let _ = writeln!(f, "===== rowstream test: {text} =====");
        }
    }

    /// Where the connectors are, as the live workers report it; `observer` must be live.
    fn progress(&self, observer: usize) -> Progress {
        let mut p = Progress {
            views: self
                .live()
                .into_iter()
                .map(|i| (i, view(&self.addrs[i], &self.connectors)))
                .collect(),
            ..Default::default()
        };
        let views = &p.views;
        for n in &self.connectors {
            let mine: Vec<usize> = views
                .iter()
                .filter(|(_, v)| {
                    v.as_ref()
                        .and_then(|v| v.get(n))
                        .is_some_and(|s| s.local && s.state == "RUNNING")
                })
                .map(|(i, _)| *i)
                .collect();
            if let [owner] = mine[..] {
                p.owners.insert(n.clone(), owner);
            }
        }
        let agrees = |v: &Option<BTreeMap<String, Seen>>| {
            v.as_ref().is_some_and(|v| {
                self.connectors.iter().all(|n| {
                    let s = &v[n];
                    s.state == "RUNNING"
                        && p.owners
                            .get(n)
                            .is_some_and(|o| self.addrs[*o] == s.worker_id)
                })
            })
        };
        let running =
            p.owners.len() == self.connectors.len() && views.get(&observer).is_some_and(&agrees);
        let agreed = running && views.values().all(agrees);
        p.running = running;
        p.agreed = agreed;
        p
    }

    /// `owners` as `w0: [..] w1: [..]`.
    fn placement(&self, owners: &BTreeMap<String, usize>) -> String {
        (0..WORKERS)
            .map(|i| {
                let on: Vec<&str> = owners
                    .iter()
                    .filter(|(_, o)| **o == i)
                    .map(|(n, _)| n.trim_start_matches("rs_faults_"))
                    .collect();
                format!("w{i}: [{}]", on.join(" "))
            })
            .collect::<Vec<_>>()
            .join("  ")
    }

    /// What a failed wait shows: where each connector runs and what each live worker reports
    /// otherwise, then each worker's log lines about faults, assignments, connector starts and
    /// stops, warnings and errors.
    fn diagnose(&self, p: &Progress) -> String {
        let mut out = String::new();
        let at = |addr: &str| match self.addrs.iter().position(|a| a == addr) {
            Some(i) => format!("w{i}"),
            None => format!("`{addr}`"),
        };
        for n in &self.connectors {
            match p.owners.get(n) {
                Some(o) => out += &format!("\n{n} runs on w{o}"),
                None => out += &format!("\n{n}: no live worker runs it alone (RUNNING, local)"),
            }
        }
        for (i, v) in &p.views {
            let Some(v) = v else {
                out += &format!("\nw{i}: no answer to GET /connectors?expand=status");
                continue;
            };
            for (n, s) in v {
                let owner = p.owners.get(n).map(|o| self.addrs[*o].as_str());
                if s.state != "RUNNING" || owner != Some(s.worker_id.as_str()) {
                    out += &format!(
                        "\nw{i} reports {n} {} on {}{}{}",
                        s.state,
                        at(&s.worker_id),
                        if s.local {
                            " (its own)"
                        } else {
                            " (a status record)"
                        },
                        if s.trace.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", s.trace)
                        }
                    );
                }
            }
        }
        for i in 0..WORKERS {
            let state = match (&self.procs[i], self.frozen == Some(i)) {
                (None, _) => "down",
                (Some(_), true) => "frozen",
                (Some(_), false) => "live",
            };
            let log = std::env::temp_dir().join(format!("rowstream-test-{}.log", self.names[i]));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    [
                        "=====",
                        "WARN",
                        "ERROR",
                        "group assignment",
                        "connector starts",
                        "connector leaves",
                        "claimed",
                        "worker running",
                    ]
                    .iter()
                    .any(|k| l.contains(k))
                })
                .collect();
            out += &format!(
                "\n--- w{i} {} ({state}): {}, its last 40 lines of interest:\n",
                self.addrs[i],
                log.display()
            );
            out += &lines[lines.len().saturating_sub(40)..].join("\n");
        }
        out
    }

    /// A worker that ended by itself fails the test (e.g. it could not listen again).
    fn check_alive(&mut self) {
        for i in 0..WORKERS {
            let Some(w) = self.procs[i].as_mut() else {
                continue;
            };
            if let Ok(Some(st)) = w.child.try_wait() {
                let log = w.log.clone();
                self.procs[i] = None;
                panic!(
                    "w{i} ended by itself ({st}); its log: {}{}",
                    log.display(),
                    self.diagnose(&Progress::default())
                );
            }
        }
    }

    /// Wait until `done(progress)`, at most until `deadline`; the time it took from `since`.
    async fn wait(
        &mut self,
        observer: usize,
        since: Instant,
        deadline: Instant,
        what: &str,
        done: impl Fn(&Progress) -> bool,
    ) -> (Duration, Progress) {
        loop {
            self.check_alive();
            let p = tokio::task::block_in_place(|| self.progress(observer));
            if done(&p) {
                return (since.elapsed(), p);
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {:.1} s waiting for {what}:{}",
                    since.elapsed().as_secs_f64(),
                    self.diagnose(&p)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A topic's records reduced to each key's final image: the record with the highest
/// `rowstream.order` (a record without one, a snapshot row, below every change; among those
/// the last), `None` when that record is a DELETE. Also how many change records were replays
/// (an order seen before for the key) and which keys' last record in the partition is older
/// than their final image.
struct Images {
    last: BTreeMap<i64, Option<i64>>,
    replays: usize,
    stale_last: usize,
    max_v: i64,
}

fn images(recs: &[Rec]) -> Images {
    let mut kept: BTreeMap<i64, (Option<String>, Option<i64>)> = BTreeMap::new();
    let mut in_order: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    let mut orders: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut part: BTreeMap<i64, i32> = BTreeMap::new();
    let (mut replays, mut max_v) = (0, 0);
    for x in recs.iter().filter(|x| x.op() != "MHEARTBEAT") {
        let Some(id) = x.key.as_deref().and_then(|k| k.parse::<i64>().ok()) else {
            panic!("a record without an integer key: {}", x.raw);
        };
        let p = *part.entry(id).or_insert(x.partition);
        assert_eq!(p, x.partition, "key {id} spread over partitions");
        let v = match x.op() {
            "DELETE" => None,
            "INSERT" | "UPDATE_AFTER" => Some(x.after()["v"].as_i64().expect("v")),
            op => panic!("unexpected {op} record: {}", x.raw),
        };
        max_v = max_v.max(v.unwrap_or(0));
        in_order.insert(id, v);
        if let Some(o) = &x.order {
            if !orders.insert((id, o.clone())) {
                replays += 1;
            }
        }
        let newer = match (&x.order, kept.get(&id).map(|k| &k.0)) {
            (_, None) | (Some(_), Some(None)) | (None, Some(None)) => true,
            (Some(o), Some(Some(k))) => o >= k,
            (None, Some(Some(_))) => false,
        };
        if newer {
            kept.insert(id, (x.order.clone(), v));
        }
    }
    let last: BTreeMap<i64, Option<i64>> = kept.into_iter().map(|(k, (_, v))| (k, v)).collect();
    let stale_last = last.iter().filter(|(k, v)| in_order[k] != **v).count();
    Images {
        last,
        replays,
        stale_last,
        max_v,
    }
}

/// How the final images differ from the table (empty: they are the table).
fn differences(img: &Images, rows: &BTreeMap<i64, i64>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in rows {
        match img.last.get(k) {
            Some(Some(x)) if x == v => {}
            Some(Some(x)) => out.push(format!("id {k}: v {x} in the topic, {v} in the table")),
            Some(None) => out.push(format!("id {k}: deleted in the topic, v {v} in the table")),
            None => out.push(format!("id {k}: missing (v {v} in the table)")),
        }
    }
    for (k, v) in &img.last {
        if let (Some(x), false) = (v, rows.contains_key(k)) {
            out.push(format!(
                "id {k}: v {x} in the topic, deleted from the table"
            ));
        }
    }
    out
}

/// One database with its table, its writer, its connector's config and a reader of its topic.
struct Table {
    name: String,
    writer: tokio::task::JoinHandle<Written>,
    /// the `v` its writer committed last
    last: Arc<AtomicI64>,
    reader: Reader,
    config: serde_json::Value,
}

/// The six databases, each with a writer from the start (the connectors snapshot what is
/// there by then and stream the rest).
async fn tables(seed: u64, stop: &Arc<AtomicBool>) -> Vec<Table> {
    use mysql_async::prelude::*;
    let run = run_id();
    let mut out = Vec::new();
    for i in 0..3 {
        let name = format!("rs_faults_pg{i}");
        let db = fresh_db(&name).await;
        db.batch_execute("CREATE TABLE t(id int primary key, v int)")
            .await
            .unwrap();
        let last = Arc::new(AtomicI64::new(0));
        let seed = seed ^ (i as u64 + 1);
        out.push(Table {
            writer: tokio::spawn(pg_writer(db, seed, stop.clone(), last.clone())),
            last,
            reader: Reader::new(&format!("{name}-{run}.public.t")),
            config: serde_json::json!({ "name": name, "config": {
                "source.type": "postgres",
                "source.url": format!("{PG}/{name}"),
                "source.slot": name,
                "source.publication": name,
                "kafka.topic": format!("{name}-{run}.{{schema}}.{{table}}"),
            }}),
            name,
        });
        let name = format!("rs_faults_my{i}");
        let mut my = fresh_mydb(&name).await;
        my.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
            .await
            .unwrap();
        let last = Arc::new(AtomicI64::new(0));
        let seed = seed ^ (i as u64 + 11);
        out.push(Table {
            writer: tokio::spawn(my_writer(my, seed, stop.clone(), last.clone())),
            last,
            reader: Reader::new(&format!("{name}-{run}.{name}.t")),
            config: serde_json::json!({ "name": name, "config": {
                "source.type": "mysql",
                "source.url": format!("{MY}/{name}"),
                "source.server_id": (6500 + i).to_string(),
                "kafka.topic": format!("{name}-{run}.{{db}}.{{table}}"),
            }}),
            name,
        });
    }
    out
}

/// Three workers of one group started, each on its own free address.
fn start_workers(connectors: Vec<String>) -> Workers {
    let group = format!("rs_faults-{}", run_id());
    let addrs: Vec<String> = (0..WORKERS).map(|_| free_addr()).collect();
    let tomls = addrs
        .iter()
        .map(|addr| {
            format!(
                "[worker]\nlisten = \"{addr}\"\ngroup_id = \"{group}\"\nconfig_topic = \"{group}-configs\"\n[kafka]\nbrokers = \"{BROKER}\"\n[state]\ntopic = \"{group}-offsets\"\nhistory_topic = \"{group}-history\"\n"
            )
        })
        .collect();
    let names: Vec<String> = (0..WORKERS).map(|i| format!("rs_faults_w{i}")).collect();
    for n in &names {
        state_dir(n);
    }
    let mut ws = Workers {
        names,
        addrs,
        tomls,
        procs: (0..WORKERS).map(|_| None).collect(),
        frozen: None,
        connectors,
    };
    for i in 0..WORKERS {
        ws.start(i);
    }
    ws
}

/// Round `round`: `fault` inflicted on worker `victim`, then the waits for the connectors to run
/// again, rows to flow and the views to agree. Returns the round's line for the summary.
async fn round(
    ws: &mut Workers,
    tables: &mut [Table],
    rng: &mut Rng,
    round: usize,
    rounds: usize,
) -> String {
    for t in tables.iter() {
        assert!(!t.writer.is_finished(), "the writer of {} stopped", t.name);
    }
    let victim = rng.below(WORKERS);
    let fault = [Fault::Kill9, Fault::Term, Fault::Freeze][rng.below(3)];
    let observer = (victim + 1 + rng.below(WORKERS - 1)) % WORKERS;
    let moved: Vec<String> = (ws.progress(observer).owners.into_iter())
        .filter(|(_, o)| *o == victim)
        .map(|(n, _)| n)
        .collect();
    eprintln!(
        "round {round}/{rounds}: {} of w{victim} ({}), running {moved:?}; observer w{observer}",
        fault.name(),
        ws.addrs[victim]
    );
    let t_fault = Instant::now();
    let takeover = inflict(ws, fault, victim, observer, &moved, round).await;
    let t_end = Instant::now();
    let marks: Vec<i64> = tables
        .iter()
        .map(|t| t.last.load(Ordering::Relaxed))
        .collect();
    let deadline = t_end + RECOVERY;
    let what = format!("round {round} ({} of w{victim})", fault.name());
    let (running, _) = ws
        .wait(
            observer,
            t_end,
            deadline,
            &format!("{what}: all RUNNING"),
            |p| p.running,
        )
        .await;
    eprintln!("  all RUNNING after {:.1} s", running.as_secs_f64());
    // rows written after the fault reach every topic
    for (t, mark) in tables.iter_mut().zip(marks) {
        let recs = tokio::task::block_in_place(|| {
            t.reader
                .until(RECOVERY.as_secs() + 60, "rows after the fault", |x| {
                    Instant::now() > deadline || images(x).max_v > mark
                })
        });
        let max_v = images(recs).max_v;
        if max_v <= mark {
            ws.check_alive();
        }
        assert!(
            max_v > mark,
            "{what}: no row of {} written after the fault (v > {mark}) arrived within {} s of its end (newest v {max_v}){}",
            t.name,
            RECOVERY.as_secs(),
            ws.diagnose(&ws.progress(observer))
        );
    }
    let flowing = t_end.elapsed();
    eprintln!("  rows flowing after {:.1} s", flowing.as_secs_f64());
    let what = format!("{what}: every worker's status agrees");
    let (agreed, p) = ws
        .wait(observer, t_end, deadline, &what, |p| p.agreed)
        .await;
    format!(
        "round {round:>2}: {:<24} w{victim} (ran {})  fault {:>5.1} s  {}all RUNNING {:>5.1} s  rows flowing {:>5.1} s  views agree {:>5.1} s  | {}",
        fault.name(),
        moved.len(),
        (t_end - t_fault).as_secs_f64(),
        match (fault, takeover) {
            (Fault::Freeze, Some(t)) => format!("taken over while frozen after {:.1} s  ", t.as_secs_f64()),
            (Fault::Freeze, None) => "not taken over while frozen  ".into(),
            _ => String::new(),
        },
        running.as_secs_f64(),
        flowing.as_secs_f64(),
        agreed.as_secs_f64(),
        ws.placement(&p.owners)
    )
}

/// `fault` on worker `victim` (which runs `moved`), up to the restart or the SIGCONT. A freeze
/// returns when the group had moved `moved` to live workers, as `observer` sees it.
async fn inflict(
    ws: &mut Workers,
    fault: Fault,
    victim: usize,
    observer: usize,
    moved: &[String],
    round: usize,
) -> Option<Duration> {
    ws.mark(victim, &format!("round {round}: {}", fault.name()));
    let t0 = Instant::now();
    match fault {
        Fault::Kill9 => {
            ws.procs[victim].take().unwrap().kill9();
            ws.start(victim);
            None
        }
        Fault::Term => {
            let w = ws.procs[victim].take().unwrap();
            let log = w.log.clone();
            let code = tokio::task::block_in_place(|| w.stop());
            assert_eq!(
                code,
                0,
                "round {round}: w{victim} exited with {code} on SIGTERM; its log: {}",
                log.display()
            );
            ws.start(victim);
            None
        }
        Fault::Freeze => {
            ws.procs[victim].as_ref().unwrap().signal("STOP");
            ws.frozen = Some(victim);
            let mut takeover = None;
            while t0.elapsed() < FREEZE {
                if takeover.is_none() {
                    let p = tokio::task::block_in_place(|| ws.progress(observer));
                    if moved.iter().all(|n| p.owners.contains_key(n)) {
                        takeover = Some(t0.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            ws.mark(victim, &format!("round {round}: SIGCONT"));
            ws.procs[victim].as_ref().unwrap().signal("CONT");
            ws.frozen = None;
            takeover
        }
    }
}

/// The writers stopped, each topic must come to hold its table (by consuming, up to 120 s).
async fn check_tables(ws: &Workers, tables: Vec<Table>, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    for mut t in tables {
        let w = (t.writer.await).unwrap_or_else(|e| panic!("the writer of {}: {e}", t.name));
        let deadline = Instant::now() + Duration::from_secs(120);
        let recs = tokio::task::block_in_place(|| {
            t.reader
                .until(180, &format!("every row of {}", t.name), |x| {
                    Instant::now() > deadline || differences(&images(x), &w.rows).is_empty()
                })
        });
        let img = images(recs);
        let diff = differences(&img, &w.rows);
        assert!(
            diff.is_empty(),
            "{}: the topic does not hold the table ({} differences, the first 30):\n{}{}",
            t.name,
            diff.len(),
            diff[..diff.len().min(30)].join("\n"),
            ws.diagnose(&ws.progress(0))
        );
        eprintln!(
            "{}: {} rows ({} inserts, {} updates, {} deletes, {} transactions); {} records, {} replayed, {} key(s) whose last record is not their newest",
            t.name,
            w.rows.len(),
            w.inserts,
            w.updates,
            w.deletes,
            w.txns,
            count_data(recs),
            img.replays,
            img.stale_last
        );
    }
    eprintln!(
        "every row arrived ({:.1} s of consuming at the end)",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_survive_rounds_of_kill_term_and_stop() {
    let rounds: usize = std::env::var("ROWSTREAM_FAULT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("ROWSTREAM_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(run_id());
    eprintln!(
        "fault rounds: {rounds}, seed {seed} (ROWSTREAM_FAULT_SEED={seed} repeats them); freezes of {} s against a session timeout of {} s",
        FREEZE.as_secs(),
        SESSION_TIMEOUT.as_secs()
    );
    let t_test = Instant::now();
    let stop_writers = Arc::new(AtomicBool::new(false));
    let mut tables = tables(seed, &stop_writers).await;
    let mut ws = start_workers(tables.iter().map(|t| t.name.clone()).collect());
    for a in &ws.addrs {
        wait_for(60, "a worker's REST API", || async {
            http_within(a, "GET", "/connectors", "", 5).is_some()
        })
        .await;
    }
    // each connector added through another worker
    for (k, t) in tables.iter().enumerate() {
        let via = &ws.addrs[k % WORKERS];
        let (code, body) = http_within(via, "POST", "/connectors", &t.config.to_string(), 30)
            .unwrap_or_else(|| panic!("no answer from {via}"));
        assert_eq!(code, 201, "{body}");
    }
    let t0 = Instant::now();
    let (took, p) = ws
        .wait(
            0,
            t0,
            t0 + Duration::from_secs(90),
            "six connectors RUNNING",
            |p| p.agreed,
        )
        .await;
    eprintln!(
        "start: all RUNNING in {:.1} s; {}",
        took.as_secs_f64(),
        ws.placement(&p.owners)
    );
    let mut rng = Rng(seed);
    let mut report = Vec::new();
    for r in 1..=rounds {
        let line = round(&mut ws, &mut tables, &mut rng, r, rounds).await;
        eprintln!("{line}");
        report.push(line);
    }
    check_tables(&ws, tables, &stop_writers).await;
    for i in 0..WORKERS {
        let w = ws.procs[i].take().unwrap();
        let log = w.log.clone();
        let code = tokio::task::block_in_place(|| w.stop());
        assert_eq!(
            code,
            0,
            "w{i} exited with {code} on SIGTERM: {}",
            log.display()
        );
    }
    eprintln!(
        "{rounds} rounds, seed {seed}, {:.0} s:\n{}",
        t_test.elapsed().as_secs_f64(),
        report.join("\n")
    );
}
