//! Transaction markers (`encode.transaction_markers`): which source transaction the pipeline
//! is in, whether its `TRANSACTION_BEGIN` went out, and the records written for it per table,
//! which its `TRANSACTION_END` states. The pipeline sends; this module only keeps the count.
//!
//! Invariants:
//! - A source transaction is a run of consecutive streamed changes with the same `log_order`
//!   (its id: the first 16 hex digits of its records' `rowstream.order`). Snapshot rows, DDL
//!   events and snapshot markers in between neither start nor end it; a `Checkpoint` marker or
//!   a change with another `log_order` ends it.
//! - BEGIN is due just before the first record written for the transaction, never for one
//!   whose records were all left out (`kafka.oversized = "skip"`), so such a transaction has
//!   no markers at all; its sequenceId is taken when the transaction's first change arrives,
//!   before that change's own, so BEGIN sorts before every record of its transaction.
//! - END is due only for a transaction whose BEGIN went out, and states exactly the records
//!   written for it (handed to the producer), per table, tables sorted by name.
//! - Nothing here ends a transaction at a stop: a transaction cut short gets no END (the next
//!   start replays it from its BEGIN).

use crate::model::schema::{DbType, TableId, TableSchema};
use crate::model::sequence::SequenceId;

/// The open transaction.
struct Open {
    id: u64,
    /// its commit time (ms), as its records carry it
    event_time: i64,
    /// BEGIN's sequenceId, taken before the first change's
    begin_seq: SequenceId,
    /// once BEGIN went out: the source of its first record's table
    source: Option<(DbType, String)>,
    /// records written, per table, in the order the tables first came
    tables: Vec<(TableId, u64)>,
}

/// A BEGIN to send.
pub(crate) struct Begin {
    pub(crate) id: u64,
    pub(crate) event_time: i64,
    pub(crate) seq: SequenceId,
    pub(crate) db_type: DbType,
    pub(crate) db: String,
}

/// An END to send.
pub(crate) struct End {
    pub(crate) id: u64,
    pub(crate) event_time: i64,
    pub(crate) db_type: DbType,
    pub(crate) db: String,
    /// records written per table (`schema.table` / `db.table`), sorted by name
    pub(crate) tables: Vec<(String, u64)>,
}

/// The pipeline's place among source transactions (see the module invariants).
#[derive(Default)]
pub(crate) struct Transactions {
    open: Option<Open>,
}

impl Transactions {
    /// Is transaction `id` the open one?
    pub(crate) fn is_open(&self, id: u64) -> bool {
        self.open.as_ref().is_some_and(|o| o.id == id)
    }

    /// Transaction `id` starts with a change committed at `event_time`; `begin_seq` is its
    /// BEGIN's sequenceId. The open one must have been ended first ([`Transactions::end`]).
    pub(crate) fn start(&mut self, id: u64, event_time: i64, begin_seq: SequenceId) {
        debug_assert!(self.open.is_none(), "a transaction started inside another");
        self.open = Some(Open {
            id,
            event_time,
            begin_seq,
            source: None,
            tables: Vec::new(),
        });
    }

    /// A record of table `t` is about to be written for the open transaction: the BEGIN to
    /// send first, when this is its first.
    pub(crate) fn begin(&mut self, t: &TableSchema) -> Option<Begin> {
        let o = self.open.as_mut()?;
        if o.source.is_some() {
            return None;
        }
        o.source = Some((t.db_type, t.id.db.clone()));
        Some(Begin {
            id: o.id,
            event_time: o.event_time,
            seq: o.begin_seq,
            db_type: t.db_type,
            db: t.id.db.clone(),
        })
    }

    /// A record of table `t` was written for the open transaction.
    pub(crate) fn written(&mut self, t: &TableSchema) {
        let Some(o) = self.open.as_mut() else {
            return;
        };
        match o.tables.iter_mut().find(|(id, _)| *id == t.id) {
            Some((_, n)) => *n += 1,
            None => o.tables.push((t.id.clone(), 1)),
        }
    }

    /// The open transaction ended: its END, when its BEGIN went out.
    pub(crate) fn end(&mut self) -> Option<End> {
        let o = self.open.take()?;
        let (db_type, db) = o.source?;
        let mut tables: Vec<(String, u64)> = o
            .tables
            .into_iter()
            .map(|(id, n)| (id.pattern_name(), n))
            .collect();
        tables.sort();
        Some(End {
            id: o.id,
            event_time: o.event_time,
            db_type,
            db,
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> std::sync::Arc<TableSchema> {
        TableSchema::new(
            DbType::PostgreSql,
            TableId {
                db: "shop".into(),
                schema: Some("public".into()),
                table: name.into(),
            },
            vec![],
            None,
            "topic".into(),
        )
    }

    fn seq(counter: u32) -> SequenceId {
        SequenceId { ms: 1, counter }
    }

    #[test]
    fn begin_before_the_first_record_end_with_the_counts() {
        let (a, b) = (table("a"), table("b"));
        let mut t = Transactions::default();
        assert!(t.end().is_none(), "nothing open");
        t.start(7, 100, seq(1));
        assert!(t.is_open(7) && !t.is_open(8));
        let begin = t.begin(&b).expect("the first record's BEGIN");
        assert_eq!((begin.id, begin.event_time, begin.seq), (7, 100, seq(1)));
        assert_eq!(
            (begin.db_type, begin.db.as_str()),
            (DbType::PostgreSql, "shop")
        );
        t.written(&b);
        assert!(t.begin(&a).is_none(), "one BEGIN per transaction");
        t.written(&a);
        t.written(&b);
        let end = t.end().expect("END");
        assert_eq!((end.id, end.event_time), (7, 100));
        assert_eq!(
            end.tables,
            [("public.a".to_string(), 1), ("public.b".to_string(), 2)]
        );
        assert!(!t.is_open(7) && t.end().is_none(), "ended once");
    }

    #[test]
    fn a_transaction_without_records_has_no_markers() {
        let mut t = Transactions::default();
        t.start(9, 100, seq(1));
        // its one record was left out (oversized, skip): no BEGIN was asked for
        assert!(t.end().is_none());
        assert!(!t.is_open(9));
    }
}
