//! MySQL/MariaDB → Kafka integration tests against the real services (scripts/services.sh up).
mod common;

use common::*;
use mysql_async::prelude::*;
use serde_json::json;
use std::collections::HashSet;

/// Every type family inserted before and after the snapshot renders identically and spec-exact
/// (fixtures/mysql/types.golden.json).
#[tokio::test(flavor = "multi_thread")]
async fn my_types_render_identically_before_and_after_snapshot() {
    let name = "my_types";
    let mut db = fresh_mydb(name).await;
    let root = env!("CARGO_MANIFEST_DIR");
    db.query_drop(std::fs::read_to_string(format!("{root}/fixtures/mysql/types.sql")).unwrap())
        .await
        .unwrap();
    let row = std::fs::read_to_string(format!("{root}/fixtures/mysql/types_row.sql")).unwrap();
    db.query_drop(row.replace(":id", "1")).await.unwrap();
    state_dir(name);
    let rs = Rowstream::start(name, &myconfig(name, 6002, "", ""));
    let mut r = Reader::new(&mytopic(name, "types_t"));
    r.until(60, "the snapshot row", |x| count_data(x) >= 1);
    db.query_drop(row.replace(":id", "2")).await.unwrap();
    let recs = r
        .until(60, "the streamed row", |x| count_data(x) >= 2)
        .to_vec();
    let golden_path = format!("{root}/fixtures/mysql/types.golden.json");
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    let snap = data.iter().find(|x| x.seq() == "-1").expect("snapshot row");
    let live = data.iter().find(|x| x.seq() != "-1").expect("streamed row");
    let snap_s = schema_and_after(&snap.raw);
    let live_s = schema_and_after(&live.raw).replacen(
        "{\"dataColumn\":{\"id\":2,",
        "{\"dataColumn\":{\"id\":1,",
        1,
    );
    if std::env::var("ROWSTREAM_BLESS").is_ok() {
        std::fs::write(&golden_path, format!("{snap_s}\n")).unwrap();
    }
    let golden = std::fs::read_to_string(&golden_path)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(snap_s, golden, "snapshot row differs from the golden file");
    assert_eq!(live_s, golden, "streamed row differs from the golden file");
    // the zero date cannot be rendered: null and one warning naming the column
    let log = rs.log_text();
    assert_eq!(log.matches("column=c_zero_dt").count(), 1, "{log}");
    assert_eq!(rs.stop(), 0);
}

/// ALTER TABLE mid-stream, then a restart from a position before the ALTER: old events decode
/// with the old schema, new ones with the new.
#[tokio::test(flavor = "multi_thread")]
async fn my_alter_then_restart_from_before_it() {
    let name = "my_alter";
    let mut db = fresh_mydb(name).await;
    db.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10))")
        .await
        .unwrap();
    state_dir(name);
    let cfg = myconfig(name, 6004, "", "");
    let rs = Rowstream::start(name, &cfg);
    let state_file = state_file(name);
    wait_binlog_reader(name).await;
    let start_state = std::fs::read_to_string(&state_file).unwrap();
    let mut r = Reader::new(&mytopic(name, "t"));
    db.query_drop("INSERT INTO t VALUES (1, 'x')")
        .await
        .unwrap();
    r.until(60, "row 1", |x| count_data(x) >= 1);
    // the position stored after row 1's transaction (not the start position)
    wait_for(30, "a stored position after row 1", || {
        let f = state_file.clone();
        let start = start_state.clone();
        async move {
            std::fs::read_to_string(&f)
                .map(|s| s != start && s.contains("\"gtid\""))
                .unwrap_or(false)
        }
    })
    .await;
    let before_alter = std::fs::read(&state_file).unwrap();
    db.query_drop("ALTER TABLE t ADD COLUMN b INT, DROP COLUMN a")
        .await
        .unwrap();
    db.query_drop("INSERT INTO t VALUES (2, 42)").await.unwrap();
    r.until(60, "ALTER and row 2", |x| count_data(x) >= 3);
    assert_eq!(rs.stop(), 0);
    // rewind to before the ALTER and replay
    db.query_drop("INSERT INTO t VALUES (3, 43)").await.unwrap();
    std::fs::write(&state_file, before_alter).unwrap();
    let rs = Rowstream::start(name, &cfg);
    let recs = r.until(60, "the replay", |x| count_data(x) >= 6).to_vec();
    // records of several partitions: their sequenceIds give the global order
    let mut data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    data.sort_by(|a, b| a.seq().cmp(b.seq()));
    let ops: Vec<&str> = data.iter().map(|x| x.op()).collect();
    assert_eq!(
        ops,
        vec!["INSERT", "ALTER", "INSERT", "ALTER", "INSERT", "INSERT"],
        "{ops:?}"
    );
    let replayed_alter = data[3];
    assert_eq!(
        replayed_alter.value["payload"]["ddl"]["text"],
        json!("ALTER TABLE t ADD COLUMN b INT, DROP COLUMN a")
    );
    assert_eq!(
        replayed_alter.value["schema"]["dataColumn"],
        json!([{"name":"id","type":"LONG"},{"name":"b","type":"LONG"}])
    );
    assert_eq!(
        *data[4].after(),
        json!({"id": 2, "b": 42}),
        "post-ALTER row decodes with the new schema"
    );
    assert_eq!(*data[5].after(), json!({"id": 3, "b": 43}));
    // the row written before the ALTER was not re-emitted: the replay started after it
    assert_eq!(*data[0].after(), json!({"id": 1, "a": "x"}));
    assert_eq!(rs.stop(), 0);
}

/// DDLs the stream reads after the table changed again: rowstream is stopped while seven
/// ALTERs (add, drop, rename, retype, ENUM labels, TINYINT(1)) each followed by a row run, so
/// when it reads them `information_schema` shows only the last table. Every row decodes with
/// the columns it was written with (its TABLE_MAP's, binlog_row_metadata = FULL), never with
/// the later ones, and nothing stops; a restart from before the first ALTER replays the same.
#[tokio::test(flavor = "multi_thread")]
async fn my_ddls_read_late_decode_rows_as_written() {
    let name = "my_late_ddl";
    let mut db = fresh_mydb(name).await;
    db.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10))")
        .await
        .unwrap();
    state_dir(name);
    let cfg = myconfig(name, 6140, "", "");
    let rs = Rowstream::start(name, &cfg);
    wait_binlog_reader(name).await;
    let mut r = Reader::new(&mytopic(name, "t"));
    db.query_drop("INSERT INTO t VALUES (1, 'one')")
        .await
        .unwrap();
    r.until(60, "row 1", |x| count_data(x) >= 1);
    assert_eq!(rs.stop(), 0);
    let before = std::fs::read(state_file(name)).unwrap();
    for sql in [
        "ALTER TABLE t ADD COLUMN c INT",
        "INSERT INTO t VALUES (2, 'two', 20)",
        "ALTER TABLE t DROP COLUMN a",
        "INSERT INTO t VALUES (3, 30)",
        "ALTER TABLE t RENAME COLUMN c TO d",
        "INSERT INTO t VALUES (4, 40)",
        "ALTER TABLE t MODIFY d VARCHAR(20)",
        "INSERT INTO t VALUES (5, 'fifty')",
        "ALTER TABLE t ADD COLUMN e ENUM('x','y')",
        "INSERT INTO t VALUES (6, 'six', 'y')",
        "ALTER TABLE t MODIFY e ENUM('y','x','z')",
        "INSERT INTO t VALUES (7, 'seven', 'z')",
        "ALTER TABLE t ADD COLUMN f TINYINT(1), ADD COLUMN g BIGINT UNSIGNED",
        "INSERT INTO t VALUES (8, 'eight', 'x', 1, 18446744073709551615)",
    ] {
        db.query_drop(sql).await.unwrap();
    }
    let expected = [
        (
            json!({"id": 2, "a": "two", "c": 20}),
            json!([["id", "LONG"], ["a", "STRING"], ["c", "LONG"]]),
        ),
        (
            json!({"id": 3, "c": 30}),
            json!([["id", "LONG"], ["c", "LONG"]]),
        ),
        (
            json!({"id": 4, "d": 40}),
            json!([["id", "LONG"], ["d", "LONG"]]),
        ),
        (
            json!({"id": 5, "d": "fifty"}),
            json!([["id", "LONG"], ["d", "STRING"]]),
        ),
        (
            json!({"id": 6, "d": "six", "e": "y"}),
            json!([["id", "LONG"], ["d", "STRING"], ["e", "STRING"]]),
        ),
        (
            json!({"id": 7, "d": "seven", "e": "z"}),
            json!([["id", "LONG"], ["d", "STRING"], ["e", "STRING"]]),
        ),
        (
            json!({"id": 8, "d": "eight", "e": "x", "f": true, "g": 18446744073709551615u64}),
            json!([
                ["id", "LONG"],
                ["d", "STRING"],
                ["e", "STRING"],
                ["f", "BOOLEAN"],
                ["g", "LONG"]
            ]),
        ),
    ];
    let check = |recs: &[Rec], first: usize| {
        let mut data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
        data.sort_by(|a, b| a.seq().cmp(b.seq()));
        let data = &data[first..];
        let ops: Vec<&str> = data.iter().map(|x| x.op()).collect();
        assert_eq!(ops, ["ALTER", "INSERT"].repeat(7), "{ops:?}");
        for (i, (after, cols)) in expected.iter().enumerate() {
            let rec = data[2 * i + 1];
            assert_eq!(rec.after(), after, "row {}", i + 2);
            let shape: Vec<serde_json::Value> = rec.value["schema"]["dataColumn"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| json!([c["name"], c["type"]]))
                .collect();
            assert_eq!(serde_json::Value::Array(shape), *cols, "row {}", i + 2);
            assert_eq!(
                rec.value["schema"]["primaryKey"],
                json!(["id"]),
                "row {}",
                i + 2
            );
        }
    };
    let mut rs = Rowstream::start(name, &cfg);
    let recs = r
        .until(60, "seven ALTERs and their rows", |x| count_data(x) >= 15)
        .to_vec();
    check(&recs, 1);
    rs.assert_running();
    assert_eq!(rs.stop(), 0);
    // replayed from before the first ALTER: the history decodes the rows the same way
    std::fs::write(state_file(name), before).unwrap();
    let mut rs = Rowstream::start(name, &cfg);
    let recs = r.until(60, "the replay", |x| count_data(x) >= 29).to_vec();
    check(&recs, 15);
    rs.assert_running();
    assert_eq!(rs.stop(), 0);
}

/// More tables than one snapshot read view takes (1,000): the snapshot reads them in groups,
/// each in a read view of its own opened when its turn comes, whose position is its tables'
/// fence. A table of the second group, written all along from before the start until the
/// stream runs, holds each row exactly once (in its snapshot or streamed, never both, never
/// neither); the empty tables give no record.
#[tokio::test(flavor = "multi_thread")]
async fn my_many_tables_snapshot_in_groups_exactly_once() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    let name = "my_many_tables";
    let mut db = fresh_mydb(name).await;
    let ddl: String = (0..1005)
        .map(|i| format!("CREATE TABLE t{i:04} (id INT PRIMARY KEY, v INT);"))
        .collect();
    db.query_drop(ddl).await.unwrap();
    db.query_drop("INSERT INTO t0000 VALUES (1, 1); INSERT INTO t0999 VALUES (1, 1); INSERT INTO t1004 VALUES (0, 0)")
        .await
        .unwrap();
    state_dir(name);
    // one topic, one partition: the records in the stream's order
    let cfg = myconfig(name, 6141, "", "")
        .replace(".{table}\"", "\"")
        .replace("partitions = 3", "partitions = 1");
    let topic = format!("{name}-{}.{name}", run_id());
    let (stop, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU32::new(0)),
    );
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut c = myconn(name).await;
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                c.query_drop(format!("INSERT INTO t1004 VALUES ({i}, {i})"))
                    .await
                    .unwrap();
                written.store(i, Ordering::SeqCst);
            }
            i
        })
    };
    wait_for(30, "the writer under way", || async {
        written.load(Ordering::SeqCst) >= 20
    })
    .await;
    let mut rs = Rowstream::start(name, &cfg);
    wait_binlog_reader(name).await;
    let mut r = Reader::new(&topic);
    let at_stream = written.load(Ordering::SeqCst);
    r.until(120, "rows streamed after the start", |x| {
        x.iter().filter(|r| r.seq() != "-1").count() >= 20
    });
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.unwrap();
    assert!(last > at_stream, "the writer ran past the start");
    db.query_drop("INSERT INTO t0000 VALUES (2, 2)")
        .await
        .unwrap();
    let recs = r
        .until(120, "the sentinel row", |x| {
            x.iter().any(|r| {
                r.value["schema"]["source"]["tableName"] == "t0000" && r.after()["id"] == 2
            })
        })
        .to_vec();
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    let table = |r: &Rec| {
        r.value["schema"]["source"]["tableName"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let mut ids: Vec<i64> = data
        .iter()
        .filter(|r| table(r) == "t1004")
        .map(|r| r.after()["id"].as_i64().unwrap())
        .collect();
    assert!(data.iter().all(|r| r.op() == "INSERT"), "inserts only");
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..=last as i64).collect::<Vec<_>>(),
        "t1004: each row exactly once"
    );
    let others: Vec<String> = data
        .iter()
        .map(|r| table(r))
        .filter(|t| t != "t1004")
        .collect();
    assert_eq!(
        others,
        ["t0000", "t0999", "t0000"],
        "the empty tables give no record"
    );
    // the snapshot opened two read views, the second for the tables after the first 1,000
    let log = rs.log_text();
    assert_eq!(
        log.matches("consistent snapshot opened").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("tables=1005") && log.contains("tables=5"),
        "{log}"
    );
    rs.assert_running();
    assert_eq!(rs.stop(), 0);
}

/// `check` against a server with binlog_format=STATEMENT names the problem and the fix.
#[test]
fn my_check_names_statement_binlog() {
    let cfg = myconfig("my_check", 6006, "", "");
    let (code, stdout) = run_check(
        "my_check_stmt",
        &cfg.replace("127.0.0.1:3306/my_check", "127.0.0.1:3307/mysql"),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("[FAIL] binlog_format = STATEMENT: rowstream needs ROW"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: SET GLOBAL binlog_format = 'ROW';"),
        "{stdout}"
    );
    // the ROW server passes
    let (code, stdout) = run_check(
        "my_check_row",
        &cfg.replace("127.0.0.1:3306/my_check", "127.0.0.1:3306/mysql"),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("[ok  ] binlog_format = ROW"), "{stdout}");
}

/// Changes made while rowstream is down, before it ever committed a transaction position, are
/// not skipped: the start position itself is stored.
#[tokio::test(flavor = "multi_thread")]
async fn my_restart_before_first_transaction_loses_nothing() {
    let name = "my_first";
    let mut db = fresh_mydb(name).await;
    db.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    state_dir(name);
    let cfg = myconfig(name, 6007, "", "[snapshot]\nmode = \"never\"\n");
    let rs = Rowstream::start(name, &cfg);
    // the start position is stored as soon as the server accepted the dump request
    wait_binlog_reader(name).await;
    assert_eq!(rs.stop(), 0);
    db.query_drop("INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    let rs = Rowstream::start(name, &cfg);
    let mut r = Reader::new(&mytopic(name, "t"));
    let recs = r.until(60, "both rows", |x| count_data(x) >= 2).to_vec();
    let ids: HashSet<i64> = recs
        .iter()
        .filter_map(|x| x.after()["id"].as_i64())
        .collect();
    assert_eq!(ids, HashSet::from([1, 2]));
    assert_eq!(rs.stop(), 0);
}

/// DDL rowstream cannot read (a trigger, a view) becomes a QUERY record on the tables it names
/// and never stops the stream; TRUNCATE and DROP TABLE become TRUNCATE and ERASE records.
#[tokio::test(flavor = "multi_thread")]
async fn my_unread_ddl_is_a_query_record() {
    let name = "my_query";
    let mut db = fresh_mydb(name).await;
    db.query_drop("CREATE TABLE t (id INT PRIMARY KEY, n INT)")
        .await
        .unwrap();
    state_dir(name);
    let rs = Rowstream::start(name, &myconfig(name, 6009, "", ""));
    wait_binlog_reader(name).await;
    let mut r = Reader::new(&mytopic(name, "t"));
    db.query_drop("CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.n = NEW.id * 2")
        .await
        .unwrap();
    db.query_drop("INSERT INTO t (id) VALUES (5)")
        .await
        .unwrap();
    db.query_drop("TRUNCATE TABLE t").await.unwrap();
    db.query_drop("DROP TABLE t").await.unwrap();
    let recs = r
        .until(60, "QUERY, INSERT, TRUNCATE, ERASE", |x| count_data(x) >= 4)
        .to_vec();
    let mut data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    data.sort_by(|a, b| a.seq().cmp(b.seq()));
    let ops: Vec<&str> = data.iter().map(|x| x.op()).collect();
    assert_eq!(ops, vec!["QUERY", "INSERT", "TRUNCATE", "ERASE"]);
    assert_eq!(data[0].value["payload"]["ddl"]["ddlMeta"], json!(null));
    assert!(data[0].value["payload"]["ddl"]["text"]
        .as_str()
        .unwrap()
        .contains("TRIGGER trg BEFORE INSERT ON t"));
    assert_eq!(*data[1].after(), json!({"id": 5, "n": 10}));
    assert_eq!(
        data[2].value["payload"]["ddl"]["text"],
        json!("TRUNCATE TABLE t")
    );
    assert!(data[3].value["payload"]["ddl"]["text"]
        .as_str()
        .unwrap()
        .starts_with("DROP TABLE"));
    assert_eq!(
        data[3].value["schema"]["dataColumn"],
        json!([{"name":"id","type":"LONG"},{"name":"n","type":"LONG"}])
    );
    let mut rr = rs;
    rr.assert_running();
    assert_eq!(rr.stop(), 0);
}

/// Failover by GTID: rowstream follows a primary, is killed, and resumes on a GTID replica
/// (log_slave_updates) from the GTID it stored: nothing lost. A server outside the topology is
/// refused with one clear line instead of a silent start elsewhere.
#[tokio::test(flavor = "multi_thread")]
async fn my_failover_to_a_gtid_replica_loses_nothing() {
    let name = "my_failover";
    let primary = MariaServer::start("failover-primary", 101);
    let replica = MariaServer::start("failover-replica", 102);
    primary.sql(
        "CREATE USER rowstream@'%' IDENTIFIED BY 'rowstream'; GRANT ALL ON *.* TO rowstream@'%';
         CREATE USER repl@'%' IDENTIFIED BY 'repl'; GRANT REPLICATION SLAVE ON *.* TO repl@'%';
         CREATE DATABASE my_failover; CREATE TABLE my_failover.t (id INT PRIMARY KEY, v INT);
         INSERT INTO my_failover.t VALUES (1, 0), (2, 0), (3, 0);",
    );
    replica.sql(&format!(
        "CHANGE MASTER TO master_host='127.0.0.1', master_port={}, master_user='repl', \
         master_password='repl', master_use_gtid=slave_pos; START SLAVE;",
        primary.port
    ));
    state_dir(name);
    let url = |port: u16| {
        format!("mysql://rowstream:rowstream@127.0.0.1:{port}/my_failover?prefer_socket=false")
    };
    let cfg_for =
        |port: u16| myconfig(name, 6011, "", "").replace(&format!("{MY}/{name}"), &url(port));
    let rs = Rowstream::start(name, &cfg_for(primary.port));
    let mut r = Reader::new(&mytopic(name, "t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 3);
    let insert = |from: i64, to: i64| {
        primary.sql(&format!(
            "USE my_failover; INSERT INTO t SELECT seq, 0 FROM seq_{from}_to_{to}"
        ))
    };
    for i in 0..20 {
        insert(100 + i * 10, 109 + i * 10);
    }
    r.until(60, "rows streamed from the primary", |x| {
        count_data(x) >= 50
    });
    rs.kill9();
    // the primary goes on; the replica has applied everything when rowstream moves to it
    insert(1000, 1099);
    let pos = primary.sql("SELECT @@gtid_binlog_pos");
    assert_eq!(
        replica.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 60)")),
        "0"
    );
    let rs = Rowstream::start(name, &cfg_for(replica.port));
    insert(2000, 2099);
    let want: HashSet<i64> = [1, 2, 3]
        .into_iter()
        .chain(100..300)
        .chain(1000..1100)
        .chain(2000..2100)
        .collect();
    let recs = r
        .until(120, "every row, through the replica", |x| {
            let got: HashSet<i64> = x.iter().filter_map(|x| x.after()["id"].as_i64()).collect();
            want.is_subset(&got)
        })
        .to_vec();
    let got: HashSet<i64> = recs
        .iter()
        .filter_map(|x| x.after()["id"].as_i64())
        .collect();
    assert_eq!(got, want, "nothing lost, nothing invented");
    assert!(rs.log_text().contains("resuming by GTID"));
    assert_eq!(rs.stop(), 0);
    let state = stored_state(name);
    assert!(
        state["position"]["gtid"]
            .as_str()
            .unwrap()
            .starts_with("0-101-"),
        "the position keeps the primary's GTIDs: {state}"
    );
    // a server of another topology (the shared test server) does not have that history
    let _other = fresh_mydb(name).await;
    let mut rs = Rowstream::start(name, &myconfig(name, 6011, "", ""));
    let log = rs
        .expect_setup_stop(&[
            "cannot resume rowstream's position GTID 0-101-",
            "--resnapshot",
        ])
        .await;
    let last_run = &log[log.rfind("starting state").unwrap()..];
    assert!(!last_run.contains("streaming binlog file="), "{last_run}");
    assert_eq!(last_run.matches("\nerror:").count(), 1, "{last_run}");
}

/// TLS to MariaDB: a user that must use TLS, rowstream with `ssl_mode = "verify_ca"` and the
/// CA that signed the server certificate snapshots and streams; an unrelated CA fails `check`
/// with one line naming the TLS settings.
#[tokio::test(flavor = "multi_thread")]
async fn my_tls_verify_ca() {
    let name = "my_tls";
    let certs = std::env::temp_dir().join("rowstream-my-tls-certs");
    let (ca, cert, key, other_ca) = tls_files(&certs);
    let server = MariaServer::start_with(
        "tls",
        103,
        &[
            format!("--ssl-ca={}", ca.display()),
            format!("--ssl-cert={}", cert.display()),
            format!("--ssl-key={}", key.display()),
        ],
    );
    server.sql(
        "CREATE USER rowstream@'%' IDENTIFIED BY 'rowstream' REQUIRE SSL; GRANT ALL ON *.* TO rowstream@'%';
         CREATE DATABASE my_tls; CREATE TABLE my_tls.t (id INT PRIMARY KEY, v INT);
         INSERT INTO my_tls.t VALUES (1, 1), (2, 2);",
    );
    state_dir(name);
    let cfg = |ca: &std::path::Path| {
        myconfig(
            name,
            6012,
            &format!(
                "ssl_mode = \"verify_ca\"\nssl_root_cert = \"{}\"",
                ca.display()
            ),
            "",
        )
        .replace(
            &format!("{MY}/{name}"),
            &format!(
                "mysql://rowstream:rowstream@127.0.0.1:{}/my_tls?prefer_socket=false",
                server.port
            ),
        )
    };
    let (code, out) = run_check(name, &cfg(&ca));
    assert_eq!(code, Some(0), "{out}");
    let rs = Rowstream::start(name, &cfg(&ca));
    let mut r = Reader::new(&mytopic(name, "t"));
    r.until(60, "the snapshot over TLS", |x| count_data(x) >= 2);
    server.sql("INSERT INTO my_tls.t VALUES (3, 3)");
    r.until(60, "a change over TLS", |x| count_data(x) >= 3);
    assert_eq!(rs.stop(), 0);
    let (code, out) = run_check(name, &cfg(&other_ca));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("check source.ssl_mode and source.ssl_root_cert"),
        "{out}"
    );
    assert_eq!(out.matches("cannot connect").count(), 1, "{out}");
}

/// MariaDB: `rowstream_source_retained_bytes` is the binlog the server keeps after rowstream's
/// stored position; it grows while the connector is paused and writes go on, and falls once
/// rowstream has caught up.
#[tokio::test(flavor = "multi_thread")]
async fn my_retained_binlog_grows_while_paused() {
    let name = "rs_my_retained";
    state_dir(name);
    let addr = free_addr();
    let mut c = fresh_mydb(name).await;
    c.query_drop("CREATE TABLE t(id int primary key, pad varchar(300))")
        .await
        .unwrap();
    let cfg = myconfig(name, 5411, "", &format!("[admin]\nlisten = \"{addr}\"\n"));
    let rs = Rowstream::start(name, &cfg);
    let mut r = Reader::on(BROKER, &mytopic(name, "t"));
    wait_binlog_reader(name).await;
    wait_for(30, "the admin listener", || async {
        std::net::TcpStream::connect(&addr).is_ok()
    })
    .await;
    wait_for(30, "the retained binlog measured", || async {
        metric(&addr, "rowstream_source_retained_bytes").unwrap_or(-1.0) >= 0.0
    })
    .await;
    pause_and_wait(&addr).await;
    let before = metric(&addr, "rowstream_source_retained_bytes").unwrap();
    for chunk in 0..10 {
        let values: Vec<String> = (0..1000)
            .map(|i| format!("({}, REPEAT('x', 250))", chunk * 1000 + i))
            .collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", values.join(",")))
            .await
            .unwrap();
    }
    wait_for(30, "retained binlog grown by the writes", || async {
        metric(&addr, "rowstream_source_retained_bytes").unwrap_or(-1.0) > before + 2_000_000.0
    })
    .await;
    let peak = metric(&addr, "rowstream_source_retained_bytes").unwrap();
    let (code, body) = http(&addr, "PUT", "/connectors/rowstream/resume", None, "");
    assert_eq!(code, 202, "{body}");
    r.until(60, "the rows written while paused", |x| {
        count_data(x) >= 10_000
    });
    wait_for(30, "retained binlog back down once caught up", || async {
        metric(&addr, "rowstream_source_retained_bytes").unwrap_or(f64::MAX) < peak - 2_000_000.0
    })
    .await;
    assert_eq!(rs.stop(), 0);
}

/// A steady write load on a server that may go away: inserts of new ids, updates (`v = v + 1`)
/// and deletes of random ids, and transactions of three, ~`rate` statements a second, each
/// committed on its own; reconnects when the server is gone. `pause` waits until no
/// statement is in flight.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pause: std::sync::Arc<std::sync::atomic::AtomicBool>,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(url: &str, first_id: i64, rate: u64) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
        use std::sync::Arc;
        let (stop, pause, paused) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let done = Arc::new(AtomicU64::new(0));
        let opts = mysql_async::Opts::from_url(url).unwrap();
        let (s, p, pd, d) = (stop.clone(), pause.clone(), paused.clone(), done.clone());
        let task = tokio::spawn(async move {
            let mut conn: Option<mysql_async::Conn> = None;
            let mut next = first_id;
            let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(1000 / rate));
            while !s.load(SeqCst) {
                tick.tick().await;
                if p.load(SeqCst) {
                    pd.store(true, SeqCst);
                    continue;
                }
                pd.store(false, SeqCst);
                let mut c = match conn.take() {
                    Some(c) => c,
                    None => match mysql_async::Conn::new(opts.clone()).await {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                };
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let some = 1 + (rng >> 8) as i64 % next;
                let sql = match rng % 10 {
                    0..=3 => {
                        next += 1;
                        format!("INSERT INTO t VALUES ({}, 0, 'new')", next - 1)
                    }
                    4..=7 => format!("UPDATE t SET v = v + 1 WHERE id = {some}"),
                    8 => format!("DELETE FROM t WHERE id = {some}"),
                    _ => {
                        next += 1;
                        format!(
                            "START TRANSACTION; INSERT INTO t VALUES ({}, 0, 'txn'); UPDATE t SET v = v + 1 WHERE id = {some}; UPDATE t SET v = v + 1 WHERE id = {}; COMMIT",
                            next - 1,
                            next - 1
                        )
                    }
                };
                if c.query_drop(sql).await.is_ok() {
                    d.fetch_add(1, SeqCst);
                    conn = Some(c);
                }
            }
        });
        Load {
            stop,
            pause,
            paused,
            done,
            task,
        }
    }

    fn done(&self) -> u64 {
        self.done.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait until `n` more statements have committed.
    async fn more(&self, n: u64, what: &str) {
        let from = self.done();
        wait_for(120, what, || async { self.done() >= from + n }).await;
    }

    async fn pause(&self) {
        self.pause.store(true, std::sync::atomic::Ordering::SeqCst);
        wait_for(30, "the writes paused", || async {
            self.paused.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    }

    fn resume(&self) {
        self.pause.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap();
    }
}

/// What happens to the server under a running rowstream.
#[derive(Debug, Clone, Copy)]
enum Disruption {
    /// `FLUSH BINARY LOGS`: a real ROTATE, then the next file
    Flush,
    /// SIGTERM, then start again: the binlog ends with STOP, the server writes a new file
    Restart,
    /// SIGKILL, then start again: the binlog is left open, crash recovery, a new file
    Kill9,
    /// rowstream stops; the server is stopped and started, then killed and started, under
    /// writes; rowstream starts again: one dump reads on through a file that ends with STOP and
    /// one that ends with nothing, into the newest
    WhileStopped,
}

/// A MariaDB server under a steady write load (inserts, updates, deletes, transactions) is
/// rotated with `FLUSH BINARY LOGS`, stopped with SIGTERM and started again twice, and killed
/// with SIGKILL and started again, while rowstream runs, resuming by `resume_by`; then stopped
/// and killed while rowstream is stopped, so that its next dump reads on from a file that ended
/// without a ROTATE (the server's made-up ROTATE names the next file). After each:
/// `verify` finds no difference with the writes paused, and the stored position names the
/// server's current binlog file. At the end, each key's records are its exact history (no
/// change lost, none repeated, no key going back), and nothing was logged as refused.
async fn real_server_disruptions(name: &str, resume_by: &str, server_id: u32, replica_id: u32) {
    let mut server = MariaServer::start(name, server_id);
    server.sql(&format!(
        "CREATE USER rowstream@'%' IDENTIFIED BY 'rowstream'; GRANT ALL ON *.* TO rowstream@'%';
         CREATE DATABASE {name}; CREATE TABLE {name}.t (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(16));
         USE {name}; INSERT INTO t SELECT seq, 0, 'snap' FROM seq_1_to_50;"
    ));
    state_dir(name);
    let url = format!(
        "mysql://rowstream:rowstream@127.0.0.1:{}/{name}?prefer_socket=false",
        server.port
    );
    let cfg = myconfig(
        name,
        replica_id,
        &format!("resume_by = \"{resume_by}\""),
        "",
    )
    .replace(&format!("{MY}/{name}"), &url);
    let mut rs = Rowstream::start(name, &cfg);
    let mut r = Reader::new(&mytopic(name, "t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 50);
    let load = Load::start(&url, 51, 40);
    let steps = [
        Disruption::Flush,
        Disruption::Restart,
        Disruption::Flush,
        Disruption::Restart,
        Disruption::Kill9,
        Disruption::WhileStopped,
    ];
    for step in steps {
        load.more(40, "writes before the disruption").await;
        match step {
            Disruption::Flush => {
                server.sql("FLUSH BINARY LOGS");
            }
            Disruption::Restart => server.restart(false),
            Disruption::Kill9 => server.restart(true),
            Disruption::WhileStopped => {
                assert_eq!(rs.stop(), 0);
                load.more(40, "writes while rowstream is stopped").await;
                server.restart(false);
                load.more(40, "writes after the restart").await;
                server.restart(true);
                load.more(40, "writes after the kill").await;
                rs = Rowstream::start(name, &cfg);
            }
        }
        load.more(80, &format!("writes after {step:?}")).await;
        load.pause().await;
        let (code, out) = run_verify(&rs.cfg, 120);
        assert_eq!(code, Some(0), "after {step:?}: {out}");
        assert!(
            out.contains("0 missing, 0 extra, 0 different"),
            "after {step:?}: {out}"
        );
        // the stored position is in the file the server writes now, at its end
        let (file, pos) = server.binlog_end();
        let stored = stored_state(name);
        assert_eq!(
            stored["position"]["file"].as_str(),
            Some(file.as_str()),
            "after {step:?}: {stored} (server at {file}:{pos})"
        );
        rs.assert_running();
        load.resume();
    }
    load.stop().await;
    let last = server.sql(&format!("SELECT MAX(id) FROM {name}.t"));
    let last: i64 = last.parse().unwrap();
    r.until(60, "the last row", |x| {
        x.iter().any(|x| x.after()["id"].as_i64() == Some(last))
    });
    let snapshot_rows = assert_exact_histories(&r.records);
    assert_eq!(snapshot_rows, 50);
    let log = rs.log_text();
    assert!(
        log.matches("transient failure").count() >= 3,
        "rowstream reconnected after each restart: {log}"
    );
    for bad in [
        "behind the stored position",
        "went back",
        "went backwards",
        " ERROR ",
    ] {
        assert!(!log.contains(bad), "`{bad}` in the log: {log}");
    }
    if resume_by == "gtid" {
        assert!(
            log.contains("streaming binlog from a GTID position"),
            "{log}"
        );
    } else {
        assert!(
            !log.contains("streaming binlog from a GTID position"),
            "{log}"
        );
    }
    assert_eq!(rs.stop(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn my_real_restarts_lose_nothing_resuming_by_gtid() {
    real_server_disruptions("my_restart_gtid", "gtid", 111, 6031).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn my_real_restarts_lose_nothing_resuming_by_file() {
    real_server_disruptions("my_restart_file", "file", 112, 6032).await;
}
