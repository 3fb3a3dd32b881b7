//! The listener's own endpoints (`admin.listen`, `worker.listen`; served by `http::serve`):
//! `/healthz` (alive, no delivery failure, and Kafka
//! acknowledging: 503 "degraded" while records wait 10 s with no report, as when the broker is
//! down),
//! `/metrics` (Prometheus text), `POST /snapshot` (`{"tables": ["schema.table", ...]}`:
//! snapshot tables again while streaming; what `rowstream snapshot` sends). Metric names are
//! declared in `crate::metrics`, in one place.
//!
//! Invariants:
//! - The listener is bound once per process and outlives in-process restarts: each run of the
//!   pipeline installs its handles in its connector's `Control`; between runs the endpoints
//!   say so (503), or that the connector is paused / stopped on request.
//! - Metrics carry counts and times only, never row values or secrets.

use crate::connect::control::{Admin, ConnectorState};
use crate::source::SnapshotRequest;
use axum::{extract::State, http::StatusCode};
use std::time::Duration;

type Reply = (StatusCode, String);

/// Records waiting this long without any delivery report make `/healthz` say degraded.
const STALLED: Duration = Duration::from_secs(10);

fn not_running() -> Reply {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the pipeline is (re)starting\n".into(),
    )
}

/// `/healthz`: the connector of `run`; for a worker, every connector (200 when all are
/// streaming, snapshotting, paused or stopped on request; 503 naming the others).
pub(super) async fn health(State(a): State<Admin>) -> Reply {
    if let Some(c) = a.only() {
        return health_of(&c);
    }
    let all: Vec<_> = a
        .names()
        .into_iter()
        .filter_map(|n| a.connector(&n))
        .collect();
    let bad: Vec<String> = all
        .iter()
        .filter_map(|c| {
            let (code, text) = health_of(c);
            (code != StatusCode::OK).then(|| format!("{}: {}", c.name, text.trim_end()))
        })
        .collect();
    match bad.is_empty() {
        true => (StatusCode::OK, format!("ok: {} connector(s)\n", all.len())),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", bad.join("\n")),
        ),
    }
}

/// `/health`: alive: the process serves (200), with each connector's state.
pub(super) async fn alive(State(a): State<Admin>) -> axum::response::Response {
    let mut connectors = serde_json::Map::new();
    for c in a.names().into_iter().filter_map(|n| a.connector(&n)) {
        connectors.insert(c.name.clone(), serde_json::json!(c.state().0));
    }
    let body = serde_json::json!({ "status": "UP", "connectors": connectors });
    json_reply(StatusCode::OK, &body)
}

/// `/ready`: 200 when every connector is ready (see [`readiness`]), 503 otherwise; the body
/// gives each connector's reasons.
pub(super) async fn ready(State(a): State<Admin>) -> axum::response::Response {
    let mut connectors = serde_json::Map::new();
    let mut all = true;
    for c in a.names().into_iter().filter_map(|n| a.connector(&n)) {
        let reasons = readiness(&c);
        all &= reasons.is_empty();
        connectors.insert(
            c.name.clone(),
            serde_json::json!({ "ready": reasons.is_empty(), "state": c.state().0, "reasons": reasons }),
        );
    }
    let code = match all {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = serde_json::json!({ "ready": all, "connectors": connectors });
    json_reply(code, &body)
}

fn json_reply(code: StatusCode, v: &serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Why connector `c` is not ready (empty: ready): it must be running (snapshotting or
/// streaming; paused or stopped on request counts as ready), its broker acknowledging, its
/// stored position not older than `admin.ready_max_checkpoint_age_ms` while records wait,
/// and its lag within `admin.ready_max_lag_ms` when set.
pub(crate) fn readiness(c: &crate::connect::control::Control) -> Vec<String> {
    let mut why = Vec::new();
    let (state, trace) = c.state();
    let Some(h) = c.handles() else {
        match state {
            ConnectorState::Paused | ConnectorState::Stopped => {}
            ConnectorState::Failed => why.push(format!(
                "failed: {}",
                trace.unwrap_or_default().lines().next().unwrap_or_default()
            )),
            _ => why.push("not running: starting, or restarting after a failure".into()),
        }
        return why;
    };
    if let Some(f) = h.tracker.failure() {
        why.push(format!("delivery failed: {f}"));
    }
    if let Some(d) = h.tracker.stalled_for().filter(|d| *d >= STALLED) {
        why.push(format!(
            "broker unreachable: Kafka has acknowledged nothing for {} s ({} records waiting)",
            d.as_secs(),
            h.tracker.in_flight()
        ));
    }
    let m = &c.metrics;
    let max_age = c.cfg.admin.ready_max_checkpoint_age_ms as i64;
    if let Some(age) = m.checkpoint_age_ms().filter(|a| *a > max_age) {
        why.push(format!(
            "checkpoint {age} ms old, over admin.ready_max_checkpoint_age_ms = {max_age}"
        ));
    }
    if let (Some(max), Some(lag)) = (c.cfg.admin.ready_max_lag_ms, m.lag_ms()) {
        if lag > max as i64 {
            why.push(format!("lag {lag} ms, over admin.ready_max_lag_ms = {max}"));
        }
    }
    why
}

/// One connector's health.
fn health_of(c: &crate::connect::control::Control) -> Reply {
    let Some(s) = c.handles() else {
        // paused or stopped on request (REST) is a healthy state, not a restart
        let (state, trace) = c.state();
        return match state {
            ConnectorState::Paused | ConnectorState::Stopped => (
                StatusCode::OK,
                format!("{} on request\n", state.name().to_lowercase()),
            ),
            ConnectorState::Failed => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("failed: {}\n", trace.unwrap_or_default()),
            ),
            _ => not_running(),
        };
    };
    let stalled = s.tracker.stalled_for().filter(|d| *d >= STALLED);
    match s.tracker.failure() {
        None if stalled.is_some() => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "degraded: Kafka has acknowledged nothing for {} s ({} records waiting); rowstream keeps retrying\n",
                stalled.unwrap_or_default().as_secs(),
                s.tracker.in_flight()
            ),
        ),
        None => (StatusCode::OK, "ok\n".into()),
        Some(f) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("delivery failed: {f}\n"),
        ),
    }
}

/// `POST /snapshot` `{"tables": [...]}`: 202 when queued, 400 with the reasons when not.
pub(super) async fn snapshot(State(a): State<Admin>, body: String) -> Reply {
    match a.only() {
        Some(c) => snapshot_of(&c, body).await,
        None => not_running(),
    }
}

/// `{"tables": [...]}` for connector `c`: 202 when queued, 400 with the reasons when not.
pub(crate) async fn snapshot_of(c: &crate::connect::control::Control, body: String) -> Reply {
    #[derive(serde::Deserialize)]
    struct Body {
        tables: Vec<String>,
    }
    let tables = match serde_json::from_str::<Body>(&body) {
        Ok(b) if !b.tables.is_empty() => b.tables,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "expected a JSON body {\"tables\": [\"schema.table\", ...]}\n".into(),
            )
        }
    };
    let Some(h) = c.handles() else {
        return not_running();
    };
    let (req, answer) = SnapshotRequest::new(tables.clone());
    if h.snapshots.send(req).await.is_err() {
        return not_running();
    }
    match tokio::time::timeout(Duration::from_secs(30), answer).await {
        Ok(Ok(Ok(()))) => (
            StatusCode::ACCEPTED,
            format!("snapshot queued: {}\n", tables.join(", ")),
        ),
        Ok(Ok(Err(problems))) => (
            StatusCode::BAD_REQUEST,
            format!("nothing queued:\n  {}\n", problems.join("\n  ")),
        ),
        Ok(Err(_)) => not_running(),
        // the source takes requests while it streams: not during its initial snapshot
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no answer within 30 s: requests are taken once the initial snapshot is done and streaming runs; this one waits until then\n".into(),
        ),
    }
}

/// `/metrics`: the connector of `run` (unlabelled); for a worker, a series per connector it
/// runs, labelled `connector="<name>"`. Names and meanings: `crate::metrics`.
pub(super) async fn metrics(State(a): State<Admin>) -> Reply {
    let of = |c: &crate::connect::control::Control| {
        let in_flight = c.handles().map(|h| h.tracker.in_flight()).unwrap_or(0);
        c.metrics.samples(in_flight)
    };
    let series: Vec<(Option<String>, Vec<crate::metrics::Sample>)> = match a.only() {
        Some(c) => vec![(None, of(&c))],
        None => a
            .names()
            .into_iter()
            .filter_map(|n| a.connector(&n))
            .map(|c| (Some(c.name.clone()), of(&c)))
            .collect(),
    };
    (StatusCode::OK, crate::metrics::render(&series))
}
