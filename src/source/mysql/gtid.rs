//! GTIDs: the executed set a stream keeps ([`GtidSet`], MariaDB `domain-server-seq` per
//! domain, MySQL `uuid:1-n` per source and tag), MariaDB's GTID event body, the GTID position
//! of a binlog file and offset, and resuming by GTID (`source.resume_by`; MySQL's
//! auto-positioning request and the guard a failover passes first).
//!
//! Invariants: a set only grows as transactions pass; its rendering parses back to the same
//! set; resuming by GTID is refused with one line when there is no GTID to resume by.

use super::error::{setup, MySqlError};
use crate::config::ResumeBy;
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn};
use std::collections::BTreeMap;

/// MariaDB: the GTID position of a binlog file and offset (`BINLOG_GTID_POS`); `None` before
/// any GTID was written.
pub(super) async fn mariadb_gtid_at(
    conn: &mut Conn,
    at: &(String, u64),
) -> Result<Option<String>, MySqlError> {
    let g: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&at.0, at.1))
        .await?;
    Ok(g.flatten().filter(|g| !g.is_empty()))
}

/// Does this run resume by GTID (`source.resume_by`; a move to another server always does)?
/// `gtid` is the GTID set stored with the position (or executed up to a first start).
pub(super) fn resume_by_gtid(
    by: ResumeBy,
    start: &(String, u64),
    gtid: Option<&str>,
) -> Result<bool, MySqlError> {
    match (by, gtid) {
        (ResumeBy::File, _) => Ok(false),
        (ResumeBy::Auto, _) => Ok(false),
        (ResumeBy::Gtid, Some(_)) => Ok(true),
        (ResumeBy::Gtid, None) => Err(setup(
            format!(
                "source.resume_by = \"gtid\", but the position binlog {}:{} carries no GTID (the server writes none, or the state was stored before any was written)",
                start.0, start.1
            ),
            "set source.resume_by = \"file\" (or \"auto\"); on MySQL, enable GTIDs (gtid_mode = ON, enforce_gtid_consistency = ON)",
        )),
    }
}

/// May this MySQL server resume the stored GTID set `g` (failover by GTID)? It must run with
/// GTIDs, have applied every transaction rowstream has seen (`applied`: else it lags behind or
/// belongs to another topology), and still hold every one rowstream has not (`kept`: its
/// `gtid_purged` lies within `g`).
pub(super) fn mysql_gtid_guard(
    g: &str,
    mode: &str,
    applied: bool,
    kept: bool,
) -> Result<(), MySqlError> {
    let other = "point source.url at a server of the same replication topology that has applied it (a GTID replica with log_replica_updates), or start over with `rowstream run --resnapshot`";
    if !mode.eq_ignore_ascii_case("ON") {
        return Err(setup(
            format!("the state was written on another server and this one runs with gtid_mode = {mode}: resuming by GTID needs gtid_mode = ON"),
            other,
        ));
    }
    if !applied {
        return Err(setup(
            format!("this server has not applied rowstream's position GTID {g} (it lags behind, or belongs to another replication topology)"),
            other,
        ));
    }
    if !kept {
        return Err(setup(
            format!("this server purged binlogs holding transactions after rowstream's position GTID {g} (its gtid_purged is not within it)"),
            "point source.url at a server that still has those binlogs, or start over with `rowstream run --resnapshot`",
        ));
    }
    Ok(())
}

/// The COM_BINLOG_DUMP_GTID request for MySQL auto-positioning from the executed set `g`
/// (`uuid:1-n` and tagged `uuid:tag:1-n` parts): the server sends every transaction not in it.
pub(super) fn mysql_gtid_request(
    server_id: u32,
    g: &str,
) -> Result<BinlogStreamRequest<'static>, MySqlError> {
    let sids = g
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<mysql_async::Sid<'static>>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MySqlError::Malformed(format!("stored GTID set {g}: {e}")))?;
    Ok(BinlogStreamRequest::new(server_id)
        .with_gtid()
        .with_gtid_set(sids))
}

/// MariaDB GTID_EVENT body: seq_no u64 LE, domain_id u32 LE, flags u8 (+ optional XA data).
pub(crate) fn parse_mariadb_gtid(d: &[u8]) -> Option<(u32, u64)> {
    let seq = u64::from_le_bytes(d.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(d.get(8..12)?.try_into().ok()?);
    Some((domain, seq))
}

/// Executed GTIDs: MariaDB `domain-server-seq` per domain, MySQL `uuid:1-n` per source uuid
/// and `uuid:tag:1-n` per tag (MySQL 8.4+ tagged GTIDs).
#[derive(Default, Debug, PartialEq)]
pub(crate) struct GtidSet {
    mariadb: BTreeMap<u32, (u32, u64)>,
    /// `uuid` or `uuid:tag` → highest transaction number
    mysql: BTreeMap<String, u64>,
}

impl GtidSet {
    pub(crate) fn parse(s: Option<&str>) -> GtidSet {
        let mut g = GtidSet::default();
        for part in s
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if let Some((source, range)) = part.rsplit_once(':') {
                let end = range
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                g.mysql.insert(source.to_string(), end);
            } else {
                let f: Vec<&str> = part.split('-').collect();
                if let [d, s, q] = f.as_slice() {
                    if let (Ok(d), Ok(s), Ok(q)) = (d.parse(), s.parse(), q.parse()) {
                        g.mariadb.insert(d, (s, q));
                    }
                }
            }
        }
        g
    }
    pub(crate) fn mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        self.mariadb.insert(domain, (server, seq));
    }
    pub(crate) fn mysql(&mut self, sid: [u8; 16], tag: Option<&str>, gno: u64) {
        let u = sid;
        let mut uuid = format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]
        );
        if let Some(t) = tag {
            uuid.push(':');
            uuid.push_str(t);
        }
        let e = self.mysql.entry(uuid).or_insert(0);
        *e = (*e).max(gno);
    }
    pub(crate) fn render(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .mariadb
            .iter()
            .map(|(d, (s, q))| format!("{d}-{s}-{q}"))
            .collect();
        parts.extend(self.mysql.iter().map(|(u, n)| format!("{u}:1-{n}")));
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify as _;

    #[test]
    fn mysql_failover_guard_and_request() {
        let g = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,3e11fa47-71ca-11e1-9e33-c80aa9429562:audit:1-2";
        assert!(mysql_gtid_guard(g, "ON", true, true).is_ok());
        for (mode, applied, kept, says) in [
            ("OFF", true, true, "gtid_mode = OFF"),
            ("ON", false, true, "has not applied"),
            ("ON", true, false, "purged binlogs"),
        ] {
            let e = mysql_gtid_guard(g, mode, applied, kept).unwrap_err();
            assert_eq!(e.class(), crate::error::ErrorClass::Setup);
            let text = e.to_string();
            assert!(
                text.contains(says) && text.contains("--resnapshot"),
                "{text}"
            );
        }
        assert!(mysql_gtid_request(5401, g).is_ok());
        assert!(mysql_gtid_request(5401, "not-a-uuid:1-5").is_err());
        // the set GtidSet renders parses back as the request's sids
        let mut set = GtidSet::default();
        set.mysql([0x3e; 16], None, 7);
        set.mysql([0x3e; 16], Some("audit"), 2);
        assert!(mysql_gtid_request(1, &set.render().unwrap()).is_ok());
    }

    #[test]
    fn mariadb_gtid_event_bytes() {
        // GTID 0-1-31 laid out as the MariaDB GTID_EVENT body (seq_no, domain_id, flags)
        let body = [31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c];
        assert_eq!(parse_mariadb_gtid(&body), Some((0, 31)));
        let body = [0x10, 0x27, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        assert_eq!(parse_mariadb_gtid(&body), Some((2, 10000)));
        assert_eq!(parse_mariadb_gtid(&[1, 2, 3]), None);
        let mut g = GtidSet::default();
        let (d, s) = parse_mariadb_gtid(&body).unwrap();
        g.mariadb(d, 7, s);
        assert_eq!(g.render().as_deref(), Some("2-7-10000"));
    }

    #[test]
    fn gtid_sets_both_flavours() {
        let mut g = GtidSet::parse(Some("0-1-5,1-2-9"));
        g.mariadb(0, 1, 6);
        assert_eq!(g.render().as_deref(), Some("0-1-6,1-2-9"));
        let mut m = GtidSet::parse(Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23"));
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&[
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ]);
        m.mysql(sid, None, 24);
        assert_eq!(
            m.render().as_deref(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-24")
        );
        assert_eq!(GtidSet::parse(None).render(), None);
    }
}
