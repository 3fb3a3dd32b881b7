//! One face over both databases, so a scenario common to both sources is written once and run
//! for each (`tests/both.rs`): fresh database, SQL both dialects accept, configs, topics, and
//! the few things that differ (how to wait for streaming, rotate the log, the `source` object
//! of a record, the position a clean stop stores).

use super::*;
use mysql_async::prelude::*;
use serde_json::{json, Value as J};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Postgres,
    MariaDb,
}

enum Session {
    Pg(tokio_postgres::Client),
    My(tokio::sync::Mutex<mysql_async::Conn>),
}

/// A test's database, on either server.
pub struct Db {
    pub flavor: Flavor,
    /// database, slot, publication, topic prefix and state dir name
    pub name: String,
    /// the replica id a MariaDB source registers with (unique per test)
    pub server_id: u32,
    session: Session,
}

impl Db {
    /// A fresh database `name` and a clean state dir.
    pub async fn fresh(flavor: Flavor, name: &str, server_id: u32) -> Db {
        state_dir(name);
        let session = match flavor {
            Flavor::Postgres => Session::Pg(fresh_db(name).await),
            Flavor::MariaDb => Session::My(tokio::sync::Mutex::new(fresh_mydb(name).await)),
        };
        Db {
            flavor,
            name: name.to_string(),
            server_id,
            session,
        }
    }

    /// Another session on the same database.
    pub async fn open(&self) -> Db {
        let session = match self.flavor {
            Flavor::Postgres => Session::Pg(connect(&self.name).await),
            Flavor::MariaDb => Session::My(tokio::sync::Mutex::new(myconn(&self.name).await)),
        };
        Db {
            flavor: self.flavor,
            name: self.name.clone(),
            server_id: self.server_id,
            session,
        }
    }

    /// Run one or more statements (`;`-separated).
    pub async fn exec(&self, sql: &str) {
        match &self.session {
            Session::Pg(c) => c
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Session::My(c) => c
                .lock()
                .await
                .query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The rows of a query, each value as text (NULL as None).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.session {
            Session::Pg(c) => c
                .simple_query(sql)
                .await
                .unwrap()
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
                    }
                    _ => None,
                })
                .collect(),
            Session::My(c) => {
                let rows: Vec<mysql_async::Row> = c.lock().await.query(sql).await.unwrap();
                rows.into_iter()
                    .map(|r| r.unwrap().into_iter().map(my_text).collect())
                    .collect()
            }
        }
    }

    /// `SELECT key..., v FROM table` as "key,parts" → v, for `reached_final_state`.
    pub async fn final_state(&self, sql: &str) -> std::collections::HashMap<String, i64> {
        self.rows(sql)
            .await
            .into_iter()
            .map(|r| {
                let (v, key) = r.split_last().unwrap();
                let key: Vec<String> = key.iter().map(|k| k.clone().unwrap()).collect();
                (key.join(","), v.as_ref().unwrap().parse().unwrap())
            })
            .collect()
    }

    /// Table `table (id INT PRIMARY KEY, pad VARCHAR(64))` holding ids 1..=rows, each padded
    /// with `pad`.
    pub async fn padded_table(&self, table: &str, rows: i64, pad: &str) {
        self.exec(&format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, pad VARCHAR(64))"
        ))
        .await;
        self.exec(&format!(
            "INSERT INTO {table} SELECT g, '{pad}' FROM {}",
            self.series(1, rows)
        ))
        .await;
    }

    /// A FROM item with one integer column `g` running from `a` to `b`.
    pub fn series(&self, a: i64, b: i64) -> String {
        match self.flavor {
            Flavor::Postgres => format!("generate_series({a}, {b}) AS s(g)"),
            Flavor::MariaDb => format!("(SELECT seq AS g FROM seq_{a}_to_{b}) AS s"),
        }
    }

    /// The config of this test's rowstream: `source_extra` lands in [source], `rest` at the end.
    pub fn config(&self, source_extra: &str, rest: &str) -> String {
        match self.flavor {
            Flavor::Postgres => config(&self.name, source_extra, rest),
            Flavor::MariaDb => myconfig(&self.name, self.server_id, source_extra, rest),
        }
    }

    /// Settings that make a snapshot take many chunks (Postgres counts heap pages, MariaDB
    /// rows).
    pub fn small_chunks(&self) -> &'static str {
        match self.flavor {
            Flavor::Postgres => "[snapshot]\nchunk_pages = 20\n",
            Flavor::MariaDb => "[snapshot]\nchunk_rows = 1000\n",
        }
    }

    /// `table` as `source.tables` / `source.keys` name it.
    pub fn qualified(&self, table: &str) -> String {
        match self.flavor {
            Flavor::Postgres => format!("public.{table}"),
            Flavor::MariaDb => format!("{}.{table}", self.name),
        }
    }

    pub fn topic(&self, table: &str) -> String {
        match self.flavor {
            Flavor::Postgres => topic(&self.name, table),
            Flavor::MariaDb => mytopic(&self.name, table),
        }
    }

    /// The `schema.source` object of `table`'s records.
    pub fn source_json(&self, table: &str) -> J {
        match self.flavor {
            Flavor::Postgres => {
                json!({"dbType": "PostgreSQL", "dbName": self.name, "schemaName": "public", "tableName": table})
            }
            Flavor::MariaDb => {
                json!({"dbType": "MariaDB", "dbName": self.name, "tableName": table})
            }
        }
    }

    /// Make `table` (without a primary key) log whole rows for UPDATE and DELETE.
    pub async fn log_whole_rows(&self, table: &str) {
        if self.flavor == Flavor::Postgres {
            self.exec(&format!("ALTER TABLE {table} REPLICA IDENTITY FULL"))
                .await;
        }
    }

    /// How far `table`'s snapshot got by the stored state: `None` before its first chunk was
    /// stored, `Some(1.0)` once complete, else the fraction of the table (`rows` rows) behind
    /// the stored cursor (Postgres: heap pages; MariaDB: an integer key).
    pub async fn snapshot_progress(&self, table: &str, rows: i64) -> Option<f64> {
        let state: J = serde_json::from_slice(&std::fs::read(state_file(&self.name)).ok()?).ok()?;
        let t = &state["tables"][self.qualified(table)];
        if t.is_null() {
            return None;
        }
        let Some(resume) = t.get("resume") else {
            return Some(1.0);
        };
        let cursor = &resume["cursor"];
        match self.flavor {
            Flavor::Postgres => {
                let page = cursor.as_f64()?;
                let pages = self
                    .rows(&format!("SELECT pg_relation_size('{table}') / 8192"))
                    .await[0][0]
                    .clone()?
                    .parse::<f64>()
                    .ok()?;
                Some(page / pages)
            }
            Flavor::MariaDb => Some(cursor[0]["int"].as_f64()? / rows as f64),
        }
    }

    /// The config of this test's rowstream with the database reached through `proxy`.
    pub fn config_via(&self, proxy: &Proxy, rest: &str) -> String {
        let (from, to) = match self.flavor {
            Flavor::Postgres => ("@127.0.0.1:5432/", format!("@127.0.0.1:{}/", proxy.port)),
            Flavor::MariaDb => ("@127.0.0.1:3306/", format!("@127.0.0.1:{}/", proxy.port)),
        };
        let cfg = self.config("", rest).replace(from, &to);
        if self.flavor == Flavor::Postgres {
            return cfg;
        }
        // mysql_async moves loopback connections to the server's Unix socket unless told not to
        let db = format!("/{}\"", self.name);
        cfg.replace(&db, &format!("/{}?prefer_socket=false\"", self.name))
    }

    /// The server's address.
    pub fn server_addr(&self) -> &'static str {
        match self.flavor {
            Flavor::Postgres => "127.0.0.1:5432",
            Flavor::MariaDb => "127.0.0.1:3306",
        }
    }

    /// With rowstream stopped, lose the log at its stored position: drop the Postgres slot; point
    /// the stored MariaDB position at a binlog the server does not have (as after a purge).
    pub async fn lose_log_position(&self) {
        match self.flavor {
            Flavor::Postgres => {
                connect("postgres")
                    .await
                    .execute("SELECT pg_drop_replication_slot($1)", &[&self.name])
                    .await
                    .unwrap();
            }
            Flavor::MariaDb => {
                let mut state = stored_state(&self.name);
                state["position"]["file"] = json!("mysql-bin.999999");
                std::fs::write(state_file(&self.name), state.to_string()).unwrap();
            }
        }
    }

    /// Wait until this test's rowstream streams changes.
    pub async fn wait_streaming(&self) {
        match self.flavor {
            Flavor::Postgres => wait_streaming(&connect("postgres").await, &self.name).await,
            Flavor::MariaDb => wait_binlog_reader(&self.name).await,
        }
    }

    /// Start a new log file: a WAL segment switch, a binlog rotation.
    pub async fn rotate_log(&self) {
        match self.flavor {
            Flavor::Postgres => self.exec("SELECT pg_switch_wal()").await,
            Flavor::MariaDb => self.exec("FLUSH BINARY LOGS").await,
        }
    }

    /// After a clean stop: the stored position is the source's own kind, and the source was
    /// told it (Postgres: the slot's confirmed LSN is there, or past it when only WAL that
    /// decoded to nothing followed: rowstream confirms that when idle), or it carries a GTID
    /// (MariaDB).
    pub async fn assert_clean_stop_position(&self) {
        let state = stored_state(&self.name);
        match self.flavor {
            Flavor::Postgres => {
                let stored = state["position"]["lsn"].as_str().unwrap().to_string();
                let confirmed: String = connect("postgres")
                    .await
                    .query_one(
                        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                        &[&self.name],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let lsn = |s: &str| -> u64 {
                    let (hi, lo) = s.split_once('/').unwrap();
                    (u64::from_str_radix(hi, 16).unwrap() << 32)
                        | u64::from_str_radix(lo, 16).unwrap()
                };
                assert!(
                    lsn(&confirmed) >= lsn(&stored),
                    "confirmed {confirmed} behind stored {stored}"
                );
            }
            Flavor::MariaDb => {
                assert_eq!(state["position"]["kind"], json!("mysql"));
                let gtid = state["position"]["gtid"].as_str().unwrap_or("");
                assert_eq!(gtid.split('-').count(), 3, "gtid {gtid}");
            }
        }
    }
}

fn my_text(v: mysql_async::Value) -> Option<String> {
    use mysql_async::Value as V;
    match v {
        V::NULL => None,
        V::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        V::Int(i) => Some(i.to_string()),
        V::UInt(u) => Some(u.to_string()),
        V::Float(f) => Some(f.to_string()),
        V::Double(d) => Some(d.to_string()),
        other => Some(format!("{other:?}")),
    }
}
