//! Postgres values in their text form (pgoutput text mode and COPY text) → typed [`Value`]s.
//!
//! Invariants:
//! - Text forms are those of the session settings in `replication::SESSION_SETTINGS`
//!   (ISO dates, UTC, hex bytea, C-locale money); both the stream and the snapshot use them, so a
//!   row renders identically whichever path it came by.
//! - Integers go straight from text to i64; numerics stay text; timestamps become exact
//!   microseconds (no float); `infinity` dates cannot be rendered and are an error (→ null and a
//!   warning upstream, never a made-up value).
//! - Every type has a kind: unknown ones are their text form (`STRING`).

use crate::model::schema::{Column, LogicalType, Refine};
use crate::model::time::{parse_date, parse_timestamp};
use crate::model::value::Value;

/// How a Postgres type's text form is read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PgKind {
    Bool,
    Int,
    Float,
    Numeric,
    Money,
    Date,
    /// timestamp without time zone; `fsp` fractional digits
    Timestamp {
        fsp: u8,
    },
    TimestampTz {
        fsp: u8,
    },
    Bytea,
    /// bit(1)
    Bit1,
    /// bit(n>1), varbit
    Bits,
    Text,
    /// arrays render as JSON array text; `delim` separates elements (`,`, or `;` for box)
    Array {
        elem: Box<PgKind>,
        delim: u8,
    },
}

impl PgKind {
    pub(crate) fn column(&self, name: &str) -> Column {
        let (ltype, fsp) = match self {
            PgKind::Bool | PgKind::Bit1 => (LogicalType::Boolean, 0),
            PgKind::Int => (LogicalType::Long, 0),
            PgKind::Float | PgKind::Numeric | PgKind::Money => (LogicalType::Double, 0),
            PgKind::Date => (LogicalType::Date, 0),
            PgKind::Timestamp { fsp } | PgKind::TimestampTz { fsp } => (LogicalType::Date, *fsp),
            PgKind::Bytea | PgKind::Bits => (LogicalType::Bytes, 0),
            PgKind::Text => (LogicalType::String, 0),
            // a STRING holding a JSON array; `fsp` is the elements' (DATE elements render by it)
            PgKind::Array { elem, .. } => (LogicalType::String, elem.column(name).fsp),
        };
        Column {
            name: name.to_string(),
            ltype,
            fsp,
            refine: Refine::None,
        }
    }

    /// What the column's logical type leaves open, from this kind and the column's type
    /// modifier (`numeric(p,s)`: `((p << 16) | s) + 4`; -1 without one).
    pub(crate) fn refine(&self, typmod: i32) -> Refine {
        match self {
            PgKind::Float => Refine::Float,
            PgKind::Numeric if typmod >= 4 => {
                let m = (typmod - 4) as u32;
                Refine::decimal((m >> 16) & 0xffff, m & 0xffff)
            }
            PgKind::Numeric => Refine::Numeric,
            // whole cents of an int8, two decimals in the C locale the session sets
            PgKind::Money => Refine::decimal(19, 2),
            _ => Refine::None,
        }
    }
}

fn fsp_of(typmod: i32) -> u8 {
    if (0..=6).contains(&typmod) {
        typmod as u8
    } else {
        6
    }
}

/// Kinds of built-in scalar types, by OID. `None`: ask the catalog (arrays, domains, enums, ...).
pub(crate) fn builtin_kind(oid: u32, typmod: i32) -> Option<PgKind> {
    Some(match oid {
        16 => PgKind::Bool,
        20 | 21 | 23 | 26 | 28 | 29 => PgKind::Int, // int8 int2 int4 oid xid cid
        700 | 701 => PgKind::Float,
        1700 => PgKind::Numeric,
        790 => PgKind::Money,
        1082 => PgKind::Date,
        1114 => PgKind::Timestamp {
            fsp: fsp_of(typmod),
        },
        1184 => PgKind::TimestampTz {
            fsp: fsp_of(typmod),
        },
        17 => PgKind::Bytea,
        1560 if typmod <= 1 => PgKind::Bit1,
        1560 | 1562 => PgKind::Bits,
        // text, char, name, varchar, bpchar, json, jsonb, xml, uuid, time(tz), interval, inet,
        // cidr, macaddr(8), geometric types, tsvector/tsquery, ranges, pg_lsn, ...
        18 | 19 | 25 | 114 | 142 | 600 | 601 | 602 | 603 | 604 | 628 | 650 | 718 | 774 | 829
        | 869 | 1042 | 1043 | 1083 | 1186 | 1266 | 2950 | 3614 | 3615 | 3802 | 3220 | 3904
        | 3906 | 3908 | 3910 | 3912 | 3926 | 4451 | 4532 | 4533 | 4534 | 4535 | 4536 | 4537 => {
            PgKind::Text
        }
        _ => return None,
    })
}

/// Decoding settings shared by stream and snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DecodeCtx {
    /// Offset of the zone timestamps without time zone are read in, in µs east of UTC.
    pub(crate) tz_offset_us: i64,
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "not UTF-8".to_string())
}

/// Decode one value's text form.
pub(crate) fn decode_text(kind: &PgKind, b: &[u8], ctx: &DecodeCtx) -> Result<Value, String> {
    Ok(match kind {
        PgKind::Bool => match b {
            b"t" | b"true" => Value::Bool(true),
            b"f" | b"false" => Value::Bool(false),
            _ => return Err("invalid boolean".into()),
        },
        PgKind::Int => {
            let s = utf8(b)?;
            match s.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::UInt(
                    s.parse::<u64>()
                        .map_err(|_| "invalid integer".to_string())?,
                ),
            }
        }
        PgKind::Float => {
            let s = utf8(b)?;
            Value::Float(match s {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                _ => s.parse::<f64>().map_err(|_| "invalid float".to_string())?,
            })
        }
        PgKind::Numeric => Value::Decimal(utf8(b)?.to_string()),
        PgKind::Money => Value::Decimal(money_to_decimal(utf8(b)?)?),
        PgKind::Date => Value::Timestamp(parse_date(utf8(b)?)? * 86_400_000_000),
        PgKind::Timestamp { .. } => {
            Value::Timestamp(parse_timestamp(utf8(b)?, false)? - ctx.tz_offset_us)
        }
        PgKind::TimestampTz { .. } => Value::Timestamp(parse_timestamp(utf8(b)?, true)?),
        PgKind::Bytea => Value::Bytes(decode_bytea(b)?),
        PgKind::Bit1 => match b {
            b"1" => Value::Bool(true),
            b"0" => Value::Bool(false),
            _ => return Err("invalid bit(1)".into()),
        },
        PgKind::Bits => Value::Bytes(bits_to_bytes(b)?),
        PgKind::Text => Value::Text(utf8(b)?.to_string()),
        PgKind::Array { elem, delim } => parse_array_text(b, elem, *delim, ctx)?,
    })
}

/// `$1,234.56` / `-$1,234.56` / `($1.00)` → `1234.56` / `-1234.56` / `-1.00`.
fn money_to_decimal(s: &str) -> Result<String, String> {
    let neg = s.contains('-') || (s.starts_with('(') && s.ends_with(')'));
    let digits: String = s
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if digits.is_empty() || !digits.chars().any(|c| c.is_ascii_digit()) {
        return Err("invalid money".into());
    }
    Ok(if neg { format!("-{digits}") } else { digits })
}

fn decode_bytea(b: &[u8]) -> Result<Vec<u8>, String> {
    let hex = b.strip_prefix(b"\\x").ok_or("bytea not in hex form")?;
    if hex.len() % 2 != 0 {
        return Err("odd bytea hex length".into());
    }
    let nib = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err("invalid bytea hex".into()),
        }
    };
    hex.chunks(2)
        .map(|p| Ok(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

/// A bit string as an unsigned big-endian integer in ceil(n/8) bytes (MySQL's BIT layout).
pub(crate) fn bits_to_bytes(b: &[u8]) -> Result<Vec<u8>, String> {
    let n = b.len();
    let nbytes = n.div_ceil(8);
    let mut out = vec![0u8; nbytes];
    for (i, &c) in b.iter().enumerate() {
        let bit = match c {
            b'0' => 0,
            b'1' => 1,
            _ => return Err("invalid bit string".into()),
        };
        // bit i counted from the most significant end; value's LSB is the last character
        let pos_from_lsb = n - 1 - i;
        out[nbytes - 1 - pos_from_lsb / 8] |= bit << (pos_from_lsb % 8);
    }
    Ok(out)
}

/// Postgres array text → [`Value::Array`]: elements decode as their element kind would as a
/// column, `NULL` is [`Value::Null`], nested arrays nest. Rendering is the encoder's business.
fn parse_array_text(b: &[u8], elem: &PgKind, delim: u8, ctx: &DecodeCtx) -> Result<Value, String> {
    let mut i = 0;
    // optional dimension decoration: [1:3]={...}
    if b.first() == Some(&b'[') {
        i = b
            .iter()
            .position(|&c| c == b'=')
            .ok_or("invalid array dimensions")?
            + 1;
    }
    let arr = ArrayText {
        b,
        elem,
        delim,
        ctx,
    };
    arr.parse(&mut i)
}

struct ArrayText<'a> {
    b: &'a [u8],
    elem: &'a PgKind,
    delim: u8,
    ctx: &'a DecodeCtx,
}

impl ArrayText<'_> {
    fn skip_ws(&self, i: &mut usize) {
        while self.b.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    }

    fn parse(&self, i: &mut usize) -> Result<Value, String> {
        if self.b.get(*i) != Some(&b'{') {
            return Err("array must start with {".into());
        }
        *i += 1;
        let mut items = Vec::new();
        self.skip_ws(i);
        if self.b.get(*i) == Some(&b'}') {
            *i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws(i);
            items.push(match self.b.get(*i) {
                None => return Err("unterminated array".into()),
                Some(b'{') => self.parse(i)?,
                Some(b'"') => {
                    let s = self.quoted(i)?;
                    decode_text(self.elem, &s, self.ctx)?
                }
                _ => self.bare(i)?,
            });
            self.skip_ws(i);
            match self.b.get(*i) {
                Some(&c) if c == self.delim => *i += 1,
                Some(b'}') => {
                    *i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err("malformed array".into()),
            }
        }
    }

    fn quoted(&self, i: &mut usize) -> Result<Vec<u8>, String> {
        *i += 1;
        let mut s = Vec::new();
        loop {
            match self.b.get(*i) {
                None => return Err("unterminated quoted element".into()),
                Some(b'\\') => {
                    s.push(*self.b.get(*i + 1).ok_or("dangling escape")?);
                    *i += 2;
                }
                Some(b'"') => {
                    *i += 1;
                    return Ok(s);
                }
                Some(&c) => {
                    s.push(c);
                    *i += 1;
                }
            }
        }
    }

    fn bare(&self, i: &mut usize) -> Result<Value, String> {
        let start = *i;
        while self
            .b
            .get(*i)
            .is_some_and(|&c| c != self.delim && c != b'}')
        {
            *i += 1;
        }
        let raw = self.b[start..*i].trim_ascii();
        if raw.eq_ignore_ascii_case(b"NULL") {
            Ok(Value::Null)
        } else {
            decode_text(self.elem, raw, self.ctx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::days_from_civil;

    fn d(kind: PgKind, s: &str) -> Value {
        decode_text(&kind, s.as_bytes(), &DecodeCtx::default()).unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(d(PgKind::Int, "-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(d(PgKind::Bool, "t"), Value::Bool(true));
        assert_eq!(
            d(PgKind::Numeric, "1.100000"),
            Value::Decimal("1.100000".into())
        );
        assert_eq!(
            d(PgKind::Money, "-$1,234.50"),
            Value::Decimal("-1234.50".into())
        );
        assert_eq!(d(PgKind::Bytea, "\\x0102ff"), Value::Bytes(vec![1, 2, 255]));
        assert_eq!(d(PgKind::Bits, "101"), Value::Bytes(vec![5]));
        assert_eq!(d(PgKind::Bits, "1000000001"), Value::Bytes(vec![2, 1]));
        assert_eq!(d(PgKind::Bit1, "1"), Value::Bool(true));
        assert!(matches!(d(PgKind::Float, "NaN"), Value::Float(f) if f.is_nan()));
        assert!(decode_text(&PgKind::Int, b"x", &DecodeCtx::default()).is_err());
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(
            d(PgKind::Date, "1970-01-02"),
            Value::Timestamp(86_400_000_000)
        );
        assert_eq!(
            d(PgKind::Timestamp { fsp: 6 }, "2020-05-24 10:14:29.123456"),
            Value::Timestamp(1590315269123456)
        );
        assert_eq!(
            d(
                PgKind::TimestampTz { fsp: 6 },
                "2020-05-24 18:14:29.123456+08"
            ),
            Value::Timestamp(1590315269123456)
        );
        assert_eq!(
            d(
                PgKind::TimestampTz { fsp: 6 },
                "2020-05-24 04:44:29.1-05:30"
            ),
            Value::Timestamp(1590315269100000)
        );
        assert_eq!(
            d(PgKind::Timestamp { fsp: 6 }, "1969-12-31 23:59:59.5"),
            Value::Timestamp(-500_000)
        );
        assert_eq!(
            d(PgKind::Date, "0001-01-01 BC"),
            Value::Timestamp(days_from_civil(0, 1, 1) * 86_400_000_000)
        );
        let bc = d(PgKind::Timestamp { fsp: 6 }, "0001-01-01 00:00:00 BC");
        assert_eq!(
            bc,
            Value::Timestamp(days_from_civil(0, 1, 1) * 86_400_000_000)
        );
        assert!(decode_text(&PgKind::Date, b"infinity", &DecodeCtx::default()).is_err());
        let ctx = DecodeCtx {
            tz_offset_us: 8 * 3600 * 1_000_000,
        };
        assert_eq!(
            decode_text(&PgKind::Timestamp { fsp: 0 }, b"1970-01-01 08:00:00", &ctx).unwrap(),
            Value::Timestamp(0)
        );
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
    }

    #[test]
    fn arrays() {
        let ctx = DecodeCtx::default();
        let int = PgKind::Int;
        let arr = |b: &[u8], k: &PgKind, d: u8| parse_array_text(b, k, d, &ctx);
        let a = Value::Array;
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            arr(b"{1,2,NULL}", &int, b',').unwrap(),
            a(vec![Value::Int(1), Value::Int(2), Value::Null])
        );
        assert_eq!(
            arr(b"{{1,2},{3,4}}", &int, b',').unwrap(),
            a(vec![
                a(vec![Value::Int(1), Value::Int(2)]),
                a(vec![Value::Int(3), Value::Int(4)])
            ])
        );
        assert_eq!(arr(b"{}", &int, b',').unwrap(), a(vec![]));
        assert_eq!(
            arr(b"[0:1]={5,6}", &int, b',').unwrap(),
            a(vec![Value::Int(5), Value::Int(6)])
        );
        assert_eq!(
            arr(br#"{a,"b c","q\"x","NULL",NULL}"#, &PgKind::Text, b',').unwrap(),
            a(vec![t("a"), t("b c"), t("q\"x"), t("NULL"), Value::Null])
        );
        assert_eq!(
            arr(b"{1.50,NaN}", &PgKind::Numeric, b',').unwrap(),
            a(vec![
                Value::Decimal("1.50".into()),
                Value::Decimal("NaN".into())
            ])
        );
        assert_eq!(
            arr(b"{(1,1),(0,0);(2,2),(1,1)}", &PgKind::Text, b';').unwrap(),
            a(vec![t("(1,1),(0,0)"), t("(2,2),(1,1)")])
        );
        assert!(arr(b"{1,2", &int, b',').is_err());
        let ts = PgKind::Array {
            elem: Box::new(PgKind::Timestamp { fsp: 6 }),
            delim: b',',
        };
        assert_eq!(ts.column("c").fsp, 6);
    }
}
