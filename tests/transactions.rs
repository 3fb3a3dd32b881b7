//! Transaction markers (`encode.transaction_markers`) against the real services, on both
//! sources: TRANSACTION_BEGIN / TRANSACTION_END bracket exactly the records of one source
//! transaction (ids, counts per table, order), also across a kill -9 and restart; nothing is
//! written to the marker topic while they are off; a config that turns them on without the
//! `rowstream.order` header is refused.
mod common;

use common::*;
use serde_json::{json, Value as J};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// `both!(scenario, server_id)`: tests `scenario::postgres` and `scenario::mariadb`, each on a
/// fresh database named after the scenario (`server_id`: the MariaDB replica id, unique). The
/// Postgres scenarios take turns on one replication slot, [`SLOT`], dropped before and after
/// each: the server's slots are few (`max_replication_slots`) and the other tests keep theirs.
macro_rules! both {
    ($scenario:ident, $server_id:expr) => {
        mod $scenario {
            use super::*;
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                let _turn = PG_TURN.lock().await;
                drop_slot().await;
                let name = concat!("pg_", stringify!($scenario));
                super::$scenario(Db::fresh(Flavor::Postgres, name, 0).await).await;
                drop_slot().await;
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn mariadb() {
                let name = concat!("my_", stringify!($scenario));
                super::$scenario(Db::fresh(Flavor::MariaDb, name, $server_id).await).await;
            }
        }
    };
}

both!(markers_bracket_each_transaction_across_kill9, 6301);
both!(markers_off_by_default_write_nothing, 6302);
both!(markers_exactly_once_across_kill9, 6303);

/// The one replication slot of this file's Postgres scenarios, which take turns on it.
const SLOT: &str = "rs_txn_markers";
static PG_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Drop [`SLOT`] (its walsender ended first), wherever it is.
async fn drop_slot() {
    let admin = connect("postgres").await;
    wait_for(30, "the slot dropped", || async {
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{SLOT}' AND active_pid IS NOT NULL;
                 SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
            ))
            .await
            .is_ok()
    })
    .await;
}

/// Wait until this test's rowstream streams (Postgres: from [`SLOT`]).
async fn wait_streaming(db: &Db) {
    match db.flavor {
        Flavor::Postgres => common::wait_streaming(&connect("postgres").await, SLOT).await,
        Flavor::MariaDb => db.wait_streaming().await,
    }
}

/// The captured tables whose records the tests read; `d` is captured too (its one record is
/// too large for Kafka), `u` is in the database but not in `source.tables`.
const TABLES: [&str; 3] = ["a", "b", "c"];

/// The marker topic of this test run.
fn marker_topic(db: &Db) -> String {
    format!("{}-{}.transactions", db.name, run_id())
}

/// Tables `a`, `b`, `c` (captured) and `u` (not), each `(id INT PRIMARY KEY, v INT)`, `a`
/// holding two rows for the snapshot; `d (id INT PRIMARY KEY, body <long text>)` (captured).
async fn tables(db: &Db) {
    for t in TABLES.iter().chain(&["u"]) {
        db.exec(&format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY, v INT NOT NULL)"
        ))
        .await;
    }
    let text = match db.flavor {
        Flavor::Postgres => "TEXT",
        Flavor::MariaDb => "LONGTEXT",
    };
    db.exec(&format!("CREATE TABLE d (id INT PRIMARY KEY, body {text})"))
        .await;
    db.exec("INSERT INTO a VALUES (1, 0), (2, 0)").await;
}

/// A text of 300,800 bytes that does not compress away (md5 digests), as an SQL expression.
fn large_text(db: &Db) -> &'static str {
    match db.flavor {
        Flavor::Postgres => "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 9400) g)",
        Flavor::MariaDb => "(SELECT GROUP_CONCAT(MD5(seq) SEPARATOR '') FROM seq_1_to_9400)",
    }
}

/// The config capturing `a`, `b`, `c` and `d`; `encode` is the `[encode]` section's body.
fn config(db: &Db, encode: &str, rest: &str) -> String {
    let tables: Vec<String> = TABLES
        .iter()
        .chain(&["d"])
        .map(|t| format!("\"{}\"", db.qualified(t)))
        .collect();
    db.config(
        &format!("tables = [{}]", tables.join(", ")),
        &format!("[encode]\n{encode}\n{rest}"),
    )
    .replace(
        &format!("slot = \"{}\"", db.name),
        &format!("slot = \"{SLOT}\""),
    )
}

/// Per-table counts as an END states them, the tables named as `source.tables` names them.
fn counts(db: &Db, pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(t, n)| (db.qualified(t), *n)).collect()
}

/// A change record (not a snapshot row, heartbeat or DDL record).
fn is_change(r: &Rec) -> bool {
    matches!(
        r.op(),
        "INSERT" | "UPDATE_BEFORE" | "UPDATE_AFTER" | "DELETE"
    ) && r.seq() != "-1"
}

/// The transaction id of a change record: the first part of its `rowstream.order`.
fn txn_of(r: &Rec) -> String {
    let order = r
        .order
        .as_deref()
        .unwrap_or_else(|| panic!("a change without rowstream.order: {}", r.raw));
    order.split_once('.').unwrap().0.to_string()
}

/// A marker: (op, id, the END's eventCount and tables).
#[derive(Clone, Debug, PartialEq)]
struct Marker {
    op: String,
    id: String,
    count: Option<u64>,
    tables: Option<BTreeMap<String, u64>>,
}

fn marker(r: &Rec) -> Marker {
    let t = &r.value["payload"]["transaction"];
    Marker {
        op: r.op().to_string(),
        id: t["id"].as_str().unwrap().to_string(),
        count: t["eventCount"].as_u64(),
        tables: t["tables"].as_object().map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect()
        }),
    }
}

/// Every change record of the captured tables, by transaction id, by table: the distinct
/// `rowstream.order` values (a replay carries the value it had the first time).
fn changes_by_txn(
    db: &Db,
    data: &[(&str, Vec<Rec>)],
) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (table, recs) in data {
        for r in recs.iter().filter(|r| is_change(r)) {
            out.entry(txn_of(r))
                .or_default()
                .entry(db.qualified(table))
                .or_default()
                .insert(r.order.clone().unwrap());
        }
    }
    out
}

/// The data topics' readers, in `TABLES` order.
fn readers(db: &Db) -> Vec<Reader> {
    TABLES.iter().map(|t| Reader::new(&db.topic(t))).collect()
}

/// Read each data topic until it holds `n` change records (distinct `rowstream.order`).
fn read_changes(readers: &mut [Reader], want: &[usize], secs: u64) {
    for (r, n) in readers.iter_mut().zip(want) {
        r.until(secs, &format!("{n} changes"), |x| {
            x.iter()
                .filter(|r| is_change(r))
                .filter_map(|r| r.order.clone())
                .collect::<BTreeSet<_>>()
                .len()
                >= *n
        });
    }
}

/// With markers on, on each source:
///
/// 1. Transactions of known shape (statements over 1, 2 and 3 tables, a primary key update,
///    autocommit statements, one touching only the uncaptured table, one of 2,000 rows): each
///    transaction id in the records' `rowstream.order` has exactly one BEGIN and one END, BEGIN
///    first, ids increasing, the END's counts equal to the records of that id and to the counts
///    the SQL implies; the uncaptured table's transaction has none; the markers' sequenceIds
///    bracket their records'; the data records are as without markers; `tail` shows them.
/// 2. A stream of transactions, rowstream killed with -9 in the middle and restarted.
/// 3. A transaction whose record of `d` is over `message.max.bytes`: the run stops in the
///    middle of it (`kafka.oversized = "fail"`) with its BEGIN and first records delivered,
///    and is restarted with `d`'s records left out (`"skip"`): the transaction's END counts
///    the records written (a 2, b 1; `d` 0).
///
/// Then every END still states exactly the distinct records of its id, every id with records
/// has an END, and ids written again appear only as whole BEGIN..END repeats or after a
/// BEGIN whose END a stop cut off, as the replay that follows it (phase 3 makes one such).
async fn markers_bracket_each_transaction_across_kill9(db: Db) {
    markers_across_kill9(db, false).await
}

/// As [`markers_bracket_each_transaction_across_kill9`] with `kafka.exactly_once` (state in
/// Kafka): the markers commit in the Kafka transactions of their records, so a read_committed
/// consumer (the test's) sees every transaction's BEGIN and END exactly once, kill -9 or not.
async fn markers_exactly_once_across_kill9(db: Db) {
    markers_across_kill9(db, true).await
}

async fn markers_across_kill9(db: Db, exactly_once: bool) {
    tables(&db).await;
    let mtopic = marker_topic(&db);
    let cfg = config(
        &db,
        &format!("transaction_markers = true\ntransaction_topic = \"{mtopic}\""),
        "[kafka.properties]\n\"message.max.bytes\" = 200000\n",
    );
    let cfg = match exactly_once {
        true => with_kafka_state(&db.name, &cfg)
            .replace("partitions = 3", "partitions = 3\nexactly_once = true"),
        // positions stored every 10 s: the kill -9 leaves sent transactions to be sent again
        false => cfg.replace("commit_interval_ms = 50", "commit_interval_ms = 10000"),
    };
    let rs = Rowstream::start(&db.name, &cfg);
    let mut data = readers(&db);
    data[0].until(60, "the snapshot", |x| count_data(x) >= 2);
    wait_streaming(&db).await;

    // phase 1: transactions of known shape, and the counts each END must state
    let big = db.series(10_001, 12_000);
    let script: Vec<(String, Vec<(&str, u64)>)> = vec![
        // one table: two inserts and an update
        (
            "BEGIN; INSERT INTO a VALUES (101, 1); INSERT INTO a VALUES (102, 1); UPDATE a SET v = 2 WHERE id = 101; COMMIT".into(),
            vec![("a", 3)],
        ),
        // two tables
        (
            "BEGIN; INSERT INTO a VALUES (201, 1), (202, 1); INSERT INTO b VALUES (201, 1); DELETE FROM a WHERE id = 102; COMMIT".into(),
            vec![("a", 3), ("b", 1)],
        ),
        // three tables and the uncaptured one
        (
            "BEGIN; INSERT INTO a VALUES (301, 1); INSERT INTO b VALUES (301, 1), (302, 1); INSERT INTO c VALUES (301, 1), (302, 1), (303, 1); INSERT INTO u VALUES (301, 1); COMMIT".into(),
            vec![("a", 1), ("b", 2), ("c", 3)],
        ),
        // a primary key update: DELETE + INSERT
        (
            "BEGIN; UPDATE b SET id = 999 WHERE id = 301; INSERT INTO c VALUES (401, 1); COMMIT"
                .into(),
            vec![("b", 2), ("c", 1)],
        ),
        // autocommit statements
        ("INSERT INTO a VALUES (501, 1)".into(), vec![("a", 1)]),
        ("UPDATE c SET v = v + 1".into(), vec![("c", 4)]),
        ("DELETE FROM b WHERE id = 201".into(), vec![("b", 1)]),
        // only the uncaptured table: no markers
        (
            "BEGIN; INSERT INTO u VALUES (601, 1); UPDATE u SET v = 2; COMMIT".into(),
            vec![],
        ),
        // 2,000 rows and one more table
        (
            format!(
                "BEGIN; INSERT INTO c SELECT g, 1 FROM {big}; UPDATE a SET v = v + 1 WHERE id = 101; COMMIT"
            ),
            vec![("c", 2000), ("a", 1)],
        ),
    ];
    for (sql, _) in &script {
        db.exec(sql).await;
    }
    let expected: Vec<BTreeMap<String, u64>> = script
        .iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(_, c)| counts(&db, c))
        .collect();
    let per_table: Vec<usize> = TABLES
        .iter()
        .map(|t| {
            expected
                .iter()
                .map(|c| c.get(&db.qualified(t)).copied().unwrap_or(0) as usize)
                .sum()
        })
        .collect();
    let mut markers = Reader::new(&mtopic);
    let ends = |x: &[Rec]| x.iter().filter(|r| r.op() == "TRANSACTION_END").count();
    markers.until(120, "an END per transaction", |x| ends(x) >= expected.len());
    read_changes(&mut data, &per_table, 120);
    let phase1 = {
        let snap: Vec<(&str, Vec<Rec>)> = TABLES
            .iter()
            .zip(&data)
            .map(|(t, r)| (*t, r.records.clone()))
            .collect();
        let ms = markers.records.clone();
        assert_phase1(&db, &snap, &ms, &expected);
        ms.len()
    };
    // `tail` with the run's config follows the marker topic too and shows every marker
    tail_shows_markers(&rs, &data, phase1, expected.len());

    // phase 2: a stream of transactions (a 2, b 1, c 1 each), kill -9 in the middle
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let writer = {
        let w = db.open().await;
        let (stop, rounds) = (stop.clone(), rounds.clone());
        tokio::spawn(async move {
            const MAX: u64 = 20_000;
            let mut r = 0;
            while !stop.load(Ordering::SeqCst) && r < MAX {
                let k = 100_000 + 10 * r as i64;
                w.exec(&format!(
                    "BEGIN; INSERT INTO a VALUES ({k}, 1), ({}, 1); INSERT INTO b VALUES ({k}, 1); UPDATE c SET v = v + 1 WHERE id = 301; COMMIT",
                    k + 1
                ))
                .await;
                r += 1;
                rounds.store(r, Ordering::SeqCst);
            }
            r
        })
    };
    let before = expected.len();
    markers.until(120, "ENDs of the stream", |x| ends(x) >= before + 30);
    rs.kill9();
    let at_kill = rounds.load(Ordering::SeqCst);
    assert!(
        !writer.is_finished(),
        "the writer stopped before the kill: the kill was not mid-stream"
    );
    // the writer goes on while rowstream is down, then stops
    wait_for(60, "transactions written while rowstream is down", || {
        let rounds = rounds.clone();
        async move { rounds.load(Ordering::SeqCst) >= at_kill + 30 }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let total_rounds = writer.await.unwrap() as usize;
    let rs = Rowstream::start(&db.name, &cfg);
    let distinct_ends = |x: &[Rec]| {
        x.iter()
            .filter(|r| r.op() == "TRANSACTION_END")
            .map(|r| marker(r).id)
            .collect::<BTreeSet<_>>()
            .len()
    };
    markers.until(180, "an END for every transaction", |x| {
        distinct_ends(x) >= before + total_rounds
    });
    let want: Vec<usize> = per_table
        .iter()
        .zip([2, 1, 1])
        .map(|(n, per)| n + per * total_rounds)
        .collect();
    read_changes(&mut data, &want, 180);

    // phase 3: a transaction stopped by its oversized record of d, then resumed skipping it
    let mut rs = rs;
    db.exec(&format!(
        "BEGIN; INSERT INTO a VALUES (900001, 1), (900002, 1); INSERT INTO d VALUES (1, {}); INSERT INTO b VALUES (900001, 1); COMMIT",
        large_text(&db)
    ))
    .await;
    rs.expect_setup_stop(&[&format!("a record of {} (key 1) is", db.qualified("d"))])
        .await;
    let skip = cfg.replace(
        "partitions = 3",
        &format!(
            "partitions = 3\noversized_tables = {{ \"{}\" = \"skip\" }}",
            db.qualified("d")
        ),
    );
    let rs = Rowstream::start(&db.name, &skip);
    markers.until(180, "the END of the transaction cut short", |x| {
        distinct_ends(x) > before + total_rounds
    });
    let want: Vec<usize> = want.iter().zip([2, 1, 0]).map(|(n, k)| n + k).collect();
    read_changes(&mut data, &want, 180);
    assert_eq!(rs.stop(), 0);
    if exactly_once {
        // read_committed: nothing twice. The marker topic is one partition in order, so a
        // marker sent again would have come before the last END waited for.
        let all: Vec<(&str, Vec<Rec>)> = TABLES
            .iter()
            .zip(&data)
            .map(|(t, r)| (*t, r.records.clone()))
            .collect();
        let replayed = assert_across_restart(&db, &all, &markers.records, before, total_rounds);
        assert_eq!(
            replayed,
            (0, 0),
            "a transaction's markers seen twice under exactly-once"
        );
        let ms: Vec<Marker> = markers.records.iter().map(marker).collect();
        assert_eq!(
            ms.len(),
            2 * (before + total_rounds + 1),
            "one BEGIN and END each"
        );
        for (t, recs) in &all {
            let orders: Vec<&String> = recs.iter().filter_map(|r| r.order.as_ref()).collect();
            let distinct: BTreeSet<&&String> = orders.iter().collect();
            assert_eq!(orders.len(), distinct.len(), "{t}: a record seen twice");
        }
        return;
    }
    // every record of every topic (Kafka transactions' commit markers take no offsets here)
    let mut all: Vec<(&str, Vec<Rec>)> = Vec::new();
    for (t, r) in TABLES.iter().zip(data.iter_mut()) {
        let n = r.end_offsets_total() as usize;
        all.push((
            *t,
            r.until(60, "the whole topic", |x| x.len() >= n).to_vec(),
        ));
    }
    let n = markers.end_offsets_total() as usize;
    let ms = markers
        .until(60, "the whole marker topic", |x| x.len() >= n)
        .to_vec();
    let (replayed, cut) = assert_across_restart(&db, &all, &ms, before, total_rounds);
    assert!(
        cut >= 1,
        "the stop in phase 3 left no BEGIN without END: {ms:#?}"
    );
    eprintln!(
        "{}: {total_rounds} transactions streamed, rowstream killed after {at_kill}; {replayed} transaction(s) written again, {cut} BEGIN(s) without END",
        db.name
    );
    assert!(
        replayed > 0,
        "the kill -9 left no transaction to send again: the test showed nothing"
    );
}

/// Phase 1 (no restart yet): exactly one BEGIN and one END per transaction id of the records,
/// BEGIN first, ids increasing, one partition; each END states the records of its id and
/// the counts `expected` in order; sequenceIds, times, keys and sources as documented; data
/// records shaped as without markers.
fn assert_phase1(
    db: &Db,
    data: &[(&str, Vec<Rec>)],
    markers: &[Rec],
    expected: &[BTreeMap<String, u64>],
) {
    // every marker in one partition, keyed by the database, of the documented shape
    let parts: BTreeSet<i32> = markers.iter().map(|r| r.partition).collect();
    assert_eq!(parts.len(), 1, "markers spread over partitions {parts:?}");
    let source = match db.flavor {
        Flavor::Postgres => json!({"dbType": "PostgreSQL", "dbName": db.name}),
        Flavor::MariaDb => json!({"dbType": "MariaDB", "dbName": db.name}),
    };
    for m in markers {
        assert_eq!(m.key.as_deref(), Some(db.name.as_str()), "{}", m.raw);
        assert_eq!(
            m.value["schema"],
            json!({"dataColumn": null, "primaryKey": null, "source": source}),
            "{}",
            m.raw
        );
        let p = &m.value["payload"];
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = vec![
            "after",
            "before",
            "ddl",
            "op",
            "sequenceId",
            "timestamp",
            "transaction",
        ];
        want.sort();
        assert_eq!(keys, want, "{}", m.raw);
        assert_eq!(
            (&p["before"], &p["after"], &p["ddl"]),
            (&J::Null, &J::Null, &J::Null)
        );
        assert!(
            m.order.is_none(),
            "a marker with rowstream.order: {}",
            m.raw
        );
    }
    let ms: Vec<Marker> = markers.iter().map(marker).collect();
    // BEGIN, END, BEGIN, END ... of the same id each time, ids increasing
    assert_eq!(ms.len(), 2 * expected.len(), "{ms:#?}");
    for (i, pair) in ms.chunks(2).enumerate() {
        assert_eq!(pair[0].op, "TRANSACTION_BEGIN", "marker {}: {ms:#?}", 2 * i);
        assert_eq!(
            pair[1].op,
            "TRANSACTION_END",
            "marker {}: {ms:#?}",
            2 * i + 1
        );
        assert_eq!(pair[0].id, pair[1].id, "{ms:#?}");
        assert_eq!((pair[0].count, &pair[0].tables), (None, &None));
        assert_eq!(pair[0].id.len(), 16, "{:?}", pair[0]);
        if i > 0 {
            assert!(pair[0].id > ms[2 * i - 2].id, "ids go back: {ms:#?}");
        }
    }
    // each END: the records of its id, and the counts the SQL implies
    let by_txn = changes_by_txn(db, data);
    let ends: Vec<&Marker> = ms.iter().filter(|m| m.op == "TRANSACTION_END").collect();
    assert_eq!(
        by_txn.keys().collect::<Vec<_>>(),
        ends.iter().map(|m| &m.id).collect::<Vec<_>>(),
        "the transactions of the records and of the markers"
    );
    for (end, want) in ends.iter().zip(expected) {
        let got: BTreeMap<String, u64> = by_txn[&end.id]
            .iter()
            .map(|(t, o)| (t.clone(), o.len() as u64))
            .collect();
        assert_eq!(
            end.tables.as_ref(),
            Some(&got),
            "END {} vs its records",
            end.id
        );
        assert_eq!(end.tables.as_ref(), Some(want), "END {} vs the SQL", end.id);
        assert_eq!(end.count, Some(want.values().sum()), "END {}", end.id);
    }
    // no record sent twice before any restart
    for (t, recs) in data {
        let orders: Vec<&String> = recs.iter().filter_map(|r| r.order.as_ref()).collect();
        let distinct: BTreeSet<&&String> = orders.iter().collect();
        assert_eq!(orders.len(), distinct.len(), "{t}: a record sent twice");
    }
    // BEGIN's sequenceId below its records', END's above; their times are the records'
    let seq = |r: &Rec| r.seq().parse::<u64>().unwrap();
    let changes: Vec<&Rec> = data
        .iter()
        .flat_map(|(_, recs)| recs.iter().filter(|r| is_change(r)))
        .collect();
    for pair in markers.chunks(2) {
        let id = marker(&pair[0]).id;
        let recs: Vec<&&Rec> = changes.iter().filter(|r| txn_of(r) == id).collect();
        let (lo, hi) = (
            recs.iter().map(|r| seq(r)).min().unwrap(),
            recs.iter().map(|r| seq(r)).max().unwrap(),
        );
        assert!(
            seq(&pair[0]) < lo && hi < seq(&pair[1]),
            "sequenceIds of {id}"
        );
        let time = &recs[0].value["payload"]["timestamp"]["eventTime"];
        for m in pair {
            let ts = &m.value["payload"]["timestamp"];
            assert_eq!(
                (&ts["eventTime"], &ts["checkpointTime"]),
                (time, time),
                "{}",
                m.raw
            );
        }
    }
    // the data records are as without markers
    for (_, recs) in data {
        for r in recs.iter().filter(|r| r.op() != "MHEARTBEAT") {
            assert_record_unchanged(r);
        }
    }
}

/// A data record as rowstream writes it with or without markers: the payload's six members,
/// no marker member.
fn assert_record_unchanged(r: &Rec) {
    let keys: Vec<&str> = r.value["payload"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["after", "before", "ddl", "op", "sequenceId", "timestamp"],
        "{}",
        r.raw
    );
}

/// `rowstream tail --config` (no topic named) follows the marker topic and prints a line for
/// every marker, BEGIN and END with its counts.
fn tail_shows_markers(rs: &Rowstream, data: &[Reader], markers: usize, txns: usize) {
    let records: usize = data.iter().map(|r| count_data(&r.records)).sum();
    let cfg = rs.cfg.to_str().unwrap().to_string();
    let max = (records + markers).to_string();
    let out = rowstream_ok(&[
        "tail",
        "--config",
        &cfg,
        "--from-beginning",
        "--idle-secs",
        "60",
        "--max",
        &max,
    ]);
    let begins: Vec<&str> = out.lines().filter(|l| l.contains("  BEGIN txn ")).collect();
    let ends: Vec<&str> = out.lines().filter(|l| l.contains("  END txn ")).collect();
    assert_eq!((begins.len(), ends.len()), (txns, txns), "{out}");
    // the 2,000-row transaction's END
    assert!(ends.iter().any(|l| l.contains(" 2001 records (")), "{out}");
}

/// After phases 2 and 3 (two restarts behind): every END states exactly the distinct records
/// of its id, every id with records has an END, each stream transaction's END says a 2, b 1,
/// c 1 and the last one a 2, b 1, and the marker sequence is BEGIN(id) END(id) pairs with
/// increasing ids, cut at most once per restart: there the ids go back to where the replay
/// starts, after a whole pair or after a BEGIN whose END the stop cut off. Returns how many
/// ids have more than one END, and how many BEGINs have none.
fn assert_across_restart(
    db: &Db,
    data: &[(&str, Vec<Rec>)],
    markers: &[Rec],
    scripted: usize,
    rounds: usize,
) -> (usize, usize) {
    let parts: BTreeSet<i32> = markers.iter().map(|r| r.partition).collect();
    assert_eq!(parts.len(), 1, "markers spread over partitions {parts:?}");
    let ms: Vec<Marker> = markers.iter().map(marker).collect();
    let by_txn = changes_by_txn(db, data);
    // every END: exactly the distinct records of its id
    let mut end_ids: BTreeMap<&str, usize> = BTreeMap::new();
    for m in ms.iter().filter(|m| m.op == "TRANSACTION_END") {
        let got: BTreeMap<String, u64> = by_txn
            .get(&m.id)
            .unwrap_or_else(|| panic!("END {} without records", m.id))
            .iter()
            .map(|(t, o)| (t.clone(), o.len() as u64))
            .collect();
        assert_eq!(m.tables.as_ref(), Some(&got), "END {} vs its records", m.id);
        assert_eq!(m.count, Some(got.values().sum()), "END {}", m.id);
        *end_ids.entry(&m.id).or_default() += 1;
    }
    // every id with records has an END; the stream's transactions are a 2, b 1, c 1
    for id in by_txn.keys() {
        assert!(
            end_ids.contains_key(id.as_str()),
            "records of {id} but no END"
        );
    }
    assert_eq!(
        by_txn.len(),
        scripted + rounds + 1,
        "transactions with records"
    );
    let stream = counts(db, &[("a", 2), ("b", 1), ("c", 1)]);
    let ids: Vec<&String> = by_txn.keys().collect();
    // the last: d's record left out by the policy, so not counted
    let last = ids[scripted + rounds];
    let got: BTreeMap<String, u64> = by_txn[last]
        .iter()
        .map(|(t, o)| (t.clone(), o.len() as u64))
        .collect();
    assert_eq!(got, counts(db, &[("a", 2), ("b", 1)]), "transaction {last}");
    for id in &ids[scripted..scripted + rounds] {
        let got: BTreeMap<String, u64> = by_txn[*id]
            .iter()
            .map(|(t, o)| (t.clone(), o.len() as u64))
            .collect();
        assert_eq!(got, stream, "stream transaction {id}");
    }
    // the sequence: pairs, increasing ids, at most one cut where the ids go back
    let mut cuts = 0;
    let mut unfinished = 0;
    let mut i = 0;
    let mut last: Option<&str> = None;
    while i < ms.len() {
        let b = &ms[i];
        assert_eq!(b.op, "TRANSACTION_BEGIN", "marker {i}: {:?}", &ms[i..]);
        if let Some(prev) = last {
            if b.id.as_str() <= prev {
                cuts += 1; // the replay after the restart starts here
            }
        }
        last = Some(&b.id);
        match ms.get(i + 1) {
            Some(e) if e.op == "TRANSACTION_END" => {
                assert_eq!(e.id, b.id, "marker {}: END of another transaction", i + 1);
                i += 2;
            }
            // a BEGIN whose END the kill cut off: the replay's BEGIN follows, at or before it
            Some(next) => {
                assert!(
                    next.id <= b.id,
                    "marker {i}: BEGIN {} without END, then BEGIN {} (not a replay)",
                    b.id,
                    next.id
                );
                unfinished += 1;
                i += 1;
            }
            None => panic!("the last marker is a BEGIN without END after a clean stop"),
        }
    }
    assert!(cuts <= 2, "{cuts} cuts for two restarts");
    assert!(
        unfinished <= cuts,
        "{unfinished} BEGINs without END, {cuts} restart(s)"
    );
    (end_ids.values().filter(|&&n| n > 1).count(), unfinished)
}

/// Markers off (the default): the marker topic never appears, and the records are those of
/// any run (no marker member).
async fn markers_off_by_default_write_nothing(db: Db) {
    tables(&db).await;
    let mtopic = marker_topic(&db);
    // the topic named, markers left at their default
    let cfg = config(&db, &format!("transaction_topic = \"{mtopic}\""), "");
    let rs = Rowstream::start(&db.name, &cfg);
    let mut data = readers(&db);
    data[0].until(60, "the snapshot", |x| count_data(x) >= 2);
    wait_streaming(&db).await;
    db.exec("BEGIN; INSERT INTO a VALUES (101, 1); INSERT INTO b VALUES (101, 1), (102, 1); INSERT INTO u VALUES (1, 1); COMMIT")
        .await;
    db.exec("INSERT INTO c VALUES (101, 1)").await;
    read_changes(&mut data, &[1, 2, 1], 60);
    assert_eq!(rs.stop(), 0);
    for r in &data {
        for x in r.records.iter().filter(|r| r.op() != "MHEARTBEAT") {
            assert_record_unchanged(x);
        }
    }
    assert!(
        !topic_exists(&mtopic),
        "the marker topic {mtopic} exists with markers off"
    );
}

/// Does `topic` exist on the broker?
fn topic_exists(topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", format!("test-topics-{}", std::process::id()))
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .unwrap();
    md.topics().iter().any(|t| t.name() == topic)
}

/// Markers on with the `rowstream.order` header off: `validate` and `run` refuse the config
/// (exit 2) naming both keys, before connecting anywhere.
#[test]
fn markers_without_the_order_header_are_refused() {
    let name = "txn_config";
    state_dir(name);
    let cfg = config_text(name);
    let path = std::env::temp_dir().join(format!("rowstream-test-{name}.toml"));
    std::fs::write(&path, &cfg).unwrap();
    let p = path.to_str().unwrap();
    for cmd in ["validate", "run"] {
        let (code, _, stderr) = rowstream(&[cmd, "--config", p]);
        assert_eq!(code, Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("`encode.transaction_markers`: needs encode.order_header = true"),
            "{cmd}: {stderr}"
        );
    }
    // the environment turns them on just as well
    let off = cfg.replace("transaction_markers = true\n", "");
    std::fs::write(&path, &off).unwrap();
    assert_eq!(rowstream(&["validate", "--config", p]).0, Some(0));
    let out = std::process::Command::new(bin())
        .args(["validate", "--config", p])
        .env("ROWSTREAM_ENCODE__TRANSACTION_MARKERS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("`encode.transaction_markers`: needs encode.order_header = true"));
}

fn config_text(name: &str) -> String {
    common::config(
        name,
        "",
        "[encode]\ntransaction_markers = true\norder_header = false\n",
    )
}
