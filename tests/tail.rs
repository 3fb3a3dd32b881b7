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
