//! `rowstream verify`: rebuild every matched table from its topic and compare it with the
//! database.
//!
//! 1. Wait until the stored position (`state.dir` or the Kafka state topic) reaches the source's log end as it is now, so
//!    every change committed before the check was delivered.
//! 2. Per table: read the topic from the beginning and keep each key's latest image (snapshot
//!    rows, INSERT, UPDATE_AFTER; DELETE removes; TRUNCATE empties what came before it); read
//!    the table's rows the way a snapshot does, rendered by the same encoder; compare.
//!    A table without a key is compared as a multiset of whole rows.
//! 3. Print missing / extra / different rows (the first few of each, by key; the names of the
//!    differing columns, never values) and a summary.
//!
//! Invariants:
//! - Memory is bounded whatever the table size: both sides are spilled to `BUCKETS` files by a
//!   hash of the key (of the row, without a key), and compared one bucket at a time.
//! - Per key, the topic's records are folded in partition order (a key lives in one
//!   partition). A TRUNCATE record is placed by its sequenceId: a key whose last record's
//!   position (its sequenceId; a snapshot row takes the last sequenceId seen before it in its
//!   partition) lies before the newest TRUNCATE is gone.
//! - Images are compared on the columns both sides carry (a column added by an ALTER is absent
//!   from images written before it).
//! - The database is read while it may change: run `verify` with writes paused for an exact
//!   answer; a difference found under writes is re-checked once after catching up again.

use crate::config::Config;
use crate::error::Error;
use crate::format::dataworks;
use crate::format::record::{Envelope, Values};
use crate::kafka::{read_topic, Record};
use crate::model::schema::TableSchema;
use crate::model::value::Row;
use crate::source::Dump;
use serde_json::Value as J;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A line on stdout; a reader that went away (`verify | head`) is not an error.
macro_rules! outln {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Spill files per side and table.
const BUCKETS: usize = 64;

/// What `verify` was asked.
// `rowstream verify`'s command line (its help text is the doc comment of `cli::Command::Verify`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[arg(short, long, env = "ROWSTREAM_CONFIG")]
    pub(crate) config: PathBuf,
    /// Rows to print per table and kind of difference.
    #[arg(long, default_value_t = 10)]
    show: usize,
    /// How long to wait for `run` to catch up with the database.
    #[arg(long, default_value_t = 300)]
    wait_secs: u64,
}

impl Args {
    pub(crate) fn options(&self) -> Options {
        Options {
            show: self.show,
            wait: Duration::from_secs(self.wait_secs),
        }
    }
}

pub(crate) struct Options {
    /// how many missing / extra / different rows to print per table
    pub(crate) show: usize,
    /// how long to wait for rowstream to catch up
    pub(crate) wait: Duration,
}

/// The outcome for one table.
#[derive(Default, Debug)]
pub(crate) struct TableReport {
    pub(crate) rows: u64,
    pub(crate) records: u64,
    pub(crate) missing: Vec<String>,
    pub(crate) extra: Vec<String>,
    /// key and the columns that differ
    pub(crate) different: Vec<(String, Vec<String>)>,
    pub(crate) counts: [u64; 3],
    /// snapshot rows delivered for a key that already had one (resumed or repeated snapshots)
    pub(crate) repeated: u64,
}

impl TableReport {
    fn clean(&self) -> bool {
        self.counts == [0, 0, 0]
    }
}

/// Run the check; `Ok(true)` when every table matches.
pub(crate) async fn verify(cfg: &Config, opts: &Options) -> Result<bool, Error> {
    let mut dump = Dump::open(cfg).await?;
    let schemas = dump.schemas().await?;
    wait_caught_up(cfg, &mut dump, opts.wait).await?;
    let dir = std::env::temp_dir().join(format!("rowstream-verify-{}", std::process::id()));
    let res = async {
        let mut all_clean = true;
        let mut totals = [0u64; 3];
        for (i, schema) in schemas.iter().enumerate() {
            let started = Instant::now();
            let r = check_table(cfg, &mut dump, i, schema, &dir, opts).await?;
            print_report(schema, &r, started.elapsed());
            all_clean &= r.clean();
            for (t, c) in totals.iter_mut().zip(r.counts) {
                *t += c;
            }
        }
        outln!(
            "verify: {} tables, {} missing, {} extra, {} different: {}",
            schemas.len(),
            totals[0],
            totals[1],
            totals[2],
            if all_clean {
                "the topics match the database"
            } else {
                "DIFFERENCES FOUND"
            }
        );
        Ok::<_, Error>(all_clean)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    res
}

fn print_report(t: &TableSchema, r: &TableReport, took: Duration) {
    let name = t.id.pattern_name();
    outln!(
        "{name}: {} rows in the database, {} records in {} ({} snapshot rows repeated); missing {}, extra {}, different {} ({:.1} s)",
        r.rows,
        r.records,
        t.topic,
        r.repeated,
        r.counts[0],
        r.counts[1],
        r.counts[2],
        took.as_secs_f64()
    );
    for k in &r.missing {
        outln!("  missing   {name} key {k}");
    }
    for k in &r.extra {
        outln!("  extra     {name} key {k}");
    }
    for (k, cols) in &r.different {
        outln!("  different {name} key {k}: {}", cols.join(", "));
    }
}

/// Wait until the stored position reaches the source's log end as it is now.
async fn wait_caught_up(cfg: &Config, dump: &mut Dump, wait: Duration) -> Result<(), Error> {
    let target = dump.position().await?;
    let deadline = Instant::now() + wait;
    let mut last_note = Instant::now();
    loop {
        let stored = crate::checkpoint::store::Store::peek(cfg)
            .await?
            .and_then(|s| s.position);
        if stored.as_ref().is_some_and(|s| s.reached(&target)) {
            return Ok(());
        }
        let shown = stored
            .map(|s| s.to_string())
            .unwrap_or_else(|| "none".into());
        if Instant::now() > deadline {
            return Err(Error::setup(
                format!("rowstream has not reached the source's position {target} within {} s (stored: {shown})", wait.as_secs()),
                "run `rowstream run` with this config (verify compares what it delivered), or raise --wait-secs",
            ));
        }
        if last_note.elapsed() > Duration::from_secs(5) {
            eprintln!("verify: waiting for rowstream to reach {target} (stored: {shown})");
            last_note = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Spill files of one side: a line per entry, bucketed by a hash.
struct Spill {
    files: Vec<BufWriter<std::fs::File>>,
    paths: Vec<PathBuf>,
}

fn io_err(e: std::io::Error) -> Error {
    Error::setup(
        format!("verify cannot write its spill files: {e}"),
        "free space in the temporary directory (TMPDIR)",
    )
}

impl Spill {
    fn create(dir: &Path, side: &str) -> Result<Spill, Error> {
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut files = Vec::with_capacity(BUCKETS);
        let mut paths = Vec::with_capacity(BUCKETS);
        for b in 0..BUCKETS {
            let p = dir.join(format!("{side}-{b}"));
            files.push(BufWriter::new(std::fs::File::create(&p).map_err(io_err)?));
            paths.push(p);
        }
        Ok(Spill { files, paths })
    }

    fn put(&mut self, by: &str, entry: &Entry) -> Result<(), Error> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        by.hash(&mut h);
        let f = &mut self.files[(h.finish() % BUCKETS as u64) as usize];
        serde_json::to_writer(&mut *f, entry).map_err(|e| io_err(e.into()))?;
        f.write_all(b"\n").map_err(io_err)
    }

    fn finish(mut self) -> Result<Vec<PathBuf>, Error> {
        for f in &mut self.files {
            f.flush().map_err(io_err)?;
        }
        Ok(self.paths)
    }
}

/// One spilled entry: position, what it does, the key (None without one), the image.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry(i64, char, Option<String>, Option<String>);

/// An image's `dataColumn` object, canonical (members sorted).
fn canonical(image: &Values) -> String {
    J::Object(image.clone()).to_string()
}

async fn check_table(
    cfg: &Config,
    dump: &mut Dump,
    i: usize,
    schema: &Arc<TableSchema>,
    dir: &Path,
    opts: &Options,
) -> Result<TableReport, Error> {
    let tdir = dir.join(i.to_string());
    let keyed = schema.key.is_some();
    // the topic
    let mut spill = Spill::create(&tdir, "topic")?;
    let mut last_seq: HashMap<i32, i64> = HashMap::new();
    let mut truncated = i64::MIN;
    let topic = schema.topic.clone();
    let kafka = cfg.kafka.clone();
    let mut records = 0u64;
    let mut on_record = |r: Record<'_>| -> Result<(), Error> {
        records += 1;
        let v: Envelope<Values> = Envelope::parse(r.value)
            .map_err(|e| Error::fatal(format!("a record of {topic} is not JSON: {e}")))?;
        let p = &v.payload;
        let seq = p.sequence();
        let at = if seq >= 0 {
            last_seq.insert(r.partition, seq);
            seq
        } else {
            last_seq.get(&r.partition).copied().unwrap_or(-1)
        };
        let key = r.key.map(|k| String::from_utf8_lossy(k).into_owned());
        let after = p.after.as_ref().map(|i| canonical(&i.data_column));
        let before = p.before.as_ref().map(|i| canonical(&i.data_column));
        match (p.op.as_str(), keyed) {
            ("INSERT" | "UPDATE_AFTER", true) => {
                let k = key.unwrap_or_default();
                let op = if seq < 0 { 'S' } else { 'U' };
                spill.put(&k, &Entry(at, op, Some(k.clone()), after))?;
            }
            ("DELETE", true) => {
                let k = key.unwrap_or_default();
                spill.put(&k, &Entry(at, 'D', Some(k.clone()), None))?;
            }
            ("INSERT" | "UPDATE_AFTER" | "UPDATE_BEFORE" | "DELETE", false) => {
                if let Some(b) = before {
                    spill.put(&b, &Entry(at, '-', None, Some(b.clone())))?;
                }
                if let Some(a) = after {
                    spill.put(&a, &Entry(at, '+', None, Some(a.clone())))?;
                }
            }
            ("TRUNCATE", _) => truncated = truncated.max(seq),
            _ => {}
        }
        Ok(())
    };
    let kt = schema.topic.clone();
    let n = tokio::task::block_in_place(|| {
        read_topic(&kafka, &kt, Duration::from_secs(2), &mut on_record)
    })?;
    let topic_files = spill.finish()?;
    // the database
    let mut spill = Spill::create(&tdir, "db")?;
    let sep = cfg.kafka.key_separator.clone();
    // rendered as the topic's records are (the Paimon profile writes values as text)
    let text_values = cfg.encode.profile == crate::config::Profile::Paimon;
    let mut rows = 0u64;
    let mut kb = Vec::new();
    let mut ib = Vec::new();
    let mut on_rows = |chunk: &[Row]| -> Result<(), Error> {
        for row in chunk {
            rows += 1;
            ib.clear();
            dataworks::write_image(&mut ib, schema, Some(row), text_values);
            let img: J = serde_json::from_slice(&ib)
                .map_err(|e| Error::fatal(format!("rendering a row of {}: {e}", schema.id)))?;
            let img = match &img["dataColumn"] {
                J::Object(o) => canonical(o),
                _ => String::new(),
            };
            if dataworks::write_key(&mut kb, schema, row, &sep) {
                let k = String::from_utf8_lossy(&kb).into_owned();
                spill.put(&k, &Entry(0, 'U', Some(k.clone()), Some(img)))?;
            } else {
                spill.put(&img, &Entry(0, '+', None, Some(img.clone())))?;
            }
        }
        Ok(())
    };
    dump.rows(i, &mut on_rows).await?;
    let db_files = spill.finish()?;
    let mut report = TableReport {
        rows,
        records: n,
        ..Default::default()
    };
    for (t, d) in topic_files.iter().zip(&db_files) {
        compare_bucket(t, d, truncated, keyed, opts.show, &mut report)?;
    }
    let _ = std::fs::remove_dir_all(&tdir);
    Ok(report)
}

fn read_entries(p: &Path) -> Result<impl Iterator<Item = Entry>, Error> {
    let f = std::fs::File::open(p).map_err(io_err)?;
    Ok(std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Entry>(&l).ok()))
}

/// Fold one bucket of each side and count the differences into `r`.
fn compare_bucket(
    topic: &Path,
    db: &Path,
    truncated: i64,
    keyed: bool,
    show: usize,
    r: &mut TableReport,
) -> Result<(), Error> {
    if keyed {
        let mut latest: HashMap<String, (i64, Option<String>)> = HashMap::new();
        let mut snapshotted: HashMap<String, u64> = HashMap::new();
        for Entry(at, op, k, img) in read_entries(topic)? {
            let k = k.unwrap_or_default();
            if op == 'S' {
                let n = snapshotted.entry(k.clone()).or_default();
                r.repeated += (*n > 0) as u64;
                *n += 1;
            }
            let upsert = op == 'U' || op == 'S';
            latest.insert(k, (at, if upsert { img } else { None }));
        }
        latest.retain(|_, (at, img)| img.is_some() && *at >= truncated);
        for Entry(_, _, k, img) in read_entries(db)? {
            let k = k.unwrap_or_default();
            match latest.remove(&k) {
                None => {
                    r.counts[0] += 1;
                    if r.missing.len() < show {
                        r.missing.push(k);
                    }
                }
                Some((_, t)) => {
                    let cols =
                        differing(t.as_deref().unwrap_or("{}"), img.as_deref().unwrap_or("{}"));
                    if !cols.is_empty() {
                        r.counts[2] += 1;
                        if r.different.len() < show {
                            r.different.push((k, cols));
                        }
                    }
                }
            }
        }
        for k in latest.into_keys() {
            r.counts[1] += 1;
            if r.extra.len() < show {
                r.extra.push(k);
            }
        }
    } else {
        let mut count: HashMap<String, i64> = HashMap::new();
        for Entry(at, op, _, img) in read_entries(topic)? {
            if at < truncated {
                continue;
            }
            *count.entry(img.unwrap_or_default()).or_default() += if op == '+' { 1 } else { -1 };
        }
        for Entry(_, _, _, img) in read_entries(db)? {
            *count.entry(img.unwrap_or_default()).or_default() -= 1;
        }
        for (img, c) in count {
            // keyless rows have no key to show: the row's column names stand for it
            let label = format!("(no key) row with columns {}", column_names(&img).join(","));
            if c < 0 {
                r.counts[0] += (-c) as u64;
                if r.missing.len() < show {
                    r.missing.push(label);
                }
            } else if c > 0 {
                r.counts[1] += c as u64;
                if r.extra.len() < show {
                    r.extra.push(label);
                }
            }
        }
    }
    Ok(())
}

fn column_names(img: &str) -> Vec<String> {
    match serde_json::from_str::<J>(img) {
        Ok(J::Object(m)) => m.keys().cloned().collect(),
        _ => vec![],
    }
}

/// The columns whose values differ, over the columns both images carry.
fn differing(topic: &str, db: &str) -> Vec<String> {
    let (Ok(J::Object(t)), Ok(J::Object(d))) = (
        serde_json::from_str::<J>(topic),
        serde_json::from_str::<J>(db),
    ) else {
        return vec!["(unreadable image)".into()];
    };
    t.iter()
        .filter(|(c, v)| d.get(*c).is_some_and(|dv| dv != *v))
        .map(|(c, _)| c.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_differ_on_shared_columns_only() {
        assert!(differing(r#"{"a":1,"b":"x"}"#, r#"{"a":1,"b":"x","c":null}"#).is_empty());
        assert_eq!(
            differing(r#"{"a":1,"b":"x"}"#, r#"{"b":"y","a":1}"#),
            vec!["b"]
        );
    }

    fn bucket(dir: &Path, name: &str, entries: &[Entry]) -> PathBuf {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        for e in entries {
            serde_json::to_writer(&mut f, e).unwrap();
            f.write_all(b"\n").unwrap();
        }
        p
    }

    #[test]
    fn keyed_fold_truncate_and_differences() {
        let d = tempfile::tempdir().unwrap();
        let img = |v: i64| Some(format!(r#"{{"id":1,"v":{v}}}"#));
        let k = |s: &str| Some(s.to_string());
        let topic = bucket(
            d.path(),
            "t",
            &[
                Entry(-1, 'S', k("1"), img(0)),
                Entry(-1, 'S', k("1"), img(0)),
                Entry(9, 'U', k("1"), img(1)),
                Entry(5, 'U', k("2"), img(0)),
                Entry(6, 'D', k("2"), None),
                Entry(7, 'U', k("3"), img(0)),
                Entry(8, 'U', k("4"), img(0)),
                Entry(20, 'U', k("5"), img(3)),
            ],
        );
        let db = bucket(
            d.path(),
            "d",
            &[
                Entry(0, 'U', k("1"), img(2)),
                Entry(0, 'U', k("5"), img(3)),
                Entry(0, 'U', k("6"), img(0)),
                Entry(0, 'U', k("3"), img(0)),
            ],
        );
        // a TRUNCATE at 9: keys 3 and 4 (written before it) are gone, 1 and 5 come after
        let mut r = TableReport::default();
        compare_bucket(&topic, &db, 9, true, 10, &mut r).unwrap();
        assert_eq!(r.counts, [2, 0, 1], "{r:?}");
        let mut missing = r.missing.clone();
        missing.sort();
        assert_eq!(missing, vec!["3", "6"]);
        assert_eq!(r.different, vec![("1".to_string(), vec!["v".to_string()])]);
        assert_eq!(r.repeated, 1, "key 1 was snapshotted twice");
        // without the TRUNCATE, 4 is extra and 3 matches
        let mut r = TableReport::default();
        compare_bucket(&topic, &db, i64::MIN, true, 10, &mut r).unwrap();
        assert_eq!(r.counts, [1, 1, 1]);
        assert_eq!(r.extra, vec!["4"]);
    }

    #[test]
    fn keyless_tables_compare_as_multisets() {
        let d = tempfile::tempdir().unwrap();
        let row = |s: &str| Some(format!(r#"{{"a":"{s}"}}"#));
        let topic = bucket(
            d.path(),
            "t",
            &[
                Entry(1, '+', None, row("x")),
                Entry(1, '+', None, row("x")),
                Entry(2, '+', None, row("y")),
                Entry(3, '-', None, row("y")),
                Entry(3, '+', None, row("z")),
            ],
        );
        let db = bucket(
            d.path(),
            "d",
            &[
                Entry(0, '+', None, row("x")),
                Entry(0, '+', None, row("z")),
                Entry(0, '+', None, row("w")),
            ],
        );
        let mut r = TableReport::default();
        compare_bucket(&topic, &db, i64::MIN, false, 10, &mut r).unwrap();
        assert_eq!(r.counts, [1, 1, 0], "one x too many, w missing");
    }
}
