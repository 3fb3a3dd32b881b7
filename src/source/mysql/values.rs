//! MySQL/MariaDB values (binlog row images and binary-protocol snapshot rows) → [`Value`].
//!
//! Both paths meet here so a row renders the same whether it came from the snapshot or the
//! binlog: JSON is normalised to compact text, SET/ENUM become their labels, TIMESTAMP and
//! DATETIME exact microseconds, GEOMETRY its WKB (the 4-byte SRID prefix removed).
//!
//! Invariants: integers keep their full signed/unsigned 64-bit range; DECIMAL keeps its exact
//! text with the column's scale; a zero or invalid date is an error (null + warning upstream),
//! never a plausible wrong value.

use super::schema::MyCol;
use crate::model::time::days_from_civil;
use crate::model::value::Value;
use mysql_async::Value as MyValue;

/// Where a value came from: the two protocols encode a few types differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Binlog,
    Snapshot,
}

pub(crate) struct Ctx {
    pub(crate) tz_offset_us: i64,
    pub(crate) tiny1_bool: bool,
}

fn text(col: &MyCol, b: &[u8], origin: Origin) -> String {
    // the snapshot connection speaks utf8mb4; the binlog carries the column's own charset
    match (origin, col.charset.as_deref()) {
        (Origin::Binlog, Some("latin1")) => b.iter().map(|&c| c as char).collect(),
        _ => String::from_utf8_lossy(b).into_owned(),
    }
}

fn datetime_us(y: u16, m: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Result<i64, String> {
    if y == 0 || m == 0 || d == 0 {
        return Err(format!("zero date {y:04}-{m:02}-{d:02} has no epoch value"));
    }
    let days = days_from_civil(y as i64, m as u32, d as u32);
    Ok((days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000 + us as i64)
}

fn time_text(neg: bool, days: u32, h: u8, m: u8, s: u8, us: u32, fsp: u8) -> String {
    let hours = days as u64 * 24 + h as u64;
    let mut out = format!(
        "{}{:02}:{:02}:{:02}",
        if neg { "-" } else { "" },
        hours,
        m,
        s
    );
    if fsp > 0 {
        let frac = format!("{us:06}");
        out.push('.');
        out.push_str(&frac[..fsp as usize]);
    }
    out
}

fn json_compact(s: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => v.to_string(),
        Err(_) => s.to_string(),
    }
}

/// Convert one value of column `col`.
pub(crate) fn convert(col: &MyCol, v: MyValue, origin: Origin, ctx: &Ctx) -> Result<Value, String> {
    let dt = col.data_type.as_str();
    Ok(match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => int(col, dt, i, ctx)?,
        MyValue::UInt(u) => match dt {
            "tinyint" if col.tiny1 && ctx.tiny1_bool => Value::Bool(u != 0),
            _ => Value::UInt(u),
        },
        MyValue::Float(f) => {
            // shortest text of the f32, read as f64: 1.1f32 renders 1.1, not 1.100000023841858
            let s = ryu::Buffer::new().format(f).to_string();
            Value::Float(s.parse().unwrap_or(f as f64))
        }
        MyValue::Double(f) => Value::Float(f),
        MyValue::Date(y, m, d, h, mi, s, us) => zoned(dt, datetime_us(y, m, d, h, mi, s, us)?, ctx),
        MyValue::Time(neg, days, h, m, s, us) => {
            Value::Text(time_text(neg, days, h, m, s, us, col.fsp))
        }
        MyValue::Bytes(b) => bytes(col, dt, b, origin, ctx)?,
    })
}

/// An integer of a column of type `dt`: TINYINT(1) as a boolean (with `tiny1_bool`), an
/// ENUM's binlog index as its label, others with the column's signedness and width restored.
#[inline]
fn int(col: &MyCol, dt: &str, i: i64, ctx: &Ctx) -> Result<Value, String> {
    Ok(match dt {
        "tinyint" if col.tiny1 && ctx.tiny1_bool => Value::Bool(i != 0),
        "enum" => {
            // binlog: 1-based index into the labels (0 is the invalid '' value)
            match (i as usize).checked_sub(1).and_then(|k| col.labels.get(k)) {
                Some(l) => Value::Text(l.clone()),
                None if i == 0 => Value::Text(String::new()),
                None => return Err(format!("enum index {i} out of range")),
            }
        }
        // an unsigned column is always UInt, whichever way the value arrived
        _ if col.unsigned && i >= 0 => Value::UInt(i as u64),
        // the binlog carries unsigned columns as their signed bit pattern (without the
        // SIGNEDNESS metadata of binlog_row_metadata=FULL)
        _ if col.unsigned => Value::UInt(match dt {
            "tinyint" => i as u8 as u64,
            "smallint" => i as u16 as u64,
            "mediumint" => (i as u64) & 0xFF_FFFF,
            "int" | "integer" => i as u32 as u64,
            _ => i as u64,
        }),
        // and may carry signed narrow columns zero-extended (MariaDB MEDIUMINT): sign-extend
        _ if !col.unsigned => Value::Int(match dt {
            "tinyint" => i as i8 as i64,
            "smallint" => i as i16 as i64,
            "mediumint" => (i << 40) >> 40,
            "int" | "integer" => i as i32 as i64,
            _ => i,
        }),
        _ => Value::Int(i),
    })
}

/// Microseconds `us` of a column of type `dt` as a timestamp: DATETIME has no zone and is
/// read in source.timezone; TIMESTAMP (any other type) is in UTC already.
#[inline]
fn zoned(dt: &str, us: i64, ctx: &Ctx) -> Value {
    Value::Timestamp(if dt == "datetime" {
        us - ctx.tz_offset_us
    } else {
        us
    })
}

/// A value that arrives as bytes, by its column's type `dt`: DECIMAL's exact text, YEAR, the
/// binlog's TIMESTAMP and SET, BIT, JSON, GEOMETRY's WKB, binary strings, the text protocol's
/// dates and times, and text in the column's charset.
#[inline]
fn bytes(col: &MyCol, dt: &str, b: Vec<u8>, origin: Origin, ctx: &Ctx) -> Result<Value, String> {
    Ok(match dt {
        "decimal" | "numeric" => Value::Decimal(String::from_utf8_lossy(&b).into_owned()),
        "year" => Value::Int(
            String::from_utf8_lossy(&b)
                .trim()
                .parse()
                .map_err(|_| "invalid year")?,
        ),
        "timestamp" if origin == Origin::Binlog => binlog_timestamp(&b)?,
        "bit" => bit(col, b),
        "set" if origin == Origin::Binlog => binlog_set(col, &b),
        "json" => Value::Text(json_compact(&String::from_utf8_lossy(&b))),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            Value::Bytes(if b.len() >= 4 { b[4..].to_vec() } else { b })
        }
        // BINARY(n) is zero-padded to n bytes; the binlog drops the trailing zeros
        "binary" if b.len() < col.len as usize => {
            let mut v = b;
            v.resize(col.len as usize, 0);
            Value::Bytes(v)
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Value::Bytes(b),
        _ if col.charset.as_deref() == Some("binary") => Value::Bytes(b),
        "date" | "datetime" | "time" | "timestamp" => text_date(dt, &b, ctx)?,
        _ => Value::Text(text(col, &b, origin)),
    })
}

/// The binlog's TIMESTAMP: "seconds[.micros]" since the epoch; 0 is the zero timestamp, an
/// error.
#[inline]
fn binlog_timestamp(b: &[u8]) -> Result<Value, String> {
    let s = String::from_utf8_lossy(b).into_owned();
    let (sec, frac) = s.split_once('.').unwrap_or((&s, ""));
    let sec: i64 = sec.parse().map_err(|_| "invalid timestamp")?;
    if sec == 0 && frac.trim_matches('0').is_empty() {
        return Err("zero timestamp 0000-00-00 00:00:00 has no epoch value".into());
    }
    let mut us: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| "invalid timestamp")?
    };
    for _ in frac.len()..6 {
        us *= 10;
    }
    Ok(Value::Timestamp(sec * 1_000_000 + us))
}

/// BIT(1) as a boolean; a wider BIT as its bytes, padded to the column's width (the snapshot
/// may trim leading zero bytes).
#[inline]
fn bit(col: &MyCol, b: Vec<u8>) -> Value {
    if col.bits <= 1 {
        return Value::Bool(b.iter().any(|&x| x != 0));
    }
    let n = (col.bits as usize).div_ceil(8).max(1);
    let mut v = vec![0u8; n.saturating_sub(b.len())];
    v.extend_from_slice(&b);
    Value::Bytes(v)
}

/// The binlog's SET: a little-endian bit mask over the labels → the labels set, joined by `,`.
#[inline]
fn binlog_set(col: &MyCol, b: &[u8]) -> Value {
    let mut mask = 0u64;
    for (i, byte) in b.iter().enumerate().take(8) {
        mask |= (*byte as u64) << (8 * i);
    }
    let names: Vec<&str> = col
        .labels
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, l)| l.as_str())
        .collect();
    Value::Text(names.join(","))
}

/// A date, time or timestamp sent as text (text protocol fallback): TIME as its text, the
/// others parsed from "YYYY-MM-DD[ HH:MM:SS[.f]]".
#[inline]
fn text_date(dt: &str, b: &[u8], ctx: &Ctx) -> Result<Value, String> {
    let s = String::from_utf8_lossy(b).into_owned();
    if dt == "time" {
        return Ok(Value::Text(s));
    }
    let us = crate::model::time::parse_timestamp(
        if s.len() == 10 {
            format!("{s} 00:00:00")
        } else {
            s.clone()
        }
        .as_str(),
        false,
    )?;
    Ok(zoned(dt, us, ctx))
}

/// Binary JSON of a MySQL binlog → compact JSON text, as the snapshot renders the same value
/// (MySQL's JSON text through `json_compact`): MySQL-typed scalars inside JSON ("opaque"
/// values) render as MySQL prints them: DATE/TIME/DATETIME as strings, DECIMAL as a number,
/// others as `"base64:type<n>:<data>"`.
pub(crate) fn jsonb_text(v: mysql_async::binlog::jsonb::Value<'_>) -> Result<Value, String> {
    let dom = v.parse().map_err(|e| format!("binary JSON: {e}"))?;
    Ok(Value::Text(dom_json(dom).to_string()))
}

fn dom_json(d: mysql_async::binlog::jsonb::JsonDom) -> serde_json::Value {
    use mysql_async::binlog::jsonb::{JsonContainer, JsonDom, JsonNumber, JsonScalar};
    match d {
        JsonDom::Container(JsonContainer::Array(v)) => {
            serde_json::Value::Array(v.into_iter().map(dom_json).collect())
        }
        JsonDom::Container(JsonContainer::Object(m)) => {
            serde_json::Value::Object(m.into_iter().map(|(k, v)| (k, dom_json(v))).collect())
        }
        // MySQL prints a DECIMAL inside JSON as a number; the snapshot's text reads it as one
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Decimal(d))) => {
            let s = d.to_string();
            s.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::String(s))
        }
        JsonDom::Scalar(s) => s.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(dt: &str) -> MyCol {
        MyCol::plain("c", dt)
    }
    const CTX: Ctx = Ctx {
        tz_offset_us: 0,
        tiny1_bool: true,
    };

    #[test]
    fn conversions_of_numbers() {
        let mut u = col("bigint");
        u.unsigned = true;
        assert_eq!(
            convert(&u, MyValue::Int(-1), Origin::Binlog, &CTX).unwrap(),
            Value::UInt(u64::MAX)
        );
        let mut ui = col("int");
        ui.unsigned = true;
        assert_eq!(
            convert(&ui, MyValue::Int(-1), Origin::Binlog, &CTX).unwrap(),
            Value::UInt(4294967295)
        );
        let mut b = col("tinyint");
        b.tiny1 = true;
        assert_eq!(
            convert(&b, MyValue::Int(1), Origin::Binlog, &CTX).unwrap(),
            Value::Bool(true)
        );
        let mut e = col("enum");
        e.labels = vec!["x".into(), "y".into()];
        assert_eq!(
            convert(&e, MyValue::Int(2), Origin::Binlog, &CTX).unwrap(),
            Value::Text("y".into())
        );
        let m = col("mediumint");
        assert_eq!(
            convert(&m, MyValue::Int(8388608), Origin::Binlog, &CTX).unwrap(),
            Value::Int(-8388608)
        );
        assert_eq!(
            convert(&m, MyValue::Int(-5), Origin::Snapshot, &CTX).unwrap(),
            Value::Int(-5)
        );
        assert_eq!(
            convert(&col("float"), MyValue::Float(1.1), Origin::Binlog, &CTX).unwrap(),
            Value::Float(1.1)
        );
    }

    #[test]
    fn conversions_of_dates_and_times() {
        assert_eq!(
            convert(
                &col("timestamp"),
                MyValue::Bytes(b"1590315269.123456".to_vec()),
                Origin::Binlog,
                &CTX
            )
            .unwrap(),
            Value::Timestamp(1590315269123456)
        );
        assert!(convert(
            &col("timestamp"),
            MyValue::Bytes(b"0".to_vec()),
            Origin::Binlog,
            &CTX
        )
        .is_err());
        assert!(convert(
            &col("datetime"),
            MyValue::Date(0, 0, 0, 0, 0, 0, 0),
            Origin::Binlog,
            &CTX
        )
        .is_err());
        assert_eq!(
            convert(
                &col("datetime"),
                MyValue::Date(2020, 5, 24, 10, 14, 29, 123456),
                Origin::Snapshot,
                &CTX
            )
            .unwrap(),
            Value::Timestamp(1590315269123456)
        );
        let mut t = col("time");
        t.fsp = 3;
        assert_eq!(
            convert(
                &t,
                MyValue::Time(true, 1, 2, 3, 4, 500000,),
                Origin::Binlog,
                &CTX
            )
            .unwrap(),
            Value::Text("-26:03:04.500".into())
        );
    }

    #[test]
    fn conversions_of_bytes() {
        let mut s = col("set");
        s.labels = vec!["a".into(), "b".into(), "c".into()];
        assert_eq!(
            convert(&s, MyValue::Bytes(vec![0b101]), Origin::Binlog, &CTX).unwrap(),
            Value::Text("a,c".into())
        );
        assert_eq!(
            convert(&s, MyValue::Bytes(b"a,c".to_vec()), Origin::Snapshot, &CTX).unwrap(),
            Value::Text("a,c".into())
        );
        assert_eq!(
            convert(
                &col("json"),
                MyValue::Bytes(br#"{"b": [1, 2.5], "a": null}"#.to_vec()),
                Origin::Snapshot,
                &CTX
            )
            .unwrap(),
            Value::Text(r#"{"a":null,"b":[1,2.5]}"#.into())
        );
        let mut l = col("varchar");
        l.charset = Some("latin1".into());
        assert_eq!(
            convert(
                &l,
                MyValue::Bytes(vec![0x63, 0x61, 0x66, 0xe9]),
                Origin::Binlog,
                &CTX
            )
            .unwrap(),
            Value::Text("café".into())
        );
        let mut bin = col("binary");
        bin.len = 4;
        assert_eq!(
            convert(&bin, MyValue::Bytes(vec![1, 2]), Origin::Binlog, &CTX).unwrap(),
            Value::Bytes(vec![1, 2, 0, 0])
        );
        let mut bit = col("bit");
        bit.bits = 10;
        assert_eq!(
            convert(&bit, MyValue::Bytes(vec![1]), Origin::Snapshot, &CTX).unwrap(),
            Value::Bytes(vec![0, 1])
        );
    }
}
