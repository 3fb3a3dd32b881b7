//! Table schemas as every stage sees them, independent of the source.
//!
//! Invariants:
//! - `columns` are in table order; a row image's values line up with them by index.
//! - `key` indexes into `columns`; it is the primary key or the configured custom key, and
//!   `None` when the table has neither (records then carry a null Kafka key).
//! - A `TableSchema` is immutable and shared (`Arc`); a schema change makes a new one, so an
//!   event always carries the schema it was decoded with.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// The six logical types of the DataWorks format (spec §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LogicalType {
    Long,
    Double,
    Date,
    Boolean,
    Bytes,
    String,
}

impl LogicalType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogicalType::Long => "LONG",
            LogicalType::Double => "DOUBLE",
            LogicalType::Date => "DATE",
            LogicalType::Boolean => "BOOLEAN",
            LogicalType::Bytes => "BYTES",
            LogicalType::String => "STRING",
        }
    }
}

/// Which database product a table lives in (the `dbType` of the envelope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DbType {
    PostgreSql,
    MySql,
    MariaDb,
}

impl DbType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DbType::PostgreSql => "PostgreSQL",
            DbType::MySql => "MySQL",
            DbType::MariaDb => "MariaDB",
        }
    }
}

/// A table's identity: database, schema (Postgres only) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TableId {
    pub(crate) db: String,
    pub(crate) schema: Option<String>,
    pub(crate) table: String,
}

impl TableId {
    /// The name patterns match against: `schema.table` (Postgres) or `db.table` (MySQL).
    pub(crate) fn pattern_name(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.table),
            None => format!("{}.{}", self.db, self.table),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern_name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ltype: LogicalType,
    /// Fractional-second digits for `DATE` columns (0..=6): ≤ 3 renders integer ms,
    /// more renders ms with 6 decimals (spec §2).
    pub(crate) fsp: u8,
}

#[derive(Debug)]
pub(crate) struct TableSchema {
    pub(crate) db_type: DbType,
    pub(crate) id: TableId,
    pub(crate) columns: Vec<Column>,
    /// Indexes of the key columns (primary key or configured custom key).
    pub(crate) key: Option<Vec<usize>>,
    /// The Kafka topic this table's records go to.
    pub(crate) topic: String,
    /// A cache slot for an encoder's rendering of this schema version (the DataWorks encoder
    /// keeps its `"schema":{...}` member here). This module never reads or writes it.
    pub(crate) encoded: OnceLock<Box<[u8]>>,
}

impl TableSchema {
    /// A row's identity for matching images of one table against each other (not a Kafka
    /// key): the key columns' values, `None` without a key or when a key column is absent.
    pub(crate) fn key_bytes(&self, row: &[crate::model::value::Value]) -> Option<Vec<u8>> {
        use std::fmt::Write as _;
        let mut s = String::new();
        for &i in self.key.as_ref()? {
            let v = row.get(i)?;
            if v.is_absent() {
                return None;
            }
            match v {
                // one number, however the source typed it (a snapshot's Int, a log's UInt)
                crate::model::value::Value::Int(i) => {
                    let _ = write!(s, "n{i}\u{0}");
                }
                crate::model::value::Value::UInt(u) => {
                    let _ = write!(s, "n{u}\u{0}");
                }
                _ => {
                    let _ = write!(s, "{v:?}\u{0}");
                }
            }
        }
        Some(s.into_bytes())
    }

    pub(crate) fn new(
        db_type: DbType,
        id: TableId,
        columns: Vec<Column>,
        key: Option<Vec<usize>>,
        topic: String,
    ) -> Arc<Self> {
        Arc::new(TableSchema {
            db_type,
            id,
            columns,
            key,
            topic,
            encoded: OnceLock::new(),
        })
    }
}

/// Resolve a topic template over `{db}`, `{schema}`, `{table}`.
pub(crate) fn render_topic(template: &str, id: &TableId) -> String {
    template
        .replace("{db}", &id.db)
        .replace("{schema}", id.schema.as_deref().unwrap_or(&id.db))
        .replace("{table}", &id.table)
}

/// Glob matching with `*` (any run) and `?` (one character), case-sensitive.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Include/exclude filter over pattern names.
#[derive(Clone, Debug, Default)]
pub(crate) struct TableFilter {
    pub(crate) include: Vec<String>,
    pub(crate) exclude: Vec<String>,
}

impl TableFilter {
    pub(crate) fn matches(&self, id: &TableId) -> bool {
        let name = id.pattern_name();
        self.include.iter().any(|p| glob_match(p, &name))
            && !self.exclude.iter().any(|p| glob_match(p, &name))
    }

    /// The include patterns that select nothing that exists and cannot be meant for tables
    /// created later: their schema (database) part matches no existing `schemas`, or their
    /// table part has no wildcard and matches none of the existing tables' pattern `names`.
    /// (A wildcard over an existing schema, `shop.*` in an empty database, may be waiting for
    /// tables to come.)
    pub(crate) fn dead_patterns(&self, schemas: &[String], names: &[String]) -> Vec<&str> {
        self.include
            .iter()
            .filter(|p| match p.split_once('.') {
                None => !p.contains(['*', '?']) && !names.iter().any(|n| glob_match(p, n)),
                Some((schema, table)) => {
                    !schemas.iter().any(|s| glob_match(schema, s))
                        || (!table.contains(['*', '?']) && !names.iter().any(|n| glob_match(p, n)))
                }
            })
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("public.*", "public.orders"));
        assert!(!glob_match("public.*", "sales.orders"));
        assert!(glob_match("*.ord?rs", "x.orders"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("public.a", "public.ab"));
        assert!(glob_match("p*c.*s", "public.orders"));
    }

    #[test]
    fn dead_patterns() {
        let f = TableFilter {
            include: [
                "public.*",
                "public.orders",
                "public.ordrs",
                "sales.*",
                "*.x",
                "s?les.y",
                "*",
                "public.o*",
            ]
            .map(String::from)
            .to_vec(),
            exclude: vec![],
        };
        let schemas = ["public".to_string(), "empty".to_string()];
        let names = ["public.orders".to_string()];
        assert_eq!(
            f.dead_patterns(&schemas, &names),
            ["public.ordrs", "sales.*", "*.x", "s?les.y"]
        );
        // a wildcard over an existing, empty schema waits for tables created later
        let later = TableFilter {
            include: vec!["empty.*".into()],
            exclude: vec![],
        };
        assert!(later.dead_patterns(&schemas, &names).is_empty());
    }

    #[test]
    fn filter_and_topic() {
        let id = TableId {
            db: "shop".into(),
            schema: Some("public".into()),
            table: "orders".into(),
        };
        let f = TableFilter {
            include: vec!["public.*".into()],
            exclude: vec!["*.ord*".into()],
        };
        assert!(!f.matches(&id));
        assert_eq!(
            render_topic("{db}.{schema}.{table}", &id),
            "shop.public.orders"
        );
        let my = TableId {
            db: "shop".into(),
            schema: None,
            table: "t".into(),
        };
        assert_eq!(render_topic("cdc_{schema}_{table}", &my), "cdc_shop_t");
    }
}
