//! Where the binlog stream is: the file and offset of every event, kept right across every
//! kind of file switch.
//!
//! A dump names its files only through ROTATE events, of two kinds:
//! - a **real** ROTATE (`log_pos` ≠ 0) ends a file (`FLUSH BINARY LOGS`, `max_binlog_size`) and
//!   names the next one;
//! - a **fake** ROTATE (`log_pos` = 0), made up by the server's dump thread, names the file the
//!   events after it come from: at the start of every dump (the requested file, or with GTID
//!   positioning the file the GTID lies in), and every time the dump moves on to the next file,
//!   also after a file that ends without a ROTATE (a server stopped, killed or crashed writes a
//!   new file when it starts again, so the old one ends with STOP or nothing at all).
//!
//! Invariants:
//! - Every ROTATE moves the cursor to the file it names; a name that cannot be read is an
//!   error, never "keep the current file" (that labels a new file's offsets with the old
//!   file's name, and such positions look older than the stored one).
//! - After the first ROTATE of a dump, the cursor never goes back: a ROTATE naming an earlier
//!   file (or an earlier offset in the same file) is an error naming both.
//! - An event's coordinates are its own `log_pos` in the current file; events without one
//!   (inside a TRANSACTION_PAYLOAD, the server's heartbeats) take those of the last event that
//!   had one, so a transaction inside a payload ends where the payload ends.
//!
//! Written by hand because the name in a fake ROTATE may or may not be followed by a CRC32
//! (the server decides before the format description says whether events carry checksums,
//! seen both ways on MariaDB 10.11), which the parser under mysql_async cannot know: the
//! trailing four bytes are taken as a checksum only when they are the event's CRC32.

use crate::model::position::binlog_order;
use mysql_async::binlog::events::Event;
use std::cmp::Ordering;

const ROTATE_EVENT: u8 = 4;
const HEARTBEAT_EVENT: u8 = 27;
const HEARTBEAT_EVENT_V2: u8 = 41;

/// Where a binlog event lies and when it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EventAt {
    /// offset just after the event (the server's `log_pos`)
    pub(crate) end: u64,
    /// offset of the event's first byte
    pub(crate) start: u64,
    pub(crate) ts_ms: i64,
}

/// The stream's place in the server's binlog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// the file the events come from
    pub(crate) file: String,
    /// end offset in `file` of the last event read
    pub(crate) pos: u64,
    /// start offset in `file` of the last event with a position of its own
    last_start: u64,
    /// a ROTATE was read in this dump: the server has named its file
    named: bool,
}

impl Cursor {
    /// A dump asked to start at `file`:`pos` (`file` empty when the server chooses, by GTID).
    pub(crate) fn new(file: &str, pos: u64) -> Cursor {
        Cursor {
            file: file.to_string(),
            pos,
            last_start: pos,
            named: false,
        }
    }

    /// Take one event: its coordinates; a ROTATE moves the cursor to the file it names.
    pub(crate) fn on_event(&mut self, ev: &Event) -> Result<EventAt, String> {
        let h = ev.header();
        let ts_ms = h.timestamp() as i64 * 1000;
        let log_pos = h.log_pos() as u64;
        let kind = h.event_type_raw();
        if kind == ROTATE_EVENT {
            let at = if log_pos == 0 {
                self.here(ts_ms)
            } else {
                // a real ROTATE is the last event of its file
                self.positioned(log_pos, h.event_size() as u64, ts_ms)
            };
            let (next, offset) = rotate_body(ev)?;
            self.rotate(next, offset)?;
            return Ok(at);
        }
        if log_pos == 0 || kind == HEARTBEAT_EVENT || kind == HEARTBEAT_EVENT_V2 {
            return Ok(self.here(ts_ms));
        }
        Ok(self.positioned(log_pos, h.event_size() as u64, ts_ms))
    }

    fn here(&self, ts_ms: i64) -> EventAt {
        EventAt {
            end: self.pos,
            start: self.last_start,
            ts_ms,
        }
    }

    fn positioned(&mut self, end: u64, size: u64, ts_ms: i64) -> EventAt {
        let start = end.saturating_sub(size);
        self.pos = self.pos.max(end);
        self.last_start = start;
        EventAt { end, start, ts_ms }
    }

    /// The events after this come from `file`, from `offset` on.
    fn rotate(&mut self, file: String, offset: u64) -> Result<(), String> {
        if self.named && binlog_order(&file, offset, &self.file, self.pos) == Some(Ordering::Less) {
            return Err(format!(
                "the server's binlog went back from {}:{} to {file}:{offset}",
                self.file, self.pos
            ));
        }
        if file != self.file || !self.named {
            tracing::debug!(from = %self.file, to = %file, offset, "binlog file");
        }
        self.named = true;
        self.file = file;
        self.pos = offset;
        self.last_start = offset;
        Ok(())
    }
}

/// A ROTATE event's body: the offset and the name of the file it names. The name may be
/// followed by the event's CRC32 (see the module doc): those four bytes are dropped when they
/// are the checksum of the event without them.
pub(crate) fn rotate_body(ev: &Event) -> Result<(String, u64), String> {
    let mut body = ev.data().to_vec();
    // the parser drops the checksum it expects (from the format description) from `data`
    if let (Some(crc), true) = (ev.checksum(), ev.footer().get_checksum_enabled()) {
        if ev
            .footer()
            .get_checksum_alg()
            .ok()
            .flatten()
            .map(|a| a as u8)
            == Some(1)
        {
            body.extend_from_slice(&crc);
        }
    }
    let unreadable = || {
        format!(
            "a ROTATE event ending at offset {} names no readable binlog file",
            ev.header().log_pos()
        )
    };
    if body.len() < 9 {
        return Err(unreadable());
    }
    let offset = u64::from_le_bytes(body[..8].try_into().map_err(|_| unreadable())?);
    let mut name = &body[8..];
    if name.len() > 4 {
        let (rest, tail) = body.split_at(body.len() - 4);
        let mut h = crc32fast::Hasher::new();
        h.update(&header_bytes(ev));
        h.update(rest);
        if h.finalize().to_le_bytes() == tail {
            name = &rest[8..];
        }
    }
    if !is_binlog_name(name) {
        return Err(unreadable());
    }
    Ok((String::from_utf8_lossy(name).into_owned(), offset))
}

/// The event's 19 header bytes as the server sent them (the start of what its CRC32 covers).
fn header_bytes(ev: &Event) -> [u8; 19] {
    let h = ev.header();
    let mut b = [0u8; 19];
    b[0..4].copy_from_slice(&h.timestamp().to_le_bytes());
    b[4] = h.event_type_raw();
    b[5..9].copy_from_slice(&h.server_id().to_le_bytes());
    b[9..13].copy_from_slice(&h.event_size().to_le_bytes());
    b[13..17].copy_from_slice(&h.log_pos().to_le_bytes());
    b[17..19].copy_from_slice(&h.flags_raw().to_le_bytes());
    b
}

/// Is `n` a binlog file name: printable ASCII `base.<digits>`?
fn is_binlog_name(n: &[u8]) -> bool {
    let Some(dot) = n.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let ext = &n[dot + 1..];
    dot > 0
        && !ext.is_empty()
        && ext.iter().all(u8::is_ascii_digit)
        && n.iter().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mysql_common::binlog::consts::{BinlogVersion, EventType};
    use mysql_common::binlog::events::BinlogEventHeader;
    use mysql_common::binlog::EventStreamReader;
    use mysql_common::proto::MySerialize as _;

    /// The bytes of a ROTATE event as a server sends it (without the leading OK byte).
    pub(crate) fn rotate_bytes(name: &str, offset: u64, log_pos: u32, crc: bool) -> Vec<u8> {
        let mut body = offset.to_le_bytes().to_vec();
        body.extend_from_slice(name.as_bytes());
        let size = 19 + body.len() + if crc { 4 } else { 0 };
        let header = BinlogEventHeader::new(
            0,
            EventType::ROTATE_EVENT,
            1,
            size as u32,
            log_pos,
            Default::default(),
        );
        let mut out = Vec::new();
        header.serialize(&mut out);
        out.extend_from_slice(&body);
        if crc {
            let c = crc32fast::hash(&out);
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// A stream reader that has (or has not) seen a format description announcing CRC32.
    fn reader(checksummed_fde: bool) -> EventStreamReader {
        let mut r = EventStreamReader::new(BinlogVersion::Version4);
        if checksummed_fde {
            // binlog version, server version (50 bytes), create time, header length, and the
            // post-header lengths of the event types
            let mut body = 4u16.to_le_bytes().to_vec();
            let mut version = b"10.11.6-MariaDB-log".to_vec();
            version.resize(50, 0);
            body.extend_from_slice(&version);
            body.extend_from_slice(&0u32.to_le_bytes());
            body.push(19);
            body.extend_from_slice(&[0u8; 40]);
            body[57 + 3] = 8; // ROTATE
            body.push(1); // CRC32
            let header = BinlogEventHeader::new(
                0,
                EventType::FORMAT_DESCRIPTION_EVENT,
                1,
                (19 + body.len() + 4) as u32,
                256,
                Default::default(),
            );
            let mut bytes = Vec::new();
            header.serialize(&mut bytes);
            bytes.extend_from_slice(&body);
            let c = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&c.to_le_bytes());
            r.read(&bytes[..]).unwrap().unwrap();
        }
        r
    }

    #[test]
    fn rotate_names_with_and_without_a_checksum() {
        // every combination of a checksum sent or not, and expected (after a format description
        // announcing CRC32) or not, reads the same name, also one ending in digits like a CRC
        for (crc, fde) in [(false, false), (true, false), (false, true), (true, true)] {
            for name in ["mysql-bin.000007", "b.10000", "binlog.0000071234"] {
                let mut r = reader(fde);
                let ev = r.read(&rotate_bytes(name, 4, 0, crc)[..]).unwrap().unwrap();
                assert_eq!(
                    rotate_body(&ev).unwrap(),
                    (name.to_string(), 4),
                    "crc {crc}, fde {fde}"
                );
            }
        }
        let mut r = reader(false);
        let ev = r
            .read(&rotate_bytes("no name", 4, 0, false)[..])
            .unwrap()
            .unwrap();
        assert!(rotate_body(&ev)
            .unwrap_err()
            .contains("names no readable binlog file"));
    }

    #[test]
    fn the_cursor_follows_every_kind_of_rotation() {
        let mut r = reader(false);
        let mut ev = |b: Vec<u8>| r.read(&b[..]).unwrap().unwrap();
        let mut c = Cursor::new("bin.000006", 691676);
        // the dump's first fake ROTATE repeats the requested place
        c.on_event(&ev(rotate_bytes("bin.000006", 691676, 0, true)))
            .unwrap();
        assert_eq!((c.file.as_str(), c.pos), ("bin.000006", 691676));
        // the server restarted: the old file ends (STOP, or nothing), a fake ROTATE names the
        // new file
        c.on_event(&ev(rotate_bytes("bin.000007", 4, 0, false)))
            .unwrap();
        assert_eq!((c.file.as_str(), c.pos), ("bin.000007", 4));
        // FLUSH BINARY LOGS: a real ROTATE at the end of the file, then the dump's fake one
        let at = c
            .on_event(&ev(rotate_bytes("bin.000008", 4, 3800, true)))
            .unwrap();
        assert_eq!(at.end, 3800);
        assert_eq!((c.file.as_str(), c.pos), ("bin.000008", 4));
        c.on_event(&ev(rotate_bytes("bin.000008", 4, 0, true)))
            .unwrap();
        assert_eq!((c.file.as_str(), c.pos), ("bin.000008", 4));
        // going back is an error naming both places
        let e = c
            .on_event(&ev(rotate_bytes("bin.000006", 4, 0, true)))
            .unwrap_err();
        assert!(
            e.contains("bin.000008:4") && e.contains("bin.000006:4"),
            "{e}"
        );
        // a dump by GTID starts wherever the server says
        let mut g = Cursor::new("bin.000009", 120);
        g.on_event(&ev(rotate_bytes("bin.000002", 4, 0, true)))
            .unwrap();
        assert_eq!((g.file.as_str(), g.pos), ("bin.000002", 4));
    }
}
