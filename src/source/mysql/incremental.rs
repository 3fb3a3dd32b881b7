//! The MySQL/MariaDB half of incremental snapshots (the shared part is
//! `crate::source::incremental`): keyset chunks by primary key, read between two transactions
//! of the stream on the metadata session, closed by the binlog end the server reports after the
//! read.
//!
//! Every change the stream delivers after the read began and before that binlog end touches
//! the chunk (its keys leave it): the read may or may not have seen it, and the streamed record
//! is at least as new. A change the read saw committed before the binlog end it reports, so the
//! chunk goes out after it.
//!
//! Invariants:
//! - Chunks are the initial snapshot's (`snapshot.chunk_rows` rows, held in memory until the
//!   watermark) (`WHERE (pk) > (cursor) ORDER BY pk LIMIT n`), so an
//!   interrupted initial snapshot resumes after its stored key.
//! - A table without a primary key cannot be chunked: a request for it is refused.

use super::error::MySqlError;
use super::schema::{self, MyTable};
use super::snapshot::{KeyPart, MyTableReader, SnapTable};
use super::stream::StreamState;
use super::{master_status, Prepared};
use crate::source::incremental::Job;
use crate::source::render::RenderWarnings;
use crate::source::snapshot::read_chunk_into;
use crate::source::SnapshotRequest;

impl Prepared {
    /// The current definition of pattern name `name` (`db.table`), if it exists.
    async fn current_def(
        &self,
        st: &mut StreamState<'_>,
        name: &str,
    ) -> Result<Option<MyTable>, MySqlError> {
        let Some((db, table)) = name.split_once('.') else {
            return Ok(None);
        };
        Ok(schema::load_table(&mut st.meta, db, table).await?)
    }

    /// "Snapshot these tables again": queued when every one can be, else refused with reasons.
    pub(super) async fn snapshot_request(
        &self,
        st: &mut StreamState<'_>,
        req: SnapshotRequest,
    ) -> Result<(), MySqlError> {
        let mut problems = Vec::new();
        for name in &req.tables {
            match self.current_def(st, name).await? {
                None => problems.push(format!("{name}: no such table")),
                Some(d) if !self.filter.matches(&super::table_id(&d.db, &d.table)) => {
                    problems.push(format!("{name}: not matched by source.tables"))
                }
                Some(d) if d.pk.is_empty() => problems.push(format!(
                    "{name}: has no primary key, so it cannot be read in chunks"
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            for t in &req.tables {
                st.inc.add(Job::new(t.clone(), serde_json::Value::Null));
            }
        }
        req.answer(problems);
        Ok(())
    }

    /// Read the next chunk of `job`'s table and open it until the binlog end read after it.
    pub(super) async fn read_chunk(
        &self,
        st: &mut StreamState<'_>,
        job: &Job,
        warnings: &mut RenderWarnings,
    ) -> Result<(), MySqlError> {
        let Some(def) = self.current_def(st, &job.table).await? else {
            tracing::warn!(table = %job.table, "table is gone: its incremental snapshot ends");
            st.inc.drop_front();
            return Ok(());
        };
        let schema = self.table_schema(&def)?;
        let target = SnapTable {
            def,
            schema: schema.clone(),
        };
        let cursor: Option<Vec<KeyPart>> =
            serde_json::from_value(job.cursor.clone()).unwrap_or(None);
        let mut reader = MyTableReader {
            conn: &mut st.meta,
            ctx: &self.ctx,
            warnings,
            chunk_rows: self.chunk_rows,
            estimates: Default::default(),
            empty: Default::default(),
        };
        let (rows, next) = read_chunk_into(&mut reader, &target, cursor).await?;
        let high = master_status(&mut st.meta).await?;
        let next = next.map(|k| serde_json::to_value(k).unwrap_or_default());
        st.inc.open(schema, rows, next, high);
        Ok(())
    }
}
