//! Property tests: the decoders never panic. Arbitrary bytes, and real messages with bytes
//! flipped, cut or inserted, go through the pgoutput parser, Postgres text decoding of every
//! kind, COPY unescaping, MySQL binlog events (the recorded MySQL binlogs, mutated) with the
//! row decoding the stream uses, MySQL value conversion and GTID parsing. Each must return a
//! value or a typed error. (proptest, 256 cases per property by default; set PROPTEST_CASES
//! for a longer run.)

use crate::source::mysql::gtid::{parse_mariadb_gtid, GtidSet};
use crate::source::mysql::schema::{MyCol, MyTable};
use crate::source::mysql::stream::{
    binlog_row, image_columns, verify_checksum, MYSQL_PREVIOUS_GTIDS_EVENT,
};
use crate::source::mysql::values::{convert, Ctx, Origin};
use crate::source::postgres::pgoutput::{parse_copy, parse_logical};
use crate::source::postgres::snapshot::unescape_copy;
use crate::source::postgres::types::{decode_text, DecodeCtx, PgKind};
use crate::source::render::RenderWarnings;
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

/// Real pgoutput messages: Begin, Relation, Insert, Update (key change), Delete, Truncate,
/// Message, Commit, and the XLogData / keepalive frames around them.
fn pg_corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = BytesMut::new();
    b.put_u8(b'B');
    b.put_u64(0x16B3748);
    b.put_i64(1_000_000);
    b.put_u32(742);
    out.push(b.to_vec());
    out.push(crate::source::postgres::pgoutput::tests::relation_message());
    let tuple = |b: &mut BytesMut| {
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(2);
        b.put_slice(b"42");
        b.put_u8(b'n');
    };
    let mut b = BytesMut::new();
    b.put_u8(b'I');
    b.put_u32(16384);
    b.put_u8(b'N');
    tuple(&mut b);
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    b.put_u8(b'U');
    b.put_u32(16384);
    b.put_u8(b'K');
    tuple(&mut b);
    b.put_u8(b'N');
    tuple(&mut b);
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    b.put_u8(b'D');
    b.put_u32(16384);
    b.put_u8(b'O');
    tuple(&mut b);
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    b.put_u8(b'T');
    b.put_u32(1);
    b.put_u8(3);
    b.put_u32(16384);
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    b.put_u8(b'M');
    b.put_u8(0);
    b.put_u64(0x16B3748);
    b.put_slice(b"rowstream_watermark\0");
    b.put_u32(5);
    b.put_slice(b"1-234");
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    b.put_u8(b'C');
    b.put_u8(0);
    b.put_u64(0x16B3748);
    b.put_u64(0x16B3760);
    b.put_i64(1_000_000);
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    b.put_u8(b'k');
    b.put_u64(0x16B3760);
    b.put_i64(1_000_000);
    b.put_u8(1);
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    b.put_u8(b'w');
    b.put_u64(1);
    b.put_u64(2);
    b.put_i64(3);
    b.put_slice(&out[2]);
    out.push(b.to_vec());
    out
}

/// Apply `edits` (position, kind, byte) to `seed`: flip, cut the tail, or insert.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(at, kind, byte) in edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let i = at % v.len();
        match kind % 3 {
            0 => v[i] ^= byte | 1,
            1 => v.truncate(i),
            _ => v.insert(i, byte),
        }
    }
    v
}

fn pg_kinds() -> Vec<PgKind> {
    let base = vec![
        PgKind::Bool,
        PgKind::Int,
        PgKind::Float,
        PgKind::Numeric,
        PgKind::Money,
        PgKind::Date,
        PgKind::Timestamp { fsp: 6 },
        PgKind::TimestampTz { fsp: 3 },
        PgKind::Bytea,
        PgKind::Bit1,
        PgKind::Bits,
        PgKind::Text,
    ];
    let mut all = base.clone();
    for (i, k) in base.into_iter().enumerate() {
        all.push(PgKind::Array {
            elem: Box::new(k),
            delim: if i % 2 == 0 { b',' } else { b';' },
        });
    }
    all
}

fn my_cols() -> Vec<MyCol> {
    let mut cols: Vec<MyCol> = [
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "bigint",
        "decimal",
        "float",
        "double",
        "date",
        "datetime",
        "timestamp",
        "time",
        "year",
        "char",
        "varchar",
        "text",
        "binary",
        "varbinary",
        "blob",
        "enum",
        "set",
        "bit",
        "json",
        "geometry",
    ]
    .iter()
    .map(|t| MyCol::plain("c", t))
    .collect();
    for c in &mut cols {
        c.labels = vec!["a".into(), "b".into()];
        c.bits = 12;
        c.len = 4;
        c.fsp = 6;
        c.charset = Some("utf8mb4".into());
    }
    let mut u = MyCol::plain("u", "int");
    u.unsigned = true;
    cols.push(u);
    cols
}

fn my_value() -> impl Strategy<Value = mysql_async::Value> {
    use mysql_async::Value as V;
    prop_oneof![
        Just(V::NULL),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(V::Bytes),
        any::<i64>().prop_map(V::Int),
        any::<u64>().prop_map(V::UInt),
        any::<f32>().prop_map(V::Float),
        any::<f64>().prop_map(V::Double),
        (
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>()
        )
            .prop_map(|(y, m, d, h, mi, s, us)| V::Date(y, m, d, h, mi, s, us)),
        (
            any::<bool>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>()
        )
            .prop_map(|(n, d, h, m, s, us)| V::Time(n, d, h, m, s, us)),
    ]
}

/// Every event of the recorded MySQL binlogs, as (format-description-relative) raw bytes.
/// None (the test is skipped, saying so) when the shared fixtures are absent.
fn binlog_files() -> Option<Vec<Vec<u8>>> {
    let dir = crate::source::mysql::fixtures::shared_binlogs()?.join("rust_mysql_common");
    [
        "mysql-enum-string-set.000001",
        "json.binlog.000001",
        "minimal_row_metadata.000001",
        "transaction_compression.000001",
        "mysql_type_bit.000001",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("fixture {f}: {e}")))
    .collect::<Vec<_>>()
    .into()
}

/// The file up to the first event whose header's size runs past the end of the bytes.
fn cut_before_overlong_event(bytes: &[u8]) -> &[u8] {
    let mut at = 4;
    while at + 19 <= bytes.len() {
        let size = u32::from_le_bytes([
            bytes[at + 9],
            bytes[at + 10],
            bytes[at + 11],
            bytes[at + 12],
        ]) as usize;
        // (and one too short to hold its CRC32: the parser slices past its start)
        if size < 19 + 4 || at + size > bytes.len() {
            return &bytes[..at];
        }
        at += size;
    }
    &bytes[..at.min(bytes.len())]
}

/// Read a (possibly damaged) binlog file the way the stream reads events, decoding every rows
/// event's rows with a table definition of the right width. Errors end the read.
fn read_binlog(bytes: &[u8]) {
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{EventData, TableMapEvent};
    let ctx = Ctx {
        tz_offset_us: 0,
        tiny1_bool: true,
    };
    let mut warned = RenderWarnings::default();
    let mut tmes: std::collections::HashMap<u64, TableMapEvent<'static>> = Default::default();
    let mut cursor = crate::source::mysql::cursor::Cursor::new("bin.000001", 4);
    // mysql_common panics in `Event::read` on an event whose header claims more bytes than
    // follow, or too few to hold its checksum; the stream turns such a panic into an error
    // (catch_unwind around the read), here the damaged file is cut before such an event
    let bytes = cut_before_overlong_event(bytes);
    let Ok(file) = mysql_common::binlog::BinlogFile::new(BinlogVersion::Version4, bytes) else {
        return;
    };
    for ev in file.take(500) {
        let Ok(ev) = ev else { return };
        // as the stream: a damaged event is refused by its checksum before it is parsed
        if verify_checksum(&ev).is_err() {
            return;
        }
        if ev.header().event_type_raw() == MYSQL_PREVIOUS_GTIDS_EVENT {
            continue;
        }
        let _ = cursor.on_event(&ev);
        let _ = parse_mariadb_gtid(ev.data());
        match ev.read_data() {
            Ok(Some(EventData::TableMapEvent(t))) => {
                tmes.insert(t.table_id(), t.into_owned());
            }
            Ok(Some(EventData::RowsEvent(r))) => {
                let Some(tme) = tmes.get(&r.table_id()) else {
                    continue;
                };
                // the stream decodes with the catalog's definition; here a definition as wide as
                // the (damaged) table map says, within MySQL's 4096-column limit
                let n = tme.columns_count() as usize;
                if n > 4096 {
                    continue;
                }
                let cols = my_cols();
                let def = MyTable {
                    db: "d".into(),
                    table: "t".into(),
                    columns: (0..n).map(|i| cols[i % cols.len()].clone()).collect(),
                    pk: vec![],
                };
                let bc = image_columns(r.columns_before_image().map(|b| b.iter().by_vals()), n);
                let ac = image_columns(r.columns_after_image().map(|b| b.iter().by_vals()), n);
                for row in r.rows(tme) {
                    let Ok((b, a)) = row else { break };
                    let _ = b.map(|x| binlog_row(&def, "d.t", x, &bc, &ctx, &mut warned));
                    let _ = a.map(|x| binlog_row(&def, "d.t", x, &ac, &ctx, &mut warned));
                }
            }
            _ => {}
        }
    }
}

proptest! {
    #[test]
    fn pgoutput_never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_logical(Bytes::from(b.clone()));
        let _ = parse_copy(Bytes::from(b));
    }

    #[test]
    fn pgoutput_never_panics_on_damaged_messages(
        seed in 0usize..10,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let corpus = pg_corpus();
        let m = mutate(&corpus[seed % corpus.len()], &edits);
        let _ = parse_logical(Bytes::from(m.clone()));
        let _ = parse_copy(Bytes::from(m));
    }

    #[test]
    fn postgres_text_decoding_never_panics(
        k in 0usize..24,
        text in proptest::collection::vec(any::<u8>(), 0..60),
        tz in -50_400i64..50_400,
    ) {
        let kinds = pg_kinds();
        let ctx = DecodeCtx { tz_offset_us: tz * 1_000_000 };
        let _ = decode_text(&kinds[k % kinds.len()], &text, &ctx);
        let mut out = Vec::new();
        let _ = unescape_copy(&text, &mut out);
    }

    #[test]
    fn postgres_text_decoding_of_near_valid_values_never_panics(
        k in 0usize..24,
        seed in 0usize..8,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let seeds: [&[u8]; 8] = [
            b"2024-02-29", b"2024-02-29 23:59:59.999999+05:30", b"-12.3400", b"\\x0aff",
            b"{1,2,NULL,\"a\\\"b\"}", b"{{1,2},{3,4}}", b"$1,234.56", b"101101",
        ];
        let kinds = pg_kinds();
        let v = mutate(seeds[seed], &edits);
        let _ = decode_text(&kinds[k % kinds.len()], &v, &DecodeCtx { tz_offset_us: 0 });
    }

    #[test]
    fn mysql_value_conversion_never_panics(c in 0usize..25, v in my_value(), binlog in any::<bool>()) {
        let cols = my_cols();
        let origin = if binlog { Origin::Binlog } else { Origin::Snapshot };
        let ctx = Ctx { tz_offset_us: 3_600_000_000, tiny1_bool: true };
        let _ = convert(&cols[c % cols.len()], v, origin, &ctx);
    }

    #[test]
    fn gtid_sets_and_rotate_names_never_panic(s in ".{0,80}", raw in proptest::collection::vec(any::<u8>(), 0..40)) {
        let g = GtidSet::parse(Some(&s));
        let _ = GtidSet::parse(g.render().as_deref());
        let _ = crate::model::position::gtid_order(&s, "0-1-5");
        let _ = crate::model::position::gtid_order(&s, &s);
        // a ROTATE event with these bytes as its body, read as the stream reads it
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.push(4);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(19 + raw.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(&raw);
        let mut r = mysql_common::binlog::EventStreamReader::new(
            mysql_common::binlog::consts::BinlogVersion::Version4,
        );
        if let Ok(Some(ev)) = r.read(&bytes[..]) {
            let _ = crate::source::mysql::cursor::rotate_body(&ev);
            let _ = crate::source::mysql::cursor::Cursor::new("bin.000001", 4).on_event(&ev);
        }
        let _ = parse_mariadb_gtid(&raw);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
    ))]
    #[test]
    fn mysql_binlog_decoding_never_panics_on_damaged_files(
        f in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let Some(files) = binlog_files() else {
            return Ok(());
        };
        let file = &files[f % files.len()];
        // keep the 4-byte magic so the damage lands in events
        let mut m = file[..4].to_vec();
        m.extend(mutate(&file[4..], &edits));
        read_binlog(&m);
    }
}
