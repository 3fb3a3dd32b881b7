//! The admin HTTP endpoint (`admin.listen`): `/healthz` (alive, no delivery failure, and Kafka
//! acknowledging: 503 "degraded" while records wait 10 s with no report, as when the broker is
//! down),
//! `/metrics` (Prometheus text), `POST /snapshot` (`{"tables": ["schema.table", ...]}`:
//! snapshot tables again while streaming; what `rowstream snapshot` sends). Metric names are
//! declared here, in one place.
//!
//! Invariants:
//! - The listener is bound once per process and outlives in-process restarts: each run of the
//!   pipeline installs its handles in its connector's `Control`; between runs the endpoints
//!   say so (503), or that the connector is paused / stopped on request.
//! - Metrics carry counts and times only, never row values or secrets.

use crate::checkpoint::tracker::Tracker;
use crate::source::SnapshotRequest;
use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Router,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The running pipeline's handles.
#[derive(Clone)]
pub(crate) struct Handles {
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) snapshots: mpsc::Sender<SnapshotRequest>,
}

/// What the endpoints read: the connectors this process runs (their config, state, controls
/// and the current run's handles), by name, and the token changing calls need.
#[derive(Clone, Default)]
pub(crate) struct Admin {
    connectors: Arc<Mutex<std::collections::BTreeMap<String, Arc<crate::run::Control>>>>,
    /// a worker's every connector, wherever it runs, with its config as given (flat)
    known:
        Arc<Mutex<std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>>>,
    /// the last status record of connectors running on other workers of the group
    remote: Arc<Mutex<std::collections::BTreeMap<String, serde_json::Value>>>,
    pub(crate) token: Option<String>,
    /// A worker takes connector configs over REST (create, replace, delete); `run` does not.
    pub(crate) changes: Option<mpsc::Sender<ConfigChange>>,
}

/// A connector config to create, replace or (None) delete, from REST to the worker; answered
/// with whether it was created, or an HTTP status and the problems.
pub(crate) struct ConfigChange {
    pub(crate) name: String,
    /// pause / resume / stop / restart instead of a config (reaches the connector on
    /// whichever worker runs it)
    pub(crate) steer: Option<Steer>,
    pub(crate) config: Option<serde_json::Map<String, serde_json::Value>>,
    /// refuse (409) when the connector exists (`POST /connectors`)
    pub(crate) create_only: bool,
    pub(crate) answer: tokio::sync::oneshot::Sender<Result<bool, (StatusCode, String)>>,
}

/// A request to steer a connector.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Steer {
    Target(crate::run::Target),
    Restart,
}

impl Admin {
    /// Every connector of a worker, with its config as given (listing, and the config of
    /// a connector running on another worker).
    pub(crate) fn set_known(
        &self,
        configs: std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    ) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = configs;
    }

    /// The config connector `name` was given, if this worker knows it (flat, as given).
    pub(crate) fn known_config(
        &self,
        name: &str,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The status another worker wrote for connector `name` (None: forget it).
    pub(crate) fn set_remote(&self, name: &str, status: Option<serde_json::Value>) {
        let mut g = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        match status {
            Some(s) => g.insert(name.to_string(), s),
            None => g.remove(name),
        };
    }

    /// The status record of connector `name` running on another worker, if it is known.
    pub(crate) fn remote(&self, name: &str) -> Option<Option<serde_json::Value>> {
        if !self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
        {
            return None;
        }
        Some(
            self.remote
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned(),
        )
    }

    pub(crate) fn add(&self, c: Arc<crate::run::Control>) {
        self.lock().insert(c.name.clone(), c);
    }

    pub(crate) fn remove(&self, name: &str) -> Option<Arc<crate::run::Control>> {
        self.lock().remove(name)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Arc<crate::run::Control>>>
    {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connector `name`.
    pub(crate) fn connector(&self, name: &str) -> Option<Arc<crate::run::Control>> {
        self.lock().get(name).cloned()
    }

    /// Every connector's name (a worker's: wherever it runs).
    pub(crate) fn names(&self) -> Vec<String> {
        let mut all: std::collections::BTreeSet<String> = self.lock().keys().cloned().collect();
        all.extend(
            self.known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        all.into_iter().collect()
    }

    /// The connector the name-less endpoints (`/healthz`, `/metrics`, `/snapshot`) are about:
    /// the only one (`rowstream run`).
    fn only(&self) -> Option<Arc<crate::run::Control>> {
        let g = self.lock();
        match g.len() {
            1 => g.values().next().cloned(),
            _ => None,
        }
    }
}

type Reply = (StatusCode, String);

/// Records waiting this long without any delivery report make `/healthz` say degraded.
const STALLED: Duration = Duration::from_secs(10);

fn not_running() -> Reply {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the pipeline is (re)starting\n".into(),
    )
}

pub(crate) async fn serve(
    addr: &str,
    mut admin: Admin,
    token: Option<String>,
) -> Result<(), crate::error::Error> {
    admin.token = token;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        crate::error::Error::setup(
            format!("admin.listen {addr}: {e}"),
            "choose a free host:port for admin.listen, or remove it",
        )
    })?;
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/health", get(alive))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/snapshot", post(snapshot))
        .merge(crate::rest::routes())
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            crate::rest::pass_on,
        ))
        .with_state(admin);
    tracing::info!(
        addr,
        "admin endpoint listening (/healthz, /metrics, POST /snapshot, the Kafka Connect REST API under /connectors)"
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "admin endpoint stopped");
        }
    });
    Ok(())
}

/// `/healthz`: the connector of `run`; for a worker, every connector (200 when all are
/// streaming, snapshotting, paused or stopped on request; 503 naming the others).
async fn health(State(a): State<Admin>) -> Reply {
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
async fn alive(State(a): State<Admin>) -> axum::response::Response {
    let mut connectors = serde_json::Map::new();
    for c in a.names().into_iter().filter_map(|n| a.connector(&n)) {
        connectors.insert(c.name.clone(), serde_json::json!(c.state().0));
    }
    let body = serde_json::json!({ "status": "UP", "connectors": connectors });
    json_reply(StatusCode::OK, &body)
}

/// `/ready`: 200 when every connector is ready (see [`readiness`]), 503 otherwise; the body
/// gives each connector's reasons.
async fn ready(State(a): State<Admin>) -> axum::response::Response {
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
pub(crate) fn readiness(c: &crate::run::Control) -> Vec<String> {
    let mut why = Vec::new();
    let (state, trace) = c.state();
    let Some(h) = c.handles() else {
        match state {
            "PAUSED" | "STOPPED" => {}
            "FAILED" => why.push(format!(
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
fn health_of(c: &crate::run::Control) -> Reply {
    let Some(s) = c.handles() else {
        // paused or stopped on request (REST) is a healthy state, not a restart
        let (state, trace) = c.state();
        return match state {
            "PAUSED" | "STOPPED" => (
                StatusCode::OK,
                format!("{} on request\n", state.to_lowercase()),
            ),
            "FAILED" => (
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
async fn snapshot(State(a): State<Admin>, body: String) -> Reply {
    match a.only() {
        Some(c) => snapshot_of(&c, body).await,
        None => not_running(),
    }
}

/// `{"tables": [...]}` for connector `c`: 202 when queued, 400 with the reasons when not.
pub(crate) async fn snapshot_of(c: &crate::run::Control, body: String) -> Reply {
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

/// The address to reach a listener at: a wildcard listener is reached on loopback.
pub(crate) fn reachable(listen: &str) -> String {
    listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:")
}

/// One HTTP/1.1 call to a rowstream listener (`rowstream snapshot`; a worker passing a call on
/// to the worker running the connector): the status code and body, or why there is none.
/// Written by hand rather than with a client crate: one request, `Connection: close`, to
/// rowstream's own server, which always answers with a Content-Length body.
pub(crate) async fn call(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = reachable(addr);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let io = async {
        let mut c = tokio::net::TcpStream::connect(&addr).await?;
        c.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).await?;
        Ok::<_, std::io::Error>(resp)
    };
    let resp = match tokio::time::timeout(Duration::from_secs(60), io).await {
        Ok(Ok(r)) => String::from_utf8_lossy(&r).into_owned(),
        Ok(Err(e)) => return Err(format!("cannot reach {addr}: {e}")),
        Err(_) => return Err(format!("no answer from {addr} within 60 s")),
    };
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr} answered something other than HTTP"))?;
    Ok((code, body.to_string()))
}

/// The client half of `POST /snapshot`, for `rowstream snapshot`: the server's answer, or why
/// there is none.
pub(crate) async fn request_snapshot(listen: &str, tables: &[String]) -> Result<String, String> {
    let body = serde_json::json!({ "tables": tables }).to_string();
    match call(listen, "POST", "/snapshot", &[], &body).await {
        Ok((202, body)) => Ok(body.trim().to_string()),
        Ok((_, body)) => Err(body.trim().to_string()),
        Err(e) => Err(format!("the running rowstream at admin.listen: {e}\n  fix: start `rowstream run` with this config first (admin.listen must be set)")),
    }
}

/// `rowstream health`: asks the admin listener at `listen` for `/health` (or `/ready`); the
/// answer's body when it is 200, else why not. For container health checks, which have no
/// shell or curl in rowstream's image.
pub(crate) async fn probe(listen: &str, ready: bool) -> Result<String, String> {
    let path = if ready { "/ready" } else { "/health" };
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        call(listen, "GET", path, &[], ""),
    )
    .await
    {
        Ok(Ok((200, body))) => Ok(body.trim().to_string()),
        Ok(Ok((code, body))) => Err(format!("{path} answered {code}: {}", body.trim())),
        Ok(Err(e)) => Err(format!("no answer from {listen}{path}: {e}\n  fix: check that rowstream runs with admin.listen = \"{listen}\"")),
        Err(_) => Err(format!("no answer from {listen}{path} within 5 s")),
    }
}

/// `/metrics`: the connector of `run` (unlabelled); for a worker, a series per connector it
/// runs, labelled `connector="<name>"`. Names and meanings: `crate::metrics`.
async fn metrics(State(a): State<Admin>) -> Reply {
    let of = |c: &crate::run::Control| {
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
