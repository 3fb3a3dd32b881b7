//! Postgres → Kafka integration tests against the real services (scripts/services.sh up).
mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

/// Idle database: the slot's confirmed LSN advances though no table changes (rowstream's own
/// heartbeat messages give it positions to confirm), and heartbeats carry their commit time.
/// (Heartbeat shape and partitions for both sources: `both.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn idle_slot_advances() {
    let name = "rs_idle";
    let db = fresh_db(name).await;
    db.batch_execute("CREATE TABLE quiet(id int primary key)")
        .await
        .unwrap();
    state_dir(name);
    let cfg = config(name, "", "").replace("interval_ms = 1000", "interval_ms = 300");
    let mut rs = Rowstream::start(name, &cfg);
    let admin = connect("postgres").await;
    wait_for(30, "slot created", || async {
        confirmed_lsn(&admin, name).await.is_some()
    })
    .await;
    let first = confirmed_lsn(&admin, name).await.unwrap();
    wait_for(30, "confirmed_flush_lsn to advance", || async {
        confirmed_lsn(&admin, name).await.unwrap() > first
    })
    .await;
    rs.assert_running();
    let mut r = Reader::new(&topic(name, "quiet"));
    r.until(30, "a heartbeat with a real eventTime", |recs| {
        recs.iter().any(|x| {
            x.op() == "MHEARTBEAT"
                && x.value["payload"]["timestamp"]["eventTime"]
                    .as_i64()
                    .unwrap_or(-1)
                    > 1_600_000_000_000
        })
    });
    assert_eq!(count_data(&r.records), 0);
    assert_eq!(rs.stop(), 0);
}

/// Primary-key change, unchanged TOAST values, a table without primary key, TRUNCATE.
#[tokio::test(flavor = "multi_thread")]
async fn pk_change_toast_nopk_truncate() {
    let name = "rs_cases";
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE k(id int primary key, v text);
         CREATE TABLE big(id int primary key, n int, doc text);
         CREATE TABLE bigfull(id int primary key, n int, doc text);
         ALTER TABLE bigfull REPLICA IDENTITY FULL;
         CREATE TABLE nopk(a int, b text);
         ALTER TABLE nopk REPLICA IDENTITY FULL;
         CREATE TABLE tr(id int primary key);",
    )
    .await
    .unwrap();
    state_dir(name);
    let cfg = config(name, "", "").replace("partitions = 3", "partitions = 1");
    let rs = Rowstream::start(name, &cfg);
    let mut rk = Reader::new(&topic(name, "k"));
    rk.until(30, "topic", |_| true);
    let admin = connect("postgres").await;
    wait_streaming(&admin, name).await;
    // a value that stays TOASTed out of line: random text does not compress
    let doc: String = db
        .query_one(
            "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.batch_execute("INSERT INTO k VALUES (1, 'a'); UPDATE k SET id = 100 WHERE id = 1; UPDATE k SET v = 'b' WHERE id = 100; DELETE FROM k WHERE id = 100;").await.unwrap();
    db.execute("INSERT INTO big VALUES (1, 0, $1)", &[&doc])
        .await
        .unwrap();
    db.execute("INSERT INTO bigfull VALUES (1, 0, $1)", &[&doc])
        .await
        .unwrap();
    db.batch_execute("UPDATE big SET n = 1; UPDATE bigfull SET n = 1;")
        .await
        .unwrap();
    db.batch_execute("INSERT INTO nopk VALUES (1, 'x'); UPDATE nopk SET b = 'y'; INSERT INTO tr VALUES (1); TRUNCATE tr;").await.unwrap();

    let k = rk
        .until(30, "5 records on k", |r| count_data(r) >= 5)
        .to_vec();
    let k: Vec<&Rec> = k.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    let ops: Vec<(&str, Option<&str>)> = k.iter().map(|x| (x.op(), x.key.as_deref())).collect();
    assert_eq!(
        ops,
        vec![
            ("INSERT", Some("1")),
            ("DELETE", Some("1")),
            ("INSERT", Some("100")),
            ("UPDATE_AFTER", Some("100")),
            ("DELETE", Some("100"))
        ]
    );
    // PK change: the delete carries the old key as the log does (key columns only)
    assert_eq!(*k[1].before(), json!({"id": 1}));
    assert_eq!(k[1].value["payload"]["after"], json!(null));
    assert_eq!(*k[2].after(), json!({"id": 100, "v": "a"}));
    // default replica identity: an UPDATE without key change carries no old row
    assert_eq!(k[3].value["payload"]["before"], json!(null));
    assert_eq!(*k[3].after(), json!({"id": 100, "v": "b"}));
    assert_eq!(*k[4].before(), json!({"id": 100}));

    let mut rb = Reader::new(&topic(name, "big"));
    let b = rb
        .until(30, "2 records on big", |r| count_data(r) >= 2)
        .to_vec();
    let upd = b.iter().find(|x| x.op() == "UPDATE_AFTER").unwrap();
    assert_eq!(
        *upd.after(),
        json!({"id": 1, "n": 1, "doc": "__rowstream_unchanged_toast_value__"})
    );
    let mut rf = Reader::new(&topic(name, "bigfull"));
    let f = rf
        .until(30, "2 records on bigfull", |r| count_data(r) >= 2)
        .to_vec();
    let upd = f.iter().find(|x| x.op() == "UPDATE_AFTER").unwrap();
    assert_eq!(*upd.after(), json!({"id": 1, "n": 1, "doc": doc}));
    assert_eq!(*upd.before(), json!({"id": 1, "n": 0, "doc": doc}));

    let mut rn = Reader::new(&topic(name, "nopk"));
    let n = rn
        .until(30, "2 records on nopk", |r| count_data(r) >= 2)
        .to_vec();
    let n: Vec<&Rec> = n.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    assert!(n.iter().all(|x| x.key.is_none()));
    assert_eq!(n[0].value["schema"]["primaryKey"], json!(null));
    assert_eq!(*n[1].before(), json!({"a": 1, "b": "x"}));
    assert_eq!(*n[1].after(), json!({"a": 1, "b": "y"}));

    let mut rt = Reader::new(&topic(name, "tr"));
    let t = rt
        .until(30, "2 records on tr", |r| count_data(r) >= 2)
        .to_vec();
    let tr = t
        .iter()
        .find(|x| x.op() == "TRUNCATE")
        .expect("a TRUNCATE record");
    assert_eq!(
        tr.value["payload"]["ddl"],
        json!({"text": "TRUNCATE TABLE \"public\".\"tr\"", "ddlMeta": null})
    );
    assert_eq!(tr.key, None);
    assert_eq!(rs.stop(), 0);
}

/// `check` against a server with wal_level=replica names the problem and the fix.
#[tokio::test(flavor = "multi_thread")]
async fn check_names_wal_level_problem_and_fix() {
    let cfg =
        config("rs_check", "", "").replace("127.0.0.1:5432/rs_check", "127.0.0.1:5433/postgres");
    let (code, stdout) = run_check("rs_check_replica", &cfg);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("[FAIL] wal_level = replica"), "{stdout}");
    assert!(
        stdout.contains("fix: ALTER SYSTEM SET wal_level = logical; then restart postgres"),
        "{stdout}"
    );
    // and on the logical server the same check passes
    let name = "rs_check";
    let db = fresh_db(name).await;
    db.batch_execute("CREATE TABLE t(id int primary key, body text)")
        .await
        .unwrap();
    let (code, stdout) = run_check(name, &config(name, "", ""));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("[WARN] \"public\".\"t\" has TOASTable column(s) body"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: ALTER TABLE \"public\".\"t\" REPLICA IDENTITY FULL;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kafka at 127.0.0.1:9092 answers"),
        "{stdout}"
    );
    // --fix creates the publication and installs the DDL capture triggers
    assert!(
        stdout.contains("will be created FOR ALL TABLES on first run"),
        "{stdout}"
    );
    let (code, stdout) = run_check_with(name, &config(name, "", ""), &["--fix"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("[ok  ] created publication \"rs_check\" FOR ALL TABLES"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[ok  ] installed the DDL capture event triggers"),
        "{stdout}"
    );
    let n: i64 = db
        .query_one("SELECT count(*) FROM pg_event_trigger WHERE evtname IN ('rowstream_ddl', 'rowstream_drop')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let (_, stdout) = run_check(name, &config(name, "", ""));
    assert!(
        stdout.contains("[ok  ] publication \"rs_check\" exists"),
        "{stdout}"
    );
}

/// A bad config lists every problem with its key path and exits 2.
#[test]
fn bad_config_lists_every_problem() {
    let path = std::env::temp_dir().join("rowstream-test-badcfg.toml");
    std::fs::write(
        &path,
        "[source]\ntype = \"postgres\"\nurl = \"postgres://x@h/db\"\ntabels = [\"a.*\"]\n[kafka]\nbrokers = \"b:9092\"\npartitions = \"3\"\n[snapshot]\nmode = \"initial\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown key `source.tabels` (did you mean `source.tables`?)"),
        "{err}"
    );
    assert!(
        err.contains("`kafka.partitions`: expected an integer, found a string"),
        "{err}"
    );
}

/// Every type family: one row inserted before the snapshot and the same row after; both render
/// to the same, spec-exact values (fixtures/postgres/types.golden.json).
#[tokio::test(flavor = "multi_thread")]
async fn types_render_identically_before_and_after_snapshot() {
    let name = "rs_types";
    let db = fresh_db(name).await;
    let root = env!("CARGO_MANIFEST_DIR");
    db.batch_execute(
        &std::fs::read_to_string(format!("{root}/fixtures/postgres/types.sql")).unwrap(),
    )
    .await
    .unwrap();
    let row = std::fs::read_to_string(format!("{root}/fixtures/postgres/types_row.sql")).unwrap();
    db.batch_execute(&row.replace(":id", "1")).await.unwrap();
    state_dir(name);
    let rs = Rowstream::start(name, &config(name, "", ""));
    let mut r = Reader::new(&topic(name, "types_t"));
    r.until(60, "the snapshot row", |recs| count_data(recs) >= 1);
    db.batch_execute(&row.replace(":id", "2")).await.unwrap();
    let recs = r
        .until(60, "the streamed row", |recs| count_data(recs) >= 2)
        .to_vec();
    let golden = std::fs::read_to_string(format!("{root}/fixtures/postgres/types.golden.json"))
        .unwrap()
        .trim()
        .replace(
            "\"dbName\":\"types_dbg\"",
            &format!("\"dbName\":\"{name}\""),
        );
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    let snap = data.iter().find(|x| x.seq() == "-1").expect("snapshot row");
    let live = data.iter().find(|x| x.seq() != "-1").expect("streamed row");
    assert_eq!(
        schema_and_after(&snap.raw),
        golden,
        "snapshot row differs from the golden file"
    );
    assert_eq!(
        schema_and_after(&live.raw).replacen(
            "{\"dataColumn\":{\"id\":2,",
            "{\"dataColumn\":{\"id\":1,",
            1
        ),
        golden,
        "streamed row differs from the golden file"
    );
    assert_eq!(live.op(), "INSERT");
    // the infinite timestamp cannot be rendered: null, and a warning naming the column (once)
    let log = rs.log_text();
    assert_eq!(log.matches("column=c_ts_inf").count(), 1, "{log}");
    assert_eq!(rs.stop(), 0);
}

/// A table added to the config later gets its own snapshot, consistent with the stream: rows
/// written while it was not configured arrive once (as snapshot rows), later changes stream.
#[tokio::test(flavor = "multi_thread")]
async fn table_added_later_gets_its_own_snapshot() {
    let name = "rs_added";
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE a(id int primary key, v int);
         CREATE TABLE b(id int primary key, v int);
         INSERT INTO a VALUES (1, 0); INSERT INTO b SELECT g, 0 FROM generate_series(1, 100) g;",
    )
    .await
    .unwrap();
    state_dir(name);
    let only_a = config(name, "tables = [\"public.a\"]", "");
    let rs = Rowstream::start(name, &only_a);
    let mut ra = Reader::new(&topic(name, "a"));
    ra.until(30, "a's snapshot", |r| count_data(r) >= 1);
    db.batch_execute("UPDATE b SET v = 1 WHERE id <= 10; INSERT INTO a VALUES (2, 0);")
        .await
        .unwrap();
    ra.until(30, "a's second row", |r| count_data(r) >= 2);
    assert_eq!(rs.stop(), 0);
    // b changes while nobody streams it
    db.batch_execute("UPDATE b SET v = 2 WHERE id <= 5; DELETE FROM b WHERE id = 100;")
        .await
        .unwrap();
    let all = config(name, "tables = [\"public.*\"]", "");
    let rs = Rowstream::start(name, &all);
    let mut rb = Reader::new(&topic(name, "b"));
    rb.until(60, "b's snapshot", |r| count_data(r) >= 99);
    db.batch_execute("UPDATE b SET v = 3 WHERE id = 1;")
        .await
        .unwrap();
    let recs = rb
        .until(60, "b's streamed update", |r| count_data(r) >= 100)
        .to_vec();
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    assert_eq!(
        data.len(),
        100,
        "99 snapshot rows and one update, nothing else"
    );
    let snap: Vec<&&Rec> = data.iter().filter(|x| x.seq() == "-1").collect();
    assert_eq!(snap.len(), 99);
    let v_of = |id: i64| {
        snap.iter()
            .find(|x| x.after()["id"] == json!(id))
            .unwrap()
            .after()["v"]
            .clone()
    };
    assert_eq!(v_of(1), json!(2));
    assert_eq!(v_of(7), json!(1));
    assert_eq!(v_of(50), json!(0));
    let upd = data.iter().find(|x| x.op() == "UPDATE_AFTER").unwrap();
    assert_eq!(*upd.after(), json!({"id": 1, "v": 3}));
    // a was not snapshotted again
    db.batch_execute("INSERT INTO a VALUES (3, 0);")
        .await
        .unwrap();
    let a = ra
        .until(30, "a's third row", |r| count_data(r) >= 3)
        .to_vec();
    assert_eq!(count_data(&a), 3);
    assert_eq!(rs.stop(), 0);
}

/// `encode.split_update` and custom key columns (`source.keys`).
#[tokio::test(flavor = "multi_thread")]
async fn split_update_and_custom_keys() {
    let name = "rs_split";
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE s(id int primary key, region text, v int); ALTER TABLE s REPLICA IDENTITY FULL;
         INSERT INTO s VALUES (1, 'eu', 0);",
    )
    .await
    .unwrap();
    state_dir(name);
    let cfg = config(
        name,
        "keys = { \"public.s\" = [\"region\", \"id\"] }",
        "[encode]\nsplit_update = true\n",
    )
    .replace("[kafka]", "[kafka]\nkey_separator = \"|\"");
    let rs = Rowstream::start(name, &cfg);
    let mut r = Reader::new(&topic(name, "s"));
    r.until(30, "snapshot", |x| count_data(x) >= 1);
    db.batch_execute("UPDATE s SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    let recs = r.until(30, "split update", |x| count_data(x) >= 3).to_vec();
    let d: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    assert_eq!(d[0].key.as_deref(), Some("eu|1"));
    assert_eq!(d[0].value["schema"]["primaryKey"], json!(["region", "id"]));
    assert_eq!((d[1].op(), d[2].op()), ("UPDATE_BEFORE", "UPDATE_AFTER"));
    assert_eq!(d[1].seq(), d[2].seq(), "both halves share one sequenceId");
    assert_eq!(*d[1].before(), json!({"id": 1, "region": "eu", "v": 0}));
    assert_eq!(*d[2].after(), json!({"id": 1, "region": "eu", "v": 1}));
    assert_eq!(d[1].partition, d[2].partition);
    assert!(d[1..].iter().all(|x| x.key.as_deref() == Some("eu|1")));
    assert_eq!(rs.stop(), 0);
}

/// A private broker on `port` (to pause), a fresh database with `ddl` run, and a config that
/// points at that broker with `rest` appended.
async fn with_private_broker(
    name: &str,
    port: u16,
    ddl: &str,
    rest: &str,
) -> (Broker, tokio_postgres::Client, String) {
    let broker = Broker::start(port);
    let db = fresh_db(name).await;
    db.batch_execute(ddl).await.unwrap();
    state_dir(name);
    let cfg = config(name, "", rest).replace("127.0.0.1:9092", &format!("127.0.0.1:{port}"));
    (broker, db, cfg)
}

/// The broker stalls for longer than wal_sender_timeout while the database keeps writing:
/// rowstream holds back (bounded memory), keeps its replication connection alive, and delivers
/// everything once the broker is back, without restarting.
#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_slows_the_source_and_loses_nothing() {
    let broker_port = free_port();
    let name = "rs_outage";
    let admin_addr = free_addr();
    let (broker, db, cfg) = with_private_broker(
        name,
        broker_port,
        "CREATE TABLE o(id int primary key, pad text)",
        &format!("[admin]\nlisten = \"{admin_addr}\"\n"),
    )
    .await;
    let mut rs = Rowstream::start(name, &cfg);
    let brokers = &format!("127.0.0.1:{broker_port}");
    let mut r = Reader::on(brokers, &topic(name, "o"));
    r.until(30, "topic", |_| true);
    let admin = connect("postgres").await;
    wait_streaming(&admin, name).await;
    db.batch_execute("INSERT INTO o SELECT g, 'before' FROM generate_series(1, 100) g")
        .await
        .unwrap();
    r.until(30, "rows before the outage", |x| count_data(x) >= 100);
    let pid_before: i32 = streaming_pid(&admin, name).await.unwrap();
    broker.pause();
    // 12 s of writes while the broker is frozen: longer than wal_sender_timeout (10 s)
    let t0 = std::time::Instant::now();
    let mut i = 1000;
    while t0.elapsed() < Duration::from_secs(12) {
        db.execute("INSERT INTO o SELECT g, repeat('x', 500) FROM generate_series($1::int, $1::int + 99) g", &[&i]).await.unwrap();
        i += 100;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = (i - 1000) as usize;
    rs.assert_running();
    // meanwhile the health endpoint says degraded, with the reason
    let health = http_get(&admin_addr, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 503")
            && health.contains("degraded: Kafka has acknowledged nothing"),
        "{health}"
    );
    broker.resume();
    let recs = r.until(120, "every row written during the outage", |x| {
        x.iter()
            .filter(|y| y.op() == "INSERT")
            .map(|y| y.after()["id"].as_i64().unwrap_or(-1))
            .collect::<std::collections::HashSet<_>>()
            .len()
            >= 100 + written
    });
    let ids: std::collections::HashSet<i64> = recs
        .iter()
        .filter(|y| y.op() == "INSERT")
        .filter_map(|y| y.after()["id"].as_i64())
        .collect();
    assert!((1000..1000 + written as i64).all(|k| ids.contains(&k)));
    rs.assert_running();
    // the same replication connection carried on: the server never timed us out
    let pid_after: i32 = streaming_pid(&admin, name).await.unwrap();
    assert_eq!(
        pid_before, pid_after,
        "the replication connection was replaced during the outage"
    );
    assert!(!rs.log_text().contains("ERROR"), "{}", rs.log_text());
    wait_for(30, "healthy again", || async {
        http_get(&admin_addr, "/healthz").starts_with("HTTP/1.1 200")
    })
    .await;
    assert_eq!(rs.stop(), 0);
}

/// The admin endpoint: /healthz answers ok, /metrics counts what was delivered.
#[tokio::test(flavor = "multi_thread")]
async fn admin_health_and_metrics() {
    let name = "rs_admin";
    let db = fresh_db(name).await;
    db.batch_execute("CREATE TABLE t(id int primary key); INSERT INTO t VALUES (1), (2), (3);")
        .await
        .unwrap();
    state_dir(name);
    let admin = free_addr();
    let rs = Rowstream::start(
        name,
        &config(name, "", &format!("[admin]\nlisten = \"{admin}\"\n")),
    );
    let mut r = Reader::new(&topic(name, "t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 3);
    wait_for(30, "admin endpoint", || async {
        std::net::TcpStream::connect(&admin).is_ok()
    })
    .await;
    let h = http_get(&admin, "/healthz");
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok\n"), "{h}");
    wait_for(30, "metrics", || async {
        http_get(&admin, "/metrics").contains("\nrowstream_snapshot_rows_total 3\n")
    })
    .await;
    let m = http_get(&admin, "/metrics");
    assert!(m.contains("# TYPE rowstream_records_total counter"), "{m}");
    assert!(!m.contains("hunter2"));
    assert_eq!(rs.stop(), 0);
}

/// `sslmode=require`: every session (replication included) is encrypted; a CA that did not sign
/// the server certificate is refused with a clear error.
#[tokio::test(flavor = "multi_thread")]
async fn tls_sslmode_require() {
    let name = "rs_tls";
    let db = one_row_db(name).await;
    let cfg = config(name, "", "").replace(
        &format!("{PG}/{name}\""),
        &format!("{PG}/{name}?sslmode=require\""),
    );
    assert!(cfg.contains("sslmode=require"));
    let rs = Rowstream::start(name, &cfg);
    let mut r = Reader::new(&topic(name, "t"));
    r.until(60, "the snapshot row", |x| count_data(x) >= 1);
    let admin = connect("postgres").await;
    wait_streaming(&admin, name).await;
    db.batch_execute("INSERT INTO t VALUES (2)").await.unwrap();
    r.until(60, "the streamed row", |x| count_data(x) >= 2);
    let pid = streaming_pid(&admin, name).await.unwrap();
    let ssl: bool = admin
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the replication connection is not encrypted");
    assert_eq!(rs.stop(), 0);
    // with a CA file, certificates are verified: the server's self-signed snakeoil certificate
    // as CA verifies the chain, but it names the machine's host name, not 127.0.0.1, so the
    // host name check fails and `check` says it cannot connect
    if let Ok(snakeoil) = std::fs::read("/etc/ssl/certs/ssl-cert-snakeoil.pem") {
        let ca = std::env::temp_dir().join("rowstream-test-snakeoil-ca.pem");
        std::fs::write(&ca, snakeoil).unwrap();
        let cfg2 = cfg.replace(
            "[kafka]",
            &format!("ssl_root_cert = \"{}\"\n[kafka]", ca.display()),
        );
        let (code, stdout) = run_check("rs_tls_ca", &cfg2);
        assert_eq!(code, Some(1), "{stdout}");
        assert!(stdout.contains("[FAIL] cannot connect"), "{stdout}");
    }
}

/// Records Kafka does not acknowledge within `message.timeout.ms` (the broker frozen longer
/// than that) are a transient failure: the pipeline restarts in-process from the stored
/// position, the process never exits, and every row arrives once the broker is back.
#[tokio::test(flavor = "multi_thread")]
async fn delivery_timeout_restarts_in_process_and_loses_nothing() {
    let broker_port = free_port();
    let name = "rs_deliv";
    let (broker, db, cfg) = with_private_broker(
        name,
        broker_port,
        "CREATE TABLE d(id int primary key)",
        "[kafka.properties]\n\"message.timeout.ms\" = 2000\n",
    )
    .await;
    let mut rs = Rowstream::start(name, &cfg);
    let mut r = Reader::on(&format!("127.0.0.1:{broker_port}"), &topic(name, "d"));
    r.until(30, "topic", |_| true);
    let admin = connect("postgres").await;
    wait_streaming(&admin, name).await;
    db.batch_execute("INSERT INTO d SELECT g FROM generate_series(1, 100) g")
        .await
        .unwrap();
    r.until(30, "rows before the outage", |x| count_data(x) >= 100);
    broker.pause();
    db.batch_execute("INSERT INTO d SELECT g FROM generate_series(101, 300) g")
        .await
        .unwrap();
    // the undelivered records time out: a transient failure, handled in-process
    wait_for(
        60,
        "an in-process restart after the delivery timeout",
        || {
            let log = rs.log_text();
            async move { log.contains("transient failure: restarting from the stored position") }
        },
    )
    .await;
    rs.assert_running();
    broker.resume();
    let recs = r.until(120, "every row", |x| {
        x.iter()
            .filter_map(|y| y.after()["id"].as_i64())
            .collect::<std::collections::HashSet<_>>()
            .len()
            >= 300
    });
    let ids: std::collections::HashSet<i64> = recs
        .iter()
        .filter_map(|y| y.after()["id"].as_i64())
        .collect();
    assert!((1..=300).all(|k| ids.contains(&k)));
    rs.assert_running();
    assert!(rs.log_text().contains("not delivered"), "{}", rs.log_text());
    assert_eq!(rs.stop(), 0);
}

/// A snapshot the user may not read stops at once (no retry loop) with the GRANT that fixes it.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_permission_error_stops_with_its_fix() {
    let name = "rs_perm";
    let db = fresh_db(name).await;
    db.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE {name}_user LOGIN REPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         CREATE TABLE secret(id int primary key); INSERT INTO secret VALUES (1);
         REVOKE ALL ON secret FROM PUBLIC;
         CREATE PUBLICATION {name} FOR ALL TABLES;"
    ))
    .await
    .unwrap();
    state_dir(name);
    let cfg = config(name, "", "").replace(
        "postgres://postgres@127.0.0.1:5432",
        &format!("postgres://{name}_user@127.0.0.1:5432"),
    );
    let mut rs = Rowstream::start(name, &cfg);
    let log = rs
        .expect_setup_stop(&[
            "cannot snapshot \"public\".\"secret\": permission denied",
            "fix: GRANT SELECT ON \"public\".\"secret\" TO",
        ])
        .await;
    // printed once on stderr, not repeated by every layer
    assert_eq!(log.matches("error: cannot snapshot").count(), 1, "{log}");
}

/// Records over `message.max.bytes` follow their table's `kafka.oversized` policy: a
/// placeholder replaces the large value, a skipped record is left out, a parked one goes to
/// the dead-letter topic (its size, no row images), and the default stops the run naming the
/// table, key, size and the settings to raise.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_records_follow_their_policy() {
    let name = "rs_big";
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE docs(id int primary key, body text);
         CREATE TABLE skipme(id int primary key, body text);
         CREATE TABLE strict(id int primary key, body text);
         CREATE TABLE parkme(id int primary key, body text);",
    )
    .await
    .unwrap();
    state_dir(name);
    let dlq = format!("{name}-{}-dead", run_id());
    let cfg = config(
        name,
        "",
        &format!("[kafka.properties]\n\"message.max.bytes\" = 200000\n[errors]\ndead_letter_topic = \"{dlq}\"\n"),
    )
    .replace(
        "[kafka]",
        "[kafka]\noversized_tables = { \"public.docs\" = \"placeholder\", \"public.skipme\" = \"skip\", \"public.parkme\" = \"park\" }",
    );
    let mut rs = Rowstream::start(name, &cfg);
    wait_streaming(&connect("postgres").await, name).await;
    // 300 kB that does not compress away: md5 text
    let big = "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 9400) g";
    db.batch_execute(&format!(
        "INSERT INTO docs VALUES (1, ({big})), (2, 'small');
         INSERT INTO skipme VALUES (1, ({big})), (2, 'small');
         INSERT INTO parkme VALUES (1, ({big})), (2, 'small');"
    ))
    .await
    .unwrap();
    let mut rd = Reader::new(&topic(name, "docs"));
    let d = rd.until(60, "both docs", |x| count_data(x) >= 2).to_vec();
    let by_key = |k: &str| d.iter().find(|x| x.key.as_deref() == Some(k)).unwrap();
    assert_eq!(
        *by_key("1").after(),
        json!({"id": 1, "body": "__rowstream_oversized_value__"})
    );
    assert_eq!(*by_key("2").after(), json!({"id": 2, "body": "small"}));
    let mut rk = Reader::new(&topic(name, "skipme"));
    // the record after the skipped one arrives; the skipped one never does
    let k = rk
        .until(60, "skipme's small row", |x| count_data(x) >= 1)
        .to_vec();
    db.batch_execute("INSERT INTO skipme VALUES (3, 'after')")
        .await
        .unwrap();
    let k2 = rk
        .until(60, "skipme's third row", |x| count_data(x) >= 2)
        .to_vec();
    let mut ids: Vec<i64> = k2
        .iter()
        .filter(|x| x.op() == "INSERT")
        .filter_map(|x| x.after()["id"].as_i64())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![2, 3], "{k:?}");
    // the parked one: in the dead-letter topic with its size and no images, the next row in
    // its topic
    let mut rp = Reader::new(&topic(name, "parkme"));
    let p = rp
        .until(60, "parkme's small row", |x| count_data(x) >= 1)
        .to_vec();
    let keys: Vec<&str> = p
        .iter()
        .filter(|x| x.op() == "INSERT")
        .filter_map(|x| x.key.as_deref())
        .collect();
    assert_eq!(keys, ["2"]);
    let mut rdlq = Reader::new(&dlq);
    let parked = rdlq
        .until(60, "the parked record", |x| !x.is_empty())
        .to_vec();
    assert_eq!(parked.len(), 1, "{parked:#?}");
    let v = &parked[0].value;
    assert_eq!(parked[0].key.as_deref(), Some("1"));
    assert_eq!(v["parked"], "OVERSIZED");
    assert_eq!(v["table"], "public.parkme");
    assert_eq!(v["topic"], topic(name, "parkme").as_str());
    assert_eq!(v["op"], "INSERT");
    assert_eq!(v["record"], json!(null));
    assert!(v["size"].as_u64().unwrap() > 300_000, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("over the producer's message.max.bytes (200000)"),
        "{v}"
    );
    assert!(v["position"]["lsn"].is_string(), "{v}");
    rs.assert_running();
    db.batch_execute(&format!("INSERT INTO strict VALUES (7, ({big}))"))
        .await
        .unwrap();
    rs.expect_setup_stop(&[
        "a record of public.strict (key 7) is 30",
        "bytes, over the producer's message.max.bytes (200000)\n  fix: raise kafka.properties.\"message.max.bytes\"",
    ])
    .await;
}

/// A record over the broker's own size limit (the broker's message.max.bytes 20000, under the
/// client's 1 MB, so only the broker can refuse it): one line naming the topic, the key, the
/// size and the settings to change, exit 1, no restart loop.
/// A value over librdkafka's default queue (16 MB): with `message.max.bytes` raised on both
/// sides, a 20 MB value arrives whole, in the snapshot and streamed (the producer's queue
/// follows `message.max.bytes`; at 16 MB the record waited for room for ever, no error).
#[tokio::test(flavor = "multi_thread")]
async fn values_over_16_mb_arrive_when_the_limits_allow_them() {
    let port = free_port();
    let name = "rs_huge_value";
    let broker = Broker::with(port, |_| vec!["message.max.bytes=48000000".into()]);
    let db = fresh_db(name).await;
    let value = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 655360) g)";
    db.batch_execute(&format!(
        "CREATE TABLE docs(id int primary key, body text); INSERT INTO docs VALUES (1, {value})"
    ))
    .await
    .unwrap();
    state_dir(name);
    let cfg = config(
        name,
        "",
        "[kafka.properties]\n\"message.max.bytes\" = 48000000\n",
    )
    .replace("127.0.0.1:9092", &format!("127.0.0.1:{port}"));
    let rs = Rowstream::start(name, &cfg);
    wait_streaming(&connect("postgres").await, name).await;
    db.batch_execute(&format!("INSERT INTO docs VALUES (2, {value})"))
        .await
        .unwrap();
    let mut r = Reader::on(&format!("127.0.0.1:{port}"), &topic(name, "docs"));
    let recs = r
        .until(120, "both 20 MB rows", |x| count_data(x) >= 2)
        .to_vec();
    let mut lens: Vec<(String, usize)> = recs
        .iter()
        .filter(|x| x.op() == "INSERT")
        .map(|x| {
            let body = x.after()["body"].as_str().unwrap_or("").len();
            (x.key.clone().unwrap_or_default(), body)
        })
        .collect();
    lens.sort();
    assert_eq!(
        lens,
        [("1".to_string(), 20_971_520), ("2".to_string(), 20_971_520)]
    );
    assert_eq!(rs.stop(), 0);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_refuses_a_record_over_its_size_limit() {
    let port = free_port();
    let name = "rs_broker_size";
    let broker = Broker::with(port, |_| vec!["message.max.bytes=20000".into()]);
    let db = fresh_db(name).await;
    db.batch_execute("CREATE TABLE docs(id int primary key, body text)")
        .await
        .unwrap();
    state_dir(name);
    let cfg = config(name, "", "").replace("127.0.0.1:9092", &format!("127.0.0.1:{port}"));
    let mut rs = Rowstream::start(name, &cfg);
    wait_streaming(&connect("postgres").await, name).await;
    // 128 kB that does not compress away: md5 text
    db.batch_execute(
        "INSERT INTO docs VALUES (1, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) g))",
    )
    .await
    .unwrap();
    let log = rs
        .expect_setup_stop(&[
            &format!(
                "kafka refused a record of topic {} (key 1, ",
                topic(name, "docs")
            ),
            "as too large",
            "fix: raise the broker's message.max.bytes or the topic's max.message.bytes",
        ])
        .await;
    let errors = log.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "one error line:\n{log}");
    drop(broker);
}

/// A broker with its authorizer on (StandardAuthorizer, SASL/PLAIN user `rs`) whose ACLs let
/// `rs` create and describe topics but not write them: the run stops with one line naming
/// the topic and the ACL to grant, exit 1, no restart loop.
#[tokio::test(flavor = "multi_thread")]
async fn topic_acl_refusal_stops_with_the_grant() {
    let port = free_port();
    let inner = free_port();
    let name = "rs_acl";
    let broker = acl_broker(port, inner);
    acl(
        inner,
        &[
            "--operation",
            "Describe",
            "--operation",
            "Create",
            "--operation",
            "Read",
            "--topic",
            "*",
        ],
    );
    acl(
        inner,
        &[
            "--operation",
            "Describe",
            "--operation",
            "IdempotentWrite",
            "--cluster",
        ],
    );
    let _db = one_row_db(name).await;
    let cfg = config(name, "", "").replace(BROKER, &format!("127.0.0.1:{port}")) + RS_PLAIN;
    let mut rs = Rowstream::start(name, &cfg);
    let log = rs
        .expect_setup_stop(&[
            &format!(
                "kafka refused to let rowstream write topic {}",
                topic(name, "t")
            ),
            "fix: grant the user of kafka.properties sasl.username WRITE",
        ])
        .await;
    let errors = log.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "one error line:\n{log}");
    drop(broker);
}

/// Kafka with SASL/SCRAM-SHA-512 and SASL/PLAIN (a broker whose listener requires it): `check` passes, a run
/// delivers and `verify` (which reads the topics with the same settings) finds the rows; a
/// wrong password is one clear line naming the credentials, for `check` and for `run` (which
/// stops before it touches the database).
#[tokio::test(flavor = "multi_thread")]
async fn kafka_sasl_scram() {
    kafka_sasl("rs_sasl", "SCRAM-SHA-512").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_sasl_plain() {
    kafka_sasl("rs_sasl_plain", "PLAIN").await;
}

async fn kafka_sasl(name: &str, mechanism: &str) {
    let broker_port = free_port();
    let broker = Broker::start_with_sasl(broker_port, mechanism, "rs", "s3cret");
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE t(id int primary key, v int); INSERT INTO t VALUES (1, 1), (2, 2);",
    )
    .await
    .unwrap();
    state_dir(name);
    let sasl = |password: &str| {
        config(name, "", "").replace("127.0.0.1:9092", &format!("127.0.0.1:{broker_port}"))
            + &format!(
                "[kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"{mechanism}\"\n\"sasl.username\" = \"rs\"\n\"sasl.password\" = \"{password}\"\n"
            )
    };
    let (code, out) = run_check(name, &sasl("s3cret"));
    assert_eq!(code, Some(0), "{out}");
    let rs = Rowstream::start(name, &sasl("s3cret"));
    wait_streaming(&connect("postgres").await, name).await;
    db.batch_execute("INSERT INTO t VALUES (3, 3)")
        .await
        .unwrap();
    let (code, out) = run_verify(&rs.cfg, 60);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("public.t: 3 rows in the database"), "{out}");
    assert_eq!(rs.stop(), 0);
    let (code, out) = run_check(name, &sasl("wrong"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("refused the connection"), "{out}");
    assert!(out.contains("sasl.username, sasl.password"), "{out}");
    assert!(
        !out.contains("wrong\""),
        "the password is never printed: {out}"
    );
    let mut rs = Rowstream::start(name, &sasl("wrong"));
    let refused = format!("error: kafka at 127.0.0.1:{broker_port} refused the connection: ");
    let log = rs
        .expect_setup_stop(&[
            &refused,
            "SASL authentication error",
            "fix: check sasl.username, sasl.password and sasl.mechanisms",
        ])
        .await;
    assert!(
        !log.contains("wrong"),
        "the password is never printed: {log}"
    );
    let said = log
        .lines()
        .filter(|l| !l.contains(" DEBUG ") && l.contains("SASL authentication error"));
    assert_eq!(said.count(), 1, "said once: {log}");
    drop(broker);
}

/// Kafka over TLS (`security.protocol = "SSL"`, `ssl.ca.location`), served by the broker itself
/// (an SSL listener with a PEM key store; every connection librdkafka makes is TLS): `check`
/// passes, a run delivers, `verify` reads the topics over TLS. A certificate from another CA is one clear line, for `check` and `run`.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_tls() {
    let name = "rs_kafka_tls";
    let certs = std::env::temp_dir().join("rowstream-kafka-tls");
    let (ca, cert, key, other_ca) = tls_files(&certs);
    let port = free_port();
    let broker = Broker::start_tls(port, &cert, &key);
    let db = fresh_db(name).await;
    db.batch_execute("CREATE TABLE t(id int primary key, v int); INSERT INTO t VALUES (1, 1);")
        .await
        .unwrap();
    state_dir(name);
    let tls = |ca: &std::path::Path| {
        config(name, "", "").replace("127.0.0.1:9092", &format!("127.0.0.1:{port}"))
            + &format!(
                "[kafka.properties]\n\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"{}\"\n",
                ca.display()
            )
    };
    let (code, out) = run_check(name, &tls(&ca));
    assert_eq!(code, Some(0), "{out}");
    let rs = Rowstream::start(name, &tls(&ca));
    wait_streaming(&connect("postgres").await, name).await;
    db.batch_execute("INSERT INTO t VALUES (2, 2)")
        .await
        .unwrap();
    let (code, out) = run_verify(&rs.cfg, 60);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("public.t: 2 rows in the database"), "{out}");
    assert_eq!(rs.stop(), 0);
    let (code, out) = run_check(name, &tls(&other_ca));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("refused the connection"), "{out}");
    assert!(out.contains("ssl.ca.location"), "{out}");
    let mut rs = Rowstream::start(name, &tls(&other_ca));
    rs.expect_setup_stop(&[
        &format!("error: kafka at 127.0.0.1:{port} refused the connection: "),
        "certificate verify failed",
        "fix: check ssl.ca.location",
    ])
    .await;
    drop(broker);
}

/// The slot loses the WAL it needs for real (`wal_status = lost`: a private server with
/// `max_slot_wal_keep_size = 1MB` recycles WAL while rowstream is stopped): the restart stops
/// with one error line naming it and `--resnapshot`; it never creates a new slot by itself.
/// `--resnapshot` then starts over: every row snapshotted again, streaming after it.
#[tokio::test(flavor = "multi_thread")]
async fn wal_lost_stops_then_resnapshot_starts_over() {
    let name = "rs_wal_lost";
    let pg = PgServer::start(name, &["max_slot_wal_keep_size=1MB"]);
    let admin = pg.connect("postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let db = pg.connect(name).await;
    db.batch_execute(
        "CREATE TABLE t(id int primary key, v int); INSERT INTO t VALUES (1, 0), (2, 0), (3, 0);
         CREATE TABLE pad(id int, body text);",
    )
    .await
    .unwrap();
    state_dir(name);
    let cfg =
        config(name, "tables = [\"public.t\"]", "").replace(&format!("{PG}/{name}"), &pg.url(name));
    let rs = Rowstream::start(name, &cfg);
    let mut r = Reader::new(&topic(name, "t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 3);
    wait_streaming(&admin, name).await;
    assert_eq!(rs.stop(), 0);
    db.batch_execute("INSERT INTO t VALUES (4, 0), (5, 0)")
        .await
        .unwrap();
    // write WAL and checkpoint until the slot's WAL is gone
    wait_for(120, "wal_status = lost", || async {
        db.batch_execute(
            "INSERT INTO pad SELECT g, repeat('x', 1000) FROM generate_series(1, 2000) g;
             SELECT pg_switch_wal(); CHECKPOINT;",
        )
        .await
        .unwrap();
        let s: Option<String> = admin
            .query_one(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        s.as_deref() == Some("lost")
    })
    .await;
    let mut rs = Rowstream::start(name, &cfg);
    let log = rs
        .expect_setup_stop(&["wal_status = lost", "--resnapshot"])
        .await;
    let this = &log[log.rfind("starting").unwrap()..];
    let errors: Vec<&str> = this.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{this}");
    assert!(!this.contains("created replication slot"), "{this}");
    let rs = Rowstream::start_with(name, &cfg, &["--resnapshot"]);
    let recs = r.until(60, "every row snapshotted again", |x| {
        x.iter().filter(|x| x.seq() == "-1").count() >= 3 + 5
    });
    let again: std::collections::HashSet<i64> = recs
        .iter()
        .skip(3)
        .filter(|x| x.seq() == "-1")
        .filter_map(|x| x.after()["id"].as_i64())
        .collect();
    assert_eq!(again, (1..=5).collect());
    db.batch_execute("INSERT INTO t VALUES (6, 0)")
        .await
        .unwrap();
    r.until(60, "streaming after the resnapshot", |x| {
        x.iter().any(|x| x.after()["id"] == serde_json::json!(6))
    });
    assert_eq!(rs.stop(), 0);
}

/// `rowstream migrate-state` moves a file state into Kafka: the next run with
/// `state.backend = "kafka"` resumes at the stored position (no second snapshot, nothing
/// lost); a second migration is refused without `--force`.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_state_moves_the_file_state_into_kafka() {
    let name = "rs_migrate";
    let db = fresh_db(name).await;
    db.batch_execute("CREATE TABLE t(id int primary key); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    state_dir(name);
    let file_cfg = config(name, "", "");
    let rs = Rowstream::start(name, &file_cfg);
    let mut r = Reader::new(&topic(name, "t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 2);
    wait_streaming(&connect("postgres").await, name).await;
    db.batch_execute("INSERT INTO t VALUES (3)").await.unwrap();
    r.until(60, "a streamed row", |x| count_data(x) >= 3);
    assert_eq!(rs.stop(), 0);
    let stored = stored_state(name)["position"].clone();
    // the Kafka config reads the same directory to migrate it
    let dir = std::env::temp_dir().join(format!("rowstream-test-{name}"));
    let kafka_cfg = with_kafka_state(name, &file_cfg).replace(
        &format!("{}/never-created", dir.display()),
        &dir.display().to_string(),
    );
    let cfg_path = std::env::temp_dir().join(format!("rowstream-test-{name}-kafka.toml"));
    std::fs::write(&cfg_path, &kafka_cfg).unwrap();
    let migrate = |force: bool| {
        let mut c = std::process::Command::new(bin());
        c.args(["migrate-state", "--config"]).arg(&cfg_path);
        if force {
            c.arg("--force");
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = migrate(false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("moved the state of") && out.contains("1 table(s)"),
        "{out}"
    );
    let (code, out) = migrate(false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("already has a state") && out.contains("--force"),
        "{out}"
    );
    // the file state is gone from the run's view: an empty directory would snapshot again
    std::fs::remove_dir_all(&dir).unwrap();
    let rs = Rowstream::start(name, &kafka_cfg);
    db.batch_execute("INSERT INTO t VALUES (4)").await.unwrap();
    let recs = r.until(60, "the row written after the move", |x| {
        x.iter().any(|x| x.after()["id"] == serde_json::json!(4))
    });
    // resumed, not snapshotted again: ids 1 and 2 appear once (their snapshot records)
    let snapshot_rows = recs.iter().filter(|x| x.seq() == "-1").count();
    assert_eq!(snapshot_rows, 2, "no second snapshot");
    let log = rs.log_text();
    let start = log
        .lines()
        .find(|l| l.contains("starting state=kafka topic"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        start.contains("position=lsn "),
        "resumed from the migrated position: {start}"
    );
    assert!(stored.is_object(), "{stored}");
    assert_eq!(rs.stop(), 0);
}

/// The database server itself restarts mid-stream, once with a fast shutdown (clients are
/// told and disconnected) and once with an immediate one (no checkpoint, crash recovery at
/// start): rowstream keeps running, reconnects with backoff, resumes, and every row arrives.
#[tokio::test(flavor = "multi_thread")]
async fn real_server_restart_fast_and_immediate() {
    let name = "rs_pg_restart";
    let mut pg = PgServer::start(name, &[]);
    pg.connect("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    pg.connect(name)
        .await
        .batch_execute("CREATE TABLE t(id int primary key)")
        .await
        .unwrap();
    state_dir(name);
    let cfg = config(name, "", "").replace(&format!("{PG}/{name}"), &pg.url(name));
    let mut rs = Rowstream::start(name, &cfg);
    let mut r = Reader::new(&topic(name, "t"));
    wait_streaming(&pg.connect("postgres").await, name).await;
    let ids = |recs: &[Rec]| -> std::collections::HashSet<i64> {
        recs.iter()
            .filter_map(|x| x.after()["id"].as_i64())
            .collect()
    };
    let mut next = 1;
    for immediate in [false, true] {
        pg.connect(name)
            .await
            .execute(
                "INSERT INTO t SELECT generate_series($1::int, $1::int + 99)",
                &[&next],
            )
            .await
            .unwrap();
        next += 100;
        let want = next - 1;
        // every row so far (the last id may arrive before others on other partitions)
        r.until(60, "the rows before the restart", |x| {
            let seen = ids(x);
            (1..=want as i64).all(|i| seen.contains(&i))
        });
        pg.restart(immediate);
        pg.connect(name)
            .await
            .execute(
                "INSERT INTO t SELECT generate_series($1::int, $1::int + 99)",
                &[&next],
            )
            .await
            .unwrap();
        next += 100;
        let want = next - 1;
        // every row so far (the last id may arrive before others on other partitions)
        r.until(120, "the rows after the restart", |x| {
            let seen = ids(x);
            (1..=want as i64).all(|i| seen.contains(&i))
        });
        rs.assert_running();
    }
    let got = ids(&r.records);
    assert_eq!(got, (1..next as i64).collect(), "every row, none lost");
    assert!(
        rs.log_text().contains("transient failure"),
        "it did reconnect"
    );
    assert_eq!(rs.stop(), 0);
}

/// Every endpoint on a running pipeline: the numbers move and agree. Records per table and op
/// equal the records consumed from the topic; the lag falls near zero when idle (heartbeats)
/// and rises while the broker is paused, when `/ready` fails naming the broker; the slot's
/// retained WAL grows while the connector is paused and writes go on.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_health_and_ready_agree_with_the_topics() {
    let broker_port = free_port();
    let name = "rs_observe";
    let addr = free_addr();
    let (broker, db, cfg) = with_private_broker(
        name,
        broker_port,
        "CREATE TABLE t(id int primary key, v int, pad text); INSERT INTO t SELECT g, 0, '' FROM generate_series(1, 50) g",
        &format!("[admin]\nlisten = \"{addr}\"\n"),
    )
    .await;
    let rs = Rowstream::start(name, &cfg);
    let mut r = Reader::on(&format!("127.0.0.1:{broker_port}"), &topic(name, "t"));
    wait_for(60, "/ready 200", || async {
        std::net::TcpStream::connect(&addr).is_ok()
            && http_get(&addr, "/ready").starts_with("HTTP/1.1 200")
    })
    .await;
    let h = http_get(&addr, "/health");
    assert!(
        h.starts_with("HTTP/1.1 200") && h.contains("\"status\":\"UP\""),
        "{h}"
    );
    let ready = http_get(&addr, "/ready");
    assert!(ready.contains("\"ready\":true"), "{ready}");
    db.batch_execute(
        "UPDATE t SET v = 1 WHERE id <= 10; DELETE FROM t WHERE id > 45; INSERT INTO t SELECT g, 0, '' FROM generate_series(51, 60) g",
    )
    .await
    .unwrap();
    let recs = r
        .until(60, "every change", |x| count_data(x) >= 75)
        .to_vec();
    let mut per_op: std::collections::BTreeMap<String, usize> = Default::default();
    for x in recs.iter().filter(|x| x.op() != "MHEARTBEAT") {
        *per_op.entry(x.op().to_string()).or_default() += 1;
    }
    assert_eq!(per_op.values().sum::<usize>(), 75, "{per_op:?}");
    wait_for(
        30,
        "per-table counters equal to what was consumed",
        || async {
            per_op.iter().all(|(op, n)| {
                metric(
                    &addr,
                    &format!("rowstream_table_records_total{{table=\"public.t\",op=\"{op}\"}}"),
                ) == Some(*n as f64)
            }) && metric(&addr, "rowstream_records_total") == Some(75.0)
        },
    )
    .await;
    assert_eq!(
        metric(&addr, "rowstream_snapshot_table_rows{table=\"public.t\"}"),
        Some(50.0)
    );
    assert_eq!(
        metric(&addr, "rowstream_snapshot_table_done{table=\"public.t\"}"),
        Some(1.0)
    );
    assert!(metric(&addr, "rowstream_delivery_latency_ms_count").unwrap_or(0.0) >= 75.0);
    assert!(
        metric(
            &addr,
            "rowstream_table_bytes_total{table=\"public.t\",op=\"DELETE\"}"
        )
        .unwrap_or(0.0)
            > 0.0
    );
    // idle: heartbeats keep the lag near zero
    wait_for(30, "lag near zero when idle", || async {
        metric(&addr, "rowstream_lag_ms").is_some_and(|l| l < 3000.0)
    })
    .await;
    // the slot's retained WAL grows while the connector is paused and writes go on
    pause_and_wait(&addr).await;
    wait_for(30, "the slot's retained WAL measured", || async {
        metric(&addr, "rowstream_source_retained_bytes").unwrap_or(-1.0) >= 0.0
    })
    .await;
    let before = metric(&addr, "rowstream_source_retained_bytes").unwrap_or(-1.0);
    assert!(
        http_get(&addr, "/metrics").contains("rowstream_source_wal_status{status=\"reserved\"} 1")
    );
    db.batch_execute(
        "INSERT INTO t SELECT g, 0, repeat('x', 200) FROM generate_series(1000, 20999) g",
    )
    .await
    .unwrap();
    wait_for(30, "retained WAL grown by the writes", || async {
        metric(&addr, "rowstream_source_retained_bytes").unwrap_or(-1.0) > before + 2_000_000.0
    })
    .await;
    let (code, body) = http(&addr, "PUT", "/connectors/rowstream/resume", None, "");
    assert_eq!(code, 202, "{body}");
    r.until(60, "the rows written while paused", |x| {
        count_data(x) >= 75 + 20_000
    });
    wait_for(30, "ready again after the resume", || async {
        http_get(&addr, "/ready").starts_with("HTTP/1.1 200")
    })
    .await;
    // the broker stops answering: /ready fails naming it, the lag rises
    broker.pause();
    wait_for(40, "/ready 503 naming the broker", || async {
        let r = http_get(&addr, "/ready");
        r.starts_with("HTTP/1.1 503") && r.contains("broker unreachable")
    })
    .await;
    let lag1 = metric(&addr, "rowstream_lag_ms").unwrap_or(0.0);
    assert!(lag1 >= 5000.0, "lag {lag1} while the broker is paused");
    assert!(http_get(&addr, "/health").starts_with("HTTP/1.1 200"));
    // `rowstream health`, the container's health check, says the same
    let probe = |ready: bool| {
        let mut c = std::process::Command::new(bin());
        c.args(["health", "--admin", &addr]);
        if ready {
            c.arg("--ready");
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = probe(true);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("/ready answered 503") && err.contains("broker unreachable"),
        "{err}"
    );
    assert_eq!(probe(false).0, Some(0));
    broker.resume();
    wait_for(60, "ready once the broker is back", || async {
        http_get(&addr, "/ready").starts_with("HTTP/1.1 200")
    })
    .await;
    assert_eq!(probe(true), (Some(0), String::new()));
    wait_for(30, "lag near zero again", || async {
        metric(&addr, "rowstream_lag_ms").is_some_and(|l| l < 3000.0)
    })
    .await;
    assert_eq!(rs.stop(), 0);
}

/// The state topic compacted for real (a private broker whose cleaner runs every 200 ms, the
/// topic rolling a segment every 200 ms): after the cleaner removed superseded state records,
/// a restart still resumes at the stored position (no second snapshot) and every row arrives;
/// `verify` reads the compacted state as well.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_state_is_read_correctly_after_compaction() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let port = free_port();
    let name = "rs_compacted";
    let brokers = format!("127.0.0.1:{port}");
    let broker = Broker::with(port, |_| {
        vec![
            "log.cleaner.backoff.ms=200".into(),
            "log.cleaner.min.compaction.lag.ms=0".into(),
        ]
    });
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE t(id int primary key); INSERT INTO t SELECT g FROM generate_series(1, 100) g",
    )
    .await
    .unwrap();
    state_dir(name);
    let cfg = with_kafka_state(name, &config(name, "", "")).replace(BROKER, &brokers);
    let state_topic = format!("{name}-{}-offsets", run_id());
    // the state topic, made before rowstream sees it, with a cleaner that keeps up
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(&state_topic, 1, TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")
                .set("segment.ms", "200")
                .set("min.cleanable.dirty.ratio", "0.01")
                .set("delete.retention.ms", "100")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let rs = Rowstream::start(name, &cfg);
    let mut r = Reader::on(&brokers, &topic(name, "t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 100);
    // state records pile up while rows stream; the cleaner drops the superseded ones
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("compaction-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut next = 101;
    let compacted = |reader: &BaseConsumer| -> (i64, usize) {
        let (_, high) = reader
            .fetch_watermarks(&state_topic, 0, Duration::from_secs(5))
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&state_topic, 0, rdkafka::Offset::Beginning)
            .unwrap();
        reader.assign(&tpl).unwrap();
        let mut n = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match reader.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    n += 1;
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
                Some(Err(_)) => continue,
                None if n > 0 => break,
                None => {}
            }
        }
        (high, n)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        db.execute("INSERT INTO t VALUES ($1)", &[&next])
            .await
            .unwrap();
        next += 1;
        let (high, n) = compacted(&reader);
        if high > 40 && (n as i64) < high / 2 {
            eprintln!("state topic: {n} records left of {high} offsets");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the state topic was not compacted: {n} records of {high}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(rs.stop(), 0);
    // more rows while stopped, then a restart from the compacted state
    db.execute(
        "INSERT INTO t SELECT g FROM generate_series($1::int, $1::int + 49) g",
        &[&next],
    )
    .await
    .unwrap();
    let last = next + 49;
    let rs = Rowstream::start(name, &cfg);
    let recs = r
        .until(90, "every row", |x| {
            let ids: std::collections::HashSet<i64> =
                x.iter().filter_map(|y| y.after()["id"].as_i64()).collect();
            (1..=last as i64).all(|i| ids.contains(&i))
        })
        .to_vec();
    let snapshot_rows = recs.iter().filter(|x| x.seq() == "-1").count();
    assert_eq!(snapshot_rows, 100, "no second snapshot after the restart");
    let log = rs.log_text();
    let restart = log
        .lines()
        .filter(|l| l.contains("rowstream::run: starting"))
        .nth(1)
        .unwrap_or("");
    assert!(
        restart.contains("position=lsn "),
        "resumed from the stored position: {restart}"
    );
    let (code, out) = run_verify(&rs.cfg, 60);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(rs.stop(), 0);
    drop(broker);
}

/// A private broker with its authorizer on: SASL/PLAIN user `rs` (password `s3cret`) on
/// `port`, which may do only what `acl` grants it; the plaintext listener on `inner` is the
/// brokers' own and the test's (a super user).
fn acl_broker(port: u16, inner: u16) -> Broker {
    Broker::with(port, |controller| {
        vec![
            format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{inner},CONTROLLER://127.0.0.1:{controller}"),
            format!("advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{inner}"),
            "sasl.enabled.mechanisms=PLAIN".into(),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_rs=\"s3cret\";".into(),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
            "super.users=User:ANONYMOUS".into(),
        ]
    })
}

/// Grant user `rs` what `args` say (Kafka's AclCommand through the super-user listener).
fn acl(inner: u16, args: &[&str]) {
    let out = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh"),
    )
    .args([
        "tool",
        "org.apache.kafka.tools.AclCommand",
        "--bootstrap-server",
    ])
    .arg(format!("127.0.0.1:{inner}"))
    .args(["--add", "--allow-principal", "User:rs"])
    .args(args)
    .env("KAFKA_HEAP", "128m")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh database `name` holding table `t` with one row (id 1), and a clean state dir.
async fn one_row_db(name: &str) -> tokio_postgres::Client {
    let db = fresh_db(name).await;
    db.batch_execute("CREATE TABLE t(id int primary key); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    state_dir(name);
    db
}

/// `[kafka.properties]` for user `rs` over SASL/PLAIN.
const RS_PLAIN: &str = "[kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"PLAIN\"\n\"sasl.username\" = \"rs\"\n\"sasl.password\" = \"s3cret\"\n";

/// A bad setting never costs a healthy connector: on a broker whose ACLs refuse the user
/// transactions, connector `b` with `kafka.exactly_once = true` is refused at start with one
/// line naming the grant, while connector `a` (same state topic) keeps streaming; and `a`'s
/// restart reads the state topic at once (nothing of `b`'s start holds it back).
#[tokio::test(flavor = "multi_thread")]
async fn refused_exactly_once_start_costs_no_other_connector() {
    let port = free_port();
    let inner = free_port();
    let name = "rs_eos_refused";
    let broker = acl_broker(port, inner);
    acl(inner, &["--operation", "All", "--topic", "*"]);
    acl(inner, &["--operation", "All", "--group", "*"]);
    acl(
        inner,
        &[
            "--operation",
            "Describe",
            "--operation",
            "IdempotentWrite",
            "--operation",
            "Create",
            "--cluster",
        ],
    );
    let db = one_row_db(name).await;
    let brokers = format!("127.0.0.1:{port}");
    let a = with_kafka_state(name, &config(name, "", "")).replace(BROKER, &brokers) + RS_PLAIN;
    let rs_a = Rowstream::start(name, &a);
    let mut r = Reader::on(&inner_brokers(inner), &topic(name, "t"));
    r.until(60, "a's snapshot", |x| count_data(x) >= 1);
    wait_streaming(&connect("postgres").await, name).await;
    // b: another connector on the same state topic, exactly-once
    let run = run_id();
    let b = a
        .replace(
            &format!("connector = \"{name}-{run}\""),
            &format!("connector = \"{name}-{run}-b\""),
        )
        .replace("partitions = 3", "partitions = 3\nexactly_once = true");
    state_dir(&format!("{name}-b"));
    let mut rs_b = Rowstream::start(&format!("{name}-b"), &b);
    let log = rs_b
        .expect_setup_stop(&[
            "Transactional Id authorization failed",
            "fix: grant the user of kafka.properties sasl.username WRITE and DESCRIBE on the transactional ids",
        ])
        .await;
    assert_eq!(
        log.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{log}"
    );
    // a streams on, then restarts promptly
    db.batch_execute("INSERT INTO t VALUES (2)").await.unwrap();
    r.until(30, "a's next row", |x| {
        x.iter().any(|y| y.after()["id"] == json!(2))
    });
    assert_eq!(rs_a.stop(), 0);
    let t0 = std::time::Instant::now();
    let rs_a = Rowstream::start(name, &a);
    db.batch_execute("INSERT INTO t VALUES (3)").await.unwrap();
    r.until(20, "a's row after its restart", |x| {
        x.iter().any(|y| y.after()["id"] == json!(3))
    });
    eprintln!(
        "a restarted and delivered in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(rs_a.stop(), 0);
    drop(broker);
}

/// The super-user listener's address (the test's own reads).
fn inner_brokers(inner: u16) -> String {
    format!("127.0.0.1:{inner}")
}

/// The operator's view of a snapshot: one stream of progress lines (`rowstream::progress`,
/// plain numbers), the snapshot driver logging only a table's start and finish, and no Rust
/// `Debug` wrapper (`Some(..)`, `None`) in any line.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_progress_is_one_stream_of_plain_values() {
    let name = "rs_progress_lines";
    state_dir(name);
    let db = fresh_db(name).await;
    // `big` is analyzed (the catalog has an estimate); `fresh` never was (none)
    db.batch_execute(
        "CREATE TABLE big(id int primary key, v int);
         INSERT INTO big SELECT g, g FROM generate_series(1, 600000) g; ANALYZE big;
         CREATE TABLE fresh(id int primary key); INSERT INTO fresh VALUES (1)",
    )
    .await
    .unwrap();
    let rs = Rowstream::start_with(
        name,
        &config(name, "", ""),
        &["--progress", "log", "--progress-interval-secs", "1"],
    );
    wait_for(120, "both snapshots finished in the log", || async {
        rs.log_text().matches("snapshot finished").count() == 2
    })
    .await;
    assert!(
        rs.log_text()
            .contains("snapshot finished table=public.big rows=600000 "),
        "{}",
        rs.log_text()
    );
    let log = rs.log_text();
    let lines: Vec<&str> = log.lines().collect();
    let debug: Vec<&&str> = lines
        .iter()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .filter(|l| l.contains("Some(") || l.contains("=None"))
        .collect();
    assert!(debug.is_empty(), "Debug wrappers in the log: {debug:#?}");
    let progress: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("snapshot progress"))
        .collect();
    assert!(
        !progress.is_empty(),
        "no snapshot progress line while 600,000 rows were read"
    );
    let mut counts = vec![];
    for l in &progress {
        assert!(
            l.contains("rowstream::progress: snapshot progress") && l.contains(" rows="),
            "a progress line from elsewhere, or without its figures: {l}"
        );
        counts.push(
            l.split(" rows=")
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("rows is not a plain number: {l}")),
        );
    }
    // the count moves within the table's chunks, not only between them
    assert!(
        counts.iter().any(|&n| n > 0 && n < 600_000),
        "no progress line showed the snapshot under way: {progress:#?}"
    );
    let started = |t: &str| -> String {
        lines
            .iter()
            .find(|l| l.contains("snapshot started") && l.contains(&format!("table=public.{t}")))
            .unwrap_or_else(|| panic!("no `snapshot started` line for {t}:\n{log}"))
            .to_string()
    };
    let big = started("big");
    let est: u64 = big
        .split("estimated_rows=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no plain estimated_rows in: {big}"));
    assert!(
        (500_000..=700_000).contains(&est),
        "estimate {est} far from 600,000: {big}"
    );
    let fresh = started("fresh");
    assert!(
        !fresh.contains("estimated_rows"),
        "a never-analyzed table has no estimate to log: {fresh}"
    );
    assert_eq!(rs.stop(), 0);
}

/// A partitioned table streams and snapshots under its own name (the publication's
/// `publish_via_partition_root`): rows of every partition, one partition created and one
/// attached while streaming included, in one topic, with no topic or DDL record of a partition.
#[tokio::test(flavor = "multi_thread")]
async fn partitioned_tables_stream_under_the_root() {
    let name = "rs_partitioned";
    state_dir(name);
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE m (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
         CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
         INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 40) g;",
    )
    .await
    .unwrap();
    let rs = Rowstream::start(name, &config(name, "", "[snapshot]\nchunk_pages = 1\n"));
    let mut r = Reader::new(&topic(name, "m"));
    r.until(60, "the snapshot of both partitions", |x| {
        count_data(x) >= 40
    });
    wait_streaming(&db, name).await;
    db.batch_execute(
        "INSERT INTO m VALUES (100, 'eu', 1), (101, 'us', 1);
         UPDATE m SET v = v + 1000 WHERE id IN (2, 3);
         DELETE FROM m WHERE id IN (4, 5);
         CREATE TABLE m_asia PARTITION OF m FOR VALUES IN ('asia');
         INSERT INTO m VALUES (200, 'asia', 2);
         CREATE TABLE m_af (LIKE m);
         ALTER TABLE m ATTACH PARTITION m_af FOR VALUES IN ('af');
         INSERT INTO m VALUES (300, 'af', 3);
         UPDATE m SET v = 7 WHERE id = 300;",
    )
    .await
    .unwrap();
    let recs = r
        .until(60, "the changes", |x| {
            x.iter()
                .any(|r| r.key.as_deref() == Some("300,af") && r.op() == "UPDATE_AFTER")
        })
        .to_vec();
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    assert!(
        data.iter()
            .all(|x| x.value["schema"]["source"]["tableName"] == "m"),
        "{data:#?}"
    );
    // the last image per key equals the table
    let mut last = std::collections::BTreeMap::new();
    for x in data.iter().filter(|x| x.key.is_some()) {
        let img = (x.op() != "DELETE").then(|| x.after().clone());
        last.insert(x.key.clone().unwrap(), img);
    }
    let got: std::collections::BTreeMap<String, serde_json::Value> = last
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let mut want = std::collections::BTreeMap::new();
    for row in db.query("SELECT id, region, v FROM m", &[]).await.unwrap() {
        let (id, region, v): (i32, String, i32) = (row.get(0), row.get(1), row.get(2));
        want.insert(
            format!("{id},{region}"),
            json!({"id": id, "region": region, "v": v}),
        );
    }
    assert_eq!(want.len(), 40 + 2 - 2 + 2);
    assert_eq!(got, want);
    // no partition got a topic or a record of its own
    let log = rs.log_text();
    for p in ["m_eu", "m_us", "m_asia", "m_af"] {
        assert!(
            !log.contains(&format!(".public.{p}\"")),
            "a topic for partition {p}:\n{log}"
        );
    }
    assert_eq!(rs.stop(), 0);
}
