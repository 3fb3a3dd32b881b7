//! DataWorks records → one Arrow record batch (the rows of one Parquet file).
//!
//! Invariants:
//! - One file, one table schema: every row of a [`Rows`] has the `schema.dataColumn` it was
//!   started with (the caller starts a new one when the schema changes).
//! - Column types follow the DataWorks type: LONG → Int64, DOUBLE → Float64 (JSON numbers and
//!   `"NaN"`/`"Infinity"`) or Utf8 when the column's values are decimal text (`"1.100000"`,
//!   kept exactly), DATE → Timestamp(µs, UTC) (ms integers and the 6-decimal µs form, parsed
//!   from the JSON text, never through a float), BOOLEAN → Boolean, BYTES → Binary (base64
//!   decoded), STRING → Utf8. Then the record's own columns `__op__`, `__sequenceId__`,
//!   `__eventTime__`, `__partition__`, `__offset__`.
//! - A value that does not fit its column (a LONG above 2^63−1, text in a BOOLEAN) is an
//!   error naming the column and the record's offset, never a silent null.
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, PrimitiveBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use base64::Engine as _;
use serde_json::value::RawValue;
use std::sync::Arc;

/// One row of a file: the image's values by column position (None: absent or null).
pub(crate) struct Row {
    pub(crate) op: String,
    pub(crate) sequence_id: i64,
    pub(crate) event_time: i64,
    pub(crate) offset: i64,
    pub(crate) values: Vec<Option<Box<RawValue>>>,
}

/// The rows of one file and their table columns (`name`, DataWorks type).
pub(crate) struct Rows {
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) partition: i32,
    pub(crate) rows: Vec<Row>,
}

/// The Arrow type of a table column in this file.
fn arrow_type(ltype: &str, first: Option<&RawValue>) -> DataType {
    match ltype {
        "LONG" => DataType::Int64,
        "DOUBLE" => match first {
            Some(v) if is_decimal_text(v.get()) => DataType::Utf8,
            _ => DataType::Float64,
        },
        "DATE" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "BOOLEAN" => DataType::Boolean,
        "BYTES" => DataType::Binary,
        _ => DataType::Utf8,
    }
}

/// A JSON string holding a decimal number (not a float's NaN / Infinity).
fn is_decimal_text(raw: &str) -> bool {
    raw.starts_with('"') && !matches!(raw, "\"NaN\"" | "\"Infinity\"" | "\"-Infinity\"")
}

fn unquote(raw: &str) -> Result<String, String> {
    serde_json::from_str::<String>(raw).map_err(|e| e.to_string())
}

/// µs since the epoch from a DATE value: `1590315269123` (ms) or `1590315269123.456000`.
pub(crate) fn date_micros(raw: &str) -> Option<i64> {
    let (neg, digits) = match raw.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, raw),
    };
    let (ms, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ms: i64 = ms.parse().ok()?;
    let sub: i64 = if frac.is_empty() {
        0
    } else {
        let f = format!("{frac:0<3}");
        f.get(..3)?.parse().ok()?
    };
    let us = ms.checked_mul(1000)?.checked_add(sub)?;
    Some(if neg { -us } else { us })
}

impl Rows {
    /// The batch and its schema.
    pub(crate) fn to_batch(&self) -> Result<RecordBatch, String> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (i, (name, ltype)) in self.columns.iter().enumerate() {
            let (field, array) = self.column(i, name, ltype)?;
            fields.push(field);
            arrays.push(array);
        }
        self.record_columns(&mut fields, &mut arrays);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
    }

    /// Table column `i` (`name`, DataWorks type `ltype`): its field (nullable) and its array,
    /// of the Arrow type its type and first non-null value give; an error at the first value
    /// that does not fit.
    fn column(&self, i: usize, name: &str, ltype: &str) -> Result<(Field, ArrayRef), String> {
        let first = self
            .rows
            .iter()
            .filter_map(|r| r.values.get(i).and_then(|v| v.as_deref()))
            .find(|v| v.get() != "null");
        let dt = arrow_type(ltype, first);
        let vals = self.rows.iter().map(|r| {
            (
                r.offset,
                r.values
                    .get(i)
                    .and_then(|v| v.as_deref())
                    .map(|v| v.get())
                    .filter(|v| *v != "null"),
            )
        });
        let bad = |offset: i64, raw: &str| {
            format!(
                "offset {offset}: column `{name}` ({ltype}) holds {} which does not fit {dt}",
                if raw.len() > 40 { "a value" } else { raw }
            )
        };
        let n = self.rows.len();
        let array: ArrayRef = match &dt {
            DataType::Int64 => primitive(Int64Builder::with_capacity(n), vals, bad, |r| {
                r.parse().ok()
            })?,
            DataType::Float64 => primitive(Float64Builder::with_capacity(n), vals, bad, double)?,
            DataType::Timestamp(..) => primitive(
                TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
                vals,
                bad,
                date_micros,
            )?,
            DataType::Boolean => booleans(n, vals, bad)?,
            DataType::Binary => bytes(vals, bad)?,
            _ => strings(vals, bad)?,
        };
        Ok((Field::new(name, dt, true), array))
    }

    /// The record's own columns after the table's: `__op__`, `__sequenceId__`,
    /// `__eventTime__`, `__partition__`, `__offset__`, never null.
    fn record_columns(&self, fields: &mut Vec<Field>, arrays: &mut Vec<ArrayRef>) {
        let n = self.rows.len();
        let mut op = StringBuilder::new();
        let mut seq = Int64Builder::with_capacity(n);
        let mut et = Int64Builder::with_capacity(n);
        let mut part = Int32Builder::with_capacity(n);
        let mut off = Int64Builder::with_capacity(n);
        for r in &self.rows {
            op.append_value(&r.op);
            seq.append_value(r.sequence_id);
            et.append_value(r.event_time);
            part.append_value(self.partition);
            off.append_value(r.offset);
        }
        for (name, dt, a) in [
            ("__op__", DataType::Utf8, Arc::new(op.finish()) as ArrayRef),
            ("__sequenceId__", DataType::Int64, Arc::new(seq.finish())),
            ("__eventTime__", DataType::Int64, Arc::new(et.finish())),
            ("__partition__", DataType::Int32, Arc::new(part.finish())),
            ("__offset__", DataType::Int64, Arc::new(off.finish())),
        ] {
            fields.push(Field::new(name, dt, false));
            arrays.push(a);
        }
    }
}

// The builders of a table column, per Arrow type. Each takes the column's values as (record
// offset, JSON text; None for null) and `bad`, the error for a value that does not fit.

/// A primitive column (LONG → Int64, DOUBLE → Float64, DATE → Timestamp): each value
/// read by `parse`, `None` when it does not fit.
#[inline]
fn primitive<'a, T: ArrowPrimitiveType>(
    mut b: PrimitiveBuilder<T>,
    vals: impl Iterator<Item = (i64, Option<&'a str>)>,
    bad: impl Fn(i64, &str) -> String,
    parse: impl Fn(&str) -> Option<T::Native>,
) -> Result<ArrayRef, String> {
    for (o, v) in vals {
        match v {
            None => b.append_null(),
            Some(raw) => b.append_value(parse(raw).ok_or_else(|| bad(o, raw))?),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// A DOUBLE's value: a JSON number, or a string holding one (`"NaN"`, `"Infinity"`).
#[inline]
fn double(raw: &str) -> Option<f64> {
    if raw.starts_with('"') {
        unquote(raw).ok()?.parse().ok()
    } else {
        raw.parse().ok()
    }
}

/// BOOLEAN → Boolean: `true` and `false` only.
fn booleans<'a>(
    n: usize,
    vals: impl Iterator<Item = (i64, Option<&'a str>)>,
    bad: impl Fn(i64, &str) -> String,
) -> Result<ArrayRef, String> {
    let mut b = BooleanBuilder::with_capacity(n);
    for (o, v) in vals {
        match v {
            None => b.append_null(),
            Some("true") => b.append_value(true),
            Some("false") => b.append_value(false),
            Some(raw) => return Err(bad(o, raw)),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// BYTES → Binary: JSON strings of base64.
fn bytes<'a>(
    vals: impl Iterator<Item = (i64, Option<&'a str>)>,
    bad: impl Fn(i64, &str) -> String,
) -> Result<ArrayRef, String> {
    let mut b = BinaryBuilder::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    for (o, v) in vals {
        match v {
            None => b.append_null(),
            Some(raw) => {
                let text = unquote(raw).map_err(|_| bad(o, raw))?;
                b.append_value(b64.decode(text).map_err(|_| bad(o, raw))?)
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

/// STRING, decimal text of a DOUBLE, and any other type → Utf8.
fn strings<'a>(
    vals: impl Iterator<Item = (i64, Option<&'a str>)>,
    bad: impl Fn(i64, &str) -> String,
) -> Result<ArrayRef, String> {
    let mut b = StringBuilder::new();
    for (o, v) in vals {
        match v {
            None => b.append_null(),
            // decimals and anything else: the JSON string's text, or a number's own text
            Some(raw) if raw.starts_with('"') => {
                b.append_value(unquote(raw).map_err(|_| bad(o, raw))?)
            }
            Some(raw) => b.append_value(raw),
        }
    }
    Ok(Arc::new(b.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Option<Box<RawValue>> {
        Some(RawValue::from_string(s.to_string()).unwrap())
    }

    #[test]
    fn dates_are_parsed_from_their_text() {
        assert_eq!(date_micros("1590315269123"), Some(1_590_315_269_123_000));
        assert_eq!(
            date_micros("1590315269123.456000"),
            Some(1_590_315_269_123_456)
        );
        assert_eq!(date_micros("-1.500000"), Some(-1_500));
        assert_eq!(date_micros("x"), None);
    }

    #[test]
    fn columns_follow_the_dataworks_types() {
        let rows = Rows {
            columns: [
                "LONG", "DOUBLE", "DOUBLE", "DATE", "BOOLEAN", "BYTES", "STRING",
            ]
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("c{i}"), t.to_string()))
            .collect(),
            partition: 2,
            rows: vec![
                Row {
                    op: "INSERT".into(),
                    sequence_id: -1,
                    event_time: -1,
                    offset: 7,
                    values: vec![
                        raw("9223372036854775807"),
                        raw("1.5"),
                        raw("\"1.100000\""),
                        raw("1590315269123.456000"),
                        raw("true"),
                        raw("\"AQID/w==\""),
                        raw("\"h\\u00e9\""),
                    ],
                },
                Row {
                    op: "DELETE".into(),
                    sequence_id: 1731663842292000001,
                    event_time: 1731662097000,
                    offset: 8,
                    values: vec![raw("1"), raw("\"NaN\""), None, None, None, None, None],
                },
            ],
        };
        let b = rows.to_batch().unwrap();
        let types: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        assert_eq!(
            types,
            [
                "c0:Int64",
                "c1:Float64",
                "c2:Utf8",
                "c3:Timestamp(µs, \"UTC\")",
                "c4:Boolean",
                "c5:Binary",
                "c6:Utf8",
                "__op__:Utf8",
                "__sequenceId__:Int64",
                "__eventTime__:Int64",
                "__partition__:Int32",
                "__offset__:Int64"
            ]
        );
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), i64::MAX);
        assert!(b.column(1).as_primitive::<Float64Type>().value(1).is_nan());
        assert_eq!(b.column(2).as_string::<i32>().value(0), "1.100000");
        assert!(b.column(2).is_null(1));
        assert_eq!(
            b.column(3)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_590_315_269_123_456
        );
        assert_eq!(b.column(5).as_binary::<i32>().value(0), [1, 2, 3, 255]);
        assert_eq!(b.column(6).as_string::<i32>().value(0), "hé");
        assert_eq!(b.column(11).as_primitive::<Int64Type>().value(1), 8);
        // a LONG that does not fit is an error naming the column and offset
        let mut bad = rows;
        bad.rows[1].values[0] = raw("18446744073709551615");
        let e = bad.to_batch().unwrap_err();
        assert!(e.contains("offset 8: column `c0` (LONG)"), "{e}");
    }
}
