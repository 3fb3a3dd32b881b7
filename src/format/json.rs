//! Minimal JSON writing into a reused byte buffer.
//!
//! Written by hand rather than through serde_json because the envelope is written in a fixed key
//! order straight from typed values into one reused buffer, with no intermediate tree: this is
//! the per-row hot path. Invariant: every function appends valid JSON for its input; strings are
//! escaped per RFC 8259 (quote, backslash, control characters).

/// Append `s` as a JSON string literal.
pub(crate) fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    write_str_body(buf, s.as_bytes());
    buf.push(b'"');
}

/// Append the escaped body of a JSON string (no quotes).
pub(crate) fn write_str_body(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

pub(crate) fn write_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

pub(crate) fn write_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Finite floats as shortest round-trip numbers; NaN and infinities as the strings
/// `"NaN"`, `"Infinity"`, `"-Infinity"` (spec §2).
pub(crate) fn write_f64(buf: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        buf.extend_from_slice(b"\"NaN\"");
    } else if v.is_infinite() {
        buf.extend_from_slice(if v > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        let mut b = ryu::Buffer::new();
        buf.extend_from_slice(b.format_finite(v).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        let mut b = Vec::new();
        write_str(&mut b, x);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn escapes_like_serde() {
        for x in ["plain", "q\"b\\", "nl\n\t\r", "\u{1}\u{1f}", "ünï€😀", ""] {
            assert_eq!(s(x), serde_json::to_string(x).unwrap());
        }
    }

    #[test]
    fn floats() {
        let f = |v| {
            let mut b = Vec::new();
            write_f64(&mut b, v);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(f64::NAN), "\"NaN\"");
        assert_eq!(f(f64::NEG_INFINITY), "\"-Infinity\"");
        assert_eq!(f(1e300), "1e300");
        assert_eq!(f(0.1), "0.1");
    }
}
