//! Typed column values, independent of the source.
//!
//! Invariants:
//! - Integers keep their full 64-bit range, signed and unsigned; they never pass through f64.
//! - `Decimal` keeps the source's exact text (scale included), `Timestamp` keeps exact
//!   microseconds since the Unix epoch (UTC); neither is ever rounded.
//! - `Absent` marks a column the source log did not carry (partial before images); the
//!   encoder leaves it out instead of inventing a value.

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
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
    /// An array (Postgres): elements are values of the column's element type, `Null`, or nested
    /// arrays. The encoder decides how it renders (DataWorks: a STRING holding a JSON array).
    Array(Vec<Value>),
    /// A value the source could not render (an infinite or zero date), with the reason: it is
    /// written as `null` (spec §2), and `errors.bad_values` decides whether its record goes to
    /// its topic, to the dead-letter topic, or stops the connector.
    Unrendered(Box<str>),
}

impl Value {
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Value::Absent)
    }
}

/// A row image: one value per table column, in table order.
pub(crate) type Row = Vec<Value>;
