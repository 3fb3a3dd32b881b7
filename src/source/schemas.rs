//! Building a [`TableSchema`] from what a source's catalog says: the one place that resolves
//! keys and topics.
//!
//! Invariants:
//! - The key is the configured custom key (`source.keys."<table>"`) when there is one, else the
//!   primary key, else none (records then carry a null Kafka key).
//! - A custom key naming a column the table does not have is a setup error naming the table,
//!   the column and the columns it does have: never a silent fallback, never a null key.
//! - The topic is `kafka.topic` rendered for the table.
//! - Which columns reach the records, and masked how (`source.columns`,
//!   `source.column_exclude`, `source.column_masks`), is decided here for every schema version
//!   (a column added later follows the rules too) and carried by the schema
//!   ([`TableSchema::shown`]); a key column left out or masked is a setup error (the Kafka key
//!   would carry it), as is a `source.columns` entry naming a column the table lacks.
//! - A table matched by `source.routes` is a shard of the logical table the route names: its
//!   records name that table and go to its topic, with the shard's name in the column
//!   `source.shard_column`, last in the columns and the key (see [`Route`]).

use crate::config::{parse_mask, ColumnMask, SourceConfig};
use crate::error::SetupError;
use crate::model::schema::{
    glob_match, render_topic, Column, DbType, Route, Shown, TableId, TableSchema,
};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) struct SchemaFactory {
    pub(crate) db_type: DbType,
    topic_template: String,
    /// custom key columns by table pattern name (`schema.table` / `db.table`)
    keys: BTreeMap<String, Vec<String>>,
    rules: ColumnRules,
    /// `source.routes`: shard pattern → logical table (`schema.table` / `db.table`)
    routes: Vec<(String, String)>,
    shard_column: String,
}

/// `source.columns`, `source.column_exclude`, `source.column_masks` and the salt.
#[derive(Default)]
struct ColumnRules {
    kept: BTreeMap<String, Vec<String>>,
    exclude: Vec<String>,
    masks: Vec<(String, ColumnMask)>,
    salt: Arc<[u8]>,
}

impl ColumnRules {
    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.exclude.is_empty() && self.masks.is_empty()
    }

    /// How each column of `id` reaches the records (`None`: all as they are).
    fn shown(&self, id: &TableId, columns: &[Column]) -> Result<Option<Box<[Shown]>>, SetupError> {
        if self.is_empty() {
            return Ok(None);
        }
        let name = id.pattern_name();
        let kept = self.kept.iter().find(|(pat, _)| glob_match(pat, &name));
        if let Some((pat, cols)) = kept {
            if let Some(c) = cols.iter().find(|c| !columns.iter().any(|x| &x.name == *c)) {
                let have: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                return Err(SetupError::new(
                    format!(
                        "source.columns.\"{pat}\" names column `{c}`, which table {name} does not have (its columns: {})",
                        have.join(", ")
                    ),
                    format!("fix source.columns.\"{pat}\" to name existing columns"),
                ));
            }
        }
        let shown: Box<[Shown]> = columns
            .iter()
            .map(|c| {
                let full = format!("{name}.{}", c.name);
                if kept.is_some_and(|(_, cols)| !cols.contains(&c.name))
                    || self.exclude.iter().any(|p| glob_match(p, &full))
                {
                    return Shown::Dropped;
                }
                match self.masks.iter().find(|(p, _)| glob_match(p, &full)) {
                    Some((_, ColumnMask::Hash)) => Shown::Hash(self.salt.clone()),
                    Some((_, ColumnMask::Keep(n))) => Shown::Keep(*n),
                    Some((_, ColumnMask::Null)) => Shown::Null,
                    None => Shown::Value,
                }
            })
            .collect();
        Ok(shown.iter().any(|s| *s != Shown::Value).then_some(shown))
    }
}

impl SchemaFactory {
    pub(crate) fn new(db_type: DbType, topic_template: &str, src: &SourceConfig) -> SchemaFactory {
        SchemaFactory {
            db_type,
            topic_template: topic_template.to_string(),
            keys: src.keys.clone(),
            routes: src
                .routes
                .iter()
                .map(|(p, t)| (p.clone(), t.clone()))
                .collect(),
            shard_column: src.shard_column.clone(),
            rules: ColumnRules {
                kept: src.columns.clone(),
                exclude: src.column_exclude.clone(),
                // validated by config; an unparsable one cannot reach here
                masks: (src.column_masks.iter())
                    .filter_map(|(p, m)| Some((p.clone(), parse_mask(m)?)))
                    .collect(),
                salt: src.mask_salt.as_bytes().into(),
            },
        }
    }

    /// The schema of table `id` with `columns` (table order) and its primary key column names.
    pub(crate) fn build(
        &self,
        id: TableId,
        columns: Vec<Column>,
        primary_key: &[String],
    ) -> Result<Arc<TableSchema>, SetupError> {
        let key = resolve_key(&id, &columns, primary_key, &self.keys)?;
        let shown = self.rules.shown(&id, &columns)?;
        if let (Some(k), Some(sh)) = (&key, &shown) {
            if let Some(&i) = k.iter().find(|&&i| sh[i] != Shown::Value) {
                let name = id.pattern_name();
                return Err(SetupError::new(
                    format!(
                        "column `{}` of table {name} is in its key, so it cannot be left out or masked: the Kafka key carries its value",
                        columns[i].name
                    ),
                    format!("leave it as it is (source.columns, source.column_exclude, source.column_masks), or key the table by other columns with source.keys.\"{name}\""),
                ));
            }
        }
        let route = self.route(&id, &columns)?;
        let topic = render_topic(
            &self.topic_template,
            route.as_ref().map_or(&id, |r| &r.target),
        );
        Ok(TableSchema::new_routed(
            self.db_type,
            id,
            columns,
            key,
            topic,
            shown,
            route,
        ))
    }

    /// The logical table `id` is a shard of, if a route matches it.
    fn route(&self, id: &TableId, columns: &[Column]) -> Result<Option<Box<Route>>, SetupError> {
        let name = id.pattern_name();
        let Some((pat, to)) = self.routes.iter().find(|(p, _)| glob_match(p, &name)) else {
            return Ok(None);
        };
        if columns.iter().any(|c| c.name == self.shard_column) {
            return Err(SetupError::new(
                format!(
                    "table {name}, merged by source.routes.\"{pat}\", has a column named `{}` already: the shard column would hide it",
                    self.shard_column
                ),
                "set source.shard_column to a name no merged table uses",
            ));
        }
        let (first, table) = to.split_once('.').unwrap_or((to, to));
        let target = match &id.schema {
            Some(_) => TableId {
                db: id.db.clone(),
                schema: Some(first.to_string()),
                table: table.to_string(),
            },
            None => TableId {
                db: first.to_string(),
                schema: None,
                table: table.to_string(),
            },
        };
        Ok(Some(Box::new(Route {
            target,
            column: self.shard_column.clone(),
            shard: name,
        })))
    }

    /// A schema whose key is already known (a dropped table keeps the key it had, or none).
    pub(crate) fn with_key(
        &self,
        id: TableId,
        columns: Vec<Column>,
        key: Option<Vec<usize>>,
    ) -> Arc<TableSchema> {
        // a dropped table's last schema: its columns masked as before, never shown in full
        let shown = self
            .rules
            .shown(&id, &columns)
            .unwrap_or_else(|_| Some(columns.iter().map(|_| Shown::Null).collect()));
        let route = self.route(&id, &columns).unwrap_or(None);
        let topic = render_topic(
            &self.topic_template,
            route.as_ref().map_or(&id, |r| &r.target),
        );
        TableSchema::new_routed(self.db_type, id, columns, key, topic, shown, route)
    }
}

/// Column indexes of the key of `id`: the custom key, else the primary key, else none.
pub(crate) fn resolve_key(
    id: &TableId,
    columns: &[Column],
    primary_key: &[String],
    custom: &BTreeMap<String, Vec<String>>,
) -> Result<Option<Vec<usize>>, SetupError> {
    let name = id.pattern_name();
    let index = |c: &String| columns.iter().position(|x| &x.name == c);
    if let Some(cols) = custom.get(&name) {
        let mut key = Vec::with_capacity(cols.len());
        for c in cols {
            match index(c) {
                Some(i) => key.push(i),
                None => {
                    let have: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                    return Err(SetupError::new(
                        format!(
                            "source.keys.\"{name}\" names column `{c}`, which table {name} does not have (its columns: {})",
                            have.join(", ")
                        ),
                        format!("fix source.keys.\"{name}\" to name existing columns, or remove it to use the primary key"),
                    ));
                }
            }
        }
        return Ok(Some(key));
    }
    let key: Option<Vec<usize>> = primary_key.iter().map(index).collect();
    Ok(key.filter(|k| !k.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::LogicalType;

    #[test]
    fn custom_primary_or_none_and_a_bad_entry_is_an_error() {
        let id = TableId {
            db: "d".into(),
            schema: Some("s".into()),
            table: "t".into(),
        };
        let cols: Vec<Column> = ["id", "tenant", "v"]
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                ltype: LogicalType::Long,
                fsp: 0,
                refine: Default::default(),
            })
            .collect();
        let none = BTreeMap::new();
        let pk = vec!["id".to_string()];
        assert_eq!(resolve_key(&id, &cols, &pk, &none).unwrap(), Some(vec![0]));
        assert_eq!(resolve_key(&id, &cols, &[], &none).unwrap(), None);
        let custom = BTreeMap::from([("s.t".to_string(), vec!["tenant".into(), "id".into()])]);
        assert_eq!(
            resolve_key(&id, &cols, &pk, &custom).unwrap(),
            Some(vec![1, 0])
        );
        let bad = BTreeMap::from([("s.t".to_string(), vec!["tenant_id".into()])]);
        let e = resolve_key(&id, &cols, &pk, &bad).unwrap_err();
        assert!(
            e.problem.contains("`tenant_id`") && e.problem.contains("s.t"),
            "{e}"
        );
        assert!(e.problem.contains("id, tenant, v"), "{e}");
        assert!(e.fix.contains("source.keys.\"s.t\""), "{e}");
    }
}
