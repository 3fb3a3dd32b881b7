//! What a DDL of each type does (`source.ddl_policy`), as DataWorks lets a user choose per
//! DDL type and Flink CDC's `schema.change.behavior` does as a whole: `apply` (the DDL record
//! as usual), `ignore` (no DDL record), `warn` (the record and a warning naming the table and
//! the type), `stop` (the connector stops before the record, with the fix).
//!
//! Invariants:
//! - A DDL's types come from its op and, for an ALTER, from the table's columns before and
//!   after it (the pipeline keeps each table's last columns, updated where the pipeline learns
//!   a table: never per row). One ALTER can be of several types (a column added and one
//!   dropped); the strictest policy among them decides: stop, then warn, then apply, then
//!   ignore. An ALTER whose columns did not change (an index, a default) is `other`, as are
//!   CINDEX, DINDEX and QUERY records.
//! - `ignore` leaves the DDL record out; the rows after it still carry the table's columns
//!   as they are (a consumer sees an added column appear in the rows).
//! - `stop` happens before the DDL's record is written and before the checkpoint after it:
//!   the position stays before the DDL, so the next start reads it again under the policy
//!   then in force.
use crate::config::DDL_KINDS;
use crate::model::event::DdlOp;
use crate::model::schema::{Column, LogicalType, TableSchema};
use std::collections::{BTreeMap, HashMap};

/// A `source.ddl_policy` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Policy {
    // in order of strictness: the strictest of an ALTER's types decides
    Ignore,
    Apply,
    Warn,
    Stop,
}

impl Policy {
    fn parse(s: &str) -> Option<Policy> {
        Some(match s {
            "apply" => Policy::Apply,
            "ignore" => Policy::Ignore,
            "warn" => Policy::Warn,
            "stop" => Policy::Stop,
            _ => return None,
        })
    }
}

/// A table's columns as the policies compare them: names and types, in table order.
type Shape = Vec<(String, LogicalType)>;

/// The policies of the nine types, and each table's last known columns.
#[derive(Default)]
pub(crate) struct DdlPolicies {
    /// by type name ([`DDL_KINDS`]); a type not named is `apply`
    policy: HashMap<&'static str, Policy>,
    /// each table's columns (name, type) as last learned
    columns: HashMap<String, Shape>,
    /// the table whose columns changed last, and its columns before
    changed: Option<(String, Option<Shape>)>,
}

fn shape(columns: &[Column]) -> Shape {
    columns.iter().map(|c| (c.name.clone(), c.ltype)).collect()
}

impl DdlPolicies {
    /// From `source.ddl_policy` (validated by config: unknown names were refused there).
    pub(crate) fn new(cfg: &BTreeMap<String, String>) -> DdlPolicies {
        let policy = DDL_KINDS
            .iter()
            .filter_map(|k| Some((*k, Policy::parse(cfg.get(*k)?)?)))
            .collect();
        DdlPolicies {
            policy,
            ..Default::default()
        }
    }

    /// The pipeline learned `t`'s current columns (a table appearing, or the schema a DDL
    /// record carries, which the source sends just before it).
    pub(crate) fn learn(&mut self, t: &TableSchema) {
        let name = t.id.pattern_name();
        let now = shape(&t.columns);
        match self.columns.get(&name) {
            Some(before) if *before == now => {}
            _ => {
                let before = self.columns.insert(name.clone(), now);
                self.changed = Some((name, before));
            }
        }
    }

    /// The DDL's types, and the policy that decides (the strictest of theirs).
    pub(crate) fn decide(&mut self, op: DdlOp, t: &TableSchema) -> (Policy, Vec<&'static str>) {
        let name = t.id.pattern_name();
        let before = match self.changed.take() {
            Some((n, before)) if n == name => before,
            // nothing changed since the table was learned: its columns are as they were
            _ => self.columns.get(&name).cloned(),
        };
        let kinds = kinds(op, before.as_deref(), &shape(&t.columns));
        let policy = (kinds.iter())
            .map(|k| self.policy.get(k).copied().unwrap_or(Policy::Apply))
            .max()
            .unwrap_or(Policy::Apply);
        (policy, kinds)
    }
}

/// The types of a DDL: from its op, and for an ALTER from the columns before and after.
fn kinds(
    op: DdlOp,
    before: Option<&[(String, LogicalType)]>,
    after: &[(String, LogicalType)],
) -> Vec<&'static str> {
    match op {
        DdlOp::Create => return vec!["create_table"],
        DdlOp::Erase => return vec!["drop_table"],
        DdlOp::Rename => return vec!["rename_table"],
        DdlOp::Truncate => return vec!["truncate_table"],
        DdlOp::CIndex | DdlOp::DIndex | DdlOp::Query => return vec!["other"],
        DdlOp::Alter => {}
    }
    let Some(before) = before else {
        // a table first seen with this ALTER: which columns it changed is not known
        return vec!["modify_column"];
    };
    let has = |cols: &[(String, LogicalType)], n: &str| cols.iter().any(|(c, _)| c == n);
    let added = after.iter().filter(|(n, _)| !has(before, n)).count();
    let dropped = before.iter().filter(|(n, _)| !has(after, n)).count();
    let retyped = (after.iter()).any(|(n, t)| before.iter().any(|(b, bt)| b == n && bt != t));
    let mut out = Vec::new();
    if added == 1 && dropped == 1 && after.len() == before.len() {
        // one name gone and one new in the same place: a column renamed
        let pos = |cols: &[(String, LogicalType)], other: &[(String, LogicalType)]| {
            cols.iter().position(|(n, _)| !has(other, n))
        };
        if pos(after, before) == pos(before, after) {
            out.push("rename_column");
        }
    }
    if out.is_empty() {
        if added > 0 {
            out.push("add_column");
        }
        if dropped > 0 {
            out.push("drop_column");
        }
    }
    if retyped {
        out.push("modify_column");
    }
    if out.is_empty() {
        out.push("other");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use LogicalType::{Long, String as Str};

    fn cols(c: &[(&str, LogicalType)]) -> Vec<(String, LogicalType)> {
        c.iter().map(|(n, t)| (n.to_string(), *t)).collect()
    }

    #[test]
    fn an_alter_is_typed_by_its_columns() {
        let base = cols(&[("id", Long), ("a", Long), ("b", Str)]);
        let k = |after: &[(&str, LogicalType)]| kinds(DdlOp::Alter, Some(&base), &cols(after));
        assert_eq!(
            k(&[("id", Long), ("a", Long), ("b", Str), ("c", Long)]),
            ["add_column"]
        );
        assert_eq!(k(&[("id", Long), ("a", Long)]), ["drop_column"]);
        assert_eq!(
            k(&[("id", Long), ("x", Long), ("b", Str)]),
            ["rename_column"]
        );
        assert_eq!(
            k(&[("id", Long), ("a", Str), ("b", Str)]),
            ["modify_column"]
        );
        assert_eq!(
            k(&[("id", Long), ("b", Str), ("c", Long)]),
            ["add_column", "drop_column"]
        );
        assert_eq!(k(&[("id", Long), ("a", Long), ("b", Str)]), ["other"]);
        assert_eq!(kinds(DdlOp::Erase, None, &[]), ["drop_table"]);
    }

    #[test]
    fn the_strictest_policy_decides() {
        let cfg = BTreeMap::from([
            ("add_column".to_string(), "ignore".to_string()),
            ("drop_column".to_string(), "stop".to_string()),
        ]);
        let p = DdlPolicies::new(&cfg);
        let pick = |ks: &[&str]| {
            (ks.iter())
                .map(|k| p.policy.get(k).copied().unwrap_or(Policy::Apply))
                .max()
                .unwrap()
        };
        assert_eq!(pick(&["add_column"]), Policy::Ignore);
        assert_eq!(pick(&["add_column", "drop_column"]), Policy::Stop);
        assert_eq!(pick(&["add_column", "modify_column"]), Policy::Apply);
    }
}
