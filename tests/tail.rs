//! `rowstream tail`: the changes of a running connector printed readably, and `run`'s
//! progress log lines.
mod common;

use common::*;

/// `rowstream tail` prints one line per change (time, table, op, key, changed columns) and
/// leaves heartbeats out; `--json` prints the record as it is. `run --progress log` writes its
/// streaming figures as log lines that agree with the changes made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_changes_readably_and_run_logs_its_progress() {
    let name = "rs_tail";
    state_dir(name);
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE t(id int primary key, v text, n int); ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t VALUES (1, 'a', 1), (2, 'x', 2)",
    )
    .await
    .unwrap();
    let cfg = config(name, "", "").replace("interval_ms = 1000", "interval_ms = 200");
    let rs = Rowstream::start_with(
        name,
        &cfg,
        &["--progress", "log", "--progress-interval-secs", "1"],
    );
    wait_streaming(&db, name).await;
    db.batch_execute(
        "UPDATE t SET v = 'b' WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (3, 'c', 3)",
    )
    .await
    .unwrap();
    let cfg_path = rs.cfg.to_str().unwrap().to_string();
    let tail_topic = topic(name, "t");
    let tail = |extra: &[&str]| {
        let base = [
            "tail",
            "--config",
            &cfg_path,
            "--from-beginning",
            "--idle-secs",
            "30",
        ];
        rowstream_ok(&[&base[..], extra, &[tail_topic.as_str()]].concat())
    };
    let text = tail(&["--max", "5"]);
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            // the commit time is the run's: only its shape is checked
            let (time, rest) = l.split_at(24);
            if time.trim() != "snapshot" {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(time.trim()).is_ok(),
                    "{l}"
                );
                format!("<time>{rest}")
            } else {
                format!("snapshot{rest}")
            }
        })
        .collect();
    lines.sort();
    let t = format!("{name}.public.t");
    assert_eq!(
        lines,
        [
            format!("<time>  {t}  DELETE        2  id=2 v=\"x\" n=2"),
            format!("<time>  {t}  INSERT        3  id=3 v=\"c\" n=3"),
            format!("<time>  {t}  UPDATE_AFTER  1  v: \"a\" → \"b\""),
            format!("snapshot  {t}  INSERT        1  id=1 v=\"a\" n=1"),
            format!("snapshot  {t}  INSERT        2  id=2 v=\"x\" n=2"),
        ],
        "{text}"
    );
    // --json: the records as they are; heartbeats only when asked for
    let parse = |raw: &str| -> Vec<serde_json::Value> {
        raw.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut ops: Vec<String> = parse(&tail(&["--json", "--max", "5"]))
        .iter()
        .map(|r| r["payload"]["op"].as_str().unwrap().to_string())
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        ["DELETE", "INSERT", "INSERT", "INSERT", "UPDATE_AFTER"]
    );
    // every partition has heartbeats, at most 5 data records come first
    let with_hb = parse(&tail(&["--json", "--heartbeats", "--max", "20"]));
    assert!(
        with_hb
            .iter()
            .filter(|r| r["payload"]["op"] == "MHEARTBEAT")
            .count()
            >= 15,
        "{with_hb:?}"
    );
    // the progress log: the streaming figures agree with the three changes made
    wait_for(30, "a progress line with the changes", || async {
        rs.log_text()
            .lines()
            .any(|l| l.contains("rowstream::progress: streaming") && l.contains(" changes=3 "))
    })
    .await;
    assert_eq!(rs.stop(), 0);
}

/// `rowstream tail` merges the partitions in source order: the snapshot rows first, then every
/// change in commit order across keys on different partitions, the ALTER before the INSERT
/// that uses its new column; DATE values read as ISO-8601 (date, timestamp(3), timestamp(6),
/// before 1970).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_in_source_order_across_partitions_and_dates_as_iso() {
    let name = "rs_tail_order";
    state_dir(name);
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE TABLE t(id int primary key, v text, d date, t3 timestamp(3), t6 timestamp(6));
         INSERT INTO t SELECT i, 's' || i, NULL, NULL, NULL FROM generate_series(1, 6) i;
         UPDATE t SET d = '1969-07-20', t3 = '2024-11-15 09:30:00.123', t6 = '2020-05-24 10:14:29.123456' WHERE id = 1",
    )
    .await
    .unwrap();
    let cfg = config(name, "", "").replace("interval_ms = 1000", "interval_ms = 200");
    let rs = Rowstream::start(name, &cfg);
    wait_streaming(&db, name).await;
    // one transaction per statement: the commit order is the statement order
    for sql in [
        "INSERT INTO t VALUES (7, 'n7', '1900-01-01', '1960-01-01 00:00:00.5', '1969-12-31 23:59:59.999999')",
        "UPDATE t SET v = 'u1' WHERE id = 1",
        "DELETE FROM t WHERE id = 2",
        "UPDATE t SET v = 'u5' WHERE id = 5",
        "INSERT INTO t VALUES (8, 'n8', NULL, NULL, NULL)",
        "UPDATE t SET v = 'u4' WHERE id = 4",
        "UPDATE t SET v = 'u3' WHERE id = 3",
        "ALTER TABLE t ADD COLUMN note text",
        "INSERT INTO t VALUES (9, 'n9', NULL, NULL, NULL, 'uses note')",
        "DELETE FROM t WHERE id = 7",
    ] {
        db.batch_execute(sql).await.unwrap();
    }
    let topic = topic(name, "t");
    // the changes land on all 3 partitions (keys 1..9 spread by hash)
    let mut reader = Reader::new(&topic);
    let recs = reader.until(60, "6 snapshot rows and 10 changes", |r| {
        r.iter().filter(|x| x.op() != "MHEARTBEAT").count() >= 16
    });
    let spread = |snapshot: bool| -> std::collections::BTreeSet<i32> {
        recs.iter()
            .filter(|x| x.op() != "MHEARTBEAT" && (x.seq() == "-1") == snapshot)
            .map(|x| x.partition)
            .collect()
    };
    let by_key: Vec<(Option<String>, i32)> = recs
        .iter()
        .filter(|x| x.op() != "MHEARTBEAT")
        .map(|x| (x.key.clone(), x.partition))
        .collect();
    assert_eq!(
        spread(true).len(),
        3,
        "snapshot rows on every partition: {by_key:?}"
    );
    assert_eq!(
        spread(false).len(),
        3,
        "changes on every partition: {by_key:?}"
    );
    let started = std::time::Instant::now();
    let cfg_path = rs.cfg.to_str().unwrap().to_string();
    let text = rowstream_ok(&[
        "tail",
        "--config",
        &cfg_path,
        "--from-beginning",
        "--idle-secs",
        "30",
        "--max",
        "16",
        topic.as_str(),
    ]);
    eprintln!(
        "tail --from-beginning --max 16 took {:?}",
        started.elapsed()
    );
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let (time, rest) = l.split_at(24);
            if time.trim() == "snapshot" {
                format!("snapshot{rest}")
            } else {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(time.trim()).is_ok(),
                    "{l}"
                );
                format!("<time>{rest}")
            }
        })
        .collect();
    assert_eq!(lines.len(), 16, "{text}");
    let t = format!("{name}.public.t");
    // snapshot rows first (among themselves by partition and offset: compared as a set)
    let mut snapshot = lines[..6].to_vec();
    snapshot.sort();
    let row = |id: i32| {
        format!("snapshot  {t}  INSERT        {id}  id={id} v=\"s{id}\" d=null t3=null t6=null")
    };
    assert_eq!(
        snapshot,
        [
            format!("snapshot  {t}  INSERT        1  id=1 v=\"s1\" d=1969-07-20T00:00:00.000Z t3=2024-11-15T09:30:00.123Z t6=2020-05-24T10:14:29.123456Z"),
            row(2),
            row(3),
            row(4),
            row(5),
            row(6),
        ],
        "{text}"
    );
    assert_eq!(
        lines[6..],
        [
            format!("<time>  {t}  INSERT        7  id=7 v=\"n7\" d=1900-01-01T00:00:00.000Z t3=1960-01-01T00:00:00.500Z t6=1969-12-31T23:59:59.999999Z"),
            format!("<time>  {t}  UPDATE_AFTER  1  id=1 v=\"u1\" d=1969-07-20T00:00:00.000Z t3=2024-11-15T09:30:00.123Z t6=2020-05-24T10:14:29.123456Z"),
            format!("<time>  {t}  DELETE        2  id=2"),
            format!("<time>  {t}  UPDATE_AFTER  5  id=5 v=\"u5\" d=null t3=null t6=null"),
            format!("<time>  {t}  INSERT        8  id=8 v=\"n8\" d=null t3=null t6=null"),
            format!("<time>  {t}  UPDATE_AFTER  4  id=4 v=\"u4\" d=null t3=null t6=null"),
            format!("<time>  {t}  UPDATE_AFTER  3  id=3 v=\"u3\" d=null t3=null t6=null"),
            format!("<time>  {t}  ALTER         -  ALTER TABLE t ADD COLUMN note text"),
            format!("<time>  {t}  INSERT        9  id=9 v=\"n9\" d=null t3=null t6=null note=\"uses note\""),
            format!("<time>  {t}  DELETE        7  id=7"),
        ],
        "{text}"
    );
    // --json keeps the record as it is in Kafka: the DATE values stay epoch ms
    let json = rowstream_ok(&[
        "tail",
        "--config",
        &cfg_path,
        "--from-beginning",
        "--idle-secs",
        "30",
        "--json",
        "--max",
        "7",
        topic.as_str(),
    ]);
    let seventh = json.lines().nth(6).unwrap();
    assert!(
        seventh.contains(r#""after":{"dataColumn":{"id":7,"v":"n7","d":-2208988800000,"t3":-315619199500,"t6":-0.001000}}"#),
        "{json}"
    );
    assert_eq!(rs.stop(), 0);
}
