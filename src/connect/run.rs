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
//! - Any stage failing stops the others the same way. A transient failure (connection lost,
//!   server restarting, records not delivered in time) restarts the pipeline in-process from the
//!   stored position after a backoff (1 s doubling to 30 s); nothing is lost because nothing
//!   after the stored position was acknowledged to the database. So does an unreachable
//!   database once a run got as far as streaming (a server restarting); at the first start it
//!   is a setup problem. Permanent failures (config, auth, missing prerequisites) stop the
//!   process non-zero with their fix.

use crate::checkpoint::store::{State, Store};
use crate::checkpoint::tracker::Tracker;
use crate::config::Config;
use crate::connect::control::{ConnectorState, Control, Target};
use crate::connect::pipeline::{Pipeline, Settings};
use crate::error::{Error, ErrorClass, ResultExt as _};
use crate::kafka::KafkaSink;
use crate::metrics::Metrics;
use crate::model::position::SourcePosition;
use crate::model::sequence::SequenceGen;
use crate::source::batch::Batcher;
use crate::source::{self, Source as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::run";

/// Channel depth in batches (each up to 512 events): bounds what sits between source and sink.
const CHANNEL_BATCHES: usize = 8;

/// True once SIGTERM or SIGINT arrived: the process is asked to stop.
pub(crate) fn sigterm() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!(target: LOG_TARGET, "SIGINT: stopping"),
            _ = term.recv() => tracing::info!(target: LOG_TARGET, "SIGTERM: stopping"),
        }
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// A stop signal for one run of the pipeline: SIGTERM, or the connector being asked for
/// something else (pause, stop, restart).
fn run_stop(
    mut sigterm: watch::Receiver<bool>,
    mut wanted: watch::Receiver<(Target, u64)>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(*sigterm.borrow());
    wanted.borrow_and_update();
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.wait_for(|s| *s) => {}
            _ = wanted.changed() => {}
            _ = tx.closed() => return,
        }
        let _ = tx.send(true);
    });
    rx
}

/// Run until SIGTERM/SIGINT, restarting after transient failures, paused, stopped and restarted
/// on request (REST). With `resnapshot`, the first attempt starts over (see `rowstream run
/// --resnapshot`).
pub(crate) async fn run(
    cfg: Config,
    resnapshot: bool,
    progress: crate::connect::progress::Mode,
    progress_every: Duration,
) -> Result<(), Error> {
    let stop_rx = sigterm();
    let worker_id = cfg
        .admin
        .listen
        .clone()
        .unwrap_or_else(|| "standalone".into());
    let control = Arc::new(Control::new(cfg.clone(), worker_id));
    if let Some(addr) = &cfg.admin.listen {
        let admin = crate::connect::control::Admin::default();
        admin.add(control.clone());
        crate::connect::http::serve::serve(addr, admin, cfg.admin.token.clone()).await?;
    }
    let shown = crate::connect::progress::start(control.metrics.clone(), progress, progress_every);
    let res = run_connector(&control, stop_rx, resnapshot).await;
    drop(shown);
    if let Err(e) = &res {
        control.set_state(ConnectorState::Failed, Some(e.to_string()));
    }
    res
}

/// One connector until `sigterm`, restarting after transient failures, following its target
/// (pause, resume, stop, restart). A setup or fatal error ends it (`Err`).
pub(crate) async fn run_connector(
    control: &Arc<Control>,
    stop_rx: watch::Receiver<bool>,
    resnapshot: bool,
) -> Result<(), Error> {
    let cfg = &control.cfg;
    let mut wanted = control.wanted.subscribe();
    let mut sigterm = stop_rx.clone();
    // STOPPED (Connect: no tasks): nothing is opened, no store, no probe, no client, until it
    // is asked to run (1,000 connectors created STOPPED held ~3,200 threads and 1 GB a worker)
    while wanted.borrow_and_update().0 == Target::Stopped {
        control.set_state(ConnectorState::Stopped, None);
        tracing::info!(target: LOG_TARGET, connector = %control.name, "connector held STOPPED: nothing is opened until it runs");
        tokio::select! {
            _ = wanted.changed() => {}
            _ = sigterm.wait_for(|s| *s) => return Ok(()),
        }
    }
    // exactly-once: fence older producers of the connector first, so the state topic is not
    // held back by a dead process's open transaction; then try one transaction, *before* the
    // store claims the connector: a broker that refuses transactions costs nothing (the
    // process running the connector is not fenced by a claim of a start that cannot run)
    if let Some(id) = crate::checkpoint::store::transactional_id(cfg) {
        crate::kafka::fence_transactions(&cfg.kafka, &id)?;
        crate::checkpoint::log::ensure_topics(&cfg.kafka, &[&cfg.state.topic])
            .await
            .map_err(crate::checkpoint::state::StoreError::Kafka)?;
        crate::kafka::try_transaction(&cfg.kafka, &id, &cfg.state.topic)?;
    }
    // opened once: with the Kafka backend, opening claims the connector
    let store = control.open_store().await?;
    // the source's retained log, watched while the connector lives (paused and stopped too:
    // that is when it grows)
    let _probe = Probe(tokio::spawn(probe_source(
        cfg.clone(),
        store.clone(),
        control.metrics.clone(),
    )));
    let mut backoff = Duration::from_secs(1);
    // whether a run got as far as streaming: from then on an unreachable database is retried
    let mut streamed = false;
    loop {
        // paused or stopped: hold until resumed (the source is disconnected meanwhile)
        let target = wanted.borrow_and_update().0;
        if target != Target::Running {
            control.set_state(target.state(), None);
            tracing::info!(target: LOG_TARGET, connector = %control.name, state = target.state().name(), "connector held");
            tokio::select! {
                _ = wanted.changed() => continue,
                _ = sigterm.wait_for(|s| *s) => return Ok(()),
            }
        }
        control.set_state(ConnectorState::Running, None);
        let started = std::time::Instant::now();
        // only the first attempt starts over; later ones resume what it stored
        let fresh = resnapshot && !streamed;
        let stop = run_stop(stop_rx.clone(), control.wanted.subscribe());
        let res = run_once(cfg, &store, stop, control, &mut streamed, fresh).await;
        control.set_handles(None);
        let err = match res {
            Ok(()) if *stop_rx.borrow() => return Ok(()),
            // asked to pause, stop or restart
            Ok(()) => continue,
            Err(e) => e,
        };
        control.metrics.error(err.class());
        let retry = match err.class() {
            ErrorClass::Transient => true,
            ErrorClass::Unreachable => streamed,
            ErrorClass::Setup | ErrorClass::Fatal => false,
        };
        if *stop_rx.borrow() || !retry {
            return Err(err);
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tracing::warn!(target: LOG_TARGET, error = %err, retry_in_secs = backoff.as_secs(), "transient failure: restarting from the stored position");
        control.metrics.restarts.fetch_add(1, Ordering::Relaxed);
        control.metrics.up.store(0, Ordering::Relaxed);
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wanted.changed() => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// One run of the connector: the source and the pipeline started from the stored state,
/// positions stored until `outer_stop` or a stage ends, then the final one. `streamed` is set
/// once the source is prepared; `fresh`: `--resnapshot`.
async fn run_once(
    cfg: &Config,
    store: &Arc<Store>,
    outer_stop: watch::Receiver<bool>,
    control: &Control,
    streamed: &mut bool,
    fresh: bool,
) -> Result<(), Error> {
    let cfg = cfg.clone();
    let stats = control.metrics.clone();
    let Prepared {
        state,
        tracker,
        source,
        pipeline,
        committed,
        eos,
    } = prepare(&cfg, store, &stats, streamed, fresh).await?;

    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let (ack_tx, ack_rx) = watch::channel::<Option<SourcePosition>>(state.position.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (snap_tx, snap_rx) = mpsc::channel(4);
    let mut source = tokio::spawn(source.run(
        Batcher::with_metrics(tx, stats.clone()),
        ack_rx,
        stop_rx,
        snap_rx,
    ));
    let pipe = tokio::spawn(pipeline.run(rx));
    control.set_handles(Some(crate::connect::control::Handles {
        tracker: tracker.clone(),
        snapshots: snap_tx,
    }));

    let mut positions = Positions {
        store,
        tracker,
        stats,
        state,
        ack: ack_tx,
        committed,
        eos,
    };
    let every = Duration::from_millis(cfg.state.commit_interval_ms);
    let (pipe_result, source_result) = supervise(
        outer_stop,
        &stop_tx,
        &mut source,
        pipe,
        &mut positions,
        every,
    )
    .await?;
    if let Err(e) = &pipe_result {
        tracing::debug!(target: LOG_TARGET, error = %e, "pipeline stopped with an error");
        let _ = stop_tx.send(true);
    }
    // the pipeline flushed: store the final position and let the source confirm it
    positions.store_final()?;
    drop(positions.ack);
    let source_result = match source_result {
        Some(r) => r,
        None => source_end(source).await,
    };
    tracing::info!(target: LOG_TARGET,
        position = %positions.state.position.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
        records = positions.stats.records.load(Ordering::Relaxed),
        "stopped"
    );
    pipe_result.and(source_result)
}

/// A run ready to start its tasks.
struct Prepared {
    /// the starting state, with the snapshots about to start applied and saved
    state: State,
    tracker: Arc<Tracker>,
    source: source::AnySource,
    pipeline: Pipeline,
    /// exactly-once: the state the pipeline committed with its last transaction
    committed: watch::Receiver<State>,
    /// exactly-once (the pipeline commits the state with its transactions)
    eos: bool,
}

/// What a run needs before its tasks start: the starting state, the Kafka sink, the prepared
/// source (`streamed` is set from then on), the pipeline with its tables' topics, the
/// snapshots about to start on disk, and exactly-once set up when configured.
async fn prepare(
    cfg: &Config,
    store: &Arc<Store>,
    stats: &Arc<Metrics>,
    streamed: &mut bool,
    fresh: bool,
) -> Result<Prepared, Error> {
    let mut state = starting_state(store, cfg, fresh)?;
    let tracker = Arc::new(Tracker::new());
    let txn_id = crate::checkpoint::store::transactional_id(cfg);
    let sink = KafkaSink::new(
        &cfg.kafka,
        tracker.clone(),
        stats.clone(),
        txn_id.as_deref(),
    )?;
    let ready = source::prepare(cfg, &state, fresh, store.clone()).await?;
    *streamed = true;
    stats
        .delivered_event_time
        .store(state.event_time_ms, Ordering::Relaxed);
    let seq = SequenceGen::resume(store.load_lease()?);
    let mut pipeline = Pipeline::new(
        sink,
        seq,
        store.clone(),
        tracker.clone(),
        stats.clone(),
        Settings::from_config(cfg),
    );
    for s in &ready.schemas {
        pipeline
            .table(s)
            .await
            .context_err(format!("preparing the topic of {}", s.id))?;
    }
    pipeline
        .own_topics()
        .await
        .context_err("preparing the topic of the transaction markers")?;
    // the snapshots about to start are on disk before their first row is sent
    for m in ready.source.started() {
        state.apply(&m)?;
    }
    store.save(&state)?;
    // exactly-once: the pipeline folds and commits the state with its transactions
    let (committed_tx, committed) = watch::channel(state.clone());
    if txn_id.is_some() {
        pipeline.exactly_once(crate::connect::pipeline::Eos {
            state: state.clone(),
            committed: committed_tx,
            interval: Duration::from_millis(cfg.state.commit_interval_ms),
            unmarked: false,
            due: false,
        });
    }
    Ok(Prepared {
        state,
        tracker,
        source: ready.source,
        pipeline,
        committed,
        eos: txn_id.is_some(),
    })
}

/// Wait for the pipeline to end, storing positions meanwhile (every `every`, or as the
/// exactly-once pipeline commits them); the source is told to stop (`stop`) when the run is
/// asked to stop or the source ends first. Returns the pipeline's outcome and the source's
/// if it ended.
async fn supervise(
    mut outer_stop: watch::Receiver<bool>,
    stop: &watch::Sender<bool>,
    source: &mut tokio::task::JoinHandle<Result<(), Error>>,
    mut pipe: tokio::task::JoinHandle<Result<(), crate::connect::pipeline::PipelineError>>,
    positions: &mut Positions<'_>,
    every: Duration,
) -> Result<(Result<(), Error>, Option<Result<(), Error>>), Error> {
    let mut tick = tokio::time::interval(every);
    let mut source_result: Option<Result<(), Error>> = None;
    let mut stopping = false;
    let pipe_result: Result<(), Error> = loop {
        tokio::select! {
            r = outer_stop.wait_for(|s| *s), if !stopping => {
                let _ = r;
                stopping = true;
                let _ = stop.send(true);
            }
            r = &mut *source, if source_result.is_none() => {
                let r = flatten(r);
                if let Err(e) = &r {
                    tracing::debug!(target: LOG_TARGET, error = %e, "source stopped with an error");
                }
                source_result = Some(r);
                let _ = stop.send(true);
            }
            r = &mut pipe => {
                break flatten(r.map(|x| x.map_err(Error::from)));
            }
            _ = tick.tick(), if !positions.eos => positions.commit()?,
            r = positions.committed.changed(), if positions.eos => {
                if r.is_ok() {
                    positions.take_committed();
                }
            }
        }
    };
    Ok((pipe_result, source_result))
}

/// A run's positions: the state it stores and confirms to the source through `ack`.
/// At-least-once it stores what the tracker released; exactly-once it takes the state the
/// pipeline committed with its transactions (`committed`).
struct Positions<'a> {
    store: &'a Store,
    tracker: Arc<Tracker>,
    stats: Arc<Metrics>,
    state: State,
    ack: watch::Sender<Option<SourcePosition>>,
    committed: watch::Receiver<State>,
    eos: bool,
}

impl Positions<'_> {
    /// At-least-once: store the position the tracker released, and confirm it.
    fn commit(&mut self) -> Result<(), Error> {
        commit(
            &self.tracker,
            self.store,
            &mut self.state,
            &self.stats,
            &self.ack,
        )
    }

    /// Exactly-once: take the state the pipeline committed last, and confirm its position.
    fn take_committed(&mut self) {
        self.state = self.committed.borrow_and_update().clone();
        acknowledge(&self.state, &self.stats, &self.ack);
    }

    /// Once the pipeline flushed: the final position, stored (or taken) and confirmed.
    fn store_final(&mut self) -> Result<(), Error> {
        if self.eos {
            self.take_committed();
        } else {
            self.commit()?;
        }
        Ok(())
    }
}

/// The state a run starts from: the stored one (or a fresh one); with `--resnapshot` its
/// position and snapshot progress are forgotten.
fn starting_state(store: &Store, cfg: &Config, fresh: bool) -> Result<State, Error> {
    store.fenced()?;
    let mut state = load_state(store, cfg)?;
    if fresh {
        tracing::warn!(target: LOG_TARGET,
            previous_position = %state.position.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
            "--resnapshot: starting over (the stored position and snapshot state are forgotten; every table is snapshotted again)"
        );
        state.position = None;
        state.tables.clear();
        state.event_time_ms = -1;
    }
    tracing::info!(target: LOG_TARGET,
        state = %store.describe(),
        position = %state.position.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
        "starting"
    );
    Ok(state)
}

/// The source's outcome once it was told to stop: it has 40 s to stop at a safe point.
async fn source_end(source: tokio::task::JoinHandle<Result<(), Error>>) -> Result<(), Error> {
    match tokio::time::timeout(Duration::from_secs(40), source).await {
        Ok(r) => flatten(r),
        Err(_) => Err(Error::fatal("the source did not stop in time")),
    }
}

/// The stored state, or a fresh one; a state of another source is a setup error.
fn load_state(store: &Store, cfg: &Config) -> Result<State, Error> {
    let sid = source::source_id(cfg);
    match store.load()? {
        Some(mut s) if s.source_id != sid && source::may_move(&s, &sid) => {
            tracing::warn!(target: LOG_TARGET, from = %s.source_id, to = %sid, position = %s.position.as_ref().map(|p| p.to_string()).unwrap_or_default(), "the source moved to another server: resuming by GTID");
            s.moved_from = Some(std::mem::replace(&mut s.source_id, sid));
            Ok(s)
        }
        Some(s) if s.source_id != sid => Err(Error::setup(
            format!(
                "state {} belongs to source `{}`, not `{sid}`",
                store.describe(),
                s.source_id
            ),
            "give this pipeline its own state.dir (or, with state.backend = \"kafka\", its own state.connector)",
        )),
        Some(s) => Ok(s),
        None => Ok(State::fresh(sid)),
    }
}

/// How often the source's retained log is measured.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Stops the source probe when the connector ends.
struct Probe(tokio::task::JoinHandle<()>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Measure what the source retains for this connector every [`PROBE_EVERY`] (over one session
/// kept open; a failure is logged at debug, shows as -1, and opens a new session next time).
async fn probe_source(cfg: Config, store: Arc<Store>, metrics: Arc<Metrics>) {
    let mut probe = source::RetentionProbe::new(&cfg);
    loop {
        let stored = store.load().ok().flatten().and_then(|s| s.position);
        let r = tokio::time::timeout(Duration::from_secs(10), probe.measure(stored.as_ref()))
            .await
            .unwrap_or_else(|_| Err("no answer within 10 s".into()));
        match r {
            Ok((bytes, status)) => {
                metrics
                    .source
                    .retained_bytes
                    .store(bytes, Ordering::Relaxed);
                *metrics
                    .source
                    .wal_status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = status;
            }
            Err(e) => {
                tracing::debug!(target: LOG_TARGET, error = %e, "cannot measure the source's retained log");
                metrics.source.retained_bytes.store(-1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

fn flatten(r: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    match r {
        Ok(x) => x,
        Err(e) => Err(Error::fatal(format!("task failed: {e}"))),
    }
}

fn commit(
    tracker: &Tracker,
    store: &Store,
    state: &mut State,
    stats: &Metrics,
    ack: &watch::Sender<Option<SourcePosition>>,
) -> Result<(), Error> {
    if crate::checkpoint::commit::commit(tracker, store, state)? {
        acknowledge(state, stats, ack);
    } else if tracker.in_flight() == 0 {
        // nothing delivered since: the stored position is current
        stats
            .checkpointed_at
            .store(crate::model::time::now_ms(), Ordering::Relaxed);
    }
    Ok(())
}

/// A stored state: its position may be confirmed to the source, its time shown in heartbeats.
fn acknowledge(state: &State, stats: &Metrics, ack: &watch::Sender<Option<SourcePosition>>) {
    stats
        .delivered_event_time
        .store(state.event_time_ms, Ordering::Relaxed);
    stats
        .checkpointed_at
        .store(crate::model::time::now_ms(), Ordering::Relaxed);
    if let Some(p) = &state.position {
        ack.send_replace(Some(p.clone()));
        tracing::debug!(target: LOG_TARGET, position = %p, "checkpoint stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::store::StoreError;
    use crate::connect::pipeline::PipelineError;
    use crate::kafka::SinkError;
    use crate::source::mysql::MySqlError;
    use crate::source::postgres::SourceError;

    /// Errors as they really arrive in `run`: wrapped by the stages that carry them.
    #[test]
    fn classes_survive_the_real_wrapping() {
        let delivery: Error = PipelineError::Sink(SinkError::Delivery("timed out".into())).into();
        assert_eq!(delivery.class(), ErrorClass::Transient);
        let delivery = delivery.context("pipeline");
        assert_eq!(delivery.class(), ErrorClass::Transient);
        let corrupt: Error = PipelineError::Store(StoreError::Corrupt {
            path: "x".into(),
            err: serde_json::from_str::<u8>("{").unwrap_err(),
        })
        .into();
        assert_eq!(corrupt.class(), ErrorClass::Setup);
        let gone: Error = SourceError::Protocol(crate::source::postgres::replication::PgError::Io(
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"),
        ))
        .into();
        assert_eq!(gone.context("streaming").class(), ErrorClass::Transient);
        let purged: Error =
            MySqlError::Driver(mysql_async::Error::Server(mysql_async::ServerError {
                code: 1236,
                message: "purged".into(),
                state: "HY000".into(),
            }))
            .into();
        assert_eq!(purged.class(), ErrorClass::Setup);
        assert_eq!(Error::fatal("x").class(), ErrorClass::Fatal);
    }
}
