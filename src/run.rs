//! Orchestration of `rowstream run`: wires source, pipeline and committer; does no processing.
//!
//! ```text
//! source --Batch--> pipeline --records--> Kafka
//!   ^                                       | delivery reports
//!   |                                       v
//!   +--- acked position <-- committer <-- tracker (in order)
//! ```
//!
//! Invariants:
//! - The committer stores a position only after the tracker released it (every record before it
//!   acknowledged), and only then tells the source, which only then confirms it to the database.
//! - Shutdown (SIGTERM/SIGINT) stops the source reading, lets the pipeline hand over and flush
//!   what it has, stores the final position, confirms it to the database, and exits 0.
//! - Any stage failing stops the others the same way; the process exits non-zero with the error.

use crate::checkpoint::store::{State, Store};
use crate::checkpoint::tracker::Tracker;
use crate::config::{Config, SourceType};
use crate::pipeline::{Pipeline, Stats};
use crate::position::SourcePosition;
use crate::sequence::SequenceGen;
use crate::sink::kafka::KafkaSink;
use crate::source::postgres;
use anyhow::Context as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Channel depth in batches (each up to 512 events): bounds what sits between source and sink.
const CHANNEL_BATCHES: usize = 8;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    if cfg.source.kind != SourceType::Postgres {
        anyhow::bail!("source.type = mysql is not available in this build yet");
    }
    let store = Arc::new(Store::open(&cfg.state.dir)?);
    let sid = postgres::source_id(&cfg);
    let mut state = match store.load()? {
        Some(s) => {
            if s.source_id != sid {
                anyhow::bail!(
                    "state dir {} belongs to source `{}`, not `{sid}`: give this pipeline its own state.dir",
                    cfg.state.dir.display(),
                    s.source_id
                );
            }
            s
        }
        None => State {
            version: 1,
            source_id: sid,
            event_time_ms: -1,
            ..Default::default()
        },
    };
    tracing::info!(
        state = %cfg.state.dir.display(),
        position = %state.position.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
        "starting"
    );
    let tracker = Arc::new(Tracker::new());
    let sink = KafkaSink::new(&cfg.kafka, tracker.clone())?;
    let prepared = postgres::prepare(&cfg, &state).await?;
    let stats = Arc::new(Stats::default());
    stats
        .delivered_event_time
        .store(state.event_time_ms, Ordering::Relaxed);
    let seq = SequenceGen::open(&store)?;
    let mut pipeline = Pipeline::new(
        sink,
        seq,
        store.clone(),
        tracker.clone(),
        cfg.encode.split_update,
        cfg.kafka.key_separator.clone(),
        Duration::from_millis(cfg.heartbeat.interval_ms),
        stats.clone(),
    );
    for s in &prepared.schemas {
        pipeline
            .table(s)
            .await
            .with_context(|| format!("preparing the topic of {}", s.id))?;
    }
    store.save(&state)?;

    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let (ack_tx, ack_rx) = watch::channel::<Option<SourcePosition>>(state.position.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut source = tokio::spawn(prepared.run(tx, ack_rx, stop_rx));
    let mut pipe = tokio::spawn(pipeline.run(rx));
    if let Some(addr) = &cfg.admin.listen {
        crate::admin::serve(addr, stats.clone(), tracker.clone()).await?;
    }

    let mut tick = tokio::time::interval(Duration::from_millis(cfg.state.commit_interval_ms));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut source_result: Option<anyhow::Result<()>> = None;
    let mut stopping = false;
    let pipe_result: anyhow::Result<()> = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c(), if !stopping => {
                tracing::info!("SIGINT: stopping");
                stopping = true;
                let _ = stop_tx.send(true);
            }
            _ = sigterm.recv(), if !stopping => {
                tracing::info!("SIGTERM: stopping");
                stopping = true;
                let _ = stop_tx.send(true);
            }
            r = &mut source, if source_result.is_none() => {
                let r = flatten(r.map(|x| x.map_err(anyhow::Error::from)));
                if let Err(e) = &r {
                    tracing::error!(error = %format!("{e:#}"), "source failed");
                }
                source_result = Some(r);
                let _ = stop_tx.send(true);
            }
            r = &mut pipe => {
                break flatten(r.map(|x| x.map_err(anyhow::Error::from)));
            }
            _ = tick.tick() => commit(&tracker, &store, &mut state, &stats, &ack_tx)?,
        }
    };
    if let Err(e) = &pipe_result {
        tracing::error!(error = %format!("{e:#}"), "pipeline failed");
        let _ = stop_tx.send(true);
    }
    // the pipeline flushed: store the final position and let the source confirm it
    commit(&tracker, &store, &mut state, &stats, &ack_tx)?;
    drop(ack_tx);
    let source_result = match source_result {
        Some(r) => r,
        None => match tokio::time::timeout(Duration::from_secs(40), source).await {
            Ok(r) => flatten(r.map(|x| x.map_err(anyhow::Error::from))),
            Err(_) => Err(anyhow::anyhow!("the source did not stop in time")),
        },
    };
    tracing::info!(
        position = %state.position.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
        records = stats.records.load(Ordering::Relaxed),
        "stopped"
    );
    pipe_result.and(source_result)
}

fn flatten(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match r {
        Ok(x) => x,
        Err(e) => Err(anyhow::anyhow!("task failed: {e}")),
    }
}

fn commit(
    tracker: &Tracker,
    store: &Store,
    state: &mut State,
    stats: &Stats,
    ack: &watch::Sender<Option<SourcePosition>>,
) -> anyhow::Result<()> {
    let ready = tracker.drain_ready();
    let mut changed = false;
    for m in &ready {
        changed |= state.apply(m);
    }
    if changed {
        store.save(state)?;
        stats
            .delivered_event_time
            .store(state.event_time_ms, Ordering::Relaxed);
        if let Some(p) = &state.position {
            ack.send_replace(Some(p.clone()));
        }
        tracing::debug!(position = ?state.position, "checkpoint stored");
    }
    Ok(())
}
