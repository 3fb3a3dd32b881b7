//! DDL statements of QUERY events → the DDL op and the tables they touch.
//!
//! A small tokenizer, not a SQL parser: it reads the leading keywords and the table names that
//! follow them. Anything it does not recognise is `QUERY` (for a table it can name) or ignored
//! (no table to attribute it to); it never fails and never stops the stream.

use crate::model::event::DdlOp;

/// A table named by a statement: (database or the event's default, table).
pub(crate) type TableRef = (String, String);

fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    let mut cur = String::new();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                // quoted identifier: keep as is, without quotes, marked by a leading \u{1}
                let mut q = String::from("\u{1}");
                while let Some(n) = chars.next() {
                    if n == '`' {
                        if chars.peek() == Some(&'`') {
                            q.push('`');
                            chars.next();
                            continue;
                        }
                        break;
                    }
                    q.push(n);
                }
                cur.push_str(&q);
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '#' => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            c if c.is_whitespace() || c == ',' || c == '(' || c == ';' || c == ')' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                if c == ',' || c == '(' {
                    out.push(c.to_string());
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn kw(t: &str) -> String {
    if t.starts_with('\u{1}') {
        String::new()
    } else {
        t.to_ascii_uppercase()
    }
}

/// `db.t`, `` `db`.`t` ``, `t` → (db, t)
fn table_ref(tok: &str, default_db: &str) -> TableRef {
    let parts: Vec<String> = tok
        .split('.')
        .map(|p| p.trim_start_matches('\u{1}').to_string())
        .collect();
    match parts.as_slice() {
        [db, t] => (db.clone(), t.clone()),
        _ => (default_db.to_string(), parts.join(".")),
    }
}

/// Classify a statement; returns None when it touches no table (GRANT, CREATE DATABASE, ...).
pub(crate) fn classify(sql: &str, default_db: &str) -> Option<(DdlOp, Vec<TableRef>)> {
    let t = tokens(sql);
    let k: Vec<String> = t.iter().map(|x| kw(x)).collect();
    let at = |i: usize| k.get(i).map(String::as_str).unwrap_or("");
    let mut i;
    let skip_if_exists = |i: &mut usize| {
        if at(*i) == "IF" && (at(*i + 1) == "EXISTS" || at(*i + 2) == "EXISTS") {
            *i += if at(*i + 1) == "NOT" { 3 } else { 2 };
        }
    };
    match at(0) {
        "CREATE" => {
            i = 1;
            if at(i) == "OR" && at(i + 1) == "REPLACE" {
                i += 2;
            }
            while matches!(
                at(i),
                "TEMPORARY" | "UNIQUE" | "FULLTEXT" | "SPATIAL" | "ONLINE" | "OFFLINE"
            ) {
                i += 1;
            }
            match at(i) {
                "TABLE" => {
                    i += 1;
                    skip_if_exists(&mut i);
                    Some((DdlOp::Create, vec![table_ref(t.get(i)?, default_db)]))
                }
                "INDEX" => {
                    // CREATE INDEX name ON tbl
                    let on = k.iter().position(|x| x == "ON")?;
                    Some((DdlOp::CIndex, vec![table_ref(t.get(on + 1)?, default_db)]))
                }
                _ => None,
            }
        }
        "ALTER" => {
            i = 1;
            while matches!(at(i), "ONLINE" | "IGNORE") {
                i += 1;
            }
            if at(i) != "TABLE" {
                return None;
            }
            i += 1;
            skip_if_exists(&mut i);
            let tbl = table_ref(t.get(i)?, default_db);
            let rest: Vec<&str> = k[i + 1..].iter().map(String::as_str).collect();
            let renames_table = rest
                .windows(2)
                .any(|w| w[0] == "RENAME" && (w[1] == "TO" || w[1] == "AS"))
                || (rest.first() == Some(&"RENAME")
                    && !matches!(rest.get(1), Some(&"COLUMN") | Some(&"INDEX") | Some(&"KEY")));
            if renames_table {
                let to = k.iter().rposition(|x| x == "TO" || x == "AS")?;
                return Some((DdlOp::Rename, vec![table_ref(t.get(to + 1)?, default_db)]));
            }
            let op = if rest.first() == Some(&"ADD")
                && matches!(
                    rest.get(1),
                    Some(&"INDEX") | Some(&"KEY") | Some(&"UNIQUE") | Some(&"FULLTEXT")
                ) {
                DdlOp::CIndex
            } else if rest.first() == Some(&"DROP")
                && matches!(rest.get(1), Some(&"INDEX") | Some(&"KEY"))
            {
                DdlOp::DIndex
            } else {
                DdlOp::Alter
            };
            Some((op, vec![tbl]))
        }
        "RENAME" if at(1) == "TABLE" || at(1) == "TABLES" => {
            // RENAME TABLE a TO b, c TO d: the new names
            let mut out = Vec::new();
            for (j, x) in k.iter().enumerate() {
                if x == "TO" {
                    out.push(table_ref(t.get(j + 1)?, default_db));
                }
            }
            Some((DdlOp::Rename, out))
        }
        "DROP" => {
            i = 1;
            if at(i) == "TEMPORARY" {
                i += 1;
            }
            match at(i) {
                "TABLE" | "TABLES" => {
                    i += 1;
                    skip_if_exists(&mut i);
                    let tables = t[i..]
                        .iter()
                        .zip(k[i..].iter())
                        .take_while(|(_, kw)| {
                            !matches!(kw.as_str(), "RESTRICT" | "CASCADE" | "WAIT" | "NOWAIT")
                        })
                        .filter(|(tok, _)| tok.as_str() != ",")
                        .map(|(tok, _)| table_ref(tok, default_db))
                        .collect();
                    Some((DdlOp::Erase, tables))
                }
                "INDEX" => {
                    let on = k.iter().position(|x| x == "ON")?;
                    Some((DdlOp::DIndex, vec![table_ref(t.get(on + 1)?, default_db)]))
                }
                _ => None,
            }
        }
        "TRUNCATE" => {
            i = if at(1) == "TABLE" { 2 } else { 1 };
            Some((DdlOp::Truncate, vec![table_ref(t.get(i)?, default_db)]))
        }
        _ => None,
    }
}

/// Every identifier of a statement that could name a table (`t`, `db.t`, quoted or not), as
/// candidates for a `QUERY` record when `classify` cannot read the statement.
pub(crate) fn mentioned_tables(sql: &str, default_db: &str) -> Vec<TableRef> {
    let mut out: Vec<TableRef> = Vec::new();
    for tok in tokens(sql) {
        if tok == "," || tok == "(" || tok.starts_with('\'') || tok.starts_with('"') {
            continue;
        }
        let r = table_ref(&tok, default_db);
        if !r.1.is_empty() && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// Statements that are transaction control or DML in a QUERY event, not DDL.
pub(crate) fn is_dml_or_control(sql: &str) -> bool {
    let t = tokens(sql);
    let first = t.first().map(|x| kw(x)).unwrap_or_default();
    matches!(
        first.as_str(),
        "BEGIN"
            | "COMMIT"
            | "ROLLBACK"
            | "SAVEPOINT"
            | "XA"
            | "INSERT"
            | "UPDATE"
            | "DELETE"
            | "REPLACE"
            | "SET"
            | "FLUSH"
            | ""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(sql: &str) -> Option<(DdlOp, Vec<TableRef>)> {
        classify(sql, "shop")
    }
    fn r(db: &str, t: &str) -> TableRef {
        (db.into(), t.into())
    }

    #[test]
    fn statements() {
        assert_eq!(
            c("CREATE TABLE t (id int)"),
            Some((DdlOp::Create, vec![r("shop", "t")]))
        );
        assert_eq!(
            c("create table if not exists `x`.`y` (a int)"),
            Some((DdlOp::Create, vec![r("x", "y")]))
        );
        assert_eq!(
            c("/* c */ ALTER TABLE t ADD COLUMN b int"),
            Some((DdlOp::Alter, vec![r("shop", "t")]))
        );
        assert_eq!(
            c("ALTER TABLE t RENAME TO u"),
            Some((DdlOp::Rename, vec![r("shop", "u")]))
        );
        assert_eq!(
            c("ALTER TABLE t RENAME COLUMN a TO b"),
            Some((DdlOp::Alter, vec![r("shop", "t")]))
        );
        assert_eq!(
            c("ALTER TABLE t ADD INDEX i (a)"),
            Some((DdlOp::CIndex, vec![r("shop", "t")]))
        );
        assert_eq!(
            c("RENAME TABLE a TO b, c TO d"),
            Some((DdlOp::Rename, vec![r("shop", "b"), r("shop", "d")]))
        );
        assert_eq!(
            c("DROP TABLE IF EXISTS a, `db2`.b"),
            Some((DdlOp::Erase, vec![r("shop", "a"), r("db2", "b")]))
        );
        assert_eq!(
            c("DROP TABLE `t` /* generated by server */"),
            Some((DdlOp::Erase, vec![r("shop", "t")]))
        );
        assert_eq!(
            c("TRUNCATE TABLE t"),
            Some((DdlOp::Truncate, vec![r("shop", "t")]))
        );
        assert_eq!(
            c("truncate t2"),
            Some((DdlOp::Truncate, vec![r("shop", "t2")]))
        );
        assert_eq!(
            c("CREATE UNIQUE INDEX i ON t (a)"),
            Some((DdlOp::CIndex, vec![r("shop", "t")]))
        );
        assert_eq!(
            c("DROP INDEX i ON t"),
            Some((DdlOp::DIndex, vec![r("shop", "t")]))
        );
        assert_eq!(c("GRANT SELECT ON *.* TO x"), None);
        assert_eq!(c("CREATE DATABASE x"), None);
        assert_eq!(c("this is not sql at all"), None);
        let m = mentioned_tables(
            "CREATE TRIGGER trg BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1",
            "shop",
        );
        assert!(m.contains(&r("shop", "t")) && m.contains(&r("shop", "trg")));
        assert!(is_dml_or_control("BEGIN"));
        assert!(!is_dml_or_control("ALTER TABLE t ADD b int"));
    }
}
