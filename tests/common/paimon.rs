//! A model of Apache Paimon's `aliyun-json` CDC parser (paimon-flink-cdc:
//! `AliyunRecordParser`, with `AbstractRecordParser`'s flow and `MySqlTypeUtils`' type mapping),
//! written from Paimon's source to check rowstream's topics against what a Paimon
//! `kafka_sync_database` / `kafka_sync_table` job accepts. A record the model rejects is one
//! that fails the Flink job. The model keeps Paimon's decisions, including its strictness:
//! - `ddl` is read at the record's root (not under `payload`), so a DDL record in the
//!   DataWorks layout is parsed as a row record and fails on its op;
//! - any `payload.op` other than INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE fails the job;
//! - the image (`after` for INSERT / UPDATE_AFTER, `before` for UPDATE_BEFORE / DELETE) and
//!   its `dataColumn` must be present;
//! - `schema`, `schema.dataColumn` and `schema.primaryKey` must be present: a null
//!   `primaryKey` fails (an empty list is a table without a key);
//! - every column type goes through `MySqlTypeUtils.toDataType`: with `--type_mapping
//!   to-string` every type is STRING; otherwise (Paimon 1.1 and later, as the Flink test runs
//!   1.3.1) LONG is BIGINT, DOUBLE is DOUBLE, BOOLEAN is BOOLEAN, STRING is STRING, DATE is a
//!   DATE (days: a 13-digit millisecond value then fails the real job, which the model does not
//!   check), and BYTES is an unknown MySQL type, which fails;
//! - the table is `schema.source.tableName` in database `schema.source.dbName`
//!   (`schemaName` is ignored).
use serde_json::Value as J;

/// `--type_mapping` of the Paimon action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeMapping {
    /// no option: MySqlTypeUtils' mapping
    Default,
    /// `--type_mapping to-string`
    ToString,
}

/// What Paimon makes of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub database: Option<String>,
    pub table: Option<String>,
    /// `+I`, `-U`, `+U`, `-D`
    pub row_kind: &'static str,
    pub primary_keys: Vec<String>,
    /// column → Paimon type
    pub columns: Vec<(String, String)>,
    /// column → value as text (Paimon's `Objects.toString`), None for null
    pub row: Vec<(String, Option<String>)>,
}

/// Parse one Kafka record value as Paimon does; `Err` is the exception that fails the job.
pub fn parse(value: &[u8], mapping: TypeMapping) -> Result<Option<Parsed>, String> {
    let root: J = serde_json::from_slice(value).map_err(|e| format!("not JSON: {e}"))?;
    // isDDL(): a boolean `ddl` at the root
    if root
        .get("ddl")
        .is_some_and(|d| !d.is_null() && d.as_bool() == Some(true))
    {
        return Ok(None);
    }
    let payload = non_null(&root, "payload")?;
    let op = payload.get("op").map(text).unwrap_or_default();
    let (row_kind, field) = match op.as_str() {
        "UPDATE_BEFORE" => ("-U", "before"),
        "UPDATE_AFTER" => ("+U", "after"),
        "INSERT" => ("+I", "after"),
        "DELETE" => ("-D", "before"),
        other => return Err(format!("Unknown record operation: {other}")),
    };
    let container = non_null(payload, field).map_err(|_| format!("missing 'payload.{field}'"))?;
    let data = non_null(container, "dataColumn")
        .map_err(|_| format!("missing 'payload.{field}.dataColumn'"))?;
    let schema = non_null(&root, "schema")?;
    let types = non_null(schema, "dataColumn")?
        .as_array()
        .ok_or("schema.dataColumn is not an array")?;
    let mut columns = Vec::new();
    for t in types {
        let name = t.get("name").map(text).unwrap_or_default();
        let ty = t.get("type").map(text).unwrap_or_default();
        columns.push((name, to_data_type(&ty, mapping)?));
    }
    let row = data
        .as_object()
        .ok_or("dataColumn is not an object")?
        .iter()
        .map(|(k, v)| (k.clone(), (!v.is_null()).then(|| text(v))))
        .collect();
    // extractPrimaryKeys(): getNodeAs(schema, "primaryKey", ArrayNode) then forEach
    let pk = schema
        .get("primaryKey")
        .and_then(|p| p.as_array())
        .ok_or("NullPointerException: schema.primaryKey is not an array")?;
    let mut primary_keys = Vec::new();
    for k in pk {
        if k.is_null() {
            return Err("Primary key cannot be null".into());
        }
        primary_keys.push(text(k));
    }
    let source = schema.get("source");
    let named = |key: &str| {
        source
            .and_then(|s| s.get(key))
            .filter(|v| !v.is_null())
            .map(text)
    };
    Ok(Some(Parsed {
        database: named("dbName"),
        table: named("tableName"),
        row_kind,
        primary_keys,
        columns,
        row,
    }))
}

fn non_null<'a>(node: &'a J, key: &str) -> Result<&'a J, String> {
    match node.get(key) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(format!(
            "Invalid aliyun-json format: missing '{key}' field."
        )),
    }
}

/// Jackson's `asText()` / `Objects.toString()`.
fn text(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `MySqlTypeUtils.toDataType(getTypeInfo(type))` for the six DataWorks types.
fn to_data_type(ty: &str, mapping: TypeMapping) -> Result<String, String> {
    if mapping == TypeMapping::ToString {
        return Ok("STRING".into());
    }
    match ty.to_ascii_uppercase().as_str() {
        "LONG" => Ok("BIGINT".into()),
        "DOUBLE" => Ok("DOUBLE".into()),
        "BOOLEAN" => Ok("BOOLEAN".into()),
        "DATE" => Ok("DATE".into()),
        "STRING" => Ok("STRING".into()),
        other => Err(format!("Don't support MySQL type '{other}' yet.")),
    }
}
