//! Snapshot planning, shared by every source: which tables to snapshot at start, and the fences
//! that keep a table's snapshot and its stream from doubling or losing a row.
//!
//! Invariants:
//! - `snapshot.mode = "initial"` snapshots each matched table whose snapshot never completed
//!   (a table added to the config later gets its own); `"always"` every matched table at every
//!   start; `"never"` none.
//! - A table snapshotted at position F (the snapshot's consistent point) has the fence F: a
//!   change of that table whose log record starts before F is already in the snapshot and is
//!   dropped from the stream; one starting at or after F is emitted. The fence of a completed
//!   snapshot is stored with it (`Marker::Snapshot`, before the table's first row), so it holds
//!   across restarts, also when the snapshot was interrupted and resumes.
//!   (Postgres compares the commit record's position, which orders transactions; MySQL the row
//!   event's start, which lies before F exactly when its transaction ended at or before F.)

use crate::checkpoint::store::State;
use crate::config::SnapshotMode;
use crate::model::position::SourcePosition;
use crate::model::schema::TableId;
use std::collections::HashMap;

/// The matched tables that need a snapshot now, in the order given.
pub(crate) fn tables_to_snapshot(
    mode: SnapshotMode,
    matched: &[TableId],
    state: &State,
) -> Vec<TableId> {
    match mode {
        SnapshotMode::Never => vec![],
        SnapshotMode::Always => matched.to_vec(),
        SnapshotMode::Initial => matched
            .iter()
            .filter(|t| !state.tables.contains_key(&t.pattern_name()))
            .cloned()
            .collect(),
    }
}

/// The matched tables whose snapshot started and did not finish (a stop, a crash), with the
/// cursor it resumes after; they continue incrementally while the stream runs, behind the fence
/// their snapshot started with. Tables snapshotted afresh now (`snapshot`) are left out.
pub(crate) fn tables_to_resume(
    matched: &[TableId],
    state: &State,
    snapshot: &[TableId],
) -> Vec<(TableId, serde_json::Value)> {
    matched
        .iter()
        .filter(|t| !snapshot.contains(t))
        .filter_map(|t| {
            let r = state.tables.get(&t.pattern_name())?.resume.as_ref()?;
            Some((t.clone(), r.cursor.clone()))
        })
        .collect()
}

/// Per table (pattern name): the position its snapshot covers the stream up to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fence {
    by_table: HashMap<String, SourcePosition>,
}

impl Fence {
    /// The fences of the snapshots `state` says completed.
    pub(crate) fn from_state(state: &State) -> Fence {
        let by_table = state
            .tables
            .iter()
            .filter_map(|(t, s)| Some((t.clone(), s.snapshot_from.clone()?)))
            .collect();
        Fence { by_table }
    }

    /// `tables` are snapshotted now, at `at`.
    pub(crate) fn set(&mut self, tables: &[TableId], at: &SourcePosition) {
        for t in tables {
            self.by_table.insert(t.pattern_name(), at.clone());
        }
    }

    pub(crate) fn get(&self, table: &str) -> Option<&SourcePosition> {
        self.by_table.get(table)
    }

    /// Is a change of `table` whose log record starts at `at` already in the table's snapshot?
    pub(crate) fn covers(&self, table: &str, at: &SourcePosition) -> bool {
        self.get(table).is_some_and(|f| covered(f, at))
    }
}

/// A record starting at `at` is covered by a snapshot fenced at `fence`.
pub(crate) fn covered(fence: &SourcePosition, at: &SourcePosition) -> bool {
    at.cmp_in_log(fence) == Some(std::cmp::Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::state::TableState;
    use crate::model::position::Lsn;

    fn id(t: &str) -> TableId {
        TableId {
            db: "d".into(),
            schema: Some("public".into()),
            table: t.into(),
        }
    }

    #[test]
    fn modes_and_fences() {
        let pg = |n| SourcePosition::Postgres { lsn: Lsn(n) };
        let mut state = State::default();
        state.tables.insert(
            "public.a".into(),
            TableState {
                snapshot_from: Some(pg(100)),
                resume: None,
            },
        );
        let matched = vec![id("a"), id("b")];
        assert_eq!(
            tables_to_snapshot(SnapshotMode::Initial, &matched, &state),
            vec![id("b")]
        );
        assert_eq!(
            tables_to_snapshot(SnapshotMode::Always, &matched, &state),
            matched
        );
        assert!(tables_to_snapshot(SnapshotMode::Never, &matched, &state).is_empty());
        assert!(tables_to_resume(&matched, &state, &[]).is_empty());
        // a started, unfinished snapshot resumes (unless the table is snapshotted afresh)
        state.tables.insert(
            "public.b".into(),
            TableState {
                snapshot_from: Some(pg(90)),
                resume: Some(crate::checkpoint::state::Resume {
                    cursor: serde_json::json!(12),
                }),
            },
        );
        assert!(tables_to_snapshot(SnapshotMode::Initial, &matched, &state).is_empty());
        assert_eq!(
            tables_to_resume(&matched, &state, &[]),
            vec![(id("b"), serde_json::json!(12))]
        );
        assert!(tables_to_resume(&matched, &state, &matched).is_empty());
        state.tables.remove("public.b");
        let mut f = Fence::from_state(&state);
        assert!(f.covers("public.a", &pg(99)));
        assert!(!f.covers("public.a", &pg(100)));
        assert!(!f.covers("public.b", &pg(1)));
        f.set(&[id("b")], &pg(50));
        assert!(f.covers("public.b", &pg(49)) && !f.covers("public.b", &pg(50)));
        let my = |pos| SourcePosition::MySql {
            file: "bin.000002".into(),
            pos,
            gtid: None,
        };
        f.set(&[id("a")], &my(400));
        assert!(f.covers("public.a", &my(399)));
        assert!(!f.covers("public.a", &my(400)));
        // a position of another kind is never covered
        assert!(!f.covers("public.a", &pg(1)));
    }
}
