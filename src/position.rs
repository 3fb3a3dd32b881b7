//! Source positions: where in a source's change log a record comes from.
//!
//! Invariants:
//! - A [`SourcePosition`] names a point *between* transactions (a commit end, or a heartbeat
//!   point outside any transaction). The pipeline never checkpoints mid-transaction.
//! - Positions of one source only move forward; the checkpoint tracker relies on markers
//!   arriving in log order.
//! - [`Lsn`] renders and parses in Postgres' `X/Y` hex form, so state files and logs read like
//!   `pg_replication_slots`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A Postgres WAL location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid LSN `{0}`: expected the X/Y hex form, e.g. 0/16B3748")]
pub(crate) struct LsnParseError(String);

impl FromStr for Lsn {
    type Err = LsnParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A resumable position in a source's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum SourcePosition {
    /// Postgres: the end LSN of a commit (or a heartbeat message); streaming resumes after it.
    Postgres { lsn: Lsn },
    /// MySQL/MariaDB: the binlog file and the end offset of a transaction's last event, and the
    /// GTID set executed up to there (MariaDB `domain-server-seq,...`, MySQL `uuid:1-n,...`).
    #[serde(rename = "mysql")]
    MySql {
        file: String,
        pos: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gtid: Option<String>,
    },
}

impl SourcePosition {
    /// The order of two positions of one log; `None` for positions of different sources.
    /// (The GTID set is not part of the order: the file and offset place a MySQL position.)
    pub(crate) fn cmp_in_log(&self, other: &SourcePosition) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (SourcePosition::Postgres { lsn: a }, SourcePosition::Postgres { lsn: b }) => {
                Some(a.cmp(b))
            }
            (
                SourcePosition::MySql {
                    file: fa, pos: pa, ..
                },
                SourcePosition::MySql {
                    file: fb, pos: pb, ..
                },
            ) => Some(Self::binlog_key(fa, *pa).cmp(&Self::binlog_key(fb, *pb))),
            _ => None,
        }
    }

    /// Order key of a binlog position: (file sequence number, offset).
    pub(crate) fn binlog_key(file: &str, pos: u64) -> (u64, u64) {
        let seq = file
            .rsplit('.')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        (seq, pos)
    }
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePosition::Postgres { lsn } => write!(f, "lsn {lsn}"),
            SourcePosition::MySql {
                file,
                pos,
                gtid: Some(g),
            } => write!(f, "binlog {file}:{pos} (gtid {g})"),
            SourcePosition::MySql {
                file,
                pos,
                gtid: None,
            } => write!(f, "binlog {file}:{pos}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
    }

    #[test]
    fn position_json() {
        let p = SourcePosition::Postgres {
            lsn: Lsn(0x1_0000_0010),
        };
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, r#"{"kind":"postgres","lsn":"1/10"}"#);
        assert_eq!(serde_json::from_str::<SourcePosition>(&j).unwrap(), p);
        let m = SourcePosition::MySql {
            file: "mysql-bin.000002".into(),
            pos: 345,
            gtid: Some("0-1-7".into()),
        };
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(
            j,
            r#"{"kind":"mysql","file":"mysql-bin.000002","pos":345,"gtid":"0-1-7"}"#
        );
        assert_eq!(serde_json::from_str::<SourcePosition>(&j).unwrap(), m);
        assert!(
            SourcePosition::binlog_key("mysql-bin.000010", 4)
                > SourcePosition::binlog_key("mysql-bin.000009", 99999)
        );
        use std::cmp::Ordering;
        let my = |f: &str, pos| SourcePosition::MySql {
            file: f.into(),
            pos,
            gtid: None,
        };
        assert_eq!(
            my("b.000010", 4).cmp_in_log(&my("b.000009", 9999)),
            Some(Ordering::Greater)
        );
        assert_eq!(p.cmp_in_log(&p), Some(Ordering::Equal));
        assert_eq!(p.cmp_in_log(&my("b.000001", 4)), None);
    }
}
