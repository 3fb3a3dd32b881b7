//! The admin HTTP endpoint (`admin.listen`): `/healthz` (alive, and no delivery failure),
//! `/metrics` (Prometheus text). Metric names are declared here, in one place.
//!
//! Invariant: metrics carry counts and times only, never row values or secrets.

use crate::checkpoint::tracker::Tracker;
use crate::pipeline::Stats;
use axum::{extract::State, http::StatusCode, routing::get, Router};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Clone)]
struct Shared {
    stats: Arc<Stats>,
    tracker: Arc<Tracker>,
}

pub(crate) async fn serve(
    addr: &str,
    stats: Arc<Stats>,
    tracker: Arc<Tracker>,
) -> Result<(), crate::error::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        crate::error::Error::setup(
            format!("admin.listen {addr}: {e}"),
            "choose a free host:port for admin.listen, or remove it",
        )
    })?;
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .with_state(Shared { stats, tracker });
    tracing::info!(addr, "admin endpoint listening (/healthz, /metrics)");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "admin endpoint stopped");
        }
    });
    Ok(())
}

async fn health(State(s): State<Shared>) -> (StatusCode, String) {
    match s.tracker.failure() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(f) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("delivery failed: {f}\n"),
        ),
    }
}

async fn metrics(State(s): State<Shared>) -> String {
    let st = &s.stats;
    let mut out = String::new();
    let mut m = |name: &str, kind: &str, help: &str, v: i64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    m(
        "rowstream_records_total",
        "counter",
        "Records handed to Kafka (rows, DDL).",
        st.records.load(Ordering::Relaxed) as i64,
    );
    m(
        "rowstream_snapshot_rows_total",
        "counter",
        "Snapshot rows read.",
        st.snapshot_rows.load(Ordering::Relaxed) as i64,
    );
    m(
        "rowstream_changes_total",
        "counter",
        "Change events streamed.",
        st.changes.load(Ordering::Relaxed) as i64,
    );
    m(
        "rowstream_ddl_records_total",
        "counter",
        "DDL records written.",
        st.ddl.load(Ordering::Relaxed) as i64,
    );
    m(
        "rowstream_oversized_records_total",
        "counter",
        "Records over message.max.bytes (left out or shrunk by kafka.oversized).",
        st.oversized.load(Ordering::Relaxed) as i64,
    );
    m(
        "rowstream_heartbeats_total",
        "counter",
        "MHEARTBEAT records written.",
        st.heartbeats.load(Ordering::Relaxed) as i64,
    );
    m(
        "rowstream_in_flight_records",
        "gauge",
        "Records sent and not yet acknowledged by Kafka.",
        s.tracker.in_flight() as i64,
    );
    m(
        "rowstream_render_failures_total",
        "counter",
        "Values that could not be rendered and were written as null.",
        crate::source::render::RENDER_FAILURES.load(Ordering::Relaxed) as i64,
    );
    let et = st.delivered_event_time.load(Ordering::Relaxed);
    m(
        "rowstream_delivered_event_time_ms",
        "gauge",
        "Commit time of the newest fully delivered source position.",
        et,
    );
    if et > 0 {
        m(
            "rowstream_lag_ms",
            "gauge",
            "Now minus the commit time of the newest delivered position.",
            crate::time::now_ms() - et,
        );
    }
    out
}
