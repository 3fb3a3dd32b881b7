//! Source positions: where in a source's change log a record comes from.
//!
//! Invariants:
//! - A [`SourcePosition`] names a point *between* transactions (a commit end, or a heartbeat
//!   point outside any transaction). The pipeline never checkpoints mid-transaction.
//! - Positions of one source only move forward; the checkpoint tracker relies on markers
//!   arriving in log order.
//! - [`Lsn`] renders and parses in Postgres' `X/Y` hex form, so state files and logs read like
//!   `pg_replication_slots`.
//! - Two binlog positions are ordered by their GTID sets when both carry one and the sets
//!   differ (a GTID names a transaction on every server of a topology and survives rotations,
//!   restarts and failovers); otherwise by file, then offset, and offsets of two different files
//!   are never compared: files of one log are ordered by their sequence number, files of two
//!   logs (other base names) not at all. An order that cannot be proven is `None`, never a
//!   guess.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
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
    /// The order of two positions of one log; `None` for positions of different sources, or
    /// of binlog positions whose order cannot be proven (see the module invariants).
    pub(crate) fn cmp_in_log(&self, other: &SourcePosition) -> Option<Ordering> {
        match (self, other) {
            (SourcePosition::Postgres { lsn: a }, SourcePosition::Postgres { lsn: b }) => {
                Some(a.cmp(b))
            }
            (
                SourcePosition::MySql {
                    file: fa,
                    pos: pa,
                    gtid: ga,
                },
                SourcePosition::MySql {
                    file: fb,
                    pos: pb,
                    gtid: gb,
                },
            ) => {
                if let (Some(ga), Some(gb)) = (ga, gb) {
                    match gtid_order(ga, gb) {
                        Some(Ordering::Equal) => {}
                        other => return other,
                    }
                }
                binlog_order(fa, *pa, fb, *pb)
            }
            _ => None,
        }
    }
}

impl SourcePosition {
    /// Has a reader that stored `self` read everything up to `target`? Binlog positions that
    /// both carry GTIDs: every transaction of `target` is in `self` (events outside any
    /// transaction after the last one, such as MariaDB's binlog checkpoints, do not count);
    /// otherwise by [`cmp_in_log`](Self::cmp_in_log).
    pub(crate) fn reached(&self, target: &SourcePosition) -> bool {
        if let (
            SourcePosition::MySql { gtid: Some(a), .. },
            SourcePosition::MySql { gtid: Some(b), .. },
        ) = (self, target)
        {
            if let Some(o) = gtid_order(a, b) {
                return o != Ordering::Less;
            }
        }
        self.cmp_in_log(target).is_some_and(|o| o != Ordering::Less)
    }
}

/// A binlog file name split into its base and sequence number (`mysql-bin.000007` →
/// (`mysql-bin`, 7)); `None` for a name without a numeric extension.
/// A binlog position as one number that increases along one server's binlog: the file's
/// sequence number in the high 24 bits, the offset in the low 40 (a binlog file is at most
/// 1 GiB); 0 when the file name carries no sequence number.
pub(crate) fn binlog_log_order(file: &str, offset: u64) -> u64 {
    binlog_file_seq(file).map_or(0, |(_, seq)| (seq << 40) | (offset & ((1 << 40) - 1)))
}

pub(crate) fn binlog_file_seq(file: &str) -> Option<(&str, u64)> {
    let (base, seq) = file.rsplit_once('.')?;
    if seq.is_empty() || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((base, seq.parse().ok()?))
}

/// The order of two binlog coordinates: by file sequence number, and by offset within one file.
/// `None` when the files belong to different logs (other base names) or a name is not a binlog
/// file name.
pub(crate) fn binlog_order(fa: &str, pa: u64, fb: &str, pb: u64) -> Option<Ordering> {
    if fa == fb {
        return Some(pa.cmp(&pb));
    }
    let (ba, sa) = binlog_file_seq(fa)?;
    let (bb, sb) = binlog_file_seq(fb)?;
    // two names of one file (`bin.7` and `bin.000007`) are one file; other bases: other logs
    (ba == bb).then(|| sa.cmp(&sb).then(pa.cmp(&pb)))
}

/// Executed GTIDs per stream: MariaDB `domain-server-seq` (per domain: the sequence number;
/// the server id is not part of the order), MySQL `uuid[:tag]:1-n[:m-k]` (per source: the
/// highest transaction number).
fn gtid_streams(g: &str) -> Option<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let mut at = |stream: String, n: u64| {
        let e = out.entry(stream).or_insert(0);
        *e = (*e).max(n);
    };
    for part in g.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((uuid, rest)) = part.split_once(':') {
            // MySQL: `uuid:1-5:7-9`, where a tag applies to the intervals after it
            // (`uuid:1-5:tag:1-3`, 8.4+)
            let uuid = uuid.to_ascii_lowercase();
            let mut tag: Option<&str> = None;
            for f in rest.split(':') {
                if f.starts_with(|c: char| c.is_ascii_digit()) {
                    let high: u64 = f.rsplit('-').next()?.parse().ok()?;
                    match tag {
                        Some(t) => at(format!("{uuid}:{t}"), high),
                        None => at(uuid.clone(), high),
                    }
                } else {
                    tag = Some(f);
                }
            }
        } else {
            let mut f = part.split('-');
            let (Some(domain), Some(_server), Some(seq), None) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                return None;
            };
            at(domain.parse::<u32>().ok()?.to_string(), seq.parse().ok()?);
        }
    }
    Some(out)
}

/// The order of two executed-GTID sets: `Less` when every stream of `a` is at or behind `b`'s
/// and one is behind, `Greater` the other way, `Equal` when they match; `None` when each is
/// ahead somewhere, or a set does not parse.
pub(crate) fn gtid_order(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (gtid_streams(a)?, gtid_streams(b)?);
    let mut order = Ordering::Equal;
    for k in a.keys().chain(b.keys()) {
        let x = a.get(k).copied().unwrap_or(0);
        let y = b.get(k).copied().unwrap_or(0);
        match (order, x.cmp(&y)) {
            (_, Ordering::Equal) => {}
            (Ordering::Equal, o) => order = o,
            (o, p) if o != p => return None,
            _ => {}
        }
    }
    Some(order)
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

    fn my(f: &str, pos: u64, gtid: Option<&str>) -> SourcePosition {
        SourcePosition::MySql {
            file: f.into(),
            pos,
            gtid: gtid.map(str::to_string),
        }
    }

    #[test]
    fn binlog_positions_never_compare_offsets_of_different_files() {
        // a later file is later, whatever the offsets
        assert_eq!(
            my("bin.000007", 3733, None).cmp_in_log(&my("bin.000006", 691676, None)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            my("bin.000006", 4, None).cmp_in_log(&my("bin.000006", 5, None)),
            Some(Ordering::Less)
        );
        // the numbering may widen past six digits
        assert_eq!(
            my("bin.1000000", 4, None).cmp_in_log(&my("bin.999999", 9, None)),
            Some(Ordering::Greater)
        );
        // files of another log (base name) have no order with these
        assert_eq!(
            my("other.000009", 4, None).cmp_in_log(&my("bin.000006", 5, None)),
            None
        );
        assert_eq!(
            my("noext", 4, None).cmp_in_log(&my("bin.000006", 5, None)),
            None
        );
    }

    #[test]
    fn gtids_order_binlog_positions_when_both_carry_them() {
        // MariaDB: the sequence number per domain, across files and servers
        let a = my("bin.000006", 691676, Some("0-10-5310"));
        let b = my("bin.000001", 3733, Some("0-11-5311"));
        assert_eq!(b.cmp_in_log(&a), Some(Ordering::Greater));
        assert_eq!(a.cmp_in_log(&b), Some(Ordering::Less));
        // equal GTIDs (a heartbeat point, a rotation): the file and offset decide
        let c = my("bin.000007", 4, Some("0-10-5310"));
        assert_eq!(c.cmp_in_log(&a), Some(Ordering::Greater));
        // several domains: behind in one and ahead in another is no order
        assert_eq!(gtid_order("0-1-5,1-1-9", "0-1-6,1-1-8"), None);
        assert_eq!(
            gtid_order("0-1-5,1-1-9", "0-1-6,1-1-9"),
            Some(Ordering::Less)
        );
        assert_eq!(gtid_order("0-1-6", "0-1-6,1-1-1"), Some(Ordering::Less));
        // MySQL: uuid (and tagged) intervals
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(
            gtid_order(&format!("{u}:1-10"), &format!("{u}:1-9")),
            Some(Ordering::Greater)
        );
        assert_eq!(
            gtid_order(
                &format!("{u}:1-10,{u}:blue:1-3"),
                &format!("{u}:1-10,{u}:blue:1-4")
            ),
            Some(Ordering::Less)
        );
        assert_eq!(
            gtid_order(&format!("{u}:1-5:7-10"), &format!("{u}:1-10")),
            Some(Ordering::Equal)
        );
        // one side without GTIDs: the file and offset decide
        assert_eq!(
            my("bin.000007", 4, None).cmp_in_log(&a),
            Some(Ordering::Greater)
        );
        assert_eq!(gtid_order("garbage", "0-1-1"), None);
    }
}
