//! `rowstream sink`: topics → Parquet files named by their offsets, exactly once across
//! kill -9, on the local filesystem, on S3 (moto, started by scripts/services.sh) and on HDFS
//! (Hadoop's own MiniDFSCluster, started here by scripts/hdfs.sh); topics → Paimon tables,
//! in a directory and on HDFS.
mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

const S3: &str = "http://127.0.0.1:9000";

/// One landed row: where it came from and what it says.
#[derive(Debug, Clone, PartialEq)]
struct Landed {
    partition: i32,
    offset: i64,
    op: String,
    id: i64,
    columns: Vec<String>,
}

/// Every row of every file (`name`, bytes), after checking each file's name against its rows:
/// `<topic>+<partition>+<first>+<last>.parquet` in `partition=<partition>`, rows in offset
/// order from first to last.
fn read_files(topic: &str, files: &[(String, Vec<u8>)]) -> Vec<Landed> {
    let mut out = Vec::new();
    for (path, bytes) in files {
        let name = path.rsplit('/').next().unwrap();
        assert!(
            !name.starts_with("_tmp"),
            "an unfinished file remains: {path}"
        );
        let dir = path.rsplit('/').nth(1).unwrap();
        let rest = name
            .strip_prefix(&format!("{topic}+"))
            .and_then(|r| r.strip_suffix(".parquet"))
            .unwrap_or_else(|| panic!("file name {path}"));
        let parts: Vec<i64> = rest.split('+').map(|x| x.parse().unwrap()).collect();
        let (partition, first, last) = (parts[0] as i32, parts[1], parts[2]);
        assert_eq!(dir, format!("partition={partition}"), "{path}");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
            .unwrap()
            .build()
            .unwrap();
        let mut offsets = Vec::new();
        for batch in reader {
            let b = batch.unwrap();
            let schema = b.schema();
            let col = |n: &str| b.column(schema.index_of(n).unwrap()).clone();
            let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            for i in 0..b.num_rows() {
                let offset = col("__offset__").as_primitive::<Int64Type>().value(i);
                assert_eq!(
                    col("__partition__").as_primitive::<Int32Type>().value(i),
                    partition
                );
                offsets.push(offset);
                out.push(Landed {
                    partition,
                    offset,
                    op: col("__op__").as_string::<i32>().value(i).to_string(),
                    id: col("id").as_primitive::<Int64Type>().value(i),
                    columns: columns.clone(),
                });
            }
        }
        assert_eq!(offsets.first(), Some(&first), "{path}");
        assert_eq!(offsets.last(), Some(&last), "{path}");
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{path}");
    }
    out
}

/// A Postgres table's changes in a topic: a snapshot of `rows` rows, updates, deletes, an ALTER
/// and rows after it. Returns the topic and its row records by (partition, offset).
async fn fill_topic(name: &str, rows: i64) -> (String, BTreeMap<(i32, i64), Rec>) {
    state_dir(name);
    let db = fresh_db(name).await;
    db.batch_execute(&format!(
        "CREATE TABLE t(id bigint primary key, n int, d numeric(10,2), ts timestamptz, b boolean, bin bytea, s text);
         INSERT INTO t SELECT g, g, g * 1.25, '2024-11-15 09:30:00.123456+00'::timestamptz + g * interval '1 second', g % 2 = 0, '\\x0102'::bytea, 'row ' || g
           FROM generate_series(1, {rows}) g"
    ))
    .await
    .unwrap();
    let rs = Rowstream::start(name, &config(name, "", ""));
    let mut r = Reader::new(&topic(name, "t"));
    r.until(120, "the snapshot", |x| count_data(x) >= rows as usize);
    wait_streaming(&db, name).await;
    db.batch_execute(&format!(
        "UPDATE t SET s = 'changed' WHERE id <= 100;
         DELETE FROM t WHERE id > {rows} - 50;
         ALTER TABLE t ADD COLUMN extra text;
         INSERT INTO t (id, n, extra) SELECT g, g, 'x' FROM generate_series({rows} + 1, {rows} + 200) g;"
    ))
    .await
    .unwrap();
    let want = rows as usize + 100 + 50 + 200;
    let recs = r
        .until(60, "every change", |x| count_data(x) >= want)
        .to_vec();
    assert_eq!(rs.stop(), 0);
    let data: BTreeMap<(i32, i64), Rec> = recs
        .into_iter()
        .filter(|x| ["INSERT", "UPDATE_AFTER", "DELETE"].contains(&x.op()))
        .map(|x| ((x.partition, x.offset), x))
        .collect();
    assert_eq!(data.len(), want);
    (topic(name, "t"), data)
}

fn sink_config(name: &str, topic: &str, url: &str, extra: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("rowstream-test-{name}-sink.toml"));
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{BROKER}\"\n[sink]\ntopics = [\"{topic}\"]\nurl = \"{url}\"\nflush_records = 97\nflush_interval_ms = 60000\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn sink(cfg: &std::path::Path, idle: Option<u64>) -> std::process::Child {
    let mut c = Command::new(bin());
    c.args(["sink", "--config"]).arg(cfg);
    if let Some(s) = idle {
        c.args(["--idle-exit-secs", &s.to_string()]);
    }
    c.env("ROWSTREAM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// kill -9 the sink in the middle of its work four times (each run right after it wrote its
/// second file, and while it writes the next), then let a last run finish.
fn kill_then_finish(cfg: &std::path::Path) {
    kill_then_finish_on(cfg, "file written")
}

/// kill -9 the sink four times, run n right after its log said `needle` (a file written, a
/// table committed) n + 1 times (so a kill lands between two tables of one commit as well as
/// between commits), then let a last run finish.
fn kill_then_finish_on(cfg: &std::path::Path, needle: &str) {
    use std::io::BufRead as _;
    for run in 0..4 {
        let mut child = Command::new(bin())
            .args(["sink", "--config"])
            .arg(cfg)
            .env("ROWSTREAM_LOG", "info,rowstream=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut written = 0;
        for line in lines {
            if line.unwrap().contains(needle) {
                written += 1;
                if written == run + 1 {
                    break;
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = sink(cfg, Some(3)).wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_landed(landed: &[Landed], data: &BTreeMap<(i32, i64), Rec>) {
    let keys: Vec<(i32, i64)> = landed.iter().map(|l| (l.partition, l.offset)).collect();
    let unique: BTreeSet<(i32, i64)> = keys.iter().copied().collect();
    assert_eq!(keys.len(), unique.len(), "a row was written twice");
    let want: BTreeSet<(i32, i64)> = data.keys().copied().collect();
    let lost: Vec<_> = want.difference(&unique).take(10).collect();
    let extra: Vec<_> = unique.difference(&want).take(10).collect();
    assert!(
        lost.is_empty() && extra.is_empty(),
        "rows lost (first 10): {lost:?}; extra: {extra:?}"
    );
    for l in landed {
        let rec = &data[&(l.partition, l.offset)];
        assert_eq!(l.op, rec.op());
        let image = if rec.op() == "DELETE" {
            rec.before()
        } else {
            rec.after()
        };
        assert_eq!(Some(l.id), image["id"].as_i64());
        // files of rows after the ALTER have its column, those before do not
        assert_eq!(
            l.columns.contains(&"extra".to_string()),
            rec.value["schema"]["dataColumn"]
                .to_string()
                .contains("\"extra\""),
            "{l:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sink_lands_every_row_once_across_kill9() {
    let name = "rs_sink_local";
    let (topic, data) = fill_topic(name, 3000).await;
    let dir = std::env::temp_dir().join(format!("rowstream-test-{name}-lake"));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = sink_config(name, &topic, dir.to_str().unwrap(), "");
    kill_then_finish(&cfg);
    let mut files = Vec::new();
    for p in std::fs::read_dir(dir.join(&topic)).unwrap() {
        let p = p.unwrap().path();
        for f in std::fs::read_dir(&p).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
            files.push((rel, std::fs::read(&f).unwrap()));
        }
    }
    let landed = read_files(&topic, &files);
    check_landed(&landed, &data);
    // typed columns: a snapshot row (a file whose first row is one)
    let b = files
        .iter()
        .map(|(_, bytes)| {
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
                .unwrap()
                .build()
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
        })
        .find(|b| {
            let i = b.schema().index_of("__sequenceId__").unwrap();
            b.column(i).as_primitive::<Int64Type>().value(0) == -1
        })
        .expect("a file that starts with a snapshot row");
    let s = b.schema();
    let ty = |n: &str| s.field_with_name(n).unwrap().data_type().to_string();
    assert_eq!(ty("id"), "Int64");
    assert_eq!(ty("d"), "Decimal128(10, 2)"); // numeric(10,2), from the rowstream.types header
    assert_eq!(ty("ts"), "Timestamp(µs, \"UTC\")");
    assert_eq!(ty("b"), "Boolean");
    assert_eq!(ty("bin"), "Binary");
    assert_eq!(ty("s"), "Utf8");
    let id = b
        .column(s.index_of("id").unwrap())
        .as_primitive::<Int64Type>()
        .value(0);
    let ts = b
        .column(s.index_of("ts").unwrap())
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    // 2024-11-15 09:30:00.123456 UTC plus id seconds, to the microsecond
    assert_eq!(ts, 1_731_663_000_123_456 + id * 1_000_000);
    // a second run finds nothing new and writes nothing
    let before: BTreeSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let out = sink(&cfg, Some(2)).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mut after = BTreeSet::new();
    for p in std::fs::read_dir(dir.join(&topic)).unwrap() {
        for f in std::fs::read_dir(p.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            after.insert(f.strip_prefix(&dir).unwrap().to_string_lossy().to_string());
        }
    }
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn sink_lands_on_s3_across_kill9() {
    use futures_util::TryStreamExt as _;
    use object_store::ObjectStoreExt as _;
    let name = "rs_sink_s3";
    let (topic, data) = fill_topic(name, 1000).await;
    // a fresh bucket on the local S3 server (moto)
    let bucket = format!("rowstream-test-{}", run_id());
    let (code, body) = http("127.0.0.1:9000", "PUT", &format!("/{bucket}"), None, "");
    assert_eq!(code, 200, "create bucket: {body}");
    let opts = [
        ("aws_endpoint", S3),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
    ];
    let options: String = opts
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\"\n"))
        .collect();
    let cfg = sink_config(
        name,
        &topic,
        &format!("s3://{bucket}/lake"),
        &format!("[sink.options]\n{options}"),
    );
    kill_then_finish(&cfg);
    let url = url::Url::parse(&format!("s3://{bucket}/lake")).unwrap();
    let (store, prefix) = object_store::parse_url_opts(&url, opts.iter().copied()).unwrap();
    let listed: Vec<object_store::ObjectMeta> =
        store.list(Some(&prefix)).try_collect().await.unwrap();
    let mut files = Vec::new();
    for m in listed {
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        files.push((m.location.to_string(), bytes.to_vec()));
    }
    check_landed(&read_files(&topic, &files), &data);
}

/// Hadoop's MiniDFSCluster (`scripts/hdfs.sh up`, idempotent; two DataNodes, so a file's
/// close does not wait for a block report): the `hdfs://` URL of its NameNode.
fn hdfs_up() -> String {
    let out = Command::new(repo_root().join("scripts/hdfs.sh"))
        .arg("up")
        .env("ROWSTREAM_HDFS_DATANODES", "2")
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/hdfs.sh");
    assert!(
        out.status.success(),
        "scripts/hdfs.sh up failed (its log: ~/.cache/rowstream/hdfs.log)"
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        url.starts_with("hdfs://"),
        "scripts/hdfs.sh up printed {url:?}"
    );
    url
}

/// The Parquet sink on HDFS, killed with kill -9 four times in the middle of its work: every
/// row record once (read back through the HDFS client), no staged file left behind.
#[tokio::test(flavor = "multi_thread")]
async fn sink_lands_on_hdfs_across_kill9() {
    use futures_util::TryStreamExt as _;
    use object_store::{ObjectStore as _, ObjectStoreExt as _};
    let name = "rs_sink_hdfs";
    let namenode = hdfs_up();
    let (topic, data) = fill_topic(name, 1000).await;
    let path = format!("/rowstream-test-{}/lake", run_id());
    let cfg = sink_config(name, &topic, &format!("{namenode}{path}"), "");
    kill_then_finish(&cfg);
    let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
        .with_url(&namenode)
        .build()
        .unwrap();
    let prefix = object_store::path::Path::from(path.as_str());
    let listed: Vec<object_store::ObjectMeta> =
        store.list(Some(&prefix)).try_collect().await.unwrap();
    let mut files = Vec::new();
    for m in listed {
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        files.push((m.location.to_string(), bytes.to_vec()));
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".parquet") && !n.contains("tmp")),
        "only finished files: {names:?}"
    );
    check_landed(&read_files(&topic, &files), &data);
}

/// Reads every Parquet file under a directory with pyarrow: each file's column types and
/// `rowstream.*` metadata, then every row through `pyarrow.dataset` over the files with their
/// unified schema (values that JSON cannot carry exactly as their `str`).
const PYARROW_READ: &str = r#"
import sys, json, glob, os
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset as ds
files = sorted(glob.glob(os.path.join(sys.argv[1], "**", "*.parquet"), recursive=True))
schemas = [pq.read_schema(f) for f in files]
out = {"files": [], "rows": []}
for f, s in zip(files, schemas):
    md = {k.decode(): v.decode() for k, v in (s.metadata or {}).items() if k.startswith(b"rowstream.")}
    out["files"].append({"name": os.path.basename(f), "types": {x.name: str(x.type) for x in s}, "metadata": md})
unified = pa.unify_schemas([s.remove_metadata() for s in schemas])
for r in ds.dataset(files, schema=unified, format="parquet").to_table().to_pylist():
    out["rows"].append({k: v if v is None or isinstance(v, (bool, int, str, list)) else str(v) for k, v in r.items()})
print(json.dumps(out))
"#;

/// The sink's files under `dir` as pyarrow reads them.
fn pyarrow_read(dir: &std::path::Path) -> serde_json::Value {
    let mut c = Command::new(tool("python"));
    c.args(["-c", PYARROW_READ]).arg(dir);
    json_of(c, "pyarrow")
}

/// Run a reader and parse the JSON it prints; panics with its stderr when it fails.
fn json_of(mut c: Command, what: &str) -> serde_json::Value {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Land `topic` from the beginning into a fresh `dir`, one row per file, until idle.
fn land_all(name: &str, topic: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rowstream-test-{name}-lake"));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = sink_config(name, topic, dir.to_str().unwrap(), "");
    let cfg_text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("flush_records = 97", "flush_records = 1");
    std::fs::write(&cfg, cfg_text).unwrap();
    let out = sink(&cfg, Some(3)).wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Columns are typed from the table's schema (the envelope's types and the `rowstream.types`
/// header), never from a file's values: numeric(12,2) is decimal128(12,2) in every file, also
/// in a file whose only value is NaN (null, named in `__nonfinite__`) and in a DELETE's
/// (key-only image); the schema changes only at the ALTER; an unchanged TOASTed value is null
/// and named in `__unchanged__`, never the placeholder text; TRUNCATE is a row; each file's
/// metadata carries the envelope's schema (key, source). MariaDB: BIGINT UNSIGNED's maximum and
/// DECIMAL(20,4) land exactly.
#[tokio::test(flavor = "multi_thread")]
async fn sink_types_columns_from_the_table_schema() {
    let db = Db::fresh(Flavor::Postgres, "rs_sink_types_pg", 0).await;
    db.exec(
        "CREATE TABLE t(id int primary key, d numeric(12,2), f float8, n numeric, big text, s text);
         ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
         INSERT INTO t VALUES
           (1, 'NaN', 1.5, 1.25, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 200) g), 'a'),
           (2, 12.30, 'NaN', 100.0, NULL, 'b');",
    )
    .await;
    let rs = Rowstream::start(&db.name, &db.config("", ""));
    let mut r = Reader::new(&db.topic("t"));
    r.until(60, "the snapshot", |x| count_data(x) >= 2);
    db.wait_streaming().await;
    db.exec("UPDATE t SET s = 'c' WHERE id = 1").await;
    db.exec("DELETE FROM t WHERE id = 2").await;
    db.exec("ALTER TABLE t ADD COLUMN extra int").await;
    db.exec("INSERT INTO t VALUES (3, 99.99, 2.5, 7, NULL, 'd', 42)")
        .await;
    db.exec("TRUNCATE t").await;
    r.until(60, "every change and the TRUNCATE", |x| {
        x.iter().any(|r| r.op() == "TRUNCATE") && count_data(x) >= 5
    });
    assert_eq!(rs.stop(), 0);
    let got = pyarrow_read(&land_all("rs_sink_types_pg", &db.topic("t")));
    let files = got["files"].as_array().unwrap();
    assert_eq!(files.len(), 6, "{got}");
    let before = json!({"id": "int64", "d": "decimal128(12, 2)", "f": "double", "n": "string",
        "big": "string", "s": "string", "__op__": "string", "__sequenceId__": "int64",
        "__eventTime__": "int64", "__partition__": "int32", "__offset__": "int64",
        "__unchanged__": "list<item: string>", "__nonfinite__": "list<item: string>"});
    let mut after = before.clone();
    after["extra"] = json!("int64");
    for f in files {
        let types = &f["types"];
        let has_extra = types.get("extra").is_some();
        let want = if has_extra { &after } else { &before };
        assert_eq!(types, want, "{}", f["name"]);
        let md = &f["metadata"];
        let schema: serde_json::Value =
            serde_json::from_str(md["rowstream.schema"].as_str().unwrap()).unwrap();
        assert_eq!(schema["primaryKey"], json!(["id"]));
        assert_eq!(schema["source"]["tableName"], json!("t"));
        assert_eq!(schema["source"]["dbType"], json!("PostgreSQL"));
        let tail = if has_extra { ";" } else { "" };
        assert_eq!(
            md["rowstream.types"],
            json!(format!(";decimal(12,2);float;numeric;;{tail}"))
        );
    }
    let rows = got["rows"].as_array().unwrap();
    let row = |op: &str, id: Option<i64>| -> &serde_json::Value {
        rows.iter()
            .find(|r| r["__op__"] == json!(op) && r["id"].as_i64() == id)
            .unwrap_or_else(|| panic!("no {op} {id:?} in {rows:?}"))
    };
    let snap1 = row("INSERT", Some(1));
    assert_eq!(snap1["d"], json!(null));
    assert_eq!(snap1["__nonfinite__"], json!(["d=NaN"]));
    assert_eq!(snap1["f"], json!("1.5"));
    assert_eq!(snap1["n"], json!("1.25"));
    assert_eq!(snap1["big"].as_str().map(str::len), Some(6400));
    let snap2 = row("INSERT", Some(2));
    assert_eq!(snap2["d"], json!("12.30"));
    assert_eq!(snap2["f"], json!("nan"));
    assert_eq!(snap2["__nonfinite__"], json!(null));
    let upd = row("UPDATE_AFTER", Some(1));
    assert_eq!(upd["big"], json!(null));
    assert_eq!(upd["__unchanged__"], json!(["big"]));
    assert_eq!(upd["s"], json!("c"));
    let del = row("DELETE", Some(2));
    assert_eq!(del["d"], json!(null));
    let ins = row("INSERT", Some(3));
    assert_eq!(ins["d"], json!("99.99"));
    assert_eq!(ins["extra"], json!(42));
    let trunc = row("TRUNCATE", None);
    assert_eq!(trunc["s"], json!(null));
    assert_eq!(rows.len(), 6);

    let my = Db::fresh(Flavor::MariaDb, "rs_sink_types_my", 6123).await;
    my.exec(
        "CREATE TABLE u (id BIGINT UNSIGNED PRIMARY KEY, d DECIMAL(20,4), f DOUBLE);
         INSERT INTO u VALUES (18446744073709551615, 1234567890123456.7891, 0.5), (1, -0.0001, NULL);",
    )
    .await;
    let rs = Rowstream::start(&my.name, &my.config("", ""));
    Reader::new(&my.topic("u")).until(60, "the snapshot", |x| count_data(x) >= 2);
    assert_eq!(rs.stop(), 0);
    let got = pyarrow_read(&land_all("rs_sink_types_my", &my.topic("u")));
    for f in got["files"].as_array().unwrap() {
        assert_eq!(f["types"]["id"], json!("decimal128(20, 0)"));
        assert_eq!(f["types"]["d"], json!("decimal128(20, 4)"));
        assert_eq!(f["types"]["f"], json!("double"));
        assert_eq!(
            f["metadata"]["rowstream.types"],
            json!("uint64;decimal(20,4);float")
        );
    }
    let mut vals: Vec<(String, String)> = got["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().into(),
                r["d"].as_str().unwrap().into(),
            )
        })
        .collect();
    vals.sort();
    assert_eq!(
        vals,
        [
            ("1".to_string(), "-0.0001".to_string()),
            (
                "18446744073709551615".to_string(),
                "1234567890123456.7891".to_string()
            )
        ]
    );
}

/// Reads Paimon tables with pypaimon (merge-on-read): `{"db.table": [rows...]}`, values JSON
/// cannot carry exactly as their `str`.
const PYPAIMON_READ: &str = r#"
import sys, json
from pypaimon import CatalogFactory
cat = CatalogFactory.create({"warehouse": sys.argv[1]})
out = {}
for name in sys.argv[2:]:
    table = cat.get_table(name)
    rb = table.new_read_builder()
    rows = rb.new_read().to_arrow(rb.new_scan().plan().splits()).to_pylist()
    out[name] = [{k: v if v is None or isinstance(v, (bool, int, str)) else str(v) for k, v in r.items()} for r in rows]
print(json.dumps(out))
"#;

fn pypaimon_read(warehouse: &std::path::Path, tables: &[String]) -> serde_json::Value {
    let mut c = Command::new(tool("python"));
    c.args(["-c", PYPAIMON_READ]).arg(warehouse).args(tables);
    json_of(c, "pypaimon")
}

/// A table's rows as text, sorted, from the source (`sql` selects them) and from pypaimon
/// (`cols` in order; `None` for NULL).
fn as_text(rows: &serde_json::Value, cols: &[&str]) -> Vec<Vec<Option<String>>> {
    let mut out: Vec<Vec<Option<String>>> = rows
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

/// `rowstream sink` with `format = "paimon"`: a keyed table becomes a primary-key Paimon table,
/// a keyless one an append table of its changes. Random inserts, updates, deletes and key
/// changes (and an ALTER ADD COLUMN) stream through rowstream; the sink is killed with kill -9
/// four times while it commits, then a last run drains the topics. pypaimon's merge-on-read
/// then equals the source table exactly, and the keyless table holds each change once.
#[tokio::test(flavor = "multi_thread")]
async fn sink_writes_paimon_tables_exactly_once_across_kill9() {
    paimon_across_kill9("rs_sink_paimon", None).await;
}

/// The same on HDFS (Hadoop's MiniDFSCluster): the warehouse is an `hdfs://` URL, and Paimon's
/// Java reader reads it there (pypaimon reads HDFS only through Hadoop's native library).
#[tokio::test(flavor = "multi_thread")]
async fn sink_writes_paimon_tables_on_hdfs_across_kill9() {
    let namenode = hdfs_up();
    let url = format!("{namenode}/rowstream-test-{}/warehouse", run_id());
    paimon_across_kill9("rs_sink_paimon_hdfs", Some(url)).await;
}

/// Random changes into two tables, landed by the Paimon sink into a directory (`hdfs: None`)
/// or the HDFS warehouse given, killed with kill -9 four times while it commits; then every
/// reader equals the source.
async fn paimon_across_kill9(name: &str, hdfs: Option<String>) {
    let db = Db::fresh(Flavor::Postgres, name, 0).await;
    db.exec(
        "CREATE TABLE acct(id int primary key, bal numeric(12,2), note text, seen timestamptz, flag boolean);
         CREATE TABLE logt(a int, b text);
         ALTER TABLE logt REPLICA IDENTITY FULL;
         INSERT INTO acct SELECT g, g * 1.5, 'n' || g, '2024-11-15 09:30:00.123456+00', g % 2 = 0
           FROM generate_series(1, 500) g;
         INSERT INTO logt SELECT g, 'l' || g FROM generate_series(1, 50) g;",
    )
    .await;
    let rs = Rowstream::start(&db.name, &db.config("", ""));
    let mut r = Reader::new(&db.topic("acct"));
    r.until(60, "the snapshot", |x| count_data(x) >= 500);
    db.wait_streaming().await;
    // a seeded mix of changes, in transactions of a few statements
    let mut seed: u64 = 20261207;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut fresh = 1000;
    for round in 0..300 {
        if round == 150 {
            db.exec("ALTER TABLE acct ADD COLUMN extra int").await;
        }
        let mut sql = String::from("BEGIN;");
        for _ in 0..3 {
            let id = 1 + next(600);
            sql += &match next(5) {
                0 => {
                    fresh += 1;
                    format!("INSERT INTO acct (id, bal, note) VALUES ({fresh}, {}.25, 'i') ON CONFLICT DO NOTHING;", next(1000))
                }
                1 => {
                    format!("UPDATE acct SET bal = bal + 1.01, note = 'u{round}' WHERE id = {id};")
                }
                2 => format!("DELETE FROM acct WHERE id = {id};"),
                3 => {
                    fresh += 1;
                    format!("UPDATE acct SET id = {fresh} WHERE id = {id};")
                }
                _ if round > 150 => format!("UPDATE acct SET extra = {round} WHERE id = {id};"),
                _ => format!(
                    "INSERT INTO logt VALUES ({round}, 'x'); DELETE FROM logt WHERE a = {id};"
                ),
            };
        }
        sql += "COMMIT;";
        db.exec(&sql).await;
    }
    db.exec("INSERT INTO acct (id, note) VALUES (999999, 'last')")
        .await;
    r.until(120, "the last row", |x| {
        x.iter().any(|r| r.key.as_deref() == Some("999999"))
    });
    assert_eq!(rs.stop(), 0);
    let local = std::env::temp_dir().join(format!("rowstream-test-{name}-warehouse"));
    let warehouse = match &hdfs {
        Some(url) => url.clone(),
        None => {
            let _ = std::fs::remove_dir_all(&local);
            std::fs::create_dir_all(&local).unwrap();
            local.display().to_string()
        }
    };
    let cfg = std::env::temp_dir().join(format!("rowstream-test-{name}-sink.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbrokers = \"{BROKER}\"\n[sink]\nformat = \"paimon\"\ntopics = [\"{}\", \"{}\"]\nurl = \"{warehouse}\"\nflush_records = 97\nflush_interval_ms = 60000\n[sink.table_options]\nbucket = \"2\"\n",
            db.topic("acct"),
            db.topic("logt"),
        ),
    )
    .unwrap();
    kill_then_finish_on(&cfg, "paimon: table committed");
    let acct = format!("{name}.acct");
    let logt = format!("{name}.logt");
    let cols = ["id", "bal", "note", "extra", "flag"];
    let mut want = db
        .rows("SELECT id::text, bal::text, note, extra::text, CASE WHEN flag THEN 'true' WHEN NOT flag THEN 'false' END FROM acct")
        .await;
    want.sort();
    // Paimon's own Java reader (scripts/paimon-read.sh)
    let mut c = Command::new(repo_root().join("scripts/paimon-read.sh"));
    c.arg(&warehouse).args([&acct, &logt]);
    let java = json_of(c, "paimon-read.sh");
    let got = as_text(&java[&acct], &cols);
    assert_eq!(got.len(), want.len(), "row count (Java Paimon)");
    assert_eq!(got, want, "Java Paimon's read");
    let mut log = java[&logt].as_array().unwrap().len();
    if hdfs.is_none() {
        // pypaimon (merge-on-read) reads the same rows
        let py = pypaimon_read(&local, &[acct.clone(), logt.clone()]);
        let paimon = as_text(&py[&acct], &cols);
        assert_eq!(paimon.len(), want.len(), "row count (pypaimon)");
        assert_eq!(paimon, want, "pypaimon's read");
        assert_eq!(py[&logt].as_array().map(Vec::len), Some(log), "{py:?}");
        log = py[&logt].as_array().unwrap().len();
    }
    // the keyless table: its 50 snapshot rows and each change once, with its op
    let mut lr = Reader::new(&db.topic("logt"));
    let total = lr.end_offsets_total();
    let topic_ops = count_data(lr.until(60, "every logt record", |x| x.len() as i64 >= total));
    assert_eq!(log, topic_ops);
}
