//! Building a [`TableSchema`] from what a source's catalog says: the one place that resolves
//! keys and topics.
//!
//! Invariants:
//! - The key is the configured custom key (`source.keys."<table>"`) when there is one, else the
//!   primary key, else none (records then carry a null Kafka key).
//! - A custom key naming a column the table does not have is a setup error naming the table,
//!   the column and the columns it does have: never a silent fallback, never a null key.
//! - The topic is `kafka.topic` rendered for the table.

use crate::error::SetupError;
use crate::model::schema::{render_topic, Column, DbType, TableId, TableSchema};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) struct SchemaFactory {
    pub(crate) db_type: DbType,
    topic_template: String,
    /// custom key columns by table pattern name (`schema.table` / `db.table`)
    keys: BTreeMap<String, Vec<String>>,
}

impl SchemaFactory {
    pub(crate) fn new(
        db_type: DbType,
        topic_template: &str,
        keys: &BTreeMap<String, Vec<String>>,
    ) -> SchemaFactory {
        SchemaFactory {
            db_type,
            topic_template: topic_template.to_string(),
            keys: keys.clone(),
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
        Ok(self.with_key(id, columns, key))
    }

    /// A schema whose key is already known (a dropped table keeps the key it had, or none).
    pub(crate) fn with_key(
        &self,
        id: TableId,
        columns: Vec<Column>,
        key: Option<Vec<usize>>,
    ) -> Arc<TableSchema> {
        let topic = render_topic(&self.topic_template, &id);
        TableSchema::new(self.db_type, id, columns, key, topic)
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
