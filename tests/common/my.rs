//! MariaDB side of the harness: fresh databases, connections, configs and topics.

use super::*;

pub const MY: &str = "mysql://rowstream:rowstream@127.0.0.1:3306";

/// A fresh MariaDB database `name`, returning a connection on it.
pub async fn fresh_mydb(name: &str) -> mysql_async::Conn {
    use mysql_async::prelude::*;
    let mut c =
        mysql_async::Conn::new(mysql_async::Opts::from_url(&format!("{MY}/mysql")).unwrap())
            .await
            .unwrap_or_else(|e| panic!("connect to mariadb: {e} (run scripts/services.sh up)"));
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    c.query_drop(format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    c.query_drop(format!("USE {name}")).await.unwrap();
    c
}

pub async fn myconn(db: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(&format!("{MY}/{db}")).unwrap())
        .await
        .unwrap()
}

/// A MySQL-source config for test `name` (database `name`), with its own replica id.
pub fn myconfig(name: &str, server_id: u32, source_extra: &str, rest: &str) -> String {
    format!(
        r#"
[source]
type = "mysql"
url = "{MY}/{name}"
server_id = {server_id}
{source_extra}
{tail}"#,
        tail = sink_sections(name, "{db}", rest)
    )
}

/// The topic of `db.table` for a MySQL test.
pub fn mytopic(name: &str, table: &str) -> String {
    format!("{name}-{}.{name}.{table}", run_id())
}

/// Wait until test `name`'s rowstream streams the binlog: it stores its start position as soon
/// as the server accepted its dump request (other tests' readers do not count).
pub async fn wait_binlog_reader(name: &str) {
    // with the state in Kafka (`with_kafka_state`): a state record naming a binlog position
    let cfg =
        std::fs::read_to_string(std::env::temp_dir().join(format!("rowstream-test-{name}.toml")))
            .unwrap_or_default();
    if let Some(topic) = cfg
        .lines()
        .filter_map(|l| l.strip_prefix("topic = \""))
        .find_map(|t| t.strip_suffix("-offsets\""))
    {
        let mut r = Reader::new(&format!("{topic}-offsets"));
        r.until(60, "binlog streaming (a stored binlog position)", |x| {
            x.iter().any(|x| {
                x.key.as_deref().is_some_and(|k| k.contains("/state/"))
                    && x.raw.contains("\"mysql\"")
            })
        });
        return;
    }
    let state = state_file(name);
    wait_for(60, "binlog streaming", || {
        let f = state.clone();
        async move {
            std::fs::read_to_string(&f)
                .map(|s| s.contains("\"mysql\""))
                .unwrap_or(false)
        }
    })
    .await;
}
