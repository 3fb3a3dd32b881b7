//! The `paimon` profile against a model of Paimon's `aliyun-json` parser (`tests/common/paimon.rs`)
//! where it is Postgres-specific (schemas); the scenario for both sources is in `both.rs`.
mod common;

use common::*;
use serde_json::json;

/// `encode.schema_in_table_name`: Paimon ignores `schemaName`, so `public.t` and `sales.t`
/// would merge into one Paimon table; with the switch their records name `public_t` and
/// `sales_t`, and both pass the model of Paimon's parser.
#[tokio::test(flavor = "multi_thread")]
async fn paimon_sees_two_schemas_apart() {
    use common::paimon::{parse, TypeMapping};
    let name = "rs_two_schemas";
    state_dir(name);
    let db = fresh_db(name).await;
    db.batch_execute(
        "CREATE SCHEMA sales; CREATE TABLE public.t(id int primary key, v text); CREATE TABLE sales.t(id int primary key, v text);
         INSERT INTO public.t VALUES (1, 'p'); INSERT INTO sales.t VALUES (1, 's');",
    )
    .await
    .unwrap();
    let cfg = config(
        name,
        "tables = [\"public.*\", \"sales.*\"]",
        "[encode]\nprofile = \"paimon\"\nschema_in_table_name = true\n",
    );
    let rs = Rowstream::start(name, &cfg);
    let sales_topic = topic(name, "t").replace(".public.", ".sales.");
    let mut tables = std::collections::BTreeMap::new();
    for t in [topic(name, "t"), sales_topic] {
        let mut r = Reader::new(&t);
        let recs = r
            .until(60, "the snapshot row", |x| count_data(x) >= 1)
            .to_vec();
        let p = parse(recs[0].raw.as_bytes(), TypeMapping::ToString)
            .unwrap()
            .unwrap();
        tables.insert(
            (p.database.unwrap(), p.table.unwrap()),
            recs[0].after()["v"].clone(),
        );
    }
    assert_eq!(
        tables,
        [
            ((name.to_string(), "public_t".to_string()), json!("p")),
            ((name.to_string(), "sales_t".to_string()), json!("s")),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(rs.stop(), 0);
}
