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
    /// What the logical type leaves open about the source type (see [`Refine`]).
    pub(crate) refine: Refine,
}

/// What a column's DataWorks type leaves open and a reader that types columns (the lake
/// sink) needs: carried in the `rowstream.types` Kafka header, never in the envelope, whose
/// JSON stays DataWorks' own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Refine {
    /// the logical type says it all
    #[default]
    None,
    /// a binary floating-point DOUBLE (float4/8, FLOAT, DOUBLE)
    Float,
    /// an exact DOUBLE with a fixed precision and scale (numeric(p,s), DECIMAL(p,s), money)
    Decimal { precision: u8, scale: u8 },
    /// an exact DOUBLE without a fixed scale (numeric, or a precision beyond 38 digits)
    Numeric,
    /// a LONG that may exceed 2^63−1 (BIGINT UNSIGNED)
    Unsigned64,
}

impl Refine {
    /// An exact numeric of `precision` digits and `scale`: `Decimal` when it fits a 128-bit
    /// decimal (38 digits), else `Numeric`.
    pub(crate) fn decimal(precision: u32, scale: u32) -> Refine {
        match (u8::try_from(precision), u8::try_from(scale)) {
            (Ok(p), Ok(s)) if (1..=38).contains(&p) && s <= p => Refine::Decimal {
                precision: p,
                scale: s,
            },
            _ => Refine::Numeric,
        }
    }

    /// This refinement's token in the `rowstream.types` header (`""` for none).
    pub(crate) fn token(self) -> String {
        match self {
            Refine::None => String::new(),
            Refine::Float => "float".into(),
            Refine::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            Refine::Numeric => "numeric".into(),
            Refine::Unsigned64 => "uint64".into(),
        }
    }

    /// A token of the `rowstream.types` header; an unknown one (a newer writer's) is `None`.
    pub(crate) fn parse(token: &str) -> Refine {
        match token {
            "float" => Refine::Float,
            "numeric" => Refine::Numeric,
            "uint64" => Refine::Unsigned64,
            t => t
                .strip_prefix("decimal(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.split_once(','))
                .and_then(|(p, s)| Some(Refine::decimal(p.parse().ok()?, s.parse().ok()?)))
                .unwrap_or(Refine::None),
        }
    }
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
    /// the `rowstream.types` header of its row records (`None`: no column needs one)
    pub(crate) types: Option<Box<str>>,
    /// how each column reaches the records (`source.columns`, `source.column_exclude`,
    /// `source.column_masks`), by column index; `None`: every column as it is
    pub(crate) shown: Option<Box<[Shown]>>,
    /// the logical table this one is a shard of (`source.routes`); `None`: itself
    pub(crate) route: Option<Box<Route>>,
}

/// A shard's place in the logical table it merges into (`source.routes`): its records name
/// the logical table (`dbName`, `schemaName`, `tableName`, topic), carry the shard's name in
/// one more column, last, and that column is part of their key (Kafka key and `primaryKey`
/// end with it), so equal keys of two shards never collide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// the logical table
    pub(crate) target: TableId,
    /// the column naming the shard (`source.shard_column`)
    pub(crate) column: String,
    /// the shard's name as the column holds it (its `schema.table` / `db.table`)
    pub(crate) shard: String,
}

/// How a column reaches the records. Decided once per table schema (by
/// `source::schemas`); every writer of rows (the DataWorks encoder, `copy`'s plain formats)
/// goes through [`TableSchema::shown`], so a left-out or masked value never reaches Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Shown {
    /// the value as it is
    Value,
    /// left out: not in `schema.dataColumn`, not in the images
    Dropped,
    /// always null (the column and its type stay)
    Null,
    /// the lowercase hex SHA-256 of the salt followed by the value's text; a STRING column
    Hash(Arc<[u8]>),
    /// the first n characters of the value's text, each later one as `*`; a STRING column
    Keep(usize),
}

static AS_IS: Shown = Shown::Value;

impl Shown {
    /// The column's type in the records: a hash or a kept prefix is text.
    pub(crate) fn ltype(&self, ltype: LogicalType) -> LogicalType {
        match self {
            Shown::Hash(_) | Shown::Keep(_) => LogicalType::String,
            _ => ltype,
        }
    }

    /// The masked text of a value whose text is `text` (`Hash`, `Keep` only).
    pub(crate) fn mask(&self, text: &[u8]) -> String {
        match self {
            Shown::Hash(salt) => {
                use sha2::Digest as _;
                let mut h = sha2::Sha256::new();
                h.update(salt);
                h.update(text);
                h.finalize().iter().map(|b| format!("{b:02x}")).collect()
            }
            Shown::Keep(n) => String::from_utf8_lossy(text)
                .chars()
                .enumerate()
                .map(|(i, c)| if i < *n { c } else { '*' })
                .collect(),
            _ => String::new(),
        }
    }
}

/// The Kafka header that refines the column types of a table's row records (see [`Refine`]).
pub(crate) const TYPES_HEADER: &str = "rowstream.types";

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

    #[cfg(test)]
    pub(crate) fn new(
        db_type: DbType,
        id: TableId,
        columns: Vec<Column>,
        key: Option<Vec<usize>>,
        topic: String,
    ) -> Arc<Self> {
        Self::new_routed(db_type, id, columns, key, topic, None, None)
    }

    /// A schema whose columns reach the records as `shown` says (`None`: as they are), as a
    /// shard of `route`'s logical table (`None`: as itself).
    pub(crate) fn new_routed(
        db_type: DbType,
        id: TableId,
        columns: Vec<Column>,
        key: Option<Vec<usize>>,
        topic: String,
        shown: Option<Box<[Shown]>>,
        route: Option<Box<Route>>,
    ) -> Arc<Self> {
        let mut types = types_header(&columns, shown.as_deref());
        if let (Some(t), Some(_)) = (&mut types, &route) {
            // the shard column, last, needs no refinement
            *t = format!("{t};").into_boxed_str();
        }
        Arc::new(TableSchema {
            db_type,
            id,
            key,
            topic,
            encoded: OnceLock::new(),
            types,
            columns,
            shown,
            route,
        })
    }

    /// The table its records name: the logical table of a shard, else itself.
    pub(crate) fn shown_id(&self) -> &TableId {
        self.route.as_ref().map_or(&self.id, |r| &r.target)
    }

    /// How column `i` reaches the records.
    pub(crate) fn shown(&self, i: usize) -> &Shown {
        self.shown.as_ref().and_then(|s| s.get(i)).unwrap_or(&AS_IS)
    }
}

/// The `rowstream.types` header of a table's row records: each column's [`Refine`] token in
/// the order of `schema.dataColumn` (left-out columns skipped, masked ones text), joined by
/// `;`; `None` when no column has one.
fn types_header(columns: &[Column], shown: Option<&[Shown]>) -> Option<Box<str>> {
    let shown = |i: usize| shown.and_then(|s| s.get(i)).unwrap_or(&AS_IS);
    let tokens: Vec<Refine> = (columns.iter().enumerate())
        .filter(|(i, _)| *shown(*i) != Shown::Dropped)
        .map(|(i, c)| match shown(i) {
            Shown::Hash(_) | Shown::Keep(_) => Refine::None,
            _ => c.refine,
        })
        .collect();
    if tokens.iter().all(|r| *r == Refine::None) {
        return None;
    }
    let tokens: Vec<String> = tokens.iter().map(|r| r.token()).collect();
    Some(tokens.join(";").into_boxed_str())
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
