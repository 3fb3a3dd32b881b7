//! Typed column values, independent of the source.
//!
//! Invariants:
//! - Integers keep their full 64-bit range, signed and unsigned; they never pass through f64.
//! - `Decimal` keeps the source's exact text (scale included), `Timestamp` keeps exact
//!   microseconds since the Unix epoch (UTC); neither is ever rounded.
//! - `Absent` marks a column the source log did not carry (partial before images); the
//!   encoder leaves it out instead of inventing a value.

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// Not carried by the log: omitted from the row image.
    Absent,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// A floating value; NaN and infinities render as strings.
    Float(f64),
    /// Exact decimal text, e.g. `1.100000`, `NaN`, `-Infinity`.
    Decimal(String),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    Bytes(Vec<u8>),
    Text(String),
    /// Already-rendered JSON (e.g. an array as a JSON text is a `Text`; this is a raw JSON value
    /// embedded as is). Used for nothing the sources produce today but kept for custom renderers.
    RawJson(String),
}

impl Value {
    pub fn is_absent(&self) -> bool {
        matches!(self, Value::Absent)
    }
}

/// A row image: one value per table column, in table order.
pub type Row = Vec<Value>;
