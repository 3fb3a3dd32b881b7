//! MySQL's own binlog bytes through rowstream's decoding: binlogs recorded by MySQL 5.7, 8.0,
//! 8.2 and 9.x servers (`../shared/fixtures/mysql-binlog/`, see its README for what each file
//! holds and what upstream expects), read with the parser under mysql_async and decoded by the
//! same functions the stream uses (`binlog_row`, `GtidSet`, `convert`, `jsonb_text`).
//!
//! The table definitions are written here as `information_schema` would report them; rowstream
//! decodes with those, not with the TABLE_MAP metadata, exactly as when streaming.

use super::gtid::GtidSet;
use super::schema::{MyCol, MyTable};
use super::stream::{binlog_row, image_columns};
use super::table_map::TableMap;
use super::values::Ctx;
use crate::model::value::Value;
use crate::source::render::RenderWarnings;
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::{
    Event, EventData, RowsEventData, TableMapEvent, TransactionPayloadEvent,
};
use mysql_common::binlog::BinlogFile;
use std::collections::HashMap;

/// The project's recorded binlogs (`../shared/fixtures/mysql-binlog`, beside the clone), or
/// `None` with one line saying they are absent and the test is skipped: a user's clone has no
/// `../shared`. With `ROWSTREAM_REQUIRE_FIXTURES=1` (CI sets it) their absence is a failure,
/// so they can never be skipped silently there.
pub(crate) fn shared_binlogs() -> Option<std::path::PathBuf> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/mysql-binlog");
    if dir.is_dir() {
        return Some(dir);
    }
    let required = std::env::var("ROWSTREAM_REQUIRE_FIXTURES").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "the recorded MySQL binlogs are absent ({}), and ROWSTREAM_REQUIRE_FIXTURES=1 requires them",
        dir.display()
    );
    eprintln!(
        "skipped: the recorded MySQL binlogs are absent ({}: they come with the project's shared folder beside the clone)",
        dir.display()
    );
    None
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/mysql-binlog")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Every event of a binlog file, the events inside TRANSACTION_PAYLOAD expanded after it (as
/// mysql_async's stream does).
fn events(rel: &str) -> Vec<Event> {
    let bytes = fixture(rel);
    let mut file = BinlogFile::new(BinlogVersion::Version4, &bytes[..]).unwrap();
    let mut out = Vec::new();
    while let Some(ev) = file.next() {
        let ev = ev.unwrap_or_else(|e| panic!("{rel}: {e}"));
        if ev.header().event_type_raw() == 40 {
            let data = ev
                .read_event::<TransactionPayloadEvent<'_>>()
                .unwrap()
                .danger_decompress();
            out.push(ev);
            let mut cur = &data[..];
            while let Some(inner) = file.reader_mut().read_decompressed(&mut cur).unwrap() {
                out.push(inner);
            }
        } else {
            out.push(ev);
        }
    }
    out
}

/// A decoded row change: table, kind, before image, after image.
type RowChange = (String, &'static str, Option<Vec<Value>>, Option<Vec<Value>>);

/// What the stream would make of a file: executed GTIDs, and each row change decoded with
/// `defs` (tables without a definition are skipped).
#[derive(Default)]
struct Decoded {
    gtids: GtidSet,
    /// (table, kind, before, after)
    rows: Vec<RowChange>,
    rows_events: usize,
    events: usize,
}

fn decode(rel: &str, defs: &[MyTable]) -> Decoded {
    let ctx = Ctx {
        tz_offset_us: 0,
        tiny1_bool: false,
    };
    let mut warned = RenderWarnings::default();
    let mut out = Decoded::default();
    let mut tmes: HashMap<u64, TableMapEvent<'static>> = HashMap::new();
    let evs = events(rel);
    out.events = evs.len();
    for ev in &evs {
        match ev.read_data().unwrap_or_else(|e| panic!("{rel}: {e}")) {
            Some(EventData::TableMapEvent(t)) => {
                tmes.insert(t.table_id(), t.into_owned());
            }
            Some(EventData::GtidEvent(g)) => {
                out.gtids
                    .mysql(g.sid(), g.tag().map(|t| t.as_str()), g.gno())
            }
            Some(EventData::RowsEvent(r)) => {
                out.rows_events += 1;
                let tme = &tmes[&r.table_id()];
                let kind = match r {
                    RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                        "insert"
                    }
                    RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                        "delete"
                    }
                    _ => "update",
                };
                let table = tme.table_name().into_owned();
                for row in r.rows(tme) {
                    let (b, a) = row.unwrap_or_else(|e| panic!("{rel}: {e}"));
                    let Some(def) = defs.iter().find(|d| d.table == table) else {
                        continue;
                    };
                    // the stream decodes with a definition only if it fits the TABLE_MAP
                    assert!(
                        TableMap::of(tme).fits(def),
                        "{rel}: the definition of {table} does not fit its TABLE_MAP"
                    );
                    let n = def.columns.len();
                    let bc = image_columns(r.columns_before_image().map(|b| b.iter().by_vals()), n);
                    let ac = image_columns(r.columns_after_image().map(|b| b.iter().by_vals()), n);
                    let b = b.map(|x| binlog_row(def, &table, x, &bc, &ctx, &mut warned));
                    let a = a.map(|x| binlog_row(def, &table, x, &ac, &ctx, &mut warned));
                    out.rows.push((table.clone(), kind, b, a));
                }
            }
            _ => {}
        }
    }
    out
}

fn col(name: &str, data_type: &str) -> MyCol {
    let mut c = MyCol::plain(name, data_type);
    if matches!(
        data_type,
        "char" | "varchar" | "text" | "tinytext" | "mediumtext" | "longtext" | "enum" | "set"
    ) {
        c.charset = Some("utf8mb4".into());
    }
    c
}

fn table(name: &str, columns: Vec<MyCol>) -> MyTable {
    MyTable {
        db: "test".into(),
        table: name.into(),
        columns,
        pk: vec![],
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn bit_columns_and_gtids_of_mysql_8_0_26() {
    if shared_binlogs().is_none() {
        return;
    }
    let mut a = col("a", "bit");
    a.bits = 3;
    let mut c = col("c", "bit");
    c.bits = 8;
    let d = decode(
        "rust_mysql_common/mysql_type_bit.000001",
        &[table("foo", vec![a, col("b", "text"), c])],
    );
    assert_eq!(
        d.rows,
        vec![(
            "foo".into(),
            "insert",
            None,
            Some(vec![
                Value::Bytes(vec![0b100]),
                text("foo"),
                Value::Bytes(vec![0b100000])
            ])
        )]
    );
    assert_eq!(
        d.gtids.render().as_deref(),
        Some("fbda2ad0-7c46-11ec-ae30-4ef7efc81a2a:1-3")
    );
}

fn unsigned(c: MyCol) -> MyCol {
    MyCol {
        unsigned: true,
        ..c
    }
}

fn with_labels(mut c: MyCol, labels: &[&str]) -> MyCol {
    c.labels = labels.iter().map(|l| l.to_string()).collect();
    c
}

#[test]
fn negative_time2_with_a_large_hour() {
    if shared_binlogs().is_none() {
        return;
    }
    let d = decode(
        "rust_mysql_common/time_issue.000001",
        &[table("t", vec![col("t", "time")])],
    );
    // upstream: Time(negative, 21 days, 3 h, 48 m, 27 s)
    assert_eq!(d.rows[0].3, Some(vec![text("-507:48:27")]));
}

#[test]
fn enum_and_set_labels_of_mysql_8_0_28() {
    if shared_binlogs().is_none() {
        return;
    }
    let t = table(
        "t",
        vec![
            col("f1", "char"),
            col("f2", "varchar"),
            with_labels(col("f3", "enum"), &["var1", "variant2", "foo"]),
            with_labels(col("f4", "set"), &["one", "two", "three", "four"]),
            col("f5", "text"),
        ],
    );
    let d = decode("rust_mysql_common/mysql-enum-string-set.000001", &[t]);
    let kinds: Vec<&str> = d.rows.iter().map(|r| r.1).collect();
    assert_eq!(kinds, ["insert", "update", "delete"]);
    let deleted = d.rows[2].2.as_ref().unwrap();
    assert_eq!(
        deleted[..4],
        [
            text("field1"),
            text("field_2"),
            text("variant2"),
            text("two,four")
        ]
    );
    assert_eq!(
        d.gtids.render().as_deref(),
        Some("93e95066-a2f4-11ec-9b69-9657f0ae95e2:1-5")
    );
}

#[test]
fn json_with_mysql_typed_scalars_renders_as_mysql_prints_it() {
    if shared_binlogs().is_none() {
        return;
    }
    let d = decode(
        "rust_mysql_common/json-opaque.binlog",
        &[table("test", vec![col("a", "json")])],
    );
    let got: Vec<Value> = d
        .rows
        .iter()
        .map(|r| r.3.clone().unwrap()[0].clone())
        .collect();
    // upstream's expectations, with DECIMAL as the number MySQL prints (as the snapshot reads it)
    let want = [
        r#"{"a":"base64:type15:VQ=="}"#,
        r#"{"b":"2012-03-18"}"#,
        r#"{"c":"2012-03-18 11:30:45.000000"}"#,
        r#"{"c":"87:31:46.654321"}"#,
        r#"{"d":123.456}"#,
        r#"{"e":9.0}"#,
        r#"{"e":[0,1,true,false]}"#,
        r#"{"e":null}"#,
    ];
    assert_eq!(got, want.map(text));
}

#[test]
fn partial_row_images_keep_each_value_in_its_column() {
    if shared_binlogs().is_none() {
        return;
    }
    // MINIMAL row image: the insert carries columns 0, 2 and 4 only (upstream: @2 is the
    // utf8mb4 string, @4 = 3230202323 INT UNSIGNED)
    let t1 = table(
        "t1",
        vec![
            col("c0", "int"),
            col("c1", "blob"),
            col("c2", "char"),
            col("c3", "int"),
            unsigned(col("c4", "int")),
        ],
    );
    let d = decode("rust_mysql_common/minimal_row_metadata.000001", &[t1]);
    assert_eq!(
        d.rows[0].3,
        Some(vec![
            Value::Int(1),
            Value::Absent,
            text("a"),
            Value::Absent,
            Value::UInt(3230202323)
        ])
    );
    // a partial JSON update (PARTIAL_JSON) with a key-only before image: the diff cannot be
    // rendered (null, counted), every other column lands in its place
    let t = table(
        "t",
        vec![
            col("id", "int"),
            col("json_col", "json"),
            col("name", "varchar"),
            col("age", "int"),
        ],
    );
    let d = decode("rust_mysql_common/json.binlog.000001", &[t]);
    let last = d.rows.last().unwrap();
    assert_eq!(
        last.2,
        Some(vec![
            Value::Int(6),
            Value::Absent,
            Value::Absent,
            Value::Absent
        ])
    );
    assert_eq!(
        last.3,
        Some(vec![
            Value::Absent,
            Value::Unrendered(
                "partial JSON update (binlog_row_value_options=PARTIAL_JSON): set it empty".into()
            ),
            text("Pete"),
            Value::Int(42)
        ])
    );
    assert_eq!(
        d.rows[6].3.as_ref().unwrap()[1],
        text(r#"{"age":25,"data":"xxxxxxxxxx","name":"Joe"}"#)
    );
}

#[test]
fn compressed_transactions_expand() {
    if shared_binlogs().is_none() {
        return;
    }
    let d = decode(
        "rust_mysql_common/transaction_compression.000001",
        &[table("tb1", vec![col("a", "int")])],
    );
    assert_eq!(
        d.rows,
        vec![("tb1".into(), "insert", None, Some(vec![Value::Int(1)]))]
    );
    // an 11-column UPDATE inside a zstd payload; upstream counts 5 events outside it
    let cols = (0..11)
        .map(|i| {
            col(
                &format!("c{i}"),
                if i % 2 == 0 && i < 3 {
                    "int"
                } else {
                    "varchar"
                },
            )
        })
        .collect();
    let d = decode(
        "mysql-binlog-connector-java/mysql-bin.compressed",
        &[table("movies", cols)],
    );
    assert_eq!(d.events, 5 + 4);
    let (_, kind, before, after) = &d.rows[0];
    assert_eq!(*kind, "update");
    for img in [before, after] {
        let img = img.as_ref().unwrap();
        assert_eq!(img.len(), 11);
        assert!(!img.iter().any(|v| v.is_absent()), "{img:?}");
    }
}

#[test]
fn tagged_gtids_of_mysql_9() {
    if shared_binlogs().is_none() {
        return;
    }
    let d = decode(
        "rust_mysql_common/binlog_transaction_with_GTID_TAG.000001",
        &[table(
            "orders",
            vec![col("id", "int"), col("qty", "int"), {
                let mut c = col("amount", "decimal");
                c.scale = 2;
                c
            }],
        )],
    );
    // the tag is part of the set (upstream's PREVIOUS_GTIDS has :mytag:1-2; this is :mytag:3)
    assert_eq!(
        d.gtids.render().as_deref(),
        Some("55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:1-3")
    );
    assert_eq!(
        d.rows[0].3,
        Some(vec![
            Value::Int(3),
            Value::Int(100),
            Value::Decimal("250.00".into())
        ])
    );
    // a stored tagged set parses back
    assert_eq!(
        GtidSet::parse(d.gtids.render().as_deref()).render(),
        d.gtids.render()
    );
}

#[test]
fn checksums_off_and_on_and_unknown_event_types() {
    if shared_binlogs().is_none() {
        return;
    }
    // upstream (mysql-binlog-connector-java) reads 191 and 303 events
    let none = decode("mysql-binlog-connector-java/mysql-bin.checksum-none", &[]);
    assert_eq!((none.events, none.rows_events), (191, 36));
    let crc = decode("mysql-binlog-connector-java/mysql-bin.checksum-crc32", &[]);
    assert_eq!((crc.events, crc.rows_events), (303, 60));
    // Aurora's event type 100 is skipped, not an error
    let aurora = decode("mysql-binlog-connector-java/mysql-bin.aurora-padding", &[]);
    assert_eq!(aurora.events, 5);
}

#[test]
fn invisible_columns_decode_in_table_order() {
    if shared_binlogs().is_none() {
        return;
    }
    let t1 = table(
        "t1",
        vec![
            unsigned(col("f1", "int")),
            unsigned(col("f2", "int")),
            col("f3", "int"),
            col("f4", "text"),
            col("f5", "blob"),
            unsigned(col("f6", "bigint")),
        ],
    );
    let d = decode("rust_mysql_common/binlog-invisible-columns.000001", &[t1]);
    assert_eq!(
        d.rows[0].3,
        Some(vec![
            Value::UInt(1),
            Value::UInt(2),
            Value::Int(-3),
            text("4"),
            Value::Bytes(vec![5]),
            Value::UInt(6000000000)
        ])
    );
    assert_eq!(
        d.gtids.render().as_deref(),
        Some("97c7af02-4c50-11ec-acd8-681842034964:1-5")
    );
}

/// Every recorded binlog file (the `\xfebin` magic), by path under the fixtures folder.
fn binlog_files() -> Vec<String> {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/mysql-binlog");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures {} are absent: {e}", root.display()))
    {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            let magic = std::fs::read(&p)
                .ok()
                .and_then(|b| b.get(..4).map(<[u8]>::to_vec));
            if magic.as_deref() == Some(&b"\xfebin"[..]) {
                out.push(p.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// MySQL's rotations as a dump delivers them, for every recorded file: the dump's fake ROTATE
/// names the file, the file's own events (its real ROTATE at the end, or a STOP), then the
/// dump's fake ROTATE for the next file and that file's events. Every position is labelled
/// with the file it is in, every event of the next file lies after every event of this one,
/// and a transaction inside a compressed payload ends where the payload ends.
#[test]
fn rotations_name_the_file_in_recorded_binlogs() {
    if shared_binlogs().is_none() {
        return;
    }
    use super::cursor::tests::rotate_bytes;
    use super::cursor::Cursor;
    use crate::model::position::SourcePosition;
    use std::cmp::Ordering;
    let files = binlog_files();
    assert!(files.len() >= 20, "{files:?}");
    let fake = |name: &str| {
        let mut r = mysql_common::binlog::EventStreamReader::new(BinlogVersion::Version4);
        r.read(&rotate_bytes(name, 4, 0, true)[..])
            .unwrap()
            .unwrap()
    };
    let mut rotations = 0;
    for rel in files {
        let evs = events(&rel);
        // the file's name: one before the name its ROTATE gives, or made up
        let next = evs.iter().find_map(|e| match e.read_data() {
            Ok(Some(EventData::RotateEvent(r))) if e.header().log_pos() != 0 => {
                Some(r.name().into_owned())
            }
            _ => None,
        });
        let (name, next) = match next {
            Some(n) => {
                let (base, seq) = crate::model::position::binlog_file_seq(&n).unwrap();
                rotations += 1;
                (format!("{base}.{:06}", seq - 1), n)
            }
            None => ("fixture.000001".to_string(), "fixture.000002".to_string()),
        };
        let mut c = Cursor::new(&name, 4);
        c.on_event(&fake(&name)).unwrap();
        // `file`'s events; the second pass (a copy of the file under the next name) stops
        // before its ROTATE, which would name its own file again
        let pass = |c: &mut Cursor, file: &str, again: bool| -> Vec<SourcePosition> {
            let mut seen = Vec::new();
            let mut payload_end = None;
            for ev in &evs {
                let h = ev.header();
                if h.event_type_raw() == 4 && h.log_pos() != 0 && again {
                    break;
                }
                let at = c.on_event(ev).unwrap_or_else(|e| panic!("{rel}: {e}"));
                if h.event_type_raw() == 4 && h.log_pos() != 0 {
                    assert_eq!(at.end, h.log_pos() as u64, "{rel}");
                    assert_eq!(c.file, next, "{rel}: the real ROTATE names the next file");
                    continue;
                }
                assert_eq!(c.file, file, "{rel}");
                match h.log_pos() {
                    0 => assert_eq!(Some(at.end), payload_end, "{rel}: inside a payload"),
                    p => assert_eq!(at.end, p as u64, "{rel}"),
                }
                if h.event_type_raw() == 40 {
                    payload_end = Some(at.end);
                }
                seen.push(SourcePosition::MySql {
                    file: c.file.clone(),
                    pos: at.end,
                    gtid: None,
                });
            }
            seen
        };
        let first = pass(&mut c, &name, false);
        // the dump moves on: a fake ROTATE names the next file (after a real ROTATE or a STOP)
        c.on_event(&fake(&next)).unwrap();
        assert_eq!((c.file.as_str(), c.pos), (next.as_str(), 4), "{rel}");
        let second = pass(&mut c, &next, true);
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(
                b.cmp_in_log(a),
                Some(Ordering::Greater),
                "{rel}: {b} after {a}"
            );
        }
        // and never back
        assert!(c.on_event(&fake(&name)).is_err(), "{rel}");
    }
    assert!(rotations >= 10, "{rotations} files end with a real ROTATE");
}
