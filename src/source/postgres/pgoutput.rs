//! The wire layer of logical replication: CopyData payloads (XLogData, keepalive) and the
//! pgoutput messages inside XLogData, shaped like "Logical Streaming Replication Protocol" /
//! "Logical Replication Message Formats" of the Postgres docs (protocol version 1).
//!
//! Invariants:
//! - Parsing never panics: every length is checked; unknown or truncated input is an error.
//! - Tuple column values stay `Bytes` slices of the received buffer (no copy); conversion to typed
//!   values happens later, in `types`, with the relation's column types.

use super::replication::{PgError, Reader};
use crate::model::position::Lsn;
use bytes::Bytes;

#[derive(Debug, PartialEq)]
pub(crate) enum CopyMessage {
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: i64,
        data: Bytes,
    },
    Keepalive {
        wal_end: Lsn,
        send_time: i64,
        reply: bool,
    },
}

pub(crate) fn parse_copy(b: Bytes) -> Result<CopyMessage, PgError> {
    let mut r = Reader::new(b);
    match r.u8()? {
        b'w' => Ok(CopyMessage::XLogData {
            wal_start: Lsn(r.u64()?),
            wal_end: Lsn(r.u64()?),
            send_time: r.i64()?,
            data: r.rest(),
        }),
        b'k' => Ok(CopyMessage::Keepalive {
            wal_end: Lsn(r.u64()?),
            send_time: r.i64()?,
            reply: r.u8()? == 1,
        }),
        t => Err(PgError::Protocol(format!(
            "unknown replication message type {:?}",
            t as char
        ))),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TupleValue {
    Null,
    /// An unchanged TOASTed value the log does not carry.
    Unchanged,
    Text(Bytes),
    Binary(Bytes),
}

pub(crate) type Tuple = Vec<TupleValue>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RelColumn {
    /// 1 = part of the replica identity (key)
    pub(crate) flags: u8,
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) typmod: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Relation {
    pub(crate) oid: u32,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) replica_identity: u8,
    pub(crate) columns: Vec<RelColumn>,
}

#[derive(Debug, PartialEq)]
pub(crate) enum OldKind {
    /// `K`: replica identity key columns only (others null)
    Key,
    /// `O`: the whole old row (REPLICA IDENTITY FULL)
    Full,
}

#[derive(Debug, PartialEq)]
pub(crate) enum LogicalMessage {
    Begin {
        final_lsn: Lsn,
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_ts: i64,
    },
    Origin,
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        rel: u32,
        new: Tuple,
    },
    Update {
        rel: u32,
        old: Option<(OldKind, Tuple)>,
        new: Tuple,
    },
    Delete {
        rel: u32,
        old: (OldKind, Tuple),
    },
    Truncate {
        options: u8,
        rels: Vec<u32>,
    },
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
}

fn tuple(r: &mut Reader) -> Result<Tuple, PgError> {
    let n = r.i16()?;
    if n < 0 {
        return Err(PgError::Protocol("negative column count".into()));
    }
    let mut t = Vec::with_capacity(n as usize);
    for _ in 0..n {
        t.push(match r.u8()? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::Unchanged,
            b't' => {
                let len = r.i32()?;
                if len < 0 {
                    return Err(PgError::Protocol("negative value length".into()));
                }
                TupleValue::Text(r.bytes(len as usize)?)
            }
            b'b' => {
                let len = r.i32()?;
                if len < 0 {
                    return Err(PgError::Protocol("negative value length".into()));
                }
                TupleValue::Binary(r.bytes(len as usize)?)
            }
            k => {
                return Err(PgError::Protocol(format!(
                    "unknown tuple value kind {:?}",
                    k as char
                )))
            }
        });
    }
    Ok(t)
}

fn old_kind(k: u8) -> Option<OldKind> {
    match k {
        b'K' => Some(OldKind::Key),
        b'O' => Some(OldKind::Full),
        _ => None,
    }
}

pub(crate) fn parse_logical(data: Bytes) -> Result<LogicalMessage, PgError> {
    let mut r = Reader::new(data);
    let tag = r.u8()?;
    Ok(match tag {
        b'B' => LogicalMessage::Begin {
            final_lsn: Lsn(r.u64()?),
            commit_ts: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            LogicalMessage::Commit {
                commit_lsn: Lsn(r.u64()?),
                end_lsn: Lsn(r.u64()?),
                commit_ts: r.i64()?,
            }
        }
        b'O' => {
            let _lsn = r.u64()?;
            let _name = r.cstr()?;
            LogicalMessage::Origin
        }
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n.max(0) {
                columns.push(RelColumn {
                    flags: r.u8()?,
                    name: r.cstr()?,
                    type_oid: r.u32()?,
                    typmod: r.i32()?,
                });
            }
            LogicalMessage::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => LogicalMessage::Type {
            oid: r.u32()?,
            namespace: r.cstr()?,
            name: r.cstr()?,
        },
        b'I' => {
            let rel = r.u32()?;
            if r.u8()? != b'N' {
                return Err(PgError::Protocol("insert without new tuple".into()));
            }
            LogicalMessage::Insert {
                rel,
                new: tuple(&mut r)?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut k = r.u8()?;
            let mut old = None;
            if let Some(kind) = old_kind(k) {
                old = Some((kind, tuple(&mut r)?));
                k = r.u8()?;
            }
            if k != b'N' {
                return Err(PgError::Protocol("update without new tuple".into()));
            }
            LogicalMessage::Update {
                rel,
                old,
                new: tuple(&mut r)?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            let kind = old_kind(r.u8()?)
                .ok_or_else(|| PgError::Protocol("delete without old tuple".into()))?;
            LogicalMessage::Delete {
                rel,
                old: (kind, tuple(&mut r)?),
            }
        }
        b'T' => {
            let n = r.u32()?;
            let options = r.u8()?;
            let mut rels = Vec::with_capacity(n.min(4096) as usize);
            for _ in 0..n {
                rels.push(r.u32()?);
            }
            LogicalMessage::Truncate { options, rels }
        }
        b'M' => {
            let flags = r.u8()?;
            let lsn = Lsn(r.u64()?);
            let prefix = r.cstr()?;
            let len = r.u32()? as usize;
            LogicalMessage::Message {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
                content: r.bytes(len)?,
            }
        }
        t => {
            return Err(PgError::Protocol(format!(
                "unsupported pgoutput message {:?}",
                t as char
            )))
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    /// A Relation message: public.t (16384) with `id int` (key) and `v text`.
    pub(crate) fn relation_message() -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(b'R');
        b.put_u32(16384);
        b.put_slice(b"public\0t\0");
        b.put_u8(b'd');
        b.put_i16(2);
        b.put_u8(1);
        b.put_slice(b"id\0");
        b.put_u32(23);
        b.put_i32(-1);
        b.put_u8(0);
        b.put_slice(b"v\0");
        b.put_u32(25);
        b.put_i32(-1);
        b.to_vec()
    }

    #[test]
    fn parses_messages() {
        let m = parse_logical(Bytes::from(relation_message())).unwrap();
        let LogicalMessage::Relation(rel) = m else {
            panic!("{m:?}")
        };
        assert_eq!(rel.columns[1].name, "v");
        assert_eq!(rel.columns[0].flags, 1);

        let mut b = BytesMut::new();
        b.put_u8(b'U');
        b.put_u32(16384);
        b.put_u8(b'K');
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(1);
        b.put_u8(b'1');
        b.put_u8(b'n');
        b.put_u8(b'N');
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(1);
        b.put_u8(b'2');
        b.put_u8(b'u');
        let m = parse_logical(b.freeze()).unwrap();
        assert_eq!(
            m,
            LogicalMessage::Update {
                rel: 16384,
                old: Some((
                    OldKind::Key,
                    vec![TupleValue::Text(Bytes::from_static(b"1")), TupleValue::Null]
                )),
                new: vec![
                    TupleValue::Text(Bytes::from_static(b"2")),
                    TupleValue::Unchanged
                ],
            }
        );
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let full: &[u8] = b"I\0\0\x40\0N\0\x01t\0\0\0\x05ab";
        for i in 0..full.len() {
            assert!(
                parse_logical(Bytes::copy_from_slice(&full[..i])).is_err(),
                "prefix {i}"
            );
        }
        assert!(parse_copy(Bytes::from_static(b"w\0\0")).is_err());
        assert!(parse_copy(Bytes::from_static(b"z")).is_err());
        assert!(parse_logical(Bytes::from_static(b"")).is_err());
    }
}
