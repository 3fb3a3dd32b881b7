//! Scenarios every source must pass, written once and run for each (Postgres and MariaDB)
//! against the real services (scripts/services.sh up). Each scenario is an `async fn(Db)`;
//! `both!` makes a `postgres` and a `mariadb` test of it. What only one source does is tested
//! in `postgres.rs` / `mysql.rs`.
mod common;

use common::*;
use serde_json::json;
use std::collections::HashSet;

/// `both!(scenario, server_id)`: tests `scenario::postgres` and `scenario::mariadb`, each on a
/// fresh database named after the scenario (`server_id`: the MariaDB replica id, unique).
macro_rules! both {
    ($scenario:ident, $server_id:expr) => {
        mod $scenario {
            use super::*;
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                let name = concat!("pg_", stringify!($scenario));
                super::$scenario(Db::fresh(Flavor::Postgres, name, 0).await).await;
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn mariadb() {
                let name = concat!("my_", stringify!($scenario));
                super::$scenario(Db::fresh(Flavor::MariaDb, name, $server_id).await).await;
            }
        }
    };
}

both!(snapshot_with_concurrent_writes, 6101);
both!(kill9_and_restart_loses_nothing, 6102);
both!(keyless_tables_and_custom_keys, 6103);
both!(alter_add_column_mid_stream, 6104);
both!(heartbeats_on_every_partition, 6105);
both!(interrupted_snapshot_resumes, 6106);
both!(sigterm_during_snapshot_resumes, 6113);
both!(resnapshot_while_streaming, 6107);
both!(database_restart_mid_stream, 6108);
both!(verify_finds_planted_differences, 6109);
both!(lost_log_stops_then_resnapshot_starts_over, 6110);
both!(kill9_at_random_moments_then_verify, 6111);
both!(million_row_transaction_within_memory_budget, 6112);
both!(table_pattern_matching_nothing_stops, 6114);
both!(kafka_state_survives_kill9_at_random_moments, 6115);
both!(two_processes_one_connector_only_one_advances, 6116);
both!(connect_rest_api_steers_the_connector, 6117);
both!(paimon_profile_passes_paimons_parser, 6118);
both!(copy_writes_every_row_once_and_exits, 6119);
both!(exactly_once_across_kill9, 6120);
both!(broker_loss_mid_stream_loses_nothing, 6121);
both!(replays_carry_their_first_order, 6122);
both!(columns_left_out_and_masked, 6123);
both!(sharded_tables_merge_into_one_topic, 6124);
both!(ddl_policy_per_type, 6125);
both!(bad_records_parked_in_the_dead_letter_topic, 6126);

/// `[errors]`: with `bad_values = "park"` and `tolerance = "all"`, a row holding a value the
/// source cannot render (Postgres `infinity` dates and timestamps, MariaDB zero dates) in the
/// snapshot, in an INSERT and in an UPDATE, and a 2.2 MB row the broker refuses as too large,
/// each become exactly one dead-letter record naming the problem, the table, the key, the op
/// and the source position, holding the record (masked column still hashed, no secret byte)
/// or, for the refused one, its size only; the data topics get every other row, another table
/// every row, the metric counts per table and reason, `tail` prints them. Then
/// `max_parked = 1` stops the connector on the second parked row, `bad_values = "fail"` stops
/// it on the first bad row, and the default writes those rows with null.
async fn bad_records_parked_in_the_dead_letter_topic(db: Db) {
    let (bad_date, bad_ts, zero) = match db.flavor {
        Flavor::Postgres => ("'infinity'", "'-infinity'", ""),
        Flavor::MariaDb => (
            "'0000-00-00'",
            "'0000-00-00 00:00:00'",
            "SET SESSION sql_mode = '';",
        ),
    };
    let ts_type = match db.flavor {
        Flavor::Postgres => "TIMESTAMPTZ",
        Flavor::MariaDb => "DATETIME",
    };
    let body_type = match db.flavor {
        Flavor::Postgres => "TEXT",
        Flavor::MariaDb => "LONGTEXT",
    };
    db.exec(&format!(
        "{zero}
         CREATE TABLE ev (id INT PRIMARY KEY, d DATE, t {ts_type}, note VARCHAR(20), secret VARCHAR(40));
         CREATE TABLE big (id INT PRIMARY KEY, body {body_type});
         CREATE TABLE other (id INT PRIMARY KEY, v INT);
         INSERT INTO ev VALUES (0, '2024-01-02', '2024-01-02 03:04:05', 'snap-good', 'secret-zero');
         INSERT INTO ev VALUES (1, {bad_date}, '2024-01-02 03:04:05', 'snap-bad', 'secret-one');
         INSERT INTO big VALUES (1, 'small');
         INSERT INTO other VALUES (1, 1);"
    ))
    .await;
    db.log_whole_rows("ev").await;
    let (ev, big) = (db.qualified("ev"), db.qualified("big"));
    let salt = "dlq-salt";
    let masks =
        format!("mask_salt = \"{salt}\"\n[source.column_masks]\n\"{ev}.secret\" = \"hash\"\n");
    let dlq = format!("{}-{}-dead-letter", db.name, run_id());
    let admin = free_addr();
    let errors = |extra: &str| {
        format!("[errors]\ndead_letter_topic = \"{dlq}\"\n{extra}\n[admin]\nlisten = \"{admin}\"\n")
    };
    let park = errors("bad_values = \"park\"\ntolerance = \"all\"");
    let rs = Rowstream::start(&db.name, &db.config(&masks, &park));
    let mut rev = Reader::new(&db.topic("ev"));
    let mut rdlq = Reader::new(&dlq);
    rdlq.until(60, "the parked snapshot row", |x| !x.is_empty());
    db.wait_streaming().await;
    let huge: String = (0..70_000u32)
        .map(|i| {
            format!(
                "{:08x}{:08x}{:08x}{:08x}",
                i.wrapping_mul(2654435761),
                i ^ 0x5bd1e995,
                i.rotate_left(13).wrapping_mul(40503),
                !i
            )
        })
        .collect();
    db.exec(&format!(
        "{zero}
         INSERT INTO ev VALUES (2, '2024-02-03', '2024-02-03 04:05:06', 'live-good', 'secret-two');
         INSERT INTO ev VALUES (3, '2024-02-03', {bad_ts}, 'live-bad', 'secret-three');
         UPDATE ev SET d = {bad_date} WHERE id = 2;
         INSERT INTO big VALUES (2, '{huge}');
         INSERT INTO big VALUES (3, 'small again');"
    ))
    .await;
    let mut sql = String::new();
    for i in 2..=50 {
        sql += &format!("INSERT INTO other VALUES ({i}, {i});");
    }
    db.exec(&sql).await;
    let mut rother = Reader::new(&db.topic("other"));
    rother.until(60, "every row of the other table", |x| count_data(x) >= 50);
    let parked = rdlq
        .until(60, "four parked records", |x| x.len() >= 4)
        .to_vec();
    assert_eq!(parked.len(), 4, "{parked:#?}");
    let hash = |v: &str| {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(format!("{salt}{v}").as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let by = |key: &str, op: &str| -> &Rec {
        parked
            .iter()
            .find(|r| {
                r.key.as_deref() == Some(key)
                    && r.value["op"] == op
                    && r.value["table"] != big.as_str()
            })
            .unwrap_or_else(|| panic!("no parked {op} of key {key}: {parked:#?}"))
    };
    let ev_topic = db.topic("ev");
    // the snapshot row: no position, no order; the record with null in place of the date
    let snap = by("1", "INSERT");
    assert_eq!(snap.value["parked"], "BAD_VALUE");
    assert_eq!(snap.value["table"], ev.as_str());
    assert_eq!(snap.value["topic"], ev_topic.as_str());
    assert_eq!(snap.value["position"], json!(null));
    assert_eq!(snap.value["order"], json!(null));
    assert_eq!(snap.value["columns"][0]["name"], "d", "{}", snap.raw);
    assert_eq!(snap.value["columns"].as_array().unwrap().len(), 1);
    assert!(
        snap.value["error"].as_str().unwrap().contains("column d"),
        "{}",
        snap.raw
    );
    let rec = &snap.value["record"];
    assert_eq!(rec["payload"]["sequenceId"], "-1");
    assert_eq!(rec["payload"]["after"]["dataColumn"]["d"], json!(null));
    assert_eq!(rec["payload"]["after"]["dataColumn"]["note"], "snap-bad");
    assert_eq!(
        rec["payload"]["after"]["dataColumn"]["secret"],
        hash("secret-one")
    );
    assert_eq!(rec["schema"]["source"], db.source_json("ev"));
    // the streamed ones: positions and orders
    let position_kind = match db.flavor {
        Flavor::Postgres => "lsn",
        Flavor::MariaDb => "binlogFileNumber",
    };
    for (key, op, col) in [("3", "INSERT", "t"), ("2", "UPDATE_AFTER", "d")] {
        let p = by(key, op);
        assert_eq!(p.value["parked"], "BAD_VALUE", "{}", p.raw);
        assert_eq!(
            p.value["columns"],
            json!([{"name": col, "reason": p.value["columns"][0]["reason"]}]),
            "{}",
            p.raw
        );
        assert!(
            p.value["position"].get(position_kind).is_some(),
            "{}",
            p.raw
        );
        let order = p.value["order"].as_str().unwrap();
        assert_eq!(
            p.order.as_deref(),
            Some(order),
            "the header carries the order too"
        );
        assert_eq!(
            p.value["record"]["payload"]["after"]["dataColumn"][col],
            json!(null)
        );
    }
    // the refused one: the error with the fix, the size, no record
    let refused = parked
        .iter()
        .find(|r| r.value["parked"] == "REFUSED")
        .unwrap_or_else(|| panic!("no refused record: {parked:#?}"));
    assert_eq!(refused.key.as_deref(), Some("2"));
    assert_eq!(refused.value["table"], big.as_str());
    assert_eq!(refused.value["topic"], db.topic("big").as_str());
    assert_eq!(refused.value["op"], "INSERT");
    assert_eq!(refused.value["record"], json!(null));
    assert!(
        refused.value["size"].as_u64().unwrap() > 2_000_000,
        "{}",
        refused.raw
    );
    assert!(
        refused.value["error"]
            .as_str()
            .unwrap()
            .contains("too large"),
        "{}",
        refused.raw
    );
    assert!(
        refused.value["position"].get(position_kind).is_some(),
        "{}",
        refused.raw
    );
    // no secret in any byte of the dead-letter topic
    for r in &parked {
        for secret in ["secret-one", "secret-two", "secret-three"] {
            assert!(
                !r.raw.contains(secret),
                "`{secret}` reached Kafka: {}",
                r.raw
            );
        }
    }
    // the data topics: every other row, once
    let evs = rev
        .until(60, "ev's good rows", |x| count_data(x) >= 2)
        .to_vec();
    let mut ev_rows: Vec<(String, String)> = evs
        .iter()
        .filter(|r| r.op() != "MHEARTBEAT" && !r.op().is_empty())
        .map(|r| (r.op().to_string(), r.key.clone().unwrap_or_default()))
        .collect();
    ev_rows.sort();
    assert_eq!(
        ev_rows,
        [
            ("INSERT".to_string(), "0".to_string()),
            ("INSERT".into(), "2".into())
        ]
    );
    let mut rbig = Reader::new(&db.topic("big"));
    let bigs = rbig
        .until(60, "big's small rows", |x| count_data(x) >= 2)
        .to_vec();
    let mut big_keys: Vec<&str> = bigs
        .iter()
        .filter(|r| r.op() == "INSERT")
        .filter_map(|r| r.key.as_deref())
        .collect();
    big_keys.sort();
    assert_eq!(big_keys, ["1", "3"]);
    assert_eq!(count_data(rother.until(5, "", |_| true)), 50);
    // counted per table and reason
    let series = |t: &str, why: &str| {
        format!("rowstream_records_parked_total{{table=\"{t}\",reason=\"{why}\"}}")
    };
    assert_eq!(metric(&admin, &series(&ev, "bad_value")), Some(3.0));
    assert_eq!(metric(&admin, &series(&big, "refused")), Some(1.0));
    // tail prints them readably
    let out = rowstream_ok(&[
        "tail",
        "--brokers",
        BROKER,
        &dlq,
        "--from-beginning",
        "--idle-secs",
        "3",
    ]);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("PARKED")).collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{ev}  PARKED UPDATE_AFTER  2  BAD_VALUE at "))),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{big}  PARKED INSERT  2  REFUSED at "))),
        "{out}"
    );
    assert_eq!(rs.stop(), 0);

    // the dirty-data limit: the second parked row stops the connector
    let limited = errors("bad_values = \"park\"\nmax_parked = 1");
    let mut rs = Rowstream::start(&db.name, &db.config(&masks, &limited));
    db.wait_streaming().await;
    db.exec(&format!(
        "{zero} INSERT INTO ev VALUES (4, {bad_date}, NULL, 'four', 'secret-four');"
    ))
    .await;
    db.exec(&format!(
        "{zero} INSERT INTO ev VALUES (5, {bad_date}, NULL, 'five', 'secret-five');"
    ))
    .await;
    rs.expect_setup_stop(&[
        "records were parked in",
        "more than errors.max_parked (1)",
        "rowstream tail",
    ])
    .await;
    drop(rs);
    // fail-fast: the first bad row read again stops it, naming the column
    let mut rs = Rowstream::start(
        &db.name,
        &db.config(&masks, &errors("bad_values = \"fail\"")),
    );
    let msg = rs
        .expect_setup_stop(&[
            "holds a value that cannot be rendered",
            "errors.bad_values = \"fail\"",
            "column d (",
        ])
        .await;
    assert!(!msg.contains("secret-f"), "{msg}");
    drop(rs);
    // the default: null in its place, and streaming goes on
    let rs = Rowstream::start(&db.name, &db.config(&masks, &errors("")));
    let evs = rev
        .until(60, "row 5 with a null date", |x| {
            x.iter().any(|r| r.key.as_deref() == Some("5"))
        })
        .to_vec();
    let five = evs.iter().find(|r| r.key.as_deref() == Some("5")).unwrap();
    assert_eq!(five.after()["d"], json!(null));
    assert_eq!(five.after()["note"], "five");
    // row 4: parked by the limited run, or (if its position was not stored) written with null
    let parked = rdlq.until(5, "", |_| true).to_vec();
    let four_parked = parked.iter().any(|r| r.key.as_deref() == Some("4"));
    let four_written = evs
        .iter()
        .any(|r| r.key.as_deref() == Some("4") && r.after()["d"] == json!(null));
    assert!(four_parked || four_written, "{parked:#?}\n{evs:#?}");
    assert_eq!(rs.stop(), 0);
}

/// `source.ddl_policy`: an added column `ignore`d (no DDL record, the rows carry it), a
/// dropped one `warn`ed (the record and a warning), a changed type `stop`s the connector
/// before its record and before the rows after it; started again with `apply`, the DDL and
/// those rows arrive, once each.
async fn ddl_policy_per_type(db: Db) {
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT); INSERT INTO t VALUES (1, 1, 1);")
        .await;
    let policy = |modify: &str| {
        format!("[source.ddl_policy]\nadd_column = \"ignore\"\ndrop_column = \"warn\"\nmodify_column = \"{modify}\"\n")
    };
    let mut rs = Rowstream::start(&db.name, &db.config(&policy("stop"), ""));
    let mut r = Reader::new(&db.topic("t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 1);
    db.wait_streaming().await;
    db.exec("ALTER TABLE t ADD COLUMN c INT").await;
    db.exec("INSERT INTO t VALUES (2, 2, 2, 2)").await;
    // row 2 read before the next DDL: a MySQL/MariaDB DDL record carries the columns
    // information_schema shows when the stream reads it, so a stream behind two DDLs in a row
    // would classify the first with the second's columns too (the rows are decoded as written)
    r.until(60, "row 2", |x| {
        x.iter().any(|r| r.key.as_deref() == Some("2"))
    });
    db.exec("ALTER TABLE t DROP COLUMN b").await;
    db.exec("INSERT INTO t VALUES (3, 3, 3)").await;
    r.until(60, "rows 2 and 3", |x| {
        x.iter().any(|r| r.key.as_deref() == Some("3"))
    });
    wait_for(30, "the drop_column warning", || async {
        rs.log_text().contains("source.ddl_policy = warn")
    })
    .await;
    assert!(rs.log_text().contains("drop_column"), "{}", rs.log_text());
    let retype = match db.flavor {
        Flavor::Postgres => "ALTER TABLE t ALTER COLUMN a TYPE text",
        Flavor::MariaDb => "ALTER TABLE t MODIFY a VARCHAR(20)",
    };
    db.exec(retype).await;
    db.exec("INSERT INTO t VALUES (4, 'x', 4)").await;
    rs.expect_setup_stop(&[
        "stopped the connector",
        "modify_column",
        "source.ddl_policy",
    ])
    .await;
    drop(rs);
    let rs = Rowstream::start(&db.name, &db.config(&policy("apply"), ""));
    let recs = r
        .until(60, "row 4 after the retyping", |x| {
            x.iter().any(|r| r.key.as_deref() == Some("4"))
        })
        .to_vec();
    let mut data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    data.sort_by(|a, b| a.seq().cmp(b.seq()));
    let ops: Vec<(&str, Option<&str>)> = data.iter().map(|x| (x.op(), x.key.as_deref())).collect();
    assert_eq!(
        ops,
        [
            ("INSERT", Some("1")),
            ("INSERT", Some("2")),
            ("ALTER", None),
            ("INSERT", Some("3")),
            ("ALTER", None),
            ("INSERT", Some("4")),
        ],
        "{data:#?}"
    );
    assert_eq!(*data[1].after(), json!({"id": 2, "a": 2, "b": 2, "c": 2}));
    assert_eq!(*data[3].after(), json!({"id": 3, "a": 3, "c": 3}));
    assert_eq!(*data[5].after(), json!({"id": 4, "a": "x", "c": 4}));
    assert_eq!(
        data[4].value["payload"]["ddl"]["text"].as_str(),
        Some(retype)
    );
    assert_eq!(rs.stop(), 0);
}

/// `source.routes`: 64 shards `orders_0` … `orders_63` with the same ids flow into one topic as
/// one table `orders`: every record names it, carries its shard in `__shard__`, and is keyed
/// by id and shard, so no two shards' keys collide; after snapshot and changes, the merged
/// topic's last image per key equals the 64 tables' rows.
async fn sharded_tables_merge_into_one_topic(db: Db) {
    let mut sql = String::new();
    for i in 0..64 {
        sql += &format!(
            "CREATE TABLE orders_{i} (id INT PRIMARY KEY, amount INT); INSERT INTO orders_{i} VALUES (1, {i}), (2, {});",
            i + 1000
        );
    }
    db.exec(&sql).await;
    let (pat, to) = (db.qualified("orders_*"), db.qualified("orders"));
    let cfg = db.config(&format!("[source.routes]\n\"{pat}\" = \"{to}\"\n"), "");
    let rs = Rowstream::start(&db.name, &cfg);
    let mut r = Reader::new(&db.topic("orders"));
    r.until(90, "the 64 shards' snapshots", |x| count_data(x) >= 128);
    db.wait_streaming().await;
    let mut sql = String::new();
    for i in 0..8 {
        sql += &format!("UPDATE orders_{i} SET amount = amount + 100 WHERE id = 1;");
    }
    for i in 0..4 {
        sql += &format!("DELETE FROM orders_{i} WHERE id = 2;");
    }
    for i in 60..64 {
        sql += &format!("INSERT INTO orders_{i} VALUES (3, {});", i * 10);
    }
    db.exec(&sql).await;
    let recs = r
        .until(90, "the changes", |x| count_data(x) >= 128 + 16)
        .to_vec();
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    assert_eq!(data.len(), 144);
    let snap_keys: std::collections::BTreeSet<&str> = data
        .iter()
        .filter(|x| x.seq() == "-1")
        .filter_map(|x| x.key.as_deref())
        .collect();
    assert_eq!(snap_keys.len(), 128, "one key per shard and id");
    for x in &data {
        let sch = &x.value["schema"];
        assert_eq!(sch["source"]["tableName"], "orders", "{}", x.raw);
        assert_eq!(
            sch["dataColumn"],
            json!([{"name":"id","type":"LONG"},{"name":"amount","type":"LONG"},{"name":"__shard__","type":"STRING"}])
        );
        assert_eq!(sch["primaryKey"], json!(["id", "__shard__"]));
    }
    // the last image per key (records of one key keep their order in its partition)
    let mut last: std::collections::BTreeMap<String, Option<serde_json::Value>> =
        Default::default();
    for x in &data {
        let img = match x.op() {
            "DELETE" => None,
            _ => Some(x.after().clone()),
        };
        last.insert(x.key.clone().unwrap(), img);
    }
    let mut want = std::collections::BTreeMap::new();
    for i in 0..64 {
        let shard = db.qualified(&format!("orders_{i}"));
        for row in db.rows(&format!("SELECT id, amount FROM orders_{i}")).await {
            let (id, amount) = (row[0].clone().unwrap(), row[1].clone().unwrap());
            want.insert(
                format!("{id},{shard}"),
                json!({"id": id.parse::<i64>().unwrap(), "amount": amount.parse::<i64>().unwrap(), "__shard__": shard}),
            );
        }
    }
    let got: std::collections::BTreeMap<String, serde_json::Value> = last
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    assert_eq!(got.len(), 64 * 2 - 4 + 4);
    assert_eq!(got, want);
    assert_eq!(rs.stop(), 0);
}

/// `source.column_exclude`, `source.columns` and `source.column_masks`: a left-out column is in
/// neither the schema nor any image, a masked one shows its hash (SHA-256 of the salt and the
/// value's text), its kept prefix or null, in snapshot rows and streamed images (before images
/// too), and no byte of any record holds a left-out or masked value. Masking a key column is
/// refused at the start.
async fn columns_left_out_and_masked(db: Db) {
    db.exec(
        "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(64), phone VARCHAR(20), password VARCHAR(64), note VARCHAR(64), score INT);
         CREATE TABLE audit (id INT PRIMARY KEY, what VARCHAR(20), token VARCHAR(40));
         INSERT INTO users VALUES (1, 'alice@example.com', '5550100123', 'pw-alice-1', 'note-alice', 7);
         INSERT INTO audit VALUES (1, 'login', 'tok-aaaa-1111');",
    )
    .await;
    db.log_whole_rows("users").await;
    let (users, audit) = (db.qualified("users"), db.qualified("audit"));
    let salt = "s3cret-salt";
    let rules = format!(
        "column_exclude = [\"{users}.password\"]\ncolumns = {{ \"{audit}\" = [\"id\", \"what\"] }}\nmask_salt = \"{salt}\"\n[source.column_masks]\n\"{users}.email\" = \"hash\"\n\"{users}.phone\" = \"keep:3\"\n\"{users}.note\" = \"null\"\n"
    );
    // a masked key would still be the Kafka key: refused, with the fix
    let mut rs = Rowstream::start(
        &db.name,
        &db.config(&format!("{rules}\"{users}.id\" = \"hash\"\n"), ""),
    );
    rs.expect_setup_stop(&["column `id` of table", "is in its key", "source.keys"])
        .await;
    drop(rs);
    let rs = Rowstream::start(&db.name, &db.config(&rules, ""));
    let mut ru = Reader::new(&db.topic("users"));
    ru.until(60, "the snapshot", |x| count_data(x) >= 1);
    db.wait_streaming().await;
    db.exec(
        "INSERT INTO users VALUES (2, 'bob@example.com', '5550100999', 'pw-bob-2', 'note-bob', 8);
         UPDATE users SET email = 'bob2@example.com', score = 9 WHERE id = 2;
         DELETE FROM users WHERE id = 1;
         INSERT INTO audit VALUES (2, 'logout', 'tok-bbbb-2222');",
    )
    .await;
    let recs = ru.until(60, "the changes", |x| count_data(x) >= 4).to_vec();
    let hash = |v: &str| {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(format!("{salt}{v}").as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    // records of one key keep their order; keys spread over partitions
    let data: Vec<&Rec> = recs
        .iter()
        .filter(|r| !r.op().is_empty() && r.op() != "MHEARTBEAT")
        .collect();
    let of = |key: &str| -> Vec<&Rec> {
        (data.iter().copied())
            .filter(|r| r.key.as_deref() == Some(key))
            .collect()
    };
    let (one, two) = (of("1"), of("2"));
    let ops = |v: &[&Rec]| v.iter().map(|r| r.op().to_string()).collect::<Vec<_>>();
    assert_eq!(ops(&one), ["INSERT", "DELETE"], "{data:#?}");
    assert_eq!(ops(&two), ["INSERT", "UPDATE_AFTER"], "{data:#?}");
    assert_eq!(
        one[0].value["schema"]["dataColumn"],
        json!([{"name":"id","type":"LONG"},{"name":"email","type":"STRING"},{"name":"phone","type":"STRING"},{"name":"note","type":"STRING"},{"name":"score","type":"LONG"}])
    );
    let img = |id: i64, email: &str, phone: &str, score: i64| json!({"id": id, "email": hash(email), "phone": phone, "note": null, "score": score});
    assert_eq!(
        *one[0].after(),
        img(1, "alice@example.com", "555*******", 7)
    );
    assert_eq!(
        *one[1].before(),
        img(1, "alice@example.com", "555*******", 7)
    );
    assert_eq!(*two[0].after(), img(2, "bob@example.com", "555*******", 8));
    assert_eq!(*two[1].before(), img(2, "bob@example.com", "555*******", 8));
    assert_eq!(*two[1].after(), img(2, "bob2@example.com", "555*******", 9));
    // audit: only the columns kept
    let mut ra = Reader::new(&db.topic("audit"));
    let arecs = ra
        .until(60, "audit's rows", |x| count_data(x) >= 2)
        .to_vec();
    let mut adata: Vec<&serde_json::Value> = arecs
        .iter()
        .filter(|r| r.op() == "INSERT")
        .map(|r| r.after())
        .collect();
    adata.sort_by_key(|a| a["id"].as_i64());
    assert_eq!(
        adata,
        [
            &json!({"id": 1, "what": "login"}),
            &json!({"id": 2, "what": "logout"})
        ]
    );
    assert!(arecs
        .iter()
        .filter(|r| r.op() == "INSERT")
        .all(|r| r.value["schema"]["dataColumn"]
            == json!([{"name":"id","type":"LONG"},{"name":"what","type":"STRING"}])));
    // no record of either topic holds a left-out or masked value, in any byte
    for secret in [
        "alice@example.com",
        "bob@example.com",
        "bob2@example.com",
        "5550100123",
        "5550100999",
        "pw-alice-1",
        "pw-bob-2",
        "note-alice",
        "note-bob",
        "tok-aaaa-1111",
        "tok-bbbb-2222",
        "password",
        "token",
    ] {
        for r in recs.iter().chain(arecs.iter()) {
            assert!(
                !r.raw.contains(secret),
                "`{secret}` reached Kafka: {}",
                r.raw
            );
        }
    }
    assert_eq!(rs.stop(), 0);
}

/// The Kafka Connect REST API on `run`'s admin listener: list, status, config (secrets
/// hidden), a 404 in Connect's shape; pause (the source lets go, nothing streams), resume
/// (what was written meanwhile arrives), restart; offsets; stop, reset the offsets (refused
/// while running), resume: every row is snapshotted again. Changing calls need the token.
async fn connect_rest_api_steers_the_connector(db: Db) {
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0);",
    )
    .await;
    let addr = free_addr();
    let name = db.name.clone();
    let cfg = db
        .config(
            "",
            &format!("[admin]\nlisten = \"{addr}\"\ntoken = \"s3cret\"\n"),
        )
        .replace("[state]\n", &format!("[state]\nconnector = \"{name}\"\n"));
    let mut rs = Rowstream::start(&db.name, &cfg);
    let mut r = Reader::new(&db.topic("t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 2);
    db.wait_streaming().await;
    let get = |path: &str| http(&addr, "GET", path, None, "");
    let json = |body: &str| -> serde_json::Value { serde_json::from_str(body).unwrap() };
    let state = |get: &dyn Fn(&str) -> (u16, String)| {
        let (_, b) = get(&format!("/connectors/{name}/status"));
        serde_json::from_str::<serde_json::Value>(&b).unwrap()["connector"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let (code, body) = get("/");
    assert_eq!(code, 200);
    assert!(json(&body)["version"].is_string(), "{body}");
    assert_eq!(json(&get("/connectors").1), json!([name]));
    let (code, body) = get(&format!("/connectors/{name}/status"));
    assert_eq!(code, 200, "{body}");
    let st = json(&body);
    assert_eq!(st["connector"]["state"], "RUNNING", "{body}");
    assert_eq!(st["tasks"][0]["state"], "RUNNING", "{body}");
    assert_eq!(st["type"], "source");
    assert_eq!(st["rowstream"]["snapshot"]["tables_done"], 1, "{body}");
    assert!(st["rowstream"]["position"].is_string(), "{body}");
    let (code, body) = get("/connectors/nope/status");
    assert_eq!(code, 404);
    assert_eq!(json(&body)["error_code"], 404);
    let (_, body) = get(&format!("/connectors/{name}/config"));
    let conf = json(&body);
    assert!(conf["source.url"].is_string(), "{body}");
    assert!(
        !body.contains("s3cret"),
        "the token is never returned: {body}"
    );
    assert!(
        !body.contains("rowstream:rowstream@"),
        "no password: {body}"
    );
    // changing calls need the token
    let put = |path: &str, token: Option<&str>| http(&addr, "PUT", path, token, "");
    assert_eq!(put(&format!("/connectors/{name}/pause"), None).0, 401);
    assert_eq!(
        put(&format!("/connectors/{name}/pause"), Some("wrong")).0,
        401
    );
    assert_eq!(
        put(&format!("/connectors/{name}/pause"), Some("s3cret")).0,
        202
    );
    wait_for(30, "PAUSED", || async { state(&get) == "PAUSED" }).await;
    db.exec("INSERT INTO t VALUES (3, 0)").await;
    assert_eq!(
        put(&format!("/connectors/{name}/resume"), Some("s3cret")).0,
        202
    );
    wait_for(30, "RUNNING", || async { state(&get) == "RUNNING" }).await;
    r.until(60, "the row written while paused", |x| {
        x.iter().any(|x| x.after()["id"] == json!(3))
    });
    let (code, _) = http(
        &addr,
        "POST",
        &format!("/connectors/{name}/restart"),
        Some("s3cret"),
        "",
    );
    assert_eq!(code, 204);
    // KIP-745: onlyFailed leaves a RUNNING connector alone; includeTasks restarts it (202 and
    // the status with RESTARTING)
    wait_for(30, "RUNNING after the restart", || async {
        state(&get) == "RUNNING"
    })
    .await;
    let (code, body) = http(
        &addr,
        "POST",
        &format!("/connectors/{name}/restart?includeTasks=true&onlyFailed=true"),
        Some("s3cret"),
        "",
    );
    assert_eq!(code, 202, "{body}");
    assert_eq!(json(&body)["connector"]["state"], "RUNNING", "{body}");
    let (code, body) = http(
        &addr,
        "POST",
        &format!("/connectors/{name}/restart?includeTasks=true"),
        Some("s3cret"),
        "",
    );
    assert_eq!(code, 202, "{body}");
    assert_eq!(json(&body)["connector"]["state"], "RESTARTING", "{body}");
    assert_eq!(json(&body)["tasks"][0]["state"], "RESTARTING", "{body}");
    wait_for(30, "RUNNING after the second restart", || async {
        state(&get) == "RUNNING"
    })
    .await;
    let (code, body) = get(&format!("/connectors/{name}/tasks/0/status"));
    assert_eq!(
        (code, json(&body)["state"].clone()),
        (200, json!("RUNNING"))
    );
    db.exec("INSERT INTO t VALUES (4, 0)").await;
    r.until(60, "a row after the restart", |x| {
        x.iter().any(|x| x.after()["id"] == json!(4))
    });
    let (_, body) = get(&format!("/connectors/{name}/offsets"));
    assert!(
        !json(&body)["offsets"][0]["offset"]["position"].is_null(),
        "{body}"
    );
    let del = |token| {
        http(
            &addr,
            "DELETE",
            &format!("/connectors/{name}/offsets"),
            token,
            "",
        )
    };
    let (code, body) = del(Some("s3cret"));
    assert_eq!(code, 400, "reset refused while running: {body}");
    assert!(body.contains("STOPPED"), "{body}");
    assert_eq!(
        put(&format!("/connectors/{name}/stop"), Some("s3cret")).0,
        204
    );
    wait_for(30, "STOPPED", || async { state(&get) == "STOPPED" }).await;
    // KIP-875 alter: the shape GET answers is accepted back; a bad one is refused
    let (_, offsets) = get(&format!("/connectors/{name}/offsets"));
    let patch = |body: &str| {
        http(
            &addr,
            "PATCH",
            &format!("/connectors/{name}/offsets"),
            Some("s3cret"),
            body,
        )
    };
    let (code, body) = patch(&offsets);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("altered successfully"), "{body}");
    let (code, body) = patch(r#"{"offsets": [{"partition": {}, "offset": {"position": 7}}]}"#);
    assert_eq!(code, 400, "{body}");
    assert_eq!(get(&format!("/connectors/{name}/offsets")).1, offsets);
    let (code, body) = del(Some("s3cret"));
    assert_eq!(code, 200, "{body}");
    let (_, body) = get(&format!("/connectors/{name}/offsets"));
    assert!(
        json(&body)["offsets"][0]["offset"]["position"].is_null(),
        "{body}"
    );
    let before = r.records.len();
    assert_eq!(
        put(&format!("/connectors/{name}/resume"), Some("s3cret")).0,
        202
    );
    r.until(60, "every row snapshotted again", |x| {
        x[before..].iter().filter(|x| x.seq() == "-1").count() >= 4
    });
    rs.assert_running();
    assert_eq!(rs.stop(), 0);
}

/// `state.backend = "kafka"` and no state directory: kill -9 at random moments (snapshot and
/// stream) under concurrent writes, restart each time; `verify` (which reads the position from
/// Kafka too) reports no difference and no key goes back, as with the file state.
async fn kafka_state_survives_kill9_at_random_moments(db: Db) {
    soak(db, true).await;
}

/// Two processes given the same connector (Kafka state): the second claims it, the first
/// notices and stops with one line naming the takeover (exit 1); the second streams on, and the
/// position only the second advances ends where the database is (`verify`: no difference).
async fn two_processes_one_connector_only_one_advances(db: Db) {
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0);",
    )
    .await;
    let cfg = with_kafka_state(&db.name, &db.config("", ""));
    let mut first = Rowstream::start(&db.name, &cfg);
    let mut r = Reader::new(&db.topic("t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 2);
    db.wait_streaming().await;
    // its own log (and config file) next to the first's
    let second = Rowstream::start(&format!("{}-2", db.name), &cfg);
    let log = first
        .expect_setup_stop(&[
            "another process claimed connector",
            "fix: run each connector",
        ])
        .await;
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{log}");
    db.exec("INSERT INTO t VALUES (3, 0); UPDATE t SET v = 1 WHERE id = 1")
        .await;
    r.until(120, "the second process streams", |x| {
        x.iter().any(|x| x.after()["id"] == json!(3))
    });
    let (code, text) = run_verify(&second.cfg, 120);
    assert_eq!(code, Some(0), "{text}");
    assert!(!never_created(&db.name).exists());
    assert_eq!(second.stop(), 0);
}

/// A `source.tables` pattern that selects no table (a typo, a schema that does not exist):
/// `check` fails naming it, and the first `run` stops with one error line and exit 1 before it
/// creates anything, instead of streaming nothing.
async fn table_pattern_matching_nothing_stops(db: Db) {
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY)").await;
    let typo = db.qualified("ordrs");
    for pattern in [typo.clone(), "nosuchschema.*".to_string()] {
        let cfg = db.config(&format!("tables = [\"{pattern}\"]"), "");
        let (code, out) = run_check(&db.name, &cfg);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains(&format!(
                "[FAIL] source.tables [\"{pattern}\"] match(es) no table"
            )),
            "{out}"
        );
        let mut rs = Rowstream::start(&db.name, &cfg);
        let log = rs
            .expect_setup_stop(&[
                &format!("error: source.tables [\"{pattern}\"] match(es) no table"),
                "fix: correct the pattern",
            ])
            .await;
        // the log file collects every run of the test: this run's part
        let this = &log[log.rfind("starting").unwrap()..];
        let errors: Vec<&str> = this.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line:\n{this}");
        assert!(!this.contains("created replication slot"), "{this}");
    }
    // the right name runs
    let cfg = db.config(&format!("tables = [\"{}\"]", db.qualified("orders")), "");
    let (code, out) = run_check(&db.name, &cfg);
    assert_eq!(code, Some(0), "{out}");
}

/// One transaction of 1,000,000 rows streams with bounded memory: rowstream's peak RSS stays
/// under 256 MB, and every row arrives.
async fn million_row_transaction_within_memory_budget(db: Db) {
    db.exec("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(100))")
        .await;
    let rs = Rowstream::start(&db.name, &db.config("", ""));
    db.wait_streaming().await;
    db.exec(&format!(
        "INSERT INTO big SELECT g, REPEAT('p', 100) FROM {}",
        db.series(1, 1_000_000)
    ))
    .await;
    let mut r = Reader::new(&db.topic("big"));
    let inserts = r.count_inserted_ids(600, 1_000_000);
    let rss_mb = peak_rss_kb(rs.child.id()) / 1024;
    eprintln!(
        "{}: 1M-row transaction, peak RSS {rss_mb} MB, {inserts} INSERT records",
        db.name
    );
    assert!(
        rss_mb < 256,
        "peak RSS {rss_mb} MB for a 1M-row transaction"
    );
    assert_eq!(rs.stop(), 0);
}

/// A small deterministic random source (xorshift), seeded from the clock; the seed is printed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("random seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// kill -9 at random moments, during the snapshot and the stream, under concurrent inserts,
/// updates, deletes and primary-key changes; restart each time. Then `verify` must report no
/// difference, and no key's `v` may go back. `ROWSTREAM_SOAK_ITERATIONS` sets the number of
/// kills (CI: 4; `scripts/soak.sh N` for long runs), and the last line reads
/// `soak <db>: <n> kills, lost L, extra E, different D, duplicated R, order violations O`.
async fn kill9_at_random_moments_then_verify(db: Db) {
    soak(db, false).await;
}

/// The kill -9 soak, with the state in files or (`kafka_state`) in Kafka.
async fn soak(db: Db, kafka_state: bool) {
    let kills: u64 = std::env::var("ROWSTREAM_SOAK_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    db.exec(&format!(
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40));
         INSERT INTO acct SELECT g, 0, 'n' FROM {};",
        db.series(1, 60000)
    ))
    .await;
    let mut cfg = db.config("", db.small_chunks());
    if kafka_state {
        cfg = with_kafka_state(&db.name, &cfg);
    }
    let w = db.open().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_w = stop.clone();
    let writer = tokio::spawn(async move {
        let mut rng = Rng::new();
        let mut next_id = 1_000_000;
        while !stop_w.load(std::sync::atomic::Ordering::Relaxed) {
            let id = rng.below(60000) + 1;
            let sql = match rng.below(10) {
                0 => {
                    next_id += 1;
                    format!("INSERT INTO acct VALUES ({next_id}, 0, 'new')")
                }
                1 => format!("DELETE FROM acct WHERE id = {id}"),
                2 => {
                    next_id += 1;
                    format!("UPDATE acct SET id = {next_id} WHERE id = {id}")
                }
                _ => format!("UPDATE acct SET v = v + 1 WHERE id = {id}"),
            };
            w.exec(&sql).await;
        }
    });
    let mut rng = Rng::new();
    for _ in 0..kills {
        let rs = Rowstream::start(&db.name, &cfg);
        // the fault: a kill at a random moment (snapshot, stream, or in between)
        tokio::time::sleep(std::time::Duration::from_millis(200 + rng.below(2500))).await;
        rs.kill9();
    }
    let rs = Rowstream::start(&db.name, &cfg);
    // the writer stops only once the last run streams, so changes cross every restart
    db.wait_streaming().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let out = std::process::Command::new(bin())
        .args(["verify", "--config"])
        .arg(&rs.cfg)
        .args(["--wait-secs", "300"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let summary = text
        .lines()
        .find(|l| l.starts_with("verify:"))
        .unwrap_or_else(|| {
            panic!(
                "no summary:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let counts = summary.split(':').nth(1).unwrap_or("");
    let num = |what: &str| -> u64 {
        counts
            .split(", ")
            .find_map(|p| p.trim().strip_suffix(what))
            .and_then(|n| n.trim().rsplit(' ').next().unwrap().parse().ok())
            .unwrap_or(u64::MAX)
    };
    let (missing, extra, different) = (num(" missing"), num(" extra"), num(" different"));
    // order and duplicates, from the records
    let fin = db.final_state("SELECT id, v FROM acct").await;
    let mut r = Reader::new(&db.topic("acct"));
    let recs = r
        .until(120, "the table's final state", |x| {
            reached_final_state(x, &fin)
        })
        .to_vec();
    // a record equal to one the key already had is a repeat (at-least-once replays after a
    // kill); any other record must not take the key's `v` back
    let mut seen = HashSet::new();
    let mut duplicated = 0;
    let mut high: std::collections::HashMap<String, i64> = Default::default();
    let mut order_violations = 0;
    for x in recs.iter().filter(|x| x.op() != "MHEARTBEAT") {
        let k = x.key.clone().unwrap_or_default();
        if !seen.insert(format!("{k}|{}|{}|{}", x.op(), x.before(), x.after())) {
            duplicated += 1;
            continue;
        }
        if x.op() == "DELETE" {
            continue;
        }
        let v = x.after()["v"].as_i64().unwrap_or(0);
        let h = high.entry(k.clone()).or_insert(v);
        if v < *h {
            order_violations += 1;
            eprintln!(
                "order: key {k} went from v={h} to v={v} ({} at offset {})",
                x.op(),
                x.offset
            );
        }
        *h = (*h).max(v);
    }
    eprintln!(
        "soak {}: {kills} kills, lost {}, extra {extra}, different {different}, duplicated {duplicated}, order violations {order_violations}",
        db.name,
        missing
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        (missing, extra, different, order_violations),
        (0, 0, 0, 0),
        "{text}"
    );
    assert!(
        !never_created(&db.name).exists(),
        "the Kafka state needs no directory"
    );
    assert_eq!(rs.stop(), 0);
}

/// The log at the stored position is gone (Postgres: the slot was dropped; MariaDB: the binlog
/// is not on the server): rowstream stops once, with one error line naming the way out, and
/// never silently restarts from elsewhere. `run --resnapshot` starts over: every row again.
async fn lost_log_stops_then_resnapshot_starts_over(db: Db) {
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0), (3, 0);")
        .await;
    let cfg = db.config("", "");
    let rs = Rowstream::start(&db.name, &cfg);
    let mut r = Reader::new(&db.topic("t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 3);
    db.wait_streaming().await;
    assert_eq!(rs.stop(), 0);
    db.lose_log_position().await;
    db.exec("INSERT INTO t VALUES (4, 0), (5, 0)").await;
    let mut rs = Rowstream::start(&db.name, &cfg);
    let log = rs.expect_setup_stop(&["--resnapshot"]).await;
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{log}");
    let printed = &log[log.find("\nerror:").unwrap()..];
    assert_eq!(
        printed.matches("--resnapshot").count(),
        1,
        "the fix is printed once:\n{printed}"
    );
    let rs = Rowstream::start_with(&db.name, &cfg, &["--resnapshot"]);
    let recs = r.until(60, "every row snapshotted again", |x| {
        x.iter().filter(|x| x.seq() == "-1").count() >= 3 + 5
    });
    let again: HashSet<i64> = recs
        .iter()
        .skip(3)
        .filter(|x| x.seq() == "-1")
        .filter_map(|x| x.after()["id"].as_i64())
        .collect();
    assert_eq!(again, HashSet::from([1, 2, 3, 4, 5]));
    db.exec("INSERT INTO t VALUES (6, 0)").await;
    r.until(60, "streaming after the resnapshot", |x| {
        x.iter().any(|x| x.after()["id"] == json!(6))
    });
    assert!(rs.log_text().contains("--resnapshot: starting over"));
    assert_eq!(rs.stop(), 0);
}

/// `rowstream verify` on a replica built under changes: zero differences. Then records that
/// contradict the database are planted in the topic (a row changed, a row deleted, a row that
/// never existed) and verify names each by key and exits 1.
async fn verify_finds_planted_differences(db: Db) {
    db.exec(&format!(
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20));
         INSERT INTO acct SELECT g, 0, 'n' FROM {};
         CREATE TABLE nk (a INT, b VARCHAR(5)); INSERT INTO nk VALUES (1, 'x'), (1, 'x'), (2, 'y');",
        db.series(1, 3000)
    ))
    .await;
    db.log_whole_rows("nk").await;
    let rs = Rowstream::start(&db.name, &db.config("", ""));
    let mut r = Reader::new(&db.topic("acct"));
    r.until(60, "the snapshot", |x| count_data(x) >= 3000);
    db.wait_streaming().await;
    db.exec("UPDATE acct SET v = v + 1 WHERE id % 10 = 0").await;
    db.exec("DELETE FROM acct WHERE id % 99 = 0").await;
    db.exec("INSERT INTO acct VALUES (5000, 1, 'late')").await;
    db.exec("UPDATE acct SET id = 6000 WHERE id = 17").await;
    db.exec("DELETE FROM nk WHERE a = 2; INSERT INTO nk VALUES (3, 'z');")
        .await;
    let verify = || {
        std::process::Command::new(bin())
            .args(["verify", "--config"])
            .arg(&rs.cfg)
            .args(["--wait-secs", "120"])
            .output()
            .unwrap()
    };
    let ok = verify();
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("3 rows in the database"), "{out}");
    assert!(out.contains("missing 0, extra 0, different 0"), "{out}");
    assert!(out.contains("the topics match the database"), "{out}");
    // plant: key 5 changed, key 7 deleted, key 999999 invented (all after the real records)
    let recs = r.until(60, "the id=5 record", |x| {
        x.iter().any(|x| x.key.as_deref() == Some("5"))
    });
    let mut base = recs
        .iter()
        .find(|x| x.key.as_deref() == Some("5"))
        .unwrap()
        .value
        .clone();
    base["payload"]["sequenceId"] = json!("9999999999999999");
    base["payload"]["timestamp"]["eventTime"] = json!(1);
    let topic = db.topic("acct");
    let mut changed = base.clone();
    changed["payload"]["op"] = json!("UPDATE_AFTER");
    changed["payload"]["after"]["dataColumn"]["v"] = json!(42);
    produce(&topic, "5", &changed);
    let mut deleted = base.clone();
    deleted["payload"]["op"] = json!("DELETE");
    deleted["payload"]["before"] = base["payload"]["after"].clone();
    deleted["payload"]["before"]["dataColumn"]["id"] = json!(7);
    deleted["payload"]["after"] = json!(null);
    produce(&topic, "7", &deleted);
    let mut invented = base.clone();
    invented["payload"]["after"]["dataColumn"]["id"] = json!(999999);
    produce(&topic, "999999", &invented);
    let bad = verify();
    let out = String::from_utf8_lossy(&bad.stdout).to_string();
    assert_eq!(bad.status.code(), Some(1), "{out}");
    let t = db.qualified("acct");
    assert!(out.contains("missing 1, extra 1, different 1"), "{out}");
    assert!(out.contains(&format!("missing   {t} key 7")), "{out}");
    assert!(out.contains(&format!("extra     {t} key 999999")), "{out}");
    assert!(out.contains(&format!("different {t} key 5: v")), "{out}");
    assert!(out.contains("DIFFERENCES FOUND"), "{out}");
    assert!(!out.contains("late"), "verify never prints row values");
    assert_eq!(rs.stop(), 0);
}

/// The database "restarts" mid-stream under writes: every connection is cut, new ones are
/// refused for a few seconds, then accepted again. rowstream keeps running, reconnects with
/// backoff and resumes; every row reaches the topic.
async fn database_restart_mid_stream(db: Db) {
    db.exec("CREATE TABLE ev (id INT PRIMARY KEY, v INT NOT NULL)")
        .await;
    let mut proxy = Proxy::start(db.server_addr()).await;
    let mut rs = Rowstream::start(&db.name, &db.config_via(&proxy, ""));
    db.wait_streaming().await;
    let w = db.open().await;
    let writer = tokio::spawn(async move {
        for t in 0..200 {
            w.exec(&format!("INSERT INTO ev VALUES ({t}, 0)")).await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    let mut r = Reader::new(&db.topic("ev"));
    r.until(60, "some rows", |x| count_data(x) >= 20);
    proxy.down();
    wait_for(30, "rowstream to see the connection gone", || async {
        rs.log_text().contains("transient failure")
    })
    .await;
    // refused for a while: at least one reconnect attempt meets a closed port
    wait_for(30, "a refused reconnect", || async {
        rs.log_text().matches("transient failure").count() >= 2
    })
    .await;
    rs.assert_running();
    proxy.up().await;
    writer.await.unwrap();
    let recs = r.until(120, "all 200 rows", |x| inserted_ids(x).len() == 200);
    assert!((0..200).all(|i| inserted_ids(recs).contains(&i)));
    rs.assert_running();
    assert_eq!(rs.stop(), 0);
}

/// Rows of the resume scenario's table.
const RESUME_ROWS: i64 = 100_000;

/// kill -9 a fifth of the way into a snapshot; while rowstream is down, rows it already sent
/// are deleted and updated; the restart resumes after the last stored chunk (not from the
/// start) and the topic ends exactly at the table's state: no phantom row, no key going back.
async fn interrupted_snapshot_resumes(db: Db) {
    interrupt_snapshot(db, false).await;
}

/// SIGTERM a fifth of the way into a snapshot: exit 0 within seconds; the restart resumes after
/// the last chunk (as after a kill, the rest as in `interrupted_snapshot_resumes`).
async fn sigterm_during_snapshot_resumes(db: Db) {
    interrupt_snapshot(db, true).await;
}

/// Stop a snapshot a fifth of the way in (SIGTERM, or kill -9), change rows it already sent,
/// restart: it resumes after its last stored chunk and the topic ends at the table's state.
async fn interrupt_snapshot(db: Db, sigterm: bool) {
    db.exec(&format!(
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(100));
         INSERT INTO acct SELECT g, 0, REPEAT('n', 100) FROM {};",
        db.series(1, RESUME_ROWS)
    ))
    .await;
    let cfg = db.config("", db.small_chunks());
    let rs = Rowstream::start(&db.name, &cfg);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let at = loop {
        match db.snapshot_progress("acct", RESUME_ROWS).await {
            Some(f) if f >= 0.2 => break f,
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot progress stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    if sigterm {
        let asked = std::time::Instant::now();
        assert_eq!(rs.stop(), 0);
        let took = asked.elapsed();
        assert!(took.as_secs() < 10, "SIGTERM took {took:?}");
    } else {
        rs.kill9();
    }
    let stored = db.snapshot_progress("acct", RESUME_ROWS).await.unwrap();
    assert!(stored < 1.0, "the snapshot finished before the kill ({at})");
    // rows the first run sent, changed behind its back: deleted, updated; and new ones
    db.exec("DELETE FROM acct WHERE id <= 500 AND id % 5 = 0")
        .await;
    db.exec("UPDATE acct SET v = v + 1 WHERE id <= 1000 AND id % 7 = 0")
        .await;
    db.exec("UPDATE acct SET v = v + 2 WHERE id > 90000 AND id % 11 = 0")
        .await;
    db.exec(&format!(
        "INSERT INTO acct SELECT g, 3, 'new' FROM {}",
        db.series(RESUME_ROWS + 1, RESUME_ROWS + 100)
    ))
    .await;
    let rs = Rowstream::start(&db.name, &cfg);
    let fin = db.final_state("SELECT id, v FROM acct").await;
    let mut r = Reader::new(&db.topic("acct"));
    let recs = r
        .until(180, "the table's final state", |x| {
            reached_final_state(x, &fin)
        })
        .to_vec();
    let (snapshot_records, twice) = assert_never_older(&recs);
    eprintln!(
        "{}: killed at {:.0}% (stored {:.0}%), {snapshot_records} snapshot records for {RESUME_ROWS} rows, {twice} rows read twice",
        db.name,
        at * 100.0,
        stored * 100.0
    );
    // resumed, not restarted: the rows before the stored cursor were not read again
    assert!(
        (twice as f64) < RESUME_ROWS as f64 * stored,
        "{twice} rows read twice: the snapshot started over"
    );
    wait_for(60, "the snapshot stored as complete", || async {
        db.snapshot_progress("acct", RESUME_ROWS).await == Some(1.0)
    })
    .await;
    assert!(rs.log_text().contains("incremental snapshot finished"));
    assert_eq!(rs.stop(), 0);
}

/// `rowstream snapshot --tables` while a writer keeps raising `v`: the table is read again
/// without stopping the stream, every key's records keep their order (v never goes back), and
/// the topic ends at the table's state. Unknown tables are refused with the reason.
async fn resnapshot_while_streaming(db: Db) {
    db.exec(&format!(
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO acct SELECT g, 0 FROM {};",
        db.series(1, 20000)
    ))
    .await;
    let port = free_port();
    let rest = format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n");
    let rs = Rowstream::start(&db.name, &db.config("", &rest));
    let mut r = Reader::new(&db.topic("acct"));
    r.until(60, "the initial snapshot", |x| count_data(x) >= 20000);
    db.wait_streaming().await;
    let w = db.open().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_w = stop.clone();
    let writer = tokio::spawn(async move {
        let mut i = 0i64;
        while !stop_w.load(std::sync::atomic::Ordering::Relaxed) || i < 300 {
            let id = (i * 7919) % 20000 + 1;
            w.exec(&format!("UPDATE acct SET v = v + 1 WHERE id = {id}"))
                .await;
            if i % 25 == 0 {
                w.exec(&format!(
                    "DELETE FROM acct WHERE id = {}",
                    (i * 31) % 20000 + 1
                ))
                .await;
            }
            i += 1;
        }
    });
    let snapshot = |tables: &str| {
        std::process::Command::new(bin())
            .args(["snapshot", "--config"])
            .arg(&rs.cfg)
            .args(["--tables", tables])
            .output()
            .unwrap()
    };
    let bad = snapshot(&format!(
        "{},{}",
        db.qualified("acct"),
        db.qualified("nope")
    ));
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("nope: no such table"), "{err}");
    let ok = snapshot(&db.qualified("acct"));
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("snapshot queued"));
    // each chunk waits for the stream to reach the log's end: slow when other tests load the
    // shared server's log
    wait_for(300, "the re-snapshot to finish", || async {
        rs.log_text().contains("incremental snapshot finished")
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let fin = db.final_state("SELECT id, v FROM acct").await;
    let recs = r
        .until(120, "the table's final state", |x| {
            reached_final_state(x, &fin)
        })
        .to_vec();
    let (snapshot_records, _) = assert_never_older(&recs);
    // keys the writer touched while their chunk was open come from the stream instead: under
    // load (a lagging stream, long windows) that can be thousands
    assert!(
        snapshot_records >= 20000 + 10000,
        "only {snapshot_records} snapshot records: the table was not read again"
    );
    assert_eq!(rs.stop(), 0);
}

/// Snapshot + stream of two tables (one with a composite key) while another session writes to
/// them during the snapshot: every key's records form its exact history (no gap, no
/// duplicate), in order, in one partition.
async fn snapshot_with_concurrent_writes(db: Db) {
    db.exec(&format!(
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200));
         CREATE TABLE item (a INT, b VARCHAR(10), v INT NOT NULL, PRIMARY KEY (a, b));
         INSERT INTO acct SELECT g, 0, REPEAT('x', 200) FROM {};
         INSERT INTO item SELECT g % 100, CONCAT('k', FLOOR(g / 100)), 0 FROM {};",
        db.series(1, 20000),
        db.series(0, 9999)
    ))
    .await;
    let rs = Rowstream::start(&db.name, &db.config("", db.small_chunks()));
    // the writer: increments v (one transaction each), inserts new keys, deletes some
    let w = db.open().await;
    let writer = tokio::spawn(async move {
        for i in 0..400 {
            let id = (i * 37) % 20000 + 1;
            w.exec(&format!("UPDATE acct SET v = v + 1 WHERE id = {id}"))
                .await;
            let (a, b) = (i % 100, format!("k{}", i % 100));
            w.exec(&format!(
                "UPDATE item SET v = v + 1 WHERE a = {a} AND b = '{b}'"
            ))
            .await;
            if i % 10 == 0 {
                w.exec(&format!(
                    "INSERT INTO acct VALUES ({}, 0, 'new')",
                    100000 + i
                ))
                .await;
                w.exec(&format!("DELETE FROM acct WHERE id = {}", 19999 - i))
                    .await;
            }
        }
    });
    writer.await.unwrap();
    let fin_acct = db.final_state("SELECT id, v FROM acct").await;
    let fin_item = db.final_state("SELECT a, b, v FROM item").await;
    assert_eq!((fin_acct.len(), fin_item.len()), (20000, 10000));
    for (table, fin) in [("acct", &fin_acct), ("item", &fin_item)] {
        let mut r = Reader::new(&db.topic(table));
        // every key reaches its final value and deleted keys their DELETE
        let recs = r
            .until(120, &format!("final state of {table}"), |x| {
                reached_final_state(x, fin)
            })
            .to_vec();
        let snapshot_rows = assert_exact_histories(&recs);
        assert!(
            snapshot_rows >= 9000,
            "{table}: only {snapshot_rows} snapshot rows"
        );
    }
    assert_eq!(rs.stop(), 0);
}

/// The ids of the INSERT records.
fn inserted_ids(recs: &[Rec]) -> HashSet<i64> {
    recs.iter()
        .filter(|x| x.op() == "INSERT")
        .filter_map(|x| x.after()["id"].as_i64())
        .collect()
}

/// kill -9 while streaming under writes, across log rotations, then a restart: every committed
/// change is in Kafka; after a clean stop the stored position is exact.
async fn kill9_and_restart_loses_nothing(db: Db) {
    db.exec("CREATE TABLE ev (id INT PRIMARY KEY, payload VARCHAR(64))")
        .await;
    let cfg = db.config("", "");
    let rs = Rowstream::start(&db.name, &cfg);
    db.wait_streaming().await;
    let w = db.open().await;
    let writer = tokio::spawn(async move {
        for t in 0..300 {
            let base = t * 10;
            w.exec(&format!(
                "INSERT INTO ev SELECT g, CONCAT('p', g) FROM {}",
                w.series(base, base + 9)
            ))
            .await;
            if t % 100 == 50 {
                w.rotate_log().await;
            }
        }
    });
    // kill while the writer is mid-way, once something was checkpointed
    let mut r = Reader::new(&db.topic("ev"));
    r.until(60, "some records", |x| count_data(x) > 300);
    rs.kill9();
    writer.await.unwrap();
    db.rotate_log().await;
    let rs = Rowstream::start(&db.name, &cfg);
    db.exec(&format!(
        "INSERT INTO ev SELECT g, 'after' FROM {}",
        db.series(3000, 3099)
    ))
    .await;
    let recs = r.until(120, "all 3100 ids", |x| inserted_ids(x).len() == 3100);
    let ids = inserted_ids(recs);
    assert!((0..3100).all(|i| ids.contains(&i)));
    assert_eq!(rs.stop(), 0);
    db.assert_clean_stop_position().await;
}

/// A table without a key: snapshot and changes with null Kafka keys and whole-row images; a
/// custom key (`source.keys`) gives another keyless table a key.
async fn keyless_tables_and_custom_keys(db: Db) {
    db.exec(
        "CREATE TABLE nk (a INT, b VARCHAR(5)); INSERT INTO nk VALUES (1, 'x'), (2, 'y'), (3, 'z');
         CREATE TABLE ck (tenant INT, n INT); INSERT INTO ck VALUES (7, 1);",
    )
    .await;
    db.log_whole_rows("nk").await;
    let keys = format!(
        "keys = {{ \"{}\" = [\"tenant\", \"n\"] }}",
        db.qualified("ck")
    );
    // check names the keyless table, not the one given a key
    let (_, out) = run_check(&db.name, &db.config(&keys, ""));
    let keyless: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("has no primary key"))
        .collect();
    assert_eq!(keyless.len(), 1, "{out}");
    assert!(keyless[0].contains("nk"), "{out}");
    let rs = Rowstream::start(&db.name, &db.config(&keys, ""));
    let mut r = Reader::new(&db.topic("nk"));
    r.until(60, "the snapshot", |x| count_data(x) >= 3);
    db.exec("INSERT INTO nk VALUES (4, 'w'); UPDATE nk SET b = 'q' WHERE a = 1; DELETE FROM nk WHERE a = 2;")
        .await;
    let recs = r.until(60, "the changes", |x| count_data(x) >= 6).to_vec();
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    assert_eq!(data.len(), 6);
    assert!(
        data.iter().all(|x| x.key.is_none()),
        "keyless records carry a null key"
    );
    assert!(data
        .iter()
        .all(|x| x.value["schema"]["primaryKey"].is_null()));
    let snap: HashSet<String> = data
        .iter()
        .filter(|x| x.seq() == "-1")
        .map(|x| x.after().to_string())
        .collect();
    assert_eq!(snap.len(), 3, "three distinct snapshot rows");
    let upd = data.iter().find(|x| x.op() == "UPDATE_AFTER").unwrap();
    assert_eq!(*upd.before(), json!({"a": 1, "b": "x"}));
    assert_eq!(*upd.after(), json!({"a": 1, "b": "q"}));
    let del = data.iter().find(|x| x.op() == "DELETE").unwrap();
    assert_eq!(*del.before(), json!({"a": 2, "b": "y"}));
    let mut rc = Reader::new(&db.topic("ck"));
    let c = rc
        .until(60, "ck's snapshot", |x| count_data(x) >= 1)
        .to_vec();
    let row = c.iter().find(|x| x.op() == "INSERT").unwrap();
    assert_eq!(row.key.as_deref(), Some("7,1"));
    assert_eq!(row.value["schema"]["primaryKey"], json!(["tenant", "n"]));
    assert_eq!(rs.stop(), 0);
}

/// ALTER TABLE ADD COLUMN mid-stream: an ALTER record with the new schema, between the rows
/// before it (old schema) and after it (new schema).
async fn alter_add_column_mid_stream(db: Db) {
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10))")
        .await;
    let rs = Rowstream::start(&db.name, &db.config("", ""));
    db.wait_streaming().await;
    db.exec("INSERT INTO t VALUES (1, 'x')").await;
    db.exec("ALTER TABLE t ADD COLUMN b BIGINT").await;
    db.exec("INSERT INTO t VALUES (2, 'y', 42)").await;
    let mut r = Reader::new(&db.topic("t"));
    let recs = r
        .until(60, "3 data records", |x| count_data(x) >= 3)
        .to_vec();
    let data: Vec<&Rec> = recs.iter().filter(|x| x.op() != "MHEARTBEAT").collect();
    assert_eq!(data.len(), 3);
    let ddl = data
        .iter()
        .find(|x| x.op() == "ALTER")
        .expect("an ALTER record");
    assert_eq!(
        ddl.value["payload"]["ddl"]["text"],
        json!("ALTER TABLE t ADD COLUMN b BIGINT")
    );
    assert_eq!(ddl.value["payload"]["before"], json!(null));
    assert_eq!(ddl.value["payload"]["after"], json!(null));
    assert_eq!(ddl.key, None);
    assert_eq!(
        ddl.value["schema"]["dataColumn"],
        json!([{"name":"id","type":"LONG"},{"name":"a","type":"STRING"},{"name":"b","type":"LONG"}])
    );
    assert_eq!(ddl.value["schema"]["source"], db.source_json("t"));
    let row1 = data.iter().find(|x| x.key.as_deref() == Some("1")).unwrap();
    let row2 = data.iter().find(|x| x.key.as_deref() == Some("2")).unwrap();
    assert_eq!(*row1.after(), json!({"id": 1, "a": "x"}));
    assert_eq!(*row2.after(), json!({"id": 2, "a": "y", "b": 42}));
    assert_eq!(
        row1.value["schema"]["dataColumn"].as_array().unwrap().len(),
        2
    );
    // order: INSERT 1 < ALTER < INSERT 2
    assert!(
        row1.seq() < ddl.seq() && ddl.seq() < row2.seq(),
        "{} {} {}",
        row1.seq(),
        ddl.seq(),
        row2.seq()
    );
    assert_eq!(rs.stop(), 0);
}

/// Heartbeats reach every partition with the exact MHEARTBEAT shape and a null key; once a
/// change was delivered they carry its commit time.
async fn heartbeats_on_every_partition(db: Db) {
    db.exec("CREATE TABLE quiet (id INT PRIMARY KEY)").await;
    let cfg = db
        .config("", "")
        .replace("interval_ms = 1000", "interval_ms = 300");
    let mut rs = Rowstream::start(&db.name, &cfg);
    let mut r = Reader::new(&db.topic("quiet"));
    r.until(30, "two heartbeats on each of 3 partitions", |recs| {
        (0..3).all(|p| {
            recs.iter()
                .filter(|x| x.partition == p && x.op() == "MHEARTBEAT")
                .count()
                >= 2
        })
    });
    rs.assert_running();
    let hb = r
        .records
        .iter()
        .find(|x| x.op() == "MHEARTBEAT")
        .unwrap()
        .value
        .clone();
    assert_eq!(
        hb["schema"],
        json!({"dataColumn": null, "primaryKey": null, "source": null})
    );
    assert_eq!(hb["payload"]["before"], json!(null));
    assert_eq!(hb["payload"]["after"], json!(null));
    assert_eq!(hb["payload"]["sequenceId"], json!(null));
    assert_eq!(hb["payload"]["ddl"], json!(null));
    assert_eq!(hb["version"], json!("0.0.1"));
    let ts = &hb["payload"]["timestamp"];
    assert_eq!(ts["eventTime"], ts["checkpointTime"]);
    assert!(ts["systemTime"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(r
        .records
        .iter()
        .filter(|x| x.op() == "MHEARTBEAT")
        .all(|x| x.key.is_none()));
    // a delivered change: later heartbeats carry (at least) its commit time
    db.wait_streaming().await;
    db.exec("INSERT INTO quiet VALUES (1)").await;
    let recs = r.until(30, "the row", |x| count_data(x) >= 1).to_vec();
    let row = recs.iter().find(|x| x.op() == "INSERT").unwrap();
    let committed = row.value["payload"]["timestamp"]["eventTime"]
        .as_i64()
        .unwrap();
    assert!(committed > 1_600_000_000_000);
    let seen = r.records.len();
    r.until(30, "a heartbeat with the row's commit time", |x| {
        x[seen..].iter().any(|h| {
            h.op() == "MHEARTBEAT"
                && h.value["payload"]["timestamp"]["eventTime"]
                    .as_i64()
                    .unwrap_or(-1)
                    >= committed
        })
    });
    assert_eq!(rs.stop(), 0);
}

/// `encode.profile = "paimon"`: a table without a key is refused with the fix; with a key given
/// by `source.keys`, every record of the data topics (snapshot, insert, update with a key
/// change, delete, across an ALTER), values as JSON strings, passes a model of Paimon's
/// `aliyun-json` parser run with `--type_mapping to-string` (tests/common/paimon.rs), with zero
/// rejections; heartbeats and the DDL record are in the side topic. The same model rejects
/// rowstream's default DataWorks records (a heartbeat, a null primaryKey) and, without
/// `to-string`, STRING columns: the test can fail, and the README's command needs the option.
async fn paimon_profile_passes_paimons_parser(db: Db) {
    use common::paimon::{parse, TypeMapping};
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, n BIGINT, s VARCHAR(20), d DECIMAL(10,2), ts TIMESTAMP, b BOOLEAN);
         CREATE TABLE k (a INT, v VARCHAR(10));
         INSERT INTO t VALUES (1, 10, 'one', 1.50, '2024-11-15 09:30:00', true), (2, 20, 'two', 2.50, '2024-11-15 09:30:01', false);
         INSERT INTO k VALUES (1, 'x');",
    )
    .await;
    db.log_whole_rows("k").await;
    let side = format!("{}-{}-side", db.name, run_id());
    let profile = format!("[encode]\nprofile = \"paimon\"\nside_topic = \"{side}\"\n");
    // a keyless table would become an append-only Paimon table, which fails the job on its
    // first DELETE: refused at the start, with the fix
    let mut rs = Rowstream::start(&db.name, &db.config("", &profile));
    rs.expect_setup_stop(&[
        &format!("table {} has no primary key", db.qualified("k")),
        "source.keys",
    ])
    .await;
    // with a key given for it, it is a primary-key table like the others
    let keys = format!("keys = {{ \"{}\" = [\"a\"] }}", db.qualified("k"));
    let cfg = db
        .config(&keys, &profile)
        .replace("interval_ms = 1000", "interval_ms = 200");
    let rs = Rowstream::start(&db.name, &cfg);
    let mut rt = Reader::new(&db.topic("t"));
    let mut rk = Reader::new(&db.topic("k"));
    rt.until(60, "the snapshot of t", |x| count_data(x) >= 2);
    db.wait_streaming().await;
    db.exec(
        "INSERT INTO t VALUES (3, 30, 'three', 3.50, '2024-11-15 09:30:02', true);
         UPDATE t SET s = 'uno' WHERE id = 1;
         UPDATE t SET id = 4 WHERE id = 2;
         DELETE FROM t WHERE id = 3;
         ALTER TABLE t ADD COLUMN extra VARCHAR(5);
         INSERT INTO t (id, n, s, d, ts, b, extra) VALUES (5, 50, 'five', 5.50, '2024-11-15 09:30:05', false, 'e');
         INSERT INTO k VALUES (2, 'y');
         UPDATE k SET v = 'z' WHERE a = 1;
         DELETE FROM k WHERE a = 2;",
    )
    .await;
    // snapshot 2 + INSERT 3, UPDATE 1, DELETE 2 + INSERT 4, DELETE 3, INSERT 5
    let data_t = rt
        .until(60, "every change of t", |x| count_data(x) >= 8)
        .to_vec();
    let data_k = rk
        .until(60, "every change of k", |x| count_data(x) >= 4)
        .to_vec();
    let mut rs_side = Reader::new(&side);
    let side_recs = rs_side
        .until(60, "heartbeats and the ALTER in the side topic", |x| {
            x.iter().filter(|r| r.op() == "MHEARTBEAT").count() >= 6
                && x.iter().any(|r| r.op() == "ALTER")
        })
        .to_vec();
    // heartbeats were written meanwhile: the data topics hold none of them, nor the DDL
    let mut recs = data_t.clone();
    recs.extend(data_k.iter().cloned());
    for r in &recs {
        assert!(
            ["INSERT", "UPDATE_AFTER", "UPDATE_BEFORE", "DELETE"].contains(&r.op()),
            "{}",
            r.raw
        );
    }
    assert!(side_recs
        .iter()
        .all(|r| r.op() == "MHEARTBEAT" || r.op() == "ALTER"));
    let alter = side_recs.iter().find(|r| r.op() == "ALTER").unwrap();
    assert_eq!(alter.value["schema"]["source"], db.source_json("t"));
    // every data record passes Paimon's parser with --type_mapping to-string
    let mut kinds = std::collections::BTreeMap::<(String, &str), usize>::new();
    for r in &recs {
        let p = parse(r.raw.as_bytes(), TypeMapping::ToString)
            .unwrap_or_else(|e| panic!("Paimon rejects {}: {e}", r.raw))
            .expect("a row record");
        assert_eq!(p.database.as_deref(), Some(db.name.as_str()));
        *kinds
            .entry((p.table.clone().unwrap(), p.row_kind))
            .or_default() += 1;
        match p.table.as_deref() {
            Some("t") => assert_eq!(p.primary_keys, ["id"]),
            Some("k") => assert_eq!(p.primary_keys, ["a"], "{}", r.raw),
            other => panic!("table {other:?}"),
        }
    }
    let kinds: Vec<_> = kinds
        .into_iter()
        .map(|((t, k), n)| format!("{t} {k} {n}"))
        .collect();
    assert_eq!(
        kinds,
        ["k +I 2", "k +U 1", "k -D 1", "t +I 5", "t +U 1", "t -D 2"],
        "{recs:#?}"
    );
    // every value is a JSON string holding its text: Paimon reads JSON numbers through a
    // float (100.0 would land as "1E+2")
    let first = data_t
        .iter()
        .find(|r| r.op() == "INSERT" && r.after()["id"] == "1")
        .unwrap_or_else(|| panic!("{data_t:#?}"));
    let a = first.after();
    assert_eq!(
        (&a["n"], &a["d"], &a["s"]),
        (
            &serde_json::json!("10"),
            &serde_json::json!("1.50"),
            &serde_json::json!("one")
        ),
        "{}",
        first.raw
    );
    assert!(a["ts"].is_string() && a["b"].is_string(), "{}", first.raw);
    // without to-string Paimon has no type for BYTES: one reason the README's command needs it
    let bytes = data_t[0]
        .raw
        .replacen("\"type\":\"STRING\"", "\"type\":\"BYTES\"", 1);
    let e = parse(bytes.as_bytes(), TypeMapping::Default).unwrap_err();
    assert!(e.contains("'BYTES'"), "{e}");
    // and the DataWorks profile's records fail it: a heartbeat, a null primaryKey
    let hb = side_recs.iter().find(|r| r.op() == "MHEARTBEAT").unwrap();
    assert!(parse(hb.raw.as_bytes(), TypeMapping::ToString)
        .unwrap_err()
        .contains("Unknown record operation: MHEARTBEAT"));
    let null_key = data_k[0]
        .raw
        .replace("\"primaryKey\":[\"a\"]", "\"primaryKey\":null");
    assert!(parse(null_key.as_bytes(), TypeMapping::ToString).is_err());
    assert_eq!(rs.stop(), 0);
}

/// `rowstream copy`: every row of the table as it is now, once, as snapshot records
/// (sequenceId "-1", eventTime and checkpointTime -1), then exit 0; no slot is left behind.
/// The plain formats: `text` with a delimiter, a null text and a key column; `json` with typed
/// columns.
async fn copy_writes_every_row_once_and_exits(db: Db) {
    db.exec(&format!(
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(10), d DECIMAL(10,2));
         INSERT INTO t SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'r' END, g * 1.25 FROM {};",
        db.series(1, 50)
    ))
    .await;
    let cfg_path = std::env::temp_dir().join(format!("rowstream-test-{}-copy.toml", db.name));
    std::fs::write(&cfg_path, db.config("", "")).unwrap();
    let cfg = cfg_path.to_str().unwrap();
    let copy = |args: &[&str]| rowstream_ok(&[&["copy", "--config", cfg], args].concat());
    assert_eq!(copy(&[]), "copied 50 rows of 1 table(s)\n");
    let mut r = Reader::new(&db.topic("t"));
    let recs = r.until(60, "50 rows", |x| count_data(x) >= 50).to_vec();
    let mut ids: Vec<i64> = recs
        .iter()
        .filter_map(|x| x.after()["id"].as_i64())
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=50).collect::<Vec<_>>());
    for x in &recs {
        assert_eq!(x.op(), "INSERT");
        assert_eq!(x.seq(), "-1");
        let ts = &x.value["payload"]["timestamp"];
        assert_eq!(
            (ts["eventTime"].as_i64(), ts["checkpointTime"].as_i64()),
            (Some(-1), Some(-1))
        );
        assert_eq!(x.key.as_deref(), Some(x.after()["id"].to_string().as_str()));
        assert_eq!(x.value["schema"]["source"], db.source_json("t"));
    }
    if db.flavor == Flavor::Postgres {
        let slots = db
            .rows(&format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
                db.name
            ))
            .await;
        assert_eq!(slots[0][0].as_deref(), Some("0"), "copy makes no slot");
    }
    // text: delimiter, null text, the key from column 0
    let text_topic = format!("{}-text", db.topic("t"));
    copy(&[
        "--format",
        "text",
        "--topic",
        &text_topic,
        "--field-delimiter",
        "|",
        "--null-value",
        "NULL",
        "--key-index",
        "0",
    ]);
    let mut r = Reader::new(&text_topic);
    let text: Vec<(Option<String>, String)> = r.until_raw(60, 50).into_iter().collect();
    let row10 = text
        .iter()
        .find(|(k, _)| k.as_deref() == Some("10"))
        .unwrap();
    assert_eq!(row10.1, "10|NULL|12.50");
    assert_eq!(text.len(), 50);
    // json: typed columns, a decimal keeps its scale
    let json_topic = format!("{}-json", db.topic("t"));
    copy(&[
        "--format",
        "json",
        "--topic",
        &json_topic,
        "--json-type",
        "id=JSON_STRING",
    ]);
    let mut r = Reader::new(&json_topic);
    let json: Vec<(Option<String>, String)> = r.until_raw(60, 50).into_iter().collect();
    assert!(json.iter().all(|(k, _)| k.is_none()));
    assert!(
        json.iter()
            .any(|(_, v)| v == r#"{"id":"7","s":"r","d":8.75}"#),
        "{json:?}"
    );
    // options that name nothing are refused before anything is written, each named
    let missing = match db.flavor {
        Flavor::Postgres => "public.nosuch".to_string(),
        _ => format!("{}.nosuch", db.name),
    };
    for (args, needle) in [
        (
            vec!["--tables", missing.as_str()],
            format!("--tables {missing}: no such table"),
        ),
        (
            vec!["--format", "text", "--key-index", "99"],
            "--key-index 99: ".to_string(),
        ),
        (
            vec!["--format", "json", "--json-type", "nope=JSON_STRING"],
            "--json-type nope=...: no copied table has a column `nope`".to_string(),
        ),
    ] {
        let (code, _, err) = rowstream(&[&["copy", "--config", cfg], args.as_slice()].concat());
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(&needle), "{args:?}: {err}");
        assert!(
            err.contains("has 3 columns") || !needle.starts_with("--key"),
            "{err}"
        );
    }
    // a value holding the delimiter is escaped, never split
    db.exec("CREATE TABLE u (id INT PRIMARY KEY, s VARCHAR(10)); INSERT INTO u VALUES (1, 'a|b');")
        .await;
    let u_topic = format!("{}-text", db.topic("u"));
    let u = match db.flavor {
        Flavor::Postgres => "public.u".to_string(),
        _ => format!("{}.u", db.name),
    };
    copy(&[
        "--tables",
        &u,
        "--format",
        "text",
        "--topic",
        &u_topic,
        "--field-delimiter",
        "|",
    ]);
    let mut r = Reader::new(&u_topic);
    let text: Vec<(Option<String>, String)> = r.until_raw(60, 1).into_iter().collect();
    assert_eq!(text[0].1, "1|a\\|b");
}

/// `kafka.exactly_once` on Apache Kafka: records and positions committed in one transaction.
/// kill -9 in the middle of the snapshot and again in the middle of streamed transactions; each
/// restart resumes after the last committed transaction, and a read_committed consumer sees
/// every row exactly once (zero repeats, zero missing). A second process of the same connector
/// fences the first (its open transaction aborted, its later writes refused): still no repeat.
async fn exactly_once_across_kill9(db: Db) {
    const ROWS: i64 = 150_000;
    db.padded_table("t", ROWS, "snapshot").await;
    let cfg = with_kafka_state(&db.name, &db.config("", db.small_chunks()))
        .replace("partitions = 3", "partitions = 3\nexactly_once = true");
    // every id seen, and how often (read_committed: the default of the test's reader)
    let counts = |recs: &[Rec]| {
        let mut n = std::collections::HashMap::<i64, usize>::new();
        for r in recs.iter().filter(|x| x.op() == "INSERT") {
            *n.entry(r.after()["id"].as_i64().unwrap()).or_default() += 1;
        }
        n
    };
    let mut r = Reader::new(&db.topic("t"));
    // kill -9 mid-snapshot: some chunks committed, not all
    let rs = Rowstream::start(&db.name, &cfg);
    r.until(120, "part of the snapshot", |x| count_data(x) >= 1);
    rs.kill9();
    assert!(
        count_data(&r.records) < ROWS as usize,
        "the kill came after the snapshot ended; make the table larger"
    );
    let rs = Rowstream::start(&db.name, &cfg);
    r.until(180, "the whole snapshot", |x| {
        counts(x).len() == ROWS as usize
    });
    db.wait_streaming().await;
    // kill -9 while transactions of 10 rows stream
    let w = db.open().await;
    let writer = tokio::spawn(async move {
        for t in 0..200 {
            let base = ROWS + 1 + t * 10;
            w.exec(&format!(
                "INSERT INTO t SELECT g, 'stream' FROM {}",
                w.series(base, base + 9)
            ))
            .await;
        }
    });
    r.until(120, "some streamed rows", |x| {
        counts(x).keys().filter(|id| **id > ROWS).count() >= 300
    });
    rs.kill9();
    writer.await.unwrap();
    let rs = Rowstream::start(&db.name, &cfg);
    let end = ROWS + 2_000;
    r.until(180, "every streamed row", |x| {
        counts(x).len() == end as usize
    });
    // rows through the restarted process: it has claimed the connector and streams
    db.exec(&format!(
        "INSERT INTO t SELECT g, 'before the takeover' FROM {}",
        db.series(end + 1, end + 50)
    ))
    .await;
    r.until(180, "rows through the restarted process", |x| {
        counts(x).len() == end as usize + 50
    });
    // a second process of the same connector: the first is fenced and stops
    let mut zombie = rs;
    let rs = Rowstream::start(&format!("{}-2", db.name), &cfg);
    db.exec(&format!(
        "INSERT INTO t SELECT g, 'after' FROM {}",
        db.series(end + 51, end + 100)
    ))
    .await;
    let recs = r.until(180, "the rows after the takeover", |x| {
        counts(x).len() == end as usize + 100
    });
    let n = counts(recs);
    let repeated: Vec<_> = n.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} ids repeated, e.g. {:?}",
        repeated.len(),
        &repeated[..repeated.len().min(5)]
    );
    assert!((1..=end + 100).all(|id| n.contains_key(&id)));
    assert_eq!(
        zombie.wait_exit(60).await,
        Some(1),
        "the older process is fenced and stops"
    );
    assert_eq!(rs.stop(), 0);
}

/// A three-broker Apache Kafka cluster (replication factor 3, min.insync.replicas 2, acks=all,
/// idempotent producer), state in Kafka: kill -9 the broker leading a partition of the table
/// being snapshotted (300k rows: each arrives exactly once), bring it back; kill -9 the broker
/// leading a busy data partition while changes stream, bring it back, then kill -9 the broker
/// leading the state topic. Every change
/// arrives exactly once and in order per key: each key's `v` rises by one at every record (no
/// gap, no repeat from the producer's retries, never back), and the topic ends at the table.
async fn broker_loss_mid_stream_loses_nothing(db: Db) {
    const KEYS: i64 = 20;
    const ROUNDS: i64 = 300;
    let mut cluster = Cluster::start();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)")
        .await;
    db.exec(&format!(
        "INSERT INTO t SELECT g, 0 FROM {}",
        db.series(1, KEYS)
    ))
    .await;
    const BIG: i64 = 300_000;
    db.padded_table("big", BIG, "snapshot row").await;
    let cfg = with_kafka_state(&db.name, &db.config("", ""))
        .replace(BROKER, &cluster.brokers())
        .replace("partitions = 3", "partitions = 3\nreplication_factor = 3");
    let rs = Rowstream::start(&db.name, &cfg);
    // a broker lost during the snapshot: the leader of a partition of the table being read
    let big = db.topic("big");
    Reader::on(&cluster.brokers(), &big).until_raw(120, 1);
    let snap_leader = cluster.leader(&big, 0);
    cluster.kill9(snap_leader);
    let inserts = Reader::on(&cluster.brokers(), &big).count_inserted_ids(240, BIG as usize);
    assert_eq!(inserts, BIG as usize, "every snapshot row once");
    cluster.start_node(snap_leader);
    cluster.wait_node(snap_leader);
    let topic = db.topic("t");
    let mut r = Reader::on(&cluster.brokers(), &topic);
    // (the changes after the snapshot's point are streamed whenever streaming starts)
    r.until(120, "the snapshot", |x| count_data(x) >= KEYS as usize);
    // every key raised by one per transaction, ROUNDS times
    let w = db.open().await;
    let writer = tokio::spawn(async move {
        for _ in 0..ROUNDS {
            w.exec("UPDATE t SET v = v + 1").await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let reached = |v: i64| move |x: &[Rec]| x.iter().any(|r| r.after()["v"].as_i64() >= Some(v));
    r.until(120, "changes before the first loss", reached(30));
    let data_leader = cluster.leader(&topic, 0);
    cluster.kill9(data_leader);
    r.until(120, "changes with the data leader gone", reached(120));
    cluster.start_node(data_leader);
    cluster.wait_node(data_leader);
    let state_topic = format!("{}-{}-offsets", db.name, run_id());
    let state_leader = cluster.leader(&state_topic, 0);
    cluster.kill9(state_leader);
    r.until(120, "changes with the state leader gone", reached(220));
    cluster.start_node(state_leader);
    cluster.wait_node(state_leader);
    writer.await.unwrap();
    let recs = r
        .until(180, "every change", |x| {
            x.iter()
                .filter(|r| r.after()["v"].as_i64() == Some(ROUNDS))
                .count()
                == KEYS as usize
        })
        .to_vec();
    let mut last: std::collections::HashMap<String, (i32, i64)> = Default::default();
    for x in recs.iter().filter(|x| x.op() != "MHEARTBEAT") {
        let k = x.key.clone().unwrap();
        let v = x.after()["v"].as_i64().unwrap();
        if let Some((p, prev)) = last.get(&k) {
            assert_eq!(*p, x.partition, "key {k} on two partitions");
            assert_eq!(
                v,
                prev + 1,
                "key {k}: v={prev} then v={v} at offset {}",
                x.offset
            );
        } else {
            assert_eq!(v, 0, "key {k} starts at its snapshot");
        }
        last.insert(k, (x.partition, v));
    }
    assert_eq!(last.len(), KEYS as usize);
    assert!(last.values().all(|(_, v)| *v == ROUNDS));
    eprintln!(
        "{}: killed data leader node {data_leader} and state leader node {state_leader}; {} records, none lost or repeated",
        db.name,
        count_data(&recs)
    );
    assert_eq!(rs.stop(), 0);
}

/// A record sent again after kill -9 is recognisable (docs/message-format.md, "Replays"): its
/// `rowstream.order` header is the one it had the first time, and the header orders each key's
/// records along the source log, so a consumer that keeps the highest order per key never
/// goes back to an older image. Transactions update every key twice (two records per key per
/// transaction); each key's `v` counts its changes, so equal `v` means the same change.
async fn replays_carry_their_first_order(db: Db) {
    const KEYS: i64 = 10;
    const ROUNDS: i64 = 150;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)")
        .await;
    db.exec(&format!(
        "INSERT INTO t SELECT g, 0 FROM {}",
        db.series(1, KEYS)
    ))
    .await;
    // positions stored every 10 s: a kill -9 leaves sent records beyond the stored position
    let cfg = db
        .config("", "")
        .replace("commit_interval_ms = 50", "commit_interval_ms = 10000");
    let rs = Rowstream::start(&db.name, &cfg);
    let mut r = Reader::new(&db.topic("t"));
    r.until(60, "the snapshot", |x| count_data(x) >= KEYS as usize);
    db.wait_streaming().await;
    let w = db.open().await;
    let writer = tokio::spawn(async move {
        for _ in 0..ROUNDS {
            w.exec("BEGIN; UPDATE t SET v = v + 1; UPDATE t SET v = v + 1; COMMIT")
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    let top = |x: &[Rec]| {
        x.iter()
            .filter_map(|r| r.after()["v"].as_i64())
            .max()
            .unwrap_or(0)
    };
    r.until(120, "some changes", |x| top(x) >= 60);
    rs.kill9();
    assert!(
        !writer.is_finished(),
        "the kill came after the last write: raise ROUNDS"
    );
    writer.await.unwrap();
    let rs = Rowstream::start(&db.name, &cfg);
    let last = 2 * ROUNDS;
    r.until(180, "every change", |x| {
        x.iter()
            .filter(|r| r.after()["v"].as_i64() == Some(last))
            .count()
            >= KEYS as usize
    });
    // the second run has sent everything it replays once its stop flushed: read to the end
    assert_eq!(rs.stop(), 0);
    let total = r.end_offsets_total() as usize;
    let recs = r
        .until(60, "every record of the topic", |x| x.len() >= total)
        .to_vec();
    let mut by_key: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<i64, Vec<String>>,
    > = Default::default();
    let mut best: std::collections::BTreeMap<String, (String, i64)> = Default::default();
    for x in recs
        .iter()
        .filter(|x| x.op() != "MHEARTBEAT" && x.seq() != "-1")
    {
        let key = x.key.clone().unwrap();
        let v = x.after()["v"].as_i64().unwrap();
        let order = x
            .order
            .clone()
            .unwrap_or_else(|| panic!("a change without rowstream.order: {}", x.raw));
        by_key
            .entry(key.clone())
            .or_default()
            .entry(v)
            .or_default()
            .push(order.clone());
        let b = best.entry(key).or_insert((String::new(), -1));
        if order > b.0 {
            *b = (order, v);
        }
    }
    let mut replays = 0;
    for (key, changes) in &by_key {
        assert_eq!(
            changes.len() as i64,
            last,
            "key {key}: every change arrived"
        );
        let mut prev: Option<&String> = None;
        for (v, orders) in changes {
            assert!(
                orders.iter().all(|o| o == &orders[0]),
                "key {key} v={v}: a replay with another order: {orders:?}"
            );
            replays += orders.len() - 1;
            if let Some(p) = prev {
                assert!(
                    &orders[0] > p,
                    "key {key}: v={v} ordered before an older change ({} <= {p})",
                    orders[0]
                );
            }
            prev = Some(&orders[0]);
        }
        assert_eq!(
            best[key].1, last,
            "key {key}: keeping the highest order gives the final image"
        );
    }
    eprintln!(
        "{}: {replays} records sent again after kill -9, each with its first order",
        db.name
    );
    assert!(
        replays > 0,
        "the kill -9 left nothing to send again: the test showed nothing"
    );
}
