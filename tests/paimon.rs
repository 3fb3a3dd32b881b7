//! The `paimon` profile against a model of Paimon's `aliyun-json` parser (`tests/common/paimon.rs`)
//! where it is Postgres-specific (schemas); the scenario for both sources is in `both.rs`. And
//! against Paimon itself, for both sources: its `kafka_sync_database` job
//! (`scripts/flink-ingest.sh`) ingests the topics into tables equal to the source's.
mod common;

use common::*;
use serde_json::json;

/// `encode.schema_in_table_name`: Paimon ignores `schemaName`, so `public.t` and `sales.t`
/// would merge into one Paimon table; with the switch their records name `public_t` and
/// `sales_t`, and both pass the model of Paimon's parser.
#[tokio::test(flavor = "multi_thread")]
async fn paimon_sees_two_schemas_apart() {
    use common::paimon::{parse, TypeMapping};
    let name = "rs_two_schemas";
    state_dir(name);
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE SCHEMA sales; CREATE TABLE public.t(id int primary key, v text); CREATE TABLE sales.t(id int primary key, v text);
         INSERT INTO public.t VALUES (1, 'p'); INSERT INTO sales.t VALUES (1, 's');",
    )
    .await
    .unwrap();
    let cfg = config(
        name,
        "tables = [\"public.*\", \"sales.*\"]",
        "[encode]\nprofile = \"paimon\"\nschema_in_table_name = true\n",
    );
    let rs = Rowstream::start(name, &cfg);
    let sales_topic = topic(name, "t").replace(".public.", ".sales.");
    let mut tables = std::collections::BTreeMap::new();
    for t in [topic(name, "t"), sales_topic] {
        let mut r = Reader::new(&t);
        let recs = r
            .until(60, "the snapshot row", |x| count_data(x) >= 1)
            .to_vec();
        let p = parse(recs[0].raw.as_bytes(), TypeMapping::ToString)
            .unwrap()
            .unwrap();
        tables.insert(
            (p.database.unwrap(), p.table.unwrap()),
            recs[0].after()["v"].clone(),
        );
    }
    assert_eq!(
        tables,
        [
            ((name.to_string(), "public_t".to_string()), json!("p")),
            ((name.to_string(), "sales_t".to_string()), json!("s")),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(rs.stop(), 0);
}

/// Apache Paimon's own Kafka ingest (`kafka_sync_database`, `value.format=aliyun-json`,
/// `--type_mapping to-string`; Flink 1.20 in a local MiniCluster, `scripts/flink-ingest.sh`)
/// reads the `paimon` profile's topics of each source into Paimon tables equal to the source
/// tables: a keyed table with int, text, numeric, timestamp (µs and whole seconds), bool, date
/// and bigint columns (a column added mid-stream), a table keyed by two columns, and a table
/// without a primary key given one by `source.keys`. A snapshot, then seeded random inserts,
/// updates, deletes and key changes while Paimon's job runs; the job is never restarted, so a
/// record it cannot take fails the test with Flink's exception. Read back with pypaimon and
/// with Paimon's Java reader, every table holds exactly the source's rows, each value the text
/// the profile documents (DATE types as epoch milliseconds, booleans `true`/`false`).
mod flink_ingest {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn postgres() {
        let db = Db::fresh(Flavor::Postgres, "pg_paimon_flink", 0).await;
        super::paimon_flink_ingest_equals_source(db).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn mariadb() {
        let db = Db::fresh(Flavor::MariaDb, "my_paimon_flink", 6131).await;
        super::paimon_flink_ingest_equals_source(db).await;
    }
}

/// `scripts/flink-ingest.sh run ...` as a child process (the script `exec`s the JVM, so the
/// child is the JVM): killed on drop, its stderr (in a file) shown when the test panics.
struct FlinkIngest {
    child: std::process::Child,
    log: std::path::PathBuf,
    started: std::time::SystemTime,
}

impl FlinkIngest {
    fn start(name: &str, warehouse: &std::path::Path, database: &str, topics: &[String]) -> Self {
        let log = std::env::temp_dir().join(format!("rowstream-test-{name}-flink.log"));
        let err = std::fs::File::create(&log).unwrap();
        let started = std::time::SystemTime::now();
        let child = std::process::Command::new(repo_root().join("scripts/flink-ingest.sh"))
            .arg("run")
            .arg(warehouse)
            .args([database, BROKER, &topics.join(";")])
            .args(["--table_conf", "bucket=2"])
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start scripts/flink-ingest.sh");
        FlinkIngest {
            child,
            log,
            started,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics when the JVM ended (a job that fails is not restarted); the drop shows its log.
    fn assert_running(&mut self) {
        if let Some(s) = self.child.try_wait().unwrap() {
            panic!("Paimon's kafka_sync_database job ended ({s}): its log follows");
        }
    }

    /// Seconds from the JVM's start to its first completed checkpoint (each log line starts
    /// with its time).
    fn first_checkpoint_secs(&self) -> Option<f64> {
        let line = self
            .log_text()
            .lines()
            .find(|l| l.contains("Completed checkpoint 1 "))?
            .to_string();
        let at = chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next()?).ok()?;
        let started: chrono::DateTime<chrono::Utc> = self.started.into();
        Some((at.timestamp_millis() - started.timestamp_millis()) as f64 / 1000.0)
    }
}

impl Drop for FlinkIngest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    !l.contains("INFO org.apache.flink.runtime.checkpoint.CheckpointCoordinator")
                        && !t.starts_with("at ")
                        && !t.starts_with("... ")
                })
                .collect();
            let cut = lines.len().saturating_sub(60);
            eprintln!(
                "--- {} (the checkpoint coordinator's lines and stack frames left out; the last 60 lines) ---",
                self.log.display()
            );
            for l in &lines[cut..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Reads Paimon tables with pypaimon (merge-on-read): `{"table": {"fields": [...], "types":
/// [...], "primary_keys": [...], "rows": [{col: value}, ...]}}`, `null` for a table not there
/// yet.
const PYPAIMON_READ: &str = r#"
import sys, json
from pypaimon import CatalogFactory
cat = CatalogFactory.create({"warehouse": sys.argv[1]})
out = {}
for name in sys.argv[3:]:
    try:
        table = cat.get_table(sys.argv[2] + "." + name)
    except Exception:
        out[name] = None
        continue
    rb = table.new_read_builder()
    splits = rb.new_scan().plan().splits()
    rows = rb.new_read().to_arrow(splits).to_pylist() if splits else []
    out[name] = {
        "fields": [f.name for f in table.table_schema.fields],
        "types": [f.type.type for f in table.table_schema.fields],
        "primary_keys": list(table.table_schema.primary_keys),
        "rows": rows,
    }
print(json.dumps(out))
"#;

fn pypaimon_read(warehouse: &std::path::Path, db: &str, tables: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(tool("python"))
        .args(["-c", PYPAIMON_READ])
        .arg(warehouse)
        .arg(db)
        .args(tables)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pypaimon: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

type Rows = Vec<Vec<Option<String>>>;

/// One table of the scenario: its name, its key, its columns, and the SELECT of the source
/// that renders each column as the `paimon` profile writes it.
struct Table {
    name: &'static str,
    key: &'static [&'static str],
    columns: Vec<&'static str>,
    select: String,
}

/// `rows` (JSON objects) as text rows over `cols`, sorted.
fn text_rows(rows: &serde_json::Value, cols: &[&str]) -> Rows {
    let mut out: Rows = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| match &r[*c] {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    v => Some(v.to_string()),
                })
                .collect()
        })
        .collect();
    out.sort();
    out
}

/// What differs between `want` (the source) and `got` (Paimon), keyed by the first `key`
/// columns: missing keys, extra keys, different rows (at most 10 of each).
fn row_diff(key: usize, want: &Rows, got: &Rows) -> String {
    use std::collections::BTreeMap;
    let by_key = |rows: &Rows| -> BTreeMap<Vec<Option<String>>, Vec<Option<String>>> {
        rows.iter()
            .map(|r| (r[..key].to_vec(), r.clone()))
            .collect()
    };
    let (w, g) = (by_key(want), by_key(got));
    let missing: Vec<_> = w.keys().filter(|k| !g.contains_key(*k)).take(10).collect();
    let extra: Vec<_> = g.keys().filter(|k| !w.contains_key(*k)).take(10).collect();
    let differ: Vec<_> = w
        .iter()
        .filter_map(|(k, r)| g.get(k).filter(|x| *x != r).map(|x| (r, x)))
        .take(10)
        .collect();
    format!(
        "{} rows in the source, {} in Paimon; missing keys {missing:?}; extra keys {extra:?}; differing (source, Paimon) {differ:?}",
        want.len(),
        got.len()
    )
}

/// A seeded generator of the scenario's values.
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

async fn paimon_flink_ingest_equals_source(db: Db) {
    let test_start = std::time::Instant::now();
    let pg = db.flavor == Flavor::Postgres;
    // a string literal: MariaDB reads backslashes in literals as escapes, Postgres does not
    let lit = |s: &str| {
        let s = s.replace('\'', "''");
        format!("'{}'", if pg { s } else { s.replace('\\', "\\\\") })
    };
    let ts_type = |fsp: u8| {
        if pg {
            format!("timestamp({fsp})")
        } else {
            format!("datetime({fsp})")
        }
    };
    db.exec(&format!(
        "CREATE TABLE acct (id INT PRIMARY KEY, note TEXT, bal NUMERIC(12,2), ts {}, ts0 {}, flag BOOLEAN, day DATE, big BIGINT);
         CREATE TABLE pair (a INT, b VARCHAR(20), v INT, PRIMARY KEY (a, b));
         CREATE TABLE logt (a INT NOT NULL, v TEXT)",
        ts_type(6),
        ts_type(0)
    ))
    .await;
    db.log_whole_rows("logt").await;
    let notes = [
        "plain",
        "with 'quotes' and \"double quotes\"",
        "back\\slash",
        "new\nline\ttab",
        "unicode é € 日本 🦀",
        "",
        "  spaces  ",
        "{\"json\": [1, 2]}",
        "100.0",
        "null",
    ];
    let mut g = Gen(20261207);
    let acct_values = |g: &mut Gen, id: u64| {
        let note = if g.next(8) == 0 {
            "NULL".to_string()
        } else {
            lit(notes[g.next(notes.len() as u64) as usize])
        };
        let bal = match g.next(6) {
            0 => "NULL".to_string(),
            1 => "-0.05".to_string(),
            _ => format!(
                "{}.{:02}",
                g.next(2_000_000) as i64 - 1_000_000,
                g.next(100)
            ),
        };
        // 2000-01-01 .. 2030-12-31, µs
        let secs = 946_684_800 + g.next(978_307_200);
        let us = g.next(1_000_000);
        let ts = if g.next(7) == 0 {
            "NULL".to_string()
        } else {
            format!(
                "'{}.{us:06}'",
                chrono::DateTime::from_timestamp(secs as i64, 0)
                    .unwrap()
                    .format("%Y-%m-%d %H:%M:%S")
            )
        };
        let ts0 = format!(
            "'{}'",
            chrono::DateTime::from_timestamp(secs as i64 + 3600 * g.next(100) as i64, 0)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S")
        );
        let flag = ["true", "false", "NULL"][g.next(3) as usize];
        let day = format!(
            "'{}'",
            chrono::DateTime::from_timestamp(secs as i64 - 86_400 * g.next(20_000) as i64, 0)
                .unwrap()
                .format("%Y-%m-%d")
        );
        let big = match g.next(4) {
            0 => "9007199254740993".to_string(), // 2^53 + 1: not through a double
            1 => "-9223372036854775808".to_string(),
            _ => (g.next(1 << 40) as i64 - (1 << 39)).to_string(),
        };
        format!("({id}, {note}, {bal}, {ts}, {ts0}, {flag}, {day}, {big})")
    };
    let rows: Vec<String> = (1..=150).map(|id| acct_values(&mut g, id)).collect();
    db.exec(&format!("INSERT INTO acct VALUES {}", rows.join(", ")))
        .await;
    let rows: Vec<String> = (1..=60)
        .map(|i| format!("({}, 'b{}', {})", i % 20, i, g.next(1000)))
        .collect();
    db.exec(&format!("INSERT INTO pair VALUES {}", rows.join(", ")))
        .await;
    let rows: Vec<String> = (1..=40)
        .map(|a| format!("({a}, {})", lit(notes[g.next(notes.len() as u64) as usize])))
        .collect();
    db.exec(&format!("INSERT INTO logt VALUES {}", rows.join(", ")))
        .await;

    let keys = format!("keys = {{ \"{}\" = [\"a\"] }}", db.qualified("logt"));
    let profile = "[encode]\nprofile = \"paimon\"\nside_topic = \"\"\n";
    let rs = Rowstream::start(&db.name, &db.config(&keys, profile));
    let tables = ["acct", "pair", "logt"];
    let topics: Vec<String> = tables.iter().map(|t| db.topic(t)).collect();
    for (t, n) in topics.iter().zip([150, 60, 40]) {
        Reader::new(t).until(60, "the snapshot", |x| count_data(x) >= n);
    }
    db.wait_streaming().await;

    // Paimon's job starts on the snapshot and follows the changes as they come
    let warehouse = std::env::temp_dir().join(format!("rowstream-test-{}-warehouse", db.name));
    let _ = std::fs::remove_dir_all(&warehouse);
    std::fs::create_dir_all(&warehouse).unwrap();
    let mut flink = FlinkIngest::start(&db.name, &warehouse, &db.name, &topics);
    let flink_at = test_start.elapsed();

    let mut fresh = 1000;
    let mut first_commit = None;
    for round in 0..200 {
        if round == 100 {
            // the second half once Paimon committed the first rows: the job catches up on a
            // backlog, then follows the changes (and a column added) as they come
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let got = pypaimon_read(&warehouse, &db.name, &tables);
                if tables
                    .iter()
                    .all(|t| got[t]["rows"].as_array().is_some_and(|r| !r.is_empty()))
                {
                    break;
                }
                flink.assert_running();
                assert!(
                    std::time::Instant::now() < deadline,
                    "Paimon committed nothing in 120 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            first_commit = Some(test_start.elapsed());
            db.exec("ALTER TABLE acct ADD COLUMN extra INT").await;
        }
        let mut sql = String::from("BEGIN;");
        for _ in 0..3 {
            fresh += 1;
            let id = 1 + g.next(220);
            // a row of pair's snapshot (it may be gone or moved by now)
            let i = 1 + g.next(60);
            let (pa, pb) = (i % 20, format!("b{i}"));
            sql += &match g.next(12) {
                0 | 1 => format!("INSERT INTO acct VALUES {};", {
                    let v = acct_values(&mut g, fresh);
                    if round >= 100 {
                        format!("{}, {round})", v.trim_end_matches(')'))
                    } else {
                        v
                    }
                }),
                2 => format!(
                    "UPDATE acct SET bal = bal + 1.01, note = {} WHERE id = {id};",
                    lit(&format!("u{round} {}", notes[g.next(10) as usize]))
                ),
                3 => format!(
                    "UPDATE acct SET flag = NOT flag, ts = NULL, day = '1970-01-02' WHERE id = {id};"
                ),
                4 => format!("DELETE FROM acct WHERE id = {id};"),
                5 => format!("UPDATE acct SET id = {fresh} WHERE id = {id};"),
                6 if round >= 100 => format!("UPDATE acct SET extra = {round} WHERE id = {id};"),
                6 | 7 => format!(
                    "INSERT INTO pair VALUES ({}, 'n{fresh}', {round});",
                    g.next(20)
                ),
                8 => format!("UPDATE pair SET v = v + 1 WHERE a = {pa} AND b = '{pb}';"),
                9 => format!("UPDATE pair SET b = 'k{fresh}' WHERE a = {pa} AND b = '{pb}';"),
                10 => format!(
                    "DELETE FROM pair WHERE a = {pa} AND b = '{pb}'; INSERT INTO logt VALUES ({fresh}, 'i{round}');"
                ),
                _ => {
                    let a = 1 + g.next(60);
                    match g.next(3) {
                        0 => format!("UPDATE logt SET v = 'u{round}' WHERE a = {a};"),
                        1 => format!("UPDATE logt SET a = {fresh} WHERE a = {a};"),
                        _ => format!("DELETE FROM logt WHERE a = {a};"),
                    }
                }
            };
        }
        sql += "COMMIT;";
        db.exec(&sql).await;
    }
    let changes_done = test_start.elapsed();

    // each column as the profile writes it: DATE types as epoch milliseconds (exactly 6
    // decimals for µs columns), booleans as true/false, numbers and text as their text
    let (ts, ts0, day) = if pg {
        (
            "(extract(epoch FROM ts) * 1000)::numeric(20,6)::text",
            "(extract(epoch FROM ts0) * 1000)::bigint::text",
            "(extract(epoch FROM day) * 1000)::bigint::text",
        )
    } else {
        (
            "CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', ts) / 1000 AS DECIMAL(20,6))",
            "TIMESTAMPDIFF(SECOND, '1970-01-01', ts0) * 1000",
            "TIMESTAMPDIFF(SECOND, '1970-01-01', day) * 1000",
        )
    };
    let specs = [
        Table {
            name: "acct",
            key: &["id"],
            columns: vec!["id", "note", "bal", "ts", "ts0", "flag", "day", "big", "extra"],
            select: format!(
                "SELECT id, note, bal, {ts}, {ts0}, CASE WHEN flag THEN 'true' WHEN NOT flag THEN 'false' END, {day}, big, extra FROM acct"
            ),
        },
        Table {
            name: "pair",
            key: &["a", "b"],
            columns: vec!["a", "b", "v"],
            select: "SELECT a, b, v FROM pair".into(),
        },
        Table {
            name: "logt",
            key: &["a"],
            columns: vec!["a", "v"],
            select: "SELECT a, v FROM logt".into(),
        },
    ];
    let mut want = Vec::new();
    for t in &specs {
        let mut rows = db.rows(&t.select).await;
        rows.sort();
        want.push(rows);
    }

    // Paimon commits at each checkpoint (every second): poll until every table equals its
    // source table, or the deadline
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        flink.assert_running();
        let got = pypaimon_read(&warehouse, &db.name, &tables);
        let mut diffs = Vec::new();
        for (t, w) in specs.iter().zip(&want) {
            let p = &got[t.name];
            if p.is_null() {
                diffs.push(format!("{}: no Paimon table yet", t.name));
                continue;
            }
            // the columns named as in the source (every one a STRING), the source's key; the
            // column added mid-stream arrives with the first record that has it
            let strings = vec!["STRING"; t.columns.len()];
            if p["fields"] != json!(t.columns)
                || p["types"] != json!(strings)
                || p["primary_keys"] != json!(t.key)
            {
                diffs.push(format!(
                    "{}: columns {} of types {}, key {}",
                    t.name, p["fields"], p["types"], p["primary_keys"]
                ));
                continue;
            }
            let rows = text_rows(&p["rows"], &t.columns);
            if &rows != w {
                diffs.push(format!("{}: {}", t.name, row_diff(t.key.len(), w, &rows)));
            }
        }
        if diffs.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Paimon's tables never equalled the source's:\n{}",
            diffs.join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }
    let converged = test_start.elapsed();

    // Paimon's Java reader reads the same rows
    let out = std::process::Command::new(repo_root().join("scripts/paimon-read.sh"))
        .arg(&warehouse)
        .args(tables.map(|t| format!("{}.{t}", db.name)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "paimon-read.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let java: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (t, w) in specs.iter().zip(&want) {
        let rows = text_rows(&java[format!("{}.{}", db.name, t.name)], &t.columns);
        assert!(
            &rows == w,
            "Java Paimon's read of {}: {}",
            t.name,
            row_diff(t.key.len(), w, &rows)
        );
    }

    flink.assert_running();
    let rss_mb = peak_rss_kb(flink.child.id()) / 1024;
    eprintln!(
        "{}: Flink JVM started at {:.1} s, its first checkpoint {:?} s later; all tables in Paimon at {:.1} s; changes written at {:.1} s; Paimon equal to the source at {:.1} s; peak RSS of the JVM {rss_mb} MiB; total {:.1} s",
        db.name,
        flink_at.as_secs_f64(),
        flink.first_checkpoint_secs(),
        first_commit.unwrap().as_secs_f64(),
        changes_done.as_secs_f64(),
        converged.as_secs_f64(),
        test_start.elapsed().as_secs_f64()
    );
    drop(flink);
    assert_eq!(rs.stop(), 0);
}
