//! DataWorks records → one Arrow record batch (the rows of one Parquet file).
//!
//! Invariants:
//! - One file, one table schema: every row of a [`Rows`] has the `schema.dataColumn` (and
//!   `rowstream.types` header) it was started with; the caller starts a new one when either
//!   changes. A column's Arrow type is a function of its DataWorks type and its refinement
//!   alone, never of the values in the file, so a table's files agree on their schema until a
//!   DDL changes it.
//! - Types: LONG → Int64, or Decimal128(20,0) for `uint64` (BIGINT UNSIGNED: the whole u64
//!   range); DOUBLE → Float64 for `float`, Decimal128(p,s) for `decimal(p,s)`, otherwise
//!   (`numeric`, or a topic without the header: DataWorks' own) Utf8 holding the exact text;
//!   DATE → Timestamp(µs, UTC) (ms integers and the 6-decimal µs form, parsed from the JSON
//!   text, never through a float); BOOLEAN → Boolean; BYTES → Binary (base64 decoded); STRING
//!   → Utf8. Values written as JSON strings (the Paimon profile) are read the same way.
//! - Then the record's own columns: `__op__` (`INSERT`, `UPDATE_BEFORE`, `UPDATE_AFTER`,
//!   `DELETE`, or `TRUNCATE` with every table column null), `__sequenceId__`,
//!   `__eventTime__`, `__partition__`, `__offset__`, and two lists that are null unless a row
//!   needs them: `__unchanged__` names the columns whose value the log did not carry (an
//!   unchanged TOASTed value: null in its column, never the placeholder text) and
//!   `__nonfinite__` holds `column=NaN` (or `Infinity`, `-Infinity`) for a decimal column's
//!   value that no decimal can hold (null in its column).
//! - A value that does not fit its column (a LONG above 2^63−1 without `uint64`, text in a
//!   BOOLEAN, a decimal beyond its precision) is an error naming the column and the record's
//!   offset, never a silent null.
use crate::model::schema::Refine;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, PrimitiveBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array as _, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use base64::Engine as _;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;

/// One row of a file: the image's values by column position (None: absent or null).
pub(crate) struct Row {
    pub(crate) op: String,
    pub(crate) sequence_id: i64,
    pub(crate) event_time: i64,
    pub(crate) offset: i64,
    pub(crate) values: Vec<Option<Box<RawValue>>>,
}

/// A table column of a file: its name, DataWorks type and refinement.
pub(crate) struct Col {
    pub(crate) name: String,
    pub(crate) ltype: String,
    pub(crate) refine: Refine,
}

/// The rows of one file, their table columns, and the file's key-value metadata.
pub(crate) struct Rows {
    pub(crate) columns: Vec<Col>,
    pub(crate) partition: i32,
    pub(crate) rows: Vec<Row>,
    pub(crate) metadata: HashMap<String, String>,
    /// the JSON text of the unchanged-TOAST placeholder (`"__rowstream_unchanged_toast_value__"`)
    pub(crate) placeholder: String,
}

/// A record's columns (`schema.dataColumn`) refined by its `rowstream.types` header.
pub(crate) fn record_columns(
    columns: &RawValue,
    types: Option<&str>,
) -> Result<Vec<Col>, serde_json::Error> {
    let cols: Vec<crate::format::record::Column> = serde_json::from_str(columns.get())?;
    let refine: Vec<Refine> = types
        .map(|t| t.split(';').map(Refine::parse).collect())
        .unwrap_or_default();
    Ok(cols
        .into_iter()
        .enumerate()
        .map(|(i, c)| Col {
            name: c.name,
            ltype: c.ltype,
            refine: refine.get(i).copied().unwrap_or_default(),
        })
        .collect())
}

/// The Arrow type of a table column.
pub(crate) fn arrow_type(ltype: &str, refine: Refine) -> DataType {
    match (ltype, refine) {
        ("LONG", Refine::Unsigned64) => DataType::Decimal128(20, 0),
        ("LONG", _) => DataType::Int64,
        ("DOUBLE", Refine::Float) => DataType::Float64,
        ("DOUBLE", Refine::Decimal { precision, scale }) => {
            DataType::Decimal128(precision, scale as i8)
        }
        ("DATE", _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ("BOOLEAN", _) => DataType::Boolean,
        ("BYTES", _) => DataType::Binary,
        _ => DataType::Utf8,
    }
}

/// A value's text: a JSON string's contents, or a number's (or literal's) own text.
fn text(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).ok().map(Into::into)
    } else {
        Some(raw.into())
    }
}

/// µs since the epoch from a DATE value: `1590315269123` (ms) or `1590315269123.456000`.
pub(crate) fn date_micros(raw: &str) -> Option<i64> {
    let raw = text(raw)?;
    let (neg, digits) = match raw.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, &raw[..]),
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

/// A decimal's text as a number of units of 10^-`scale`, when it has at most `precision`
/// digits at that scale and no non-zero digit beyond it (never rounded).
fn decimal_units(text: &str, precision: u8, scale: u8) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = scale as usize;
    let (kept, dropped) = frac.split_at(frac.len().min(scale));
    if dropped.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes().chain(kept.bytes()) {
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    for _ in kept.len()..scale {
        v = v.checked_mul(10)?;
    }
    if v >= 10i128.checked_pow(u32::from(precision))? {
        return None;
    }
    Some(if neg { -v } else { v })
}

impl Rows {
    /// The batch and its schema (with the file's metadata).
    pub(crate) fn to_batch(&self) -> Result<RecordBatch, String> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let n = self.rows.len();
        let mut unchanged: Vec<Vec<String>> = vec![Vec::new(); n];
        let mut nonfinite: Vec<Vec<String>> = vec![Vec::new(); n];
        for (i, col) in self.columns.iter().enumerate() {
            let (field, array) = self.column(i, col, &mut unchanged, &mut nonfinite)?;
            fields.push(field);
            arrays.push(array);
        }
        self.record_columns(&mut fields, &mut arrays);
        for (name, lists) in [("__unchanged__", unchanged), ("__nonfinite__", nonfinite)] {
            let mut b = ListBuilder::new(StringBuilder::new());
            for l in lists {
                if l.is_empty() {
                    b.append_null();
                } else {
                    for x in l {
                        b.values().append_value(x);
                    }
                    b.append(true);
                }
            }
            let a = b.finish();
            fields.push(Field::new(name, a.data_type().clone(), true));
            arrays.push(Arc::new(a));
        }
        let schema = Schema::new_with_metadata(fields, self.metadata.clone());
        RecordBatch::try_new(Arc::new(schema), arrays).map_err(|e| e.to_string())
    }

    /// Table column `i`: its field (nullable) and its array; an error at the first value that
    /// does not fit. A placeholder (`unchanged`) or a decimal's NaN (`nonfinite`) is noted in
    /// its row's list and left null.
    fn column(
        &self,
        i: usize,
        col: &Col,
        unchanged: &mut [Vec<String>],
        nonfinite: &mut [Vec<String>],
    ) -> Result<(Field, ArrayRef), String> {
        let dt = arrow_type(&col.ltype, col.refine);
        let mut vals: Vec<(i64, Option<&str>)> = Vec::with_capacity(self.rows.len());
        for (r, row) in self.rows.iter().enumerate() {
            let v = row
                .values
                .get(i)
                .and_then(|v| v.as_deref())
                .map(|v| v.get())
                .filter(|v| *v != "null");
            if v == Some(self.placeholder.as_str()) {
                unchanged[r].push(col.name.clone());
                vals.push((row.offset, None));
                continue;
            }
            if let (DataType::Decimal128(..), Some(t)) = (&dt, v) {
                if let Some(special) = ["\"NaN\"", "\"Infinity\"", "\"-Infinity\""]
                    .iter()
                    .find(|s| **s == t)
                {
                    nonfinite[r].push(format!("{}={}", col.name, special.trim_matches('"')));
                    vals.push((row.offset, None));
                    continue;
                }
            }
            vals.push((row.offset, v));
        }
        let name = &col.name;
        let ltype = &col.ltype;
        let bad = |offset: i64, raw: &str| {
            format!(
                "offset {offset}: column `{name}` ({ltype}) holds {} which does not fit {dt}",
                if raw.len() > 40 { "a value" } else { raw }
            )
        };
        let n = self.rows.len();
        let vals = vals.into_iter();
        let array: ArrayRef = match &dt {
            DataType::Int64 => primitive(Int64Builder::with_capacity(n), vals, bad, |r| {
                text(r)?.parse().ok()
            })?,
            DataType::Float64 => primitive(Float64Builder::with_capacity(n), vals, bad, |r| {
                text(r)?.parse().ok()
            })?,
            DataType::Decimal128(p, s) => {
                let (p, s) = (*p, *s as u8);
                primitive(
                    Decimal128Builder::with_capacity(n)
                        .with_precision_and_scale(p, s as i8)
                        .map_err(|e| e.to_string())?,
                    vals,
                    bad,
                    |r| decimal_units(&text(r)?, p, s),
                )?
            }
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

/// A primitive column (LONG → Int64, DOUBLE → Float64 or Decimal128, DATE → Timestamp):
/// each value read by `parse`, `None` when it does not fit.
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

/// BOOLEAN → Boolean: `true` and `false` (or their text) only.
fn booleans<'a>(
    n: usize,
    vals: impl Iterator<Item = (i64, Option<&'a str>)>,
    bad: impl Fn(i64, &str) -> String,
) -> Result<ArrayRef, String> {
    let mut b = BooleanBuilder::with_capacity(n);
    for (o, v) in vals {
        match v {
            None => b.append_null(),
            Some("true" | "\"true\"") => b.append_value(true),
            Some("false" | "\"false\"") => b.append_value(false),
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
                let t = text(raw).ok_or_else(|| bad(o, raw))?;
                b.append_value(b64.decode(t.as_bytes()).map_err(|_| bad(o, raw))?)
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

/// STRING, exact numerics without a fixed scale, and any other type → Utf8: a JSON string's
/// text, or a number's own text.
fn strings<'a>(
    vals: impl Iterator<Item = (i64, Option<&'a str>)>,
    bad: impl Fn(i64, &str) -> String,
) -> Result<ArrayRef, String> {
    let mut b = StringBuilder::new();
    for (o, v) in vals {
        match v {
            None => b.append_null(),
            Some(raw) => b.append_value(text(raw).ok_or_else(|| bad(o, raw))?),
        }
    }
    Ok(Arc::new(b.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType};

    fn raw(s: &str) -> Option<Box<RawValue>> {
        Some(RawValue::from_string(s.to_string()).unwrap())
    }

    fn rows(cols: &[(&str, Refine)], values: Vec<Vec<Option<Box<RawValue>>>>) -> Rows {
        Rows {
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, (t, r))| Col {
                    name: format!("c{i}"),
                    ltype: t.to_string(),
                    refine: *r,
                })
                .collect(),
            partition: 2,
            rows: values
                .into_iter()
                .enumerate()
                .map(|(i, values)| Row {
                    op: "INSERT".into(),
                    sequence_id: -1,
                    event_time: -1,
                    offset: 7 + i as i64,
                    values,
                })
                .collect(),
            metadata: HashMap::from([("rowstream.schema".into(), "{}".into())]),
            placeholder: "\"__rowstream_unchanged_toast_value__\"".into(),
        }
    }

    fn types(b: &RecordBatch) -> Vec<String> {
        b.schema()
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect()
    }

    #[test]
    fn dates_are_parsed_from_their_text() {
        assert_eq!(date_micros("1590315269123"), Some(1_590_315_269_123_000));
        assert_eq!(
            date_micros("1590315269123.456000"),
            Some(1_590_315_269_123_456)
        );
        assert_eq!(
            date_micros("\"1590315269123\""),
            Some(1_590_315_269_123_000)
        );
        assert_eq!(date_micros("-1.500000"), Some(-1_500));
        assert_eq!(date_micros("x"), None);
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        assert_eq!(decimal_units("1.10", 10, 2), Some(110));
        assert_eq!(decimal_units("1.100000", 10, 2), Some(110));
        assert_eq!(decimal_units("-0.5", 10, 2), Some(-50));
        assert_eq!(decimal_units("7", 10, 2), Some(700));
        assert_eq!(decimal_units("1.105", 10, 2), None, "never rounded");
        assert_eq!(decimal_units("99999999.99", 10, 2), Some(9_999_999_999));
        assert_eq!(
            decimal_units("100000000.00", 10, 2),
            None,
            "beyond precision"
        );
        assert_eq!(
            decimal_units("18446744073709551615", 20, 0),
            Some(18_446_744_073_709_551_615)
        );
        assert_eq!(decimal_units("1E+2", 10, 2), None);
        assert_eq!(decimal_units("NaN", 10, 2), None);
    }

    #[test]
    fn refine_tokens_round_trip() {
        for r in [
            Refine::None,
            Refine::Float,
            Refine::Numeric,
            Refine::Unsigned64,
            Refine::Decimal {
                precision: 12,
                scale: 2,
            },
        ] {
            assert_eq!(Refine::parse(&r.token()), r);
        }
        assert_eq!(Refine::parse("decimal(65,2)"), Refine::Numeric);
        assert_eq!(Refine::parse("something-new"), Refine::None);
    }

    #[test]
    fn columns_follow_the_types_not_the_values() {
        let cols = [
            ("LONG", Refine::None),
            ("LONG", Refine::Unsigned64),
            ("DOUBLE", Refine::Float),
            (
                "DOUBLE",
                Refine::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("DOUBLE", Refine::Numeric),
            ("DOUBLE", Refine::None),
            ("DATE", Refine::None),
            ("BOOLEAN", Refine::None),
            ("BYTES", Refine::None),
            ("STRING", Refine::None),
        ];
        let b = rows(
            &cols,
            vec![
                vec![
                    raw("9223372036854775807"),
                    raw("18446744073709551615"),
                    raw("\"NaN\""),
                    raw("\"NaN\""),
                    raw("\"1.5\""),
                    raw("1.25"),
                    raw("1590315269123.456000"),
                    raw("true"),
                    raw("\"AQID/w==\""),
                    raw("\"h\\u00e9\""),
                ],
                vec![
                    raw("\"-3\""),
                    None,
                    raw("1.5"),
                    raw("\"12.30\""),
                    None,
                    None,
                    None,
                    raw("\"false\""),
                    raw("\"__rowstream_unchanged_toast_value__\""),
                    raw("\"__rowstream_unchanged_toast_value__\""),
                ],
            ],
        )
        .to_batch()
        .unwrap();
        assert_eq!(
            types(&b),
            [
                "c0:Int64",
                "c1:Decimal128(20, 0)",
                "c2:Float64",
                "c3:Decimal128(10, 2)",
                "c4:Utf8",
                "c5:Utf8",
                "c6:Timestamp(µs, \"UTC\")",
                "c7:Boolean",
                "c8:Binary",
                "c9:Utf8",
                "__op__:Utf8",
                "__sequenceId__:Int64",
                "__eventTime__:Int64",
                "__partition__:Int32",
                "__offset__:Int64",
                "__unchanged__:List(Utf8)",
                "__nonfinite__:List(Utf8)"
            ]
        );
        assert_eq!(b.schema().metadata()["rowstream.schema"], "{}");
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(1), -3);
        assert_eq!(
            b.column(1).as_primitive::<Decimal128Type>().value(0),
            18_446_744_073_709_551_615
        );
        assert!(b.column(2).as_primitive::<Float64Type>().value(0).is_nan());
        assert!(
            b.column(3).is_null(0),
            "a decimal's NaN is null in its column"
        );
        assert_eq!(b.column(3).as_primitive::<Decimal128Type>().value(1), 1230);
        assert_eq!(b.column(4).as_string::<i32>().value(0), "1.5");
        assert_eq!(b.column(5).as_string::<i32>().value(0), "1.25");
        assert_eq!(
            b.column(6)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_590_315_269_123_456
        );
        assert!(!b.column(7).as_boolean().value(1));
        assert_eq!(b.column(8).as_binary::<i32>().value(0), [1, 2, 3, 255]);
        assert_eq!(b.column(9).as_string::<i32>().value(0), "hé");
        assert!(b.column(8).is_null(1) && b.column(9).is_null(1));
        let list = |col: usize, row: usize| -> Vec<String> {
            let l = b.column(col).as_list::<i32>();
            if l.is_null(row) {
                return vec![];
            }
            let v = l.value(row);
            let s = v.as_string::<i32>();
            (0..s.len()).map(|i| s.value(i).to_string()).collect()
        };
        assert_eq!(list(15, 0), Vec::<String>::new());
        assert_eq!(list(15, 1), ["c8", "c9"]);
        assert_eq!(list(16, 0), ["c3=NaN"]);
        assert!(b.column(16).is_null(1));
        // a file of DELETEs (key-only images): every column typed the same way
        let deletes = rows(&cols, vec![vec![raw("1")]]).to_batch().unwrap();
        assert_eq!(types(&deletes), types(&b));
        // a LONG above 2^63-1 without `uint64`, and a decimal beyond its precision, are errors
        // naming the column and the offset
        let e = rows(&cols, vec![vec![raw("18446744073709551615")]])
            .to_batch()
            .unwrap_err();
        assert!(e.contains("offset 7: column `c0` (LONG)"), "{e}");
        let mut v = vec![None, None, None, raw("\"123456789.00\"")];
        v.truncate(4);
        let e = rows(&cols, vec![v]).to_batch().unwrap_err();
        assert!(e.contains("column `c3` (DOUBLE)"), "{e}");
    }
}
