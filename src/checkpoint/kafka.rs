//! Pipeline state in compacted Kafka topics (`state.backend = "kafka"`): positions, snapshot
//! progress and the sequenceId lease in `state.topic`, the MySQL schema history in
//! `state.history_topic`, keyed by `state.connector`. A container beside the database needs no
//! volume; any process given the same connector name resumes it.
//!
//! Records (keys are `<connector>/...`, values JSON):
//! - `claim/<owner>`: a process takes the connector over (written once per process start);
//! - `state/<claim offset>`: the whole [`State`] as its owner last stored it;
//! - `lease/<claim offset>`: the sequenceId lease;
//! - history topic, `h/<binlog key>/<db.table>`: one schema history entry (null: forgotten).
//!
//! Invariants:
//! - All records of a connector go to one partition of each topic (FNV-1a of the connector name
//!   modulo the partition count), so the log orders them.
//! - Claims fence. At start a process appends a claim and reads the partition up to it (up to
//!   the offset the broker acknowledged, never to the high watermark, which tansu may report
//!   late). A `state` record counts only if its claim was the newest claim when it was
//!   appended; the newest claim owns the connector. A process that sees a newer claim than its
//!   own is fenced: its saves fail and it stops. So two processes never both advance a
//!   connector's position: what a zombie writes after a takeover is ignored by every reader.
//! - Leases are the maximum of every lease record, fenced or not: a zombie's ids stay below
//!   the owner's.
//! - Every key names its writer's claim, so compaction (newest record per key) never lets a
//!   zombie's record replace the owner's. The new owner stores the state it took over under its
//!   own claim before it does anything else.
//! - Each write returns once the broker acknowledged it (idempotent producer, acks=all): a
//!   position is stored only when it is durable.
//!
//! Written by hand on rdkafka's clients: Kafka Connect's offset store is Java-only, and no
//! maintained crate keeps fenced state in a compacted topic.

use super::log::{ensure_topics, TopicLog, Visit};
use super::state::{Loaded, StoreError};
use crate::config::Config;
use rdkafka::{Message, Offset};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) struct KafkaState {
    log: TopicLog,
    connector: String,
    topic: String,
    partition: i32,
    history_topic: String,
    history_partition: i32,
    /// the offset of this process's claim
    claim: i64,
    /// the owner of a newer claim, once the watcher saw one
    fenced: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    /// history keys known to exist (to forget them on reset)
    history_keys: Mutex<Vec<String>>,
}

/// FNV-1a: the partition of a connector's records (stable across versions and processes).
fn partition_of(connector: &str, partitions: i32) -> i32 {
    let mut h: u32 = 0x811c9dc5;
    for b in connector.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    (h % partitions.max(1) as u32) as i32
}

impl KafkaState {
    /// Connect and create the topics if missing (no claim yet).
    async fn connect(cfg: &Config) -> Result<(KafkaState, String), StoreError> {
        let st = &cfg.state;
        let connector = st.connector.clone().unwrap_or_default();
        // `open` claims: everything below runs before the claim
        let parts = ensure_topics(&cfg.kafka, &[&st.topic, &st.history_topic])
            .await
            .map_err(StoreError::Kafka)?;
        let log = TopicLog::new(&cfg.kafka).map_err(StoreError::Kafka)?;
        let owner = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let me = KafkaState {
            log,
            partition: partition_of(&connector, parts[0]),
            history_partition: partition_of(&connector, parts[1]),
            topic: st.topic.clone(),
            history_topic: st.history_topic.clone(),
            connector,
            claim: -1,
            fenced: Default::default(),
            stop: Default::default(),
            history_keys: Default::default(),
        };
        Ok((me, owner))
    }

    /// The state as the connector's owner last stored it, read without claiming anything
    /// (`verify`): the read ends at an acknowledged tombstone of an unused key.
    pub(crate) async fn peek(cfg: &Config) -> Result<Option<Vec<u8>>, StoreError> {
        let (me, owner) = Self::connect(cfg).await?;
        let (topic, p) = (me.topic.clone(), me.partition);
        let end =
            tokio::task::block_in_place(|| me.write(&topic, p, &format!("peek/{owner}"), None))?;
        let loaded = tokio::task::block_in_place(|| me.read_state(end))?;
        Ok(loaded.state)
    }

    /// Connect, create the topics if missing, claim the connector and read what it stored.
    pub(crate) async fn open(cfg: &Config) -> Result<(KafkaState, Loaded), StoreError> {
        let (mut me, owner) = Self::connect(cfg).await?;
        let claim_value = serde_json::json!({ "owner": owner, "at": crate::model::time::now_ms() });
        let (topic, p) = (me.topic.clone(), me.partition);
        let claim = tokio::task::block_in_place(|| {
            me.write(
                &topic,
                p,
                &format!("claim/{owner}"),
                Some(claim_value.to_string().as_bytes()),
            )
        })?;
        me.claim = claim;
        let mut loaded = tokio::task::block_in_place(|| me.read_state(claim))?;
        // the history topic's end: an acknowledged tombstone of a key nobody uses
        let (ht, hp) = (me.history_topic.clone(), me.history_partition);
        let end = tokio::task::block_in_place(|| me.write(&ht, hp, &format!("end/{owner}"), None))?;
        let history = tokio::task::block_in_place(|| me.read_history(end))?;
        *me.history_keys.lock().unwrap_or_else(|e| e.into_inner()) =
            history.keys().cloned().collect();
        loaded.history = history.into_values().collect();
        // what was taken over is stored under this claim before anything else happens
        if let Some(s) = &loaded.state {
            tokio::task::block_in_place(|| me.save_state(s))?;
        }
        if loaded.lease > 0 {
            tokio::task::block_in_place(|| me.save_lease(loaded.lease))?;
        }
        me.watch();
        tracing::info!(connector = %me.connector, topic = %me.topic, claim, "state in Kafka: connector claimed");
        Ok((me, loaded))
    }

    /// `topic` `connector` (for logs).
    pub(crate) fn describe(&self) -> String {
        format!("kafka topic {} connector {}", self.topic, self.connector)
    }

    /// Append one of this connector's records (`key` without the connector prefix) and wait
    /// for its acknowledgement; its offset.
    fn write(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<i64, StoreError> {
        self.log
            .write(
                topic,
                partition,
                &format!("{}/{key}", self.connector),
                value,
            )
            .map_err(StoreError::Kafka)
    }

    /// Read `partition` of `topic` through offset `end`, handing each of this connector's
    /// records (key without the connector prefix) to `f`.
    fn read_through(
        &self,
        topic: &str,
        partition: i32,
        end: i64,
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        self.log
            .read_through(topic, partition, end, &format!("{}/", self.connector), f)
            .map_err(StoreError::Kafka)
    }

    /// The state and lease as the newest claim up to offset `end` left them.
    fn read_state(&self, end: i64) -> Result<Loaded, StoreError> {
        let mut current: i64 = -1;
        let mut loaded = Loaded::default();
        let (topic, p) = (self.topic.clone(), self.partition);
        self.read_through(&topic, p, end, &mut |offset, key, value| {
            if key.starts_with("claim/") {
                current = offset;
            } else if let Some(by) = key.strip_prefix("state/") {
                // only what the owner of the moment wrote counts
                if by.parse::<i64>().ok() == Some(current) {
                    loaded.state = value.map(<[u8]>::to_vec);
                }
            } else if key.starts_with("lease/") {
                let lease = value
                    .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                    .and_then(|v| v["lease"].as_i64())
                    .unwrap_or(0);
                loaded.lease = loaded.lease.max(lease);
            }
        })?;
        Ok(loaded)
    }

    /// Every live history entry of this connector, by key.
    fn read_history(&self, end: i64) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
        let mut out = BTreeMap::new();
        let (topic, p) = (self.history_topic.clone(), self.history_partition);
        self.read_through(&topic, p, end, &mut |_, key, value| {
            if key.starts_with("h/") {
                match value {
                    Some(v) => out.insert(key.to_string(), v.to_vec()),
                    None => out.remove(key),
                };
            }
        })?;
        Ok(out)
    }

    /// Follow the state partition after our claim: a newer claim fences this process.
    fn watch(&self) {
        let (fenced, stop) = (self.fenced.clone(), self.stop.clone());
        let prefix = format!("{}/claim/", self.connector);
        let claim = self.claim;
        let c = match self
            .log
            .consumer(&self.topic, self.partition, Offset::Offset(claim + 1))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the state topic: a takeover is noticed at the next start only");
                return;
            }
        };
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                    let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                    if let Some(owner) = key.strip_prefix(&prefix) {
                        if m.offset() > claim {
                            tracing::warn!(
                                owner,
                                "another process claimed this connector: stopping"
                            );
                            *fenced.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(owner.to_string());
                            return;
                        }
                    }
                }
            }
        });
    }

    /// Where this process's state records go: topic, partition, full key (`kafka.exactly_once`
    /// writes them itself, inside its transactions).
    pub(crate) fn state_record(&self) -> (String, i32, String) {
        (
            self.topic.clone(),
            self.partition,
            format!("{}/state/{}", self.connector, self.claim),
        )
    }

    /// The owner of a newer claim, if this process was fenced.
    pub(crate) fn fenced(&self) -> Option<StoreError> {
        let g = self.fenced.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|by| StoreError::Fenced {
            connector: self.connector.clone(),
            by: by.clone(),
        })
    }

    pub(crate) fn save_state(&self, body: &[u8]) -> Result<(), StoreError> {
        if let Some(e) = self.fenced() {
            return Err(e);
        }
        self.write(
            &self.topic,
            self.partition,
            &format!("state/{}", self.claim),
            Some(body),
        )
        .map(|_| ())
    }

    pub(crate) fn save_lease(&self, ms: i64) -> Result<(), StoreError> {
        if let Some(e) = self.fenced() {
            return Err(e);
        }
        let v = serde_json::json!({ "lease": ms }).to_string();
        self.write(
            &self.topic,
            self.partition,
            &format!("lease/{}", self.claim),
            Some(v.as_bytes()),
        )
        .map(|_| ())
    }

    /// Append schema history entries (key, line) in order, waiting once for all of them.
    pub(crate) fn history_append(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let keys: Vec<String> = entries
            .iter()
            .map(|(k, _)| format!("{}/h/{k}", self.connector))
            .collect();
        let records: Vec<(&str, Option<&[u8]>)> = (keys.iter())
            .zip(entries)
            .map(|(k, (_, line))| (k.as_str(), Some(line.as_slice())))
            .collect();
        self.log
            .write_all(&self.history_topic, self.history_partition, &records)
            .map_err(StoreError::Kafka)?;
        self.history_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(entries.iter().map(|(k, _)| format!("h/{k}")));
        Ok(())
    }

    pub(crate) fn history_reset(&self) -> Result<(), StoreError> {
        let keys =
            std::mem::take(&mut *self.history_keys.lock().unwrap_or_else(|e| e.into_inner()));
        for k in keys {
            self.write(&self.history_topic, self.history_partition, &k, None)?;
        }
        Ok(())
    }
}

impl Drop for KafkaState {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.log.flush();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connector_keeps_its_partition() {
        assert_eq!(partition_of("orders", 1), 0);
        let p = partition_of("orders", 25);
        assert!((0..25).contains(&p));
        assert_eq!(partition_of("orders", 25), p);
        assert_ne!(
            (0..20)
                .map(|i| partition_of(&format!("c{i}"), 25))
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1
        );
    }
}
