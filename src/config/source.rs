//! The `[source]` section: keys every source reads, then the keys of the source `type` names.
//!
//! Invariants:
//! - `source.type` selects one [`SourceOptions`] variant; a key of the other source is reported
//!   by the shape check (`config::keys`) before this struct is built, so a value here always
//!   belongs to the chosen source.
//! - After [`SourceConfig::resolve`] `tables` is never empty: the default is `public.*` on
//!   Postgres and `<the URL's database>.*` on MySQL, decided here and nowhere else.
//! - The URL's password never reaches `Debug` output ([`redact_url`]).

use super::error::push;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Which database `source.type` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SourceType {
    Postgres,
    Mysql,
}

impl SourceType {
    pub(crate) const ALL: [SourceType; 2] = [SourceType::Postgres, SourceType::Mysql];

    pub(crate) fn name(self) -> &'static str {
        match self {
            SourceType::Postgres => "postgres",
            SourceType::Mysql => "mysql",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<SourceType> {
        SourceType::ALL.into_iter().find(|t| t.name() == s)
    }
}

#[derive(Clone, Deserialize, serde::Serialize)]
pub(crate) struct SourceConfig {
    pub(crate) url: String,
    /// Include patterns over `schema.table` (Postgres) / `db.table` (MySQL); `*` and `?`
    /// wildcards. Absent from the file: the source's default, filled in by `resolve`.
    #[serde(default)]
    tables: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) exclude: Vec<String>,
    /// Custom key columns per table (`"schema.table" = ["a", "b"]`), replacing the primary key.
    #[serde(default)]
    pub(crate) keys: BTreeMap<String, Vec<String>>,
    /// The columns kept per table (`"schema.table" = ["a", "b"]`, `*`/`?` over the table
    /// name): the others are left out of the records.
    #[serde(default)]
    pub(crate) columns: BTreeMap<String, Vec<String>>,
    /// Columns left out of the records: `schema.table.column` patterns (`*`, `?`).
    #[serde(default)]
    pub(crate) column_exclude: Vec<String>,
    /// Columns masked in the records: `schema.table.column` pattern → `hash` (SHA-256 of
    /// `mask_salt` and the value), `keep:N` (the first N characters, then `*`), `null`.
    #[serde(default)]
    pub(crate) column_masks: BTreeMap<String, String>,
    /// The secret salt of `hash` masks (never logged, shown as `***`); empty: none.
    #[serde(default)]
    pub(crate) mask_salt: String,
    /// Sharded tables merged: table pattern (`public.orders_*`, `shop_*.orders`) → the logical
    /// table their records name (`public.orders`, `shop.orders`).
    #[serde(default)]
    pub(crate) routes: BTreeMap<String, String>,
    /// The column naming a merged record's shard (last in its columns and key).
    #[serde(default = "default_shard_column")]
    pub(crate) shard_column: String,
    /// What a DDL of each type does ([`DDL_KINDS`] → [`DDL_POLICIES`]); a type not named:
    /// `apply`.
    #[serde(default)]
    pub(crate) ddl_policy: BTreeMap<String, String>,
    /// Zone that timestamps without time zone are read in: `UTC` or a fixed offset `+08:00`.
    #[serde(default = "default_tz")]
    pub(crate) timezone: String,
    /// The keys of the chosen source, tagged by `type`.
    #[serde(flatten)]
    pub(crate) options: SourceOptions,
}

/// The keys only one source reads, chosen by `source.type`.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum SourceOptions {
    Postgres(PostgresOptions),
    Mysql(MysqlOptions),
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub(crate) struct PostgresOptions {
    /// Replication slot, created if missing.
    #[serde(default = "default_name")]
    pub(crate) slot: String,
    /// Publication, created if missing.
    #[serde(default = "default_name")]
    pub(crate) publication: String,
    /// Written for unchanged TOASTed values the log does not carry (spec §4.4).
    #[serde(default = "default_toast")]
    pub(crate) toast_placeholder: String,
    /// Install the DDL event trigger (migrations/postgres) when missing and capture DDL records.
    #[serde(default = "yes")]
    pub(crate) capture_ddl: bool,
    /// CA file (PEM) to verify the server certificate and host name with; without it TLS
    /// (`sslmode=prefer|require` in the URL) encrypts without verifying, as libpq does.
    #[serde(default)]
    pub(crate) ssl_root_cert: Option<String>,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub(crate) struct MysqlOptions {
    /// The replica server id rowstream registers with; unique among the server's replicas.
    /// Required: `validate` reports it missing.
    #[serde(default)]
    pub(crate) server_id: Option<u32>,
    /// TINYINT(1) columns render as BOOLEAN (as DataWorks does).
    #[serde(default = "yes")]
    pub(crate) tinyint1_as_boolean: bool,
    /// TLS, as MySQL's `--ssl-mode` names it: `disabled`, `required` (encrypt, trust any
    /// certificate), `verify_ca` (the server certificate must chain to `ssl_root_cert`),
    /// `verify_identity` (and name the host).
    #[serde(default)]
    pub(crate) ssl_mode: MysqlSslMode,
    /// CA file (PEM) for `verify_ca` / `verify_identity`.
    #[serde(default)]
    pub(crate) ssl_root_cert: Option<String>,
    /// How a restart finds its place in the binlog: by the GTID stored with the position, or
    /// by the binlog file and offset.
    #[serde(default)]
    pub(crate) resume_by: ResumeBy,
}

/// `source.resume_by` for MySQL/MariaDB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResumeBy {
    /// By file and offset on the server that wrote the position; by GTID after a move to
    /// another server of the replication topology.
    #[default]
    Auto,
    /// By the stored GTID set (MariaDB `@slave_connect_state`, MySQL auto-positioning).
    Gtid,
    /// By the stored binlog file and offset.
    File,
}

/// `source.ssl_mode` for MySQL/MariaDB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MysqlSslMode {
    #[default]
    Disabled,
    Required,
    VerifyCa,
    VerifyIdentity,
}

fn default_name() -> String {
    "rowstream".into()
}
fn default_toast() -> String {
    "__rowstream_unchanged_toast_value__".into()
}
fn default_tz() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}

impl SourceConfig {
    pub(crate) fn kind(&self) -> SourceType {
        match self.options {
            SourceOptions::Postgres(_) => SourceType::Postgres,
            SourceOptions::Mysql(_) => SourceType::Mysql,
        }
    }

    /// The database `url` names (Postgres: required by `validate`; MySQL: optional).
    pub(crate) fn database(&self) -> Option<String> {
        match self.kind() {
            SourceType::Postgres => self
                .url
                .parse::<tokio_postgres::Config>()
                .ok()?
                .get_dbname()
                .map(str::to_string),
            SourceType::Mysql => mysql_async::Opts::from_url(&self.url)
                .ok()?
                .db_name()
                .map(str::to_string),
        }
    }

    /// Timestamps without zone: offset from UTC in seconds.
    pub(crate) fn tz_offset_secs(&self) -> Result<i32, String> {
        parse_tz(&self.timezone)
    }

    /// The include patterns (after `resolve`: the given ones or the source's default).
    pub(crate) fn tables(&self) -> &[String] {
        self.tables.as_deref().unwrap_or_default()
    }

    /// Replace the include patterns (a command's `--tables`).
    pub(crate) fn set_tables(&mut self, tables: Vec<String>) {
        self.tables = Some(tables);
    }

    /// Fill in what depends on the source type: the default `tables`.
    pub(super) fn resolve(&mut self, p: &mut Vec<String>) {
        if self.tables.is_some() {
            return;
        }
        match self.kind() {
            SourceType::Postgres => self.tables = Some(vec!["public.*".into()]),
            SourceType::Mysql => match mysql_async::Opts::from_url(&self.url)
                .ok()
                .and_then(|o| o.db_name().map(str::to_string))
            {
                Some(db) => self.tables = Some(vec![format!("{db}.*")]),
                None => push(
                    p,
                    "source.tables",
                    "no pattern given and source.url names no database; \
                     name the tables (e.g. [\"shop.*\"]) or the database in the URL",
                ),
            },
        }
    }

    pub(super) fn validate(&self, p: &mut Vec<String>) {
        match &self.options {
            SourceOptions::Postgres(o) => validate_postgres(&self.url, o, p),
            SourceOptions::Mysql(o) => validate_mysql(&self.url, o, p),
        }
        if self.tables().is_empty() && self.tables.is_some() {
            let example = self.pattern_example();
            push(
                p,
                "source.tables",
                format!("give at least one pattern, e.g. [\"{example}\"]"),
            );
        }
        self.validate_patterns(p);
        if let Err(e) = self.tz_offset_secs() {
            push(p, "source.timezone", e);
        }
    }

    fn pattern_example(&self) -> &'static str {
        match self.kind() {
            SourceType::Mysql => "shop.*",
            SourceType::Postgres => "public.*",
        }
    }

    fn validate_patterns(&self, p: &mut Vec<String>) {
        let example = self.pattern_example();
        for (key, pats) in [
            ("source.tables", self.tables()),
            ("source.exclude", &self.exclude),
        ] {
            for pat in pats.iter().filter(|pat| !pat.contains('.')) {
                push(
                    p,
                    key,
                    format!(
                        "pattern `{pat}` must name schema.table or db.table (e.g. `{example}`)"
                    ),
                );
            }
        }
        for (t, cols) in &self.keys {
            if !t.contains('.') || cols.is_empty() {
                push(
                    p,
                    &format!("source.keys.\"{t}\""),
                    "expected \"schema.table\" = [\"col\", ...]",
                );
            }
        }
        for (t, cols) in &self.columns {
            if !t.contains('.') || cols.is_empty() {
                push(
                    p,
                    &format!("source.columns.\"{t}\""),
                    "expected \"schema.table\" = [\"col\", ...] (the columns kept)",
                );
            }
        }
        for (pat, to) in &self.routes {
            let key = format!("source.routes.\"{pat}\"");
            if !pat.contains('.') {
                push(
                    p,
                    &key,
                    "the pattern must name schema.table or db.table (e.g. \"public.orders_*\")",
                );
            }
            if to.split('.').count() != 2 || to.split('.').any(str::is_empty) {
                push(p, &key, format!("`{to}` must name the merged table as schema.table or db.table (e.g. \"public.orders\")"));
            }
        }
        for (kind, policy) in &self.ddl_policy {
            let key = format!("source.ddl_policy.{kind}");
            if !DDL_KINDS.contains(&kind.as_str()) {
                push(
                    p,
                    &key,
                    format!("unknown DDL type; one of {}", DDL_KINDS.join(", ")),
                );
            }
            if !DDL_POLICIES.contains(&policy.as_str()) {
                push(
                    p,
                    &key,
                    format!(
                        "`{policy}` is not a policy; one of {}",
                        DDL_POLICIES.join(", ")
                    ),
                );
            }
        }
        if self.shard_column.trim().is_empty() {
            push(
                p,
                "source.shard_column",
                "empty; the column naming a merged record's shard, e.g. \"__shard__\"",
            );
        }
        for pat in &self.column_exclude {
            if pat.matches('.').count() < 2 {
                push(
                    p,
                    "source.column_exclude",
                    format!("pattern `{pat}` must name schema.table.column (e.g. `public.users.password`)"),
                );
            }
        }
        for (pat, mask) in &self.column_masks {
            let key = format!("source.column_masks.\"{pat}\"");
            if pat.matches('.').count() < 2 {
                push(
                    p,
                    &key,
                    "the pattern must name schema.table.column (e.g. \"public.users.email\")",
                );
            }
            match parse_mask(mask) {
                None => push(
                    p,
                    &key,
                    format!("`{mask}` is not a mask: expected \"hash\", \"keep:N\" (N characters kept) or \"null\""),
                ),
                Some(ColumnMask::Hash) if self.mask_salt.is_empty() => {
                    push(
                        p,
                        &key,
                        "\"hash\" needs source.mask_salt (a secret; ROWSTREAM_SOURCE__MASK_SALT), so the hashes cannot be reversed by hashing guesses",
                    )
                }
                Some(_) => {}
            }
        }
    }
}

fn validate_postgres(url: &str, o: &PostgresOptions, p: &mut Vec<String>) {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        push(
            p,
            "source.url",
            "expected postgres://user[:password]@host[:port]/database",
        );
    } else {
        match url.parse::<tokio_postgres::Config>() {
            Err(e) => push(p, "source.url", e.to_string()),
            Ok(c) if c.get_dbname().is_none() => push(
                p,
                "source.url",
                "name the database, e.g. postgres://postgres@127.0.0.1:5432/shop",
            ),
            Ok(_) => {}
        }
    }
    if !valid_ident(&o.slot) {
        push(
            p,
            "source.slot",
            format!(
                "`{}` is not a valid slot name (lower-case letters, digits, _; at most 63)",
                o.slot
            ),
        );
    }
    if o.publication.is_empty() || o.publication.len() > 63 || o.publication.contains('"') {
        push(
            p,
            "source.publication",
            format!("`{}` is not a valid publication name", o.publication),
        );
    }
}

fn validate_mysql(url: &str, o: &MysqlOptions, p: &mut Vec<String>) {
    if !url.starts_with("mysql://") {
        push(
            p,
            "source.url",
            "expected mysql://user:password@host:3306/database",
        );
    } else if let Err(e) = mysql_async::Opts::from_url(url) {
        push(p, "source.url", e.to_string());
    }
    let verifies = matches!(
        o.ssl_mode,
        MysqlSslMode::VerifyCa | MysqlSslMode::VerifyIdentity
    );
    if verifies && o.ssl_root_cert.is_none() {
        push(
            p,
            "source.ssl_root_cert",
            "required by ssl_mode verify_ca / verify_identity: the CA file (PEM) that signed the server's certificate",
        );
    }
    if let Some(f) = &o.ssl_root_cert {
        if !std::path::Path::new(f).is_file() {
            push(p, "source.ssl_root_cert", format!("no file {f}"));
        }
    }
    match o.server_id {
        None => push(
            p,
            "source.server_id",
            "required for mysql: a replica id unique among the server's replicas, e.g. 5401",
        ),
        Some(0) => push(
            p,
            "source.server_id",
            "0 is not a valid replica id; use e.g. 5401",
        ),
        Some(_) => {}
    }
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(crate) fn parse_tz(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" || t.eq_ignore_ascii_case("gmt") {
        return Ok(0);
    }
    let bad = || format!("`{s}` is not UTC or a fixed offset like +08:00");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    match (h.parse::<i32>(), m.parse::<i32>()) {
        (Ok(h), Ok(m)) if (0..=14).contains(&h) && (0..60).contains(&m) => {
            Ok(sign * (h * 3600 + m * 60))
        }
        _ => Err(bad()),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((cred, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = cred.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    // key=value form: password=...
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("url", &redact_url(&self.url))
            .field("tables", &self.tables)
            .field("exclude", &self.exclude)
            .field("keys", &self.keys)
            .field("columns", &self.columns)
            .field("column_exclude", &self.column_exclude)
            .field("column_masks", &self.column_masks)
            .field(
                "mask_salt",
                &if self.mask_salt.is_empty() { "" } else { "***" },
            )
            .field("routes", &self.routes)
            .field("shard_column", &self.shard_column)
            .field("ddl_policy", &self.ddl_policy)
            .field("timezone", &self.timezone)
            .field("options", &self.options)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_tz() {
        assert_eq!(redact_url("postgres://u:p@h:1/d"), "postgres://u:***@h:1/d");
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(parse_tz("+08:00"), Ok(8 * 3600));
        assert_eq!(parse_tz("-05:30"), Ok(-(5 * 3600 + 1800)));
        assert!(parse_tz("Asia/Shanghai").is_err());
    }
}

/// A `source.column_masks` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnMask {
    Hash,
    Keep(usize),
    Null,
}

/// `hash`, `keep:N`, `null`.
pub(crate) fn parse_mask(s: &str) -> Option<ColumnMask> {
    match s.trim() {
        "hash" => Some(ColumnMask::Hash),
        "null" => Some(ColumnMask::Null),
        other => other
            .strip_prefix("keep:")
            .and_then(|n| n.trim().parse().ok())
            .map(ColumnMask::Keep),
    }
}

fn default_shard_column() -> String {
    "__shard__".into()
}

/// The DDL types `source.ddl_policy` names.
pub(crate) const DDL_KINDS: [&str; 9] = [
    "create_table",
    "drop_table",
    "rename_table",
    "truncate_table",
    "add_column",
    "drop_column",
    "rename_column",
    "modify_column",
    "other",
];

/// What a DDL can do: be applied as usual, be left out of the topics, be applied with a
/// warning, or stop the connector before it.
pub(crate) const DDL_POLICIES: [&str; 4] = ["apply", "ignore", "warn", "stop"];
