//! What a TABLE_MAP event says of its table's columns, and whether a definition fits it.
//!
//! Every rows event follows a TABLE_MAP holding the physical type and metadata of each column
//! (DECIMAL precision and scale, fractional digits, BIT width, BINARY length) and, with
//! `binlog_row_metadata = FULL`, their names, signedness, charsets, ENUM/SET labels and the
//! primary key: the table as it was when the row was written. `information_schema` knows the
//! table only as it is now, which is another table when the stream reads a statement older than
//! a later DDL (a stream behind the server, a restart, a replay from an earlier position).
//!
//! Written by hand over mysql_common's accessors: no crate maps a TABLE_MAP back to SQL types.
//!
//! Invariants:
//! - A definition decodes a rows event only if it [`TableMap::fits`]: the same number of
//!   columns, each of the same type family and, where the event carries them, the same names,
//!   signedness, DECIMAL precision and scale, fractional digits, BIT widths, BINARY lengths and
//!   ENUM/SET labels. A column type rowstream does not know the family of fits any.
//! - [`TableMap::definition`] builds a definition from the event only when it carries the
//!   column names; what the binlog never carries (TINYINT(1), the spelling of a text type) is
//!   taken from a same-named column of a known definition that fits the event's column.

use super::schema::{MyCol, MyTable};
use mysql_async::binlog::events::{OptionalMetaExtractor, TableMapEvent};
use mysql_async::consts::ColumnType;

/// The columns of one TABLE_MAP event, as [`MyCol`]s, with what the event told of them.
pub(crate) struct TableMap {
    columns: Vec<MyCol>,
    /// the event carried column names (binlog_row_metadata = FULL)
    named: bool,
    /// it carried signedness (MINIMAL and FULL)
    signed: bool,
    /// it carried ENUM/SET labels (FULL)
    labeled: bool,
    /// primary key column positions (FULL)
    pk: Option<Vec<usize>>,
}

/// ISO-8859-1 collations (MySQL's and MariaDB's NOPAD ones): text decoded byte for byte.
const LATIN1: [u16; 10] = [5, 8, 15, 31, 47, 48, 49, 94, 1032, 1071];
const BINARY: u16 = 63;

impl TableMap {
    /// Read the event's columns. An event rowstream cannot read a column type of (a type newer
    /// than this build) gives a map whose columns of that type fit anything.
    pub(crate) fn of(tme: &TableMapEvent<'_>) -> TableMap {
        let n = tme.columns_count() as usize;
        let meta = OptionalMetaExtractor::new(tme.iter_optional_meta()).ok();
        let mut names: Vec<String> = Vec::new();
        let mut signs: Vec<bool> = Vec::new();
        let mut charsets: Vec<u16> = Vec::new();
        let mut enum_charsets: Vec<u16> = Vec::new();
        let mut pk: Option<Vec<usize>> = None;
        let mut labeled = false;
        if let Some(m) = &meta {
            names = m
                .iter_column_name()
                .take(n)
                .filter_map(|c| c.ok().map(|c| c.name().into_owned()))
                .collect();
            signs = m.iter_signedness().take(n).collect();
            charsets = m.iter_charset().take(n).filter_map(Result::ok).collect();
            enum_charsets = m
                .iter_enum_and_set_charset()
                .take(n)
                .filter_map(Result::ok)
                .collect();
            let keys: Vec<usize> = m
                .iter_primary_key()
                .filter_map(|k| k.ok().map(|k| k as usize))
                .collect();
            if !keys.is_empty() {
                pk = Some(keys);
            }
        }
        // ENUM and SET labels come in the order of those columns
        let (mut enum_labels, mut set_labels) = (Vec::new(), Vec::new());
        for field in tme.iter_optional_meta().flatten() {
            use mysql_async::binlog::events::OptionalMetadataField as F;
            match field {
                F::EnumStrValue(v) => {
                    labeled = true;
                    enum_labels = v
                        .iter_values()
                        .flatten()
                        .map(|l| l.values().iter().map(|x| x.value().into_owned()).collect())
                        .collect();
                }
                F::SetStrValue(v) => {
                    labeled = true;
                    set_labels = v
                        .iter_values()
                        .flatten()
                        .map(|l| l.values().iter().map(|x| x.value().into_owned()).collect())
                        .collect();
                }
                _ => {}
            }
        }
        let (mut ei, mut si, mut ci, mut eci, mut ni) = (0, 0, 0, 0, 0);
        let mut columns = Vec::with_capacity(n);
        for i in 0..n {
            let ty = tme.get_column_type(i).ok().flatten();
            let raw = tme.get_column_metadata(i).unwrap_or(&[]);
            let unsigned = match ty {
                Some(t) if t.is_numeric_type() => {
                    ni += 1;
                    signs.get(ni - 1).copied().unwrap_or(false)
                }
                _ => false,
            };
            let charset = match ty {
                Some(t) if t.is_character_type() => {
                    ci += 1;
                    charsets.get(ci - 1).copied()
                }
                Some(t) if t.is_enum_or_set_type() => {
                    eci += 1;
                    enum_charsets.get(eci - 1).copied()
                }
                _ => None,
            };
            let col_labels = match ty {
                Some(ColumnType::MYSQL_TYPE_ENUM) => {
                    ei += 1;
                    enum_labels.get(ei - 1).cloned().unwrap_or_default()
                }
                Some(ColumnType::MYSQL_TYPE_SET) => {
                    si += 1;
                    set_labels.get(si - 1).cloned().unwrap_or_default()
                }
                _ => vec![],
            };
            let mut c = column(ty, raw, charset);
            c.name = names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("@{}", i + 1));
            c.unsigned = unsigned;
            c.labels = col_labels;
            columns.push(c);
        }
        TableMap {
            named: n > 0 && names.len() == n,
            signed: !signs.is_empty(),
            labeled,
            pk,
            columns,
        }
    }

    /// Does `def` describe the rows of this event (see the module's invariants)?
    pub(crate) fn fits(&self, def: &MyTable) -> bool {
        def.columns.len() == self.columns.len()
            && def
                .columns
                .iter()
                .zip(&self.columns)
                .all(|(d, m)| self.column_fits(d, m))
    }

    fn column_fits(&self, d: &MyCol, m: &MyCol) -> bool {
        let Some(fam) = family(&d.data_type) else {
            return !self.named || d.name == m.name;
        };
        if family(&m.data_type).is_some_and(|f| f != fam) {
            return false;
        }
        if self.named && d.name != m.name {
            return false;
        }
        match fam {
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "float"
            | "double"
                if self.signed && d.unsigned != m.unsigned =>
            {
                false
            }
            "decimal" => (d.precision == 0 || d.precision == m.precision) && d.scale == m.scale,
            "time" | "datetime" | "timestamp" => d.fsp == m.fsp,
            "bit" => d.bits == m.bits,
            "enum" | "set" => !self.labeled || d.labels == m.labels,
            "char" if d.data_type == "binary" && m.data_type == "binary" => d.len == m.len,
            _ => true,
        }
    }

    /// A definition of `db`.`table` from this event, when it carries the column names: each
    /// column as the event gives it, or as `known` has a same-named column that fits it (which
    /// keeps what the binlog does not carry, such as TINYINT(1)); the event's primary key, else
    /// `known`'s columns that remain. `None` without names.
    pub(crate) fn definition(
        &self,
        db: &str,
        table: &str,
        known: Option<&MyTable>,
    ) -> Option<MyTable> {
        if !self.named {
            return None;
        }
        let columns: Vec<MyCol> = self
            .columns
            .iter()
            .map(|m| {
                known
                    .and_then(|k| k.columns.iter().find(|d| d.name == m.name))
                    .filter(|d| self.column_fits(d, m))
                    .cloned()
                    .unwrap_or_else(|| m.clone())
            })
            .collect();
        let pk = match &self.pk {
            Some(ix) => ix
                .iter()
                .filter_map(|&i| columns.get(i).map(|c| c.name.clone()))
                .collect(),
            None => known
                .map(|k| {
                    k.pk.iter()
                        .filter(|p| columns.iter().any(|c| &c.name == *p))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        };
        Some(MyTable {
            db: db.into(),
            table: table.into(),
            columns,
            pk,
        })
    }
}

/// A column as the event's type and metadata describe it (no name, signedness or labels yet).
fn column(ty: Option<ColumnType>, meta: &[u8], collation: Option<u16>) -> MyCol {
    use ColumnType::*;
    let binary = collation == Some(BINARY);
    let charset = collation.map(|c| {
        if c == BINARY {
            "binary".to_string()
        } else if LATIN1.contains(&c) {
            "latin1".to_string()
        } else {
            "utf8mb4".to_string()
        }
    });
    let b = |i: usize| meta.get(i).copied().unwrap_or(0);
    let mut c = MyCol::plain("", "");
    c.data_type = match ty {
        Some(MYSQL_TYPE_TINY) => "tinyint",
        Some(MYSQL_TYPE_SHORT) => "smallint",
        Some(MYSQL_TYPE_INT24) => "mediumint",
        Some(MYSQL_TYPE_LONG) => "int",
        Some(MYSQL_TYPE_LONGLONG) => "bigint",
        Some(MYSQL_TYPE_FLOAT) => "float",
        Some(MYSQL_TYPE_DOUBLE) => "double",
        Some(MYSQL_TYPE_DECIMAL) | Some(MYSQL_TYPE_NEWDECIMAL) => {
            c.precision = b(0) as u32;
            c.scale = b(1) as u32;
            "decimal"
        }
        Some(MYSQL_TYPE_YEAR) => "year",
        Some(MYSQL_TYPE_DATE) | Some(MYSQL_TYPE_NEWDATE) => "date",
        Some(MYSQL_TYPE_TIME) => "time",
        Some(MYSQL_TYPE_DATETIME) => "datetime",
        Some(MYSQL_TYPE_TIMESTAMP) => "timestamp",
        Some(MYSQL_TYPE_TIME2) => {
            c.fsp = b(0).min(6);
            "time"
        }
        Some(MYSQL_TYPE_DATETIME2) => {
            c.fsp = b(0).min(6);
            "datetime"
        }
        Some(MYSQL_TYPE_TIMESTAMP2) => {
            c.fsp = b(0).min(6);
            "timestamp"
        }
        Some(MYSQL_TYPE_BIT) => {
            c.bits = b(1) as u32 * 8 + b(0) as u32;
            "bit"
        }
        Some(MYSQL_TYPE_JSON) => "json",
        Some(MYSQL_TYPE_ENUM) => "enum",
        Some(MYSQL_TYPE_SET) => "set",
        Some(MYSQL_TYPE_GEOMETRY) => "geometry",
        Some(MYSQL_TYPE_VARCHAR) | Some(MYSQL_TYPE_VAR_STRING) if binary => "varbinary",
        Some(MYSQL_TYPE_VARCHAR) | Some(MYSQL_TYPE_VAR_STRING) => "varchar",
        Some(MYSQL_TYPE_STRING) if binary => {
            // CHAR/BINARY: the length's high bits ride in the first byte
            let (b0, b1) = (b(0), b(1));
            c.len = if b0 & 0x30 != 0x30 {
                b1 as u32 | ((((b0 & 0x30) ^ 0x30) as u32) << 4)
            } else {
                b1 as u32
            };
            "binary"
        }
        Some(MYSQL_TYPE_STRING) => "char",
        Some(MYSQL_TYPE_BLOB)
        | Some(MYSQL_TYPE_TINY_BLOB)
        | Some(MYSQL_TYPE_MEDIUM_BLOB)
        | Some(MYSQL_TYPE_LONG_BLOB) => match (binary || collation.is_none(), b(0)) {
            (true, 1) => "tinyblob",
            (true, 2) => "blob",
            (true, 3) => "mediumblob",
            (true, _) => "longblob",
            (false, 1) => "tinytext",
            (false, 2) => "text",
            (false, 3) => "mediumtext",
            (false, _) => "longtext",
        },
        _ => "",
    }
    .to_string();
    if c.data_type.ends_with("char")
        || c.data_type.ends_with("text")
        || c.data_type == "enum"
        || c.data_type == "set"
    {
        c.charset = charset;
    } else if binary {
        c.charset = Some("binary".into());
    }
    c
}

/// The family of an `information_schema` DATA_TYPE: the types one binlog column type stands
/// for (a TEXT and a MEDIUMBLOB are both a BLOB in the binlog). `None` for a type this build
/// does not know (MariaDB's UUID, INET6, ...), which fits any.
fn family(data_type: &str) -> Option<&'static str> {
    Some(match data_type {
        "tinyint" | "bool" | "boolean" => "tinyint",
        "smallint" => "smallint",
        "mediumint" => "mediumint",
        "int" | "integer" => "int",
        "bigint" => "bigint",
        "float" => "float",
        "double" | "real" => "double",
        "decimal" | "numeric" => "decimal",
        "year" => "year",
        "date" => "date",
        "time" => "time",
        "datetime" => "datetime",
        "timestamp" => "timestamp",
        "bit" => "bit",
        "json" => "json",
        "enum" => "enum",
        "set" => "set",
        "varchar" | "varbinary" => "varchar",
        "char" | "binary" => "char",
        "tinyblob" | "blob" | "mediumblob" | "longblob" | "tinytext" | "text" | "mediumtext"
        | "longtext" => "blob",
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => "geometry",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;

    fn named(cols: Vec<MyCol>) -> TableMap {
        TableMap {
            columns: cols,
            named: true,
            signed: true,
            labeled: true,
            pk: Some(vec![0]),
        }
    }

    fn col(name: &str, ty: ColumnType, meta: &[u8], collation: Option<u16>) -> MyCol {
        let mut c = column(Some(ty), meta, collation);
        c.name = name.into();
        c
    }

    #[test]
    fn metadata_gives_precision_fsp_bits_and_lengths() {
        let d = column(Some(MYSQL_TYPE_NEWDECIMAL), &[20, 4], None);
        assert_eq!(
            (d.data_type.as_str(), d.precision, d.scale),
            ("decimal", 20, 4)
        );
        assert_eq!(column(Some(MYSQL_TYPE_DATETIME2), &[3], None).fsp, 3);
        assert_eq!(column(Some(MYSQL_TYPE_BIT), &[2, 1], None).bits, 10);
        // BINARY(300): the length's high bits in the first byte
        let b = column(Some(MYSQL_TYPE_STRING), &[0xee, 300u16 as u8], Some(BINARY));
        assert_eq!((b.data_type.as_str(), b.len), ("binary", 300));
        let b = column(Some(MYSQL_TYPE_STRING), &[0xfe, 16], Some(BINARY));
        assert_eq!((b.data_type.as_str(), b.len), ("binary", 16));
        let t = column(Some(MYSQL_TYPE_BLOB), &[3], Some(45));
        assert_eq!(
            (t.data_type.as_str(), t.charset.as_deref()),
            ("mediumtext", Some("utf8mb4"))
        );
        assert_eq!(
            column(Some(MYSQL_TYPE_BLOB), &[4], Some(BINARY)).data_type,
            "longblob"
        );
        let l = column(Some(MYSQL_TYPE_VARCHAR), &[10, 0], Some(8));
        assert_eq!(
            (l.data_type.as_str(), l.charset.as_deref()),
            ("varchar", Some("latin1"))
        );
        assert_eq!(column(None, &[], None).data_type, "");
    }

    #[test]
    fn a_definition_fits_only_the_table_as_the_event_has_it() {
        let id = col("id", MYSQL_TYPE_LONG, &[], None);
        let a = col("a", MYSQL_TYPE_VARCHAR, &[40, 0], Some(45));
        let map = named(vec![id.clone(), a.clone()]);
        let def = |cols: Vec<MyCol>| MyTable {
            db: "d".into(),
            table: "t".into(),
            columns: cols,
            pk: vec!["id".into()],
        };
        assert!(map.fits(&def(vec![id.clone(), a.clone()])));
        // a column more, renamed, retyped, unsigned
        assert!(!map.fits(&def(vec![id.clone(), a.clone(), id.clone()])));
        let mut renamed = a.clone();
        renamed.name = "b".into();
        assert!(!map.fits(&def(vec![id.clone(), renamed])));
        assert!(!map.fits(&def(vec![id.clone(), MyCol::plain("a", "int")])));
        let mut unsigned = id.clone();
        unsigned.unsigned = true;
        assert!(!map.fits(&def(vec![unsigned, a.clone()])));
        // TINYINT(1), MariaDB's JSON (longtext) and an unknown type fit their family
        let mut tiny = MyCol::plain("f", "tinyint");
        tiny.tiny1 = true;
        let tmap = named(vec![
            col("f", MYSQL_TYPE_TINY, &[], None),
            col("j", MYSQL_TYPE_BLOB, &[4], Some(46)),
            col("u", MYSQL_TYPE_STRING, &[0xfe, 16], Some(BINARY)),
        ]);
        let known = def(vec![
            tiny.clone(),
            MyCol::plain("j", "longtext"),
            MyCol::plain("u", "uuid"),
        ]);
        assert!(tmap.fits(&known));
        // a definition from the event keeps what only the catalog knows
        let built = tmap.definition("d", "t", Some(&known)).unwrap();
        assert!(built.columns[0].tiny1);
        assert_eq!(built.columns[2].data_type, "uuid");
        assert_eq!(built.pk, vec!["f".to_string()]);
        // ENUM labels changed
        let mut e = col("e", MYSQL_TYPE_ENUM, &[247, 1], Some(45));
        e.labels = vec!["x".into(), "y".into()];
        let emap = named(vec![e.clone()]);
        let mut e2 = e.clone();
        e2.labels = vec!["y".into(), "x".into()];
        assert!(!emap.fits(&def(vec![e2])));
        assert!(emap.fits(&def(vec![e])));
    }

    #[test]
    fn without_names_no_definition_is_built() {
        let mut map = named(vec![col("id", MYSQL_TYPE_LONG, &[], None)]);
        map.named = false;
        assert!(map.definition("d", "t", None).is_none());
        // and a definition is checked by types only
        assert!(map.fits(&MyTable {
            db: "d".into(),
            table: "t".into(),
            columns: vec![MyCol::plain("other", "int")],
            pk: vec![],
        }));
    }
}
