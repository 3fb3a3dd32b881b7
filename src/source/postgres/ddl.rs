//! DDL capture messages (`rowstream.ddl`, written by `migrations/postgres/001_ddl_capture.sql`)
//! → DDL operations of the envelope.
//!
//! Invariants: an unknown command tag is `QUERY`, never an error; a message that is not valid
//! JSON is logged and skipped (it cannot be attributed to a table), never a stop.

use crate::model::event::DdlOp;
use serde::Deserialize;

pub(crate) const DDL_PREFIX: &str = "rowstream.ddl";
pub(crate) const HEARTBEAT_PREFIX: &str = "rowstream.heartbeat";
pub(crate) const MIGRATION: &str = include_str!("../../../migrations/postgres/001_ddl_capture.sql");
/// The version the migration writes into the function's comment.
pub(crate) const MIGRATION_VERSION: &str = "rowstream ddl capture v3";

/// The installed DDL capture version, if the triggers and function are there.
pub(crate) async fn installed_version(c: &tokio_postgres::Client) -> Option<String> {
    let row = c
        .query_opt(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'rowstream' AND p.proname = 'capture_ddl' \
               AND EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'rowstream_ddl')",
            &[],
        )
        .await
        .ok()
        .flatten()?;
    row.get::<_, Option<String>>(0)
}

#[derive(Debug, Deserialize)]
pub(crate) struct DdlMessage {
    pub(crate) tag: String,
    pub(crate) query: String,
    pub(crate) objects: Vec<DdlObject>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DdlObject {
    pub(crate) oid: u32,
    pub(crate) schema: String,
    pub(crate) table: String,
    #[serde(default)]
    pub(crate) columns: Option<Vec<DdlColumn>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DdlColumn {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) type_oid: u32,
    pub(crate) typmod: i32,
}

/// Is `query` an `ALTER TABLE .. RENAME TO ..` of the table itself (not of a column)?
pub(crate) fn is_table_rename(query: &str) -> bool {
    let up = query.to_ascii_uppercase();
    let toks: Vec<&str> = up
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|t| !t.is_empty())
        .collect();
    toks.windows(2).any(|w| w[0] == "RENAME" && w[1] == "TO")
}

pub(crate) fn ddl_op(tag: &str, query: &str) -> DdlOp {
    match tag {
        "CREATE TABLE" | "CREATE TABLE AS" | "SELECT INTO" => DdlOp::Create,
        "ALTER TABLE" if is_table_rename(query) => DdlOp::Rename,
        "ALTER TABLE" => DdlOp::Alter,
        "DROP TABLE" => DdlOp::Erase,
        "CREATE INDEX" => DdlOp::CIndex,
        "DROP INDEX" => DdlOp::DIndex,
        _ => DdlOp::Query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_carries_its_version() {
        assert!(MIGRATION.contains(&format!("IS '{MIGRATION_VERSION}'")));
    }

    #[test]
    fn ops() {
        assert_eq!(
            ddl_op("ALTER TABLE", "alter table t add column c int"),
            DdlOp::Alter
        );
        assert_eq!(
            ddl_op("ALTER TABLE", "ALTER TABLE t RENAME TO u"),
            DdlOp::Rename
        );
        assert_eq!(
            ddl_op("ALTER TABLE", "ALTER TABLE t RENAME COLUMN a TO b"),
            DdlOp::Alter
        );
        assert_eq!(
            ddl_op("ALTER TABLE", "ALTER TABLE t RENAME a TO b"),
            DdlOp::Alter
        );
        assert_eq!(
            ddl_op("CREATE TABLE", "create table x(a int)"),
            DdlOp::Create
        );
        assert_eq!(ddl_op("DROP TABLE", "drop table x"), DdlOp::Erase);
        assert_eq!(
            ddl_op("CREATE INDEX", "create index on x(a)"),
            DdlOp::CIndex
        );
        assert_eq!(ddl_op("COMMENT", "comment on table x is 'y'"), DdlOp::Query);
        let m: DdlMessage = serde_json::from_str(
            r#"{"tag":"ALTER TABLE","query":"alter table t add c int","objects":[{"oid":1,"schema":"public","table":"t","columns":[{"name":"c","type":23,"typmod":-1}]}]}"#,
        )
        .unwrap();
        assert_eq!(m.objects[0].columns.as_ref().unwrap()[0].type_oid, 23);
    }
}
