//! `rowstream sink`: topics → Parquet files named by their offsets, exactly once across
//! kill -9, on the local filesystem and on S3 (moto, started by scripts/services.sh).
mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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
    use std::io::BufRead as _;
    for _ in 0..4 {
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
            if line.unwrap().contains("file written") {
                written += 1;
                if written == 2 {
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
    // typed columns: a known snapshot row
    let (_, bytes) = &files[0];
    let b = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let s = b.schema();
    let ty = |n: &str| s.field_with_name(n).unwrap().data_type().to_string();
    assert_eq!(ty("id"), "Int64");
    assert_eq!(ty("d"), "Utf8"); // numeric(10,2): its exact text
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
