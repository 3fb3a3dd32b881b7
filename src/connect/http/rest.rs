//! The Kafka Connect REST API's shape on the admin listener, so tools and habits that manage
//! Connect clusters carry over. `rowstream run` serves its one connector (named by
//! `state.connector`, else `rowstream`); `rowstream worker` serves the connectors added to it:
//!
//! | call | answer |
//! |---|---|
//! | `GET /` | `{"version", "commit", "kafka_cluster_id"}` |
//! | `GET /connectors` | `["name"]`; `?expand=status` / `?expand=info`: `{name: {"status", "info"}}` |
//! | `POST /connectors` | `{"name", "config": {flat keys}}` (KIP-980: `"initial_state": "STOPPED"` / `"PAUSED"`): a worker adds it (201; 409 if it exists; 400 with every problem) |
//! | `PUT /connectors/{name}/config` | a worker creates (201) or replaces (200) it |
//! | `DELETE /connectors/{name}` | a worker stops and forgets it (204; its stored position stays) |
//! | `GET /connectors/{name}` | `{"name", "config", "tasks", "type": "source"}` (a STOPPED connector: `tasks: []`) |
//! | `GET /connectors/{name}/config` | the config as submitted: text values, its `name`, secrets as `***` (sent back, `***` keeps the stored secret) |
//! | `GET /connectors/{name}/status` | `{"name", "connector": {"state", "worker_id", "version"}, "tasks": [...], "type"}` plus `"rowstream": {position, lag_ms, ...}`; a connector whose worker left the group is UNASSIGNED |
//! | `GET /connectors/{name}/tasks` | the one task |
//! | `PUT /connectors/{name}/pause`, `/resume` | 202: the pipeline stops reading (the source connection closes, the slot or binlog position is kept) / starts again from the stored position |
//! | `PUT /connectors/{name}/stop` | 204: as pause, and offsets may then be reset |
//! | `POST /connectors/{name}/restart` | 204: a new run from the stored position; KIP-745's `?includeTasks=true` / `?onlyFailed=true`: 202 with the status, RESTARTING for what restarts (`onlyFailed`: only a FAILED connector) |
//! | `GET /connectors/{name}/tasks/0/status`, `POST .../tasks/0/restart` | the one task (the connector's run) |
//! | `GET /connector-plugins` | the source types (`postgres`, `mysql`) |
//! | `GET /connectors/{name}/offsets` | KIP-875: `{"offsets": [{"partition", "offset"}]}` |
//! | `DELETE /connectors/{name}/offsets` | KIP-875 reset, only when STOPPED: the next resume snapshots again |
//! | `PATCH /connectors/{name}/offsets` | KIP-875 alter, only when STOPPED: `{"offsets": [{"partition", "offset": {"position"}}]}` sets where the next resume starts |
//! | `POST /connectors/{name}/snapshot` | `{"tables": [...]}`: snapshot tables again while streaming |
//!
//! Invariants:
//! - Every worker of a group gives the same answer (checked against a real Kafka Connect group
//!   by `tests/connect.rs`); a worker answers for any connector of its group: calls that need
//!   the running connector
//!   (`status`, `offsets`, `snapshot`) are passed on to the worker running it ([`pass_on`]);
//!   pause, resume, stop and restart travel through the config topic; configs are read from it.
//! - Errors have Connect's shape, `{"error_code", "message"}`; an unknown connector is 404.
//! - Secrets (URL passwords, `*password*` / `*secret*` properties, the admin token) are never
//!   returned.
//! - With `admin.token` set, every call that changes something needs
//!   `Authorization: Bearer <token>` (401 otherwise); reads stay open.

use crate::connect::control::{Admin, ConnectorState, Steer};
use crate::connect::control::{Control, Target};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Admin> {
    Router::new()
        .route("/", get(root))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config).put(put_config))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route("/connector-plugins", get(plugins))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).delete(reset_offsets).patch(alter_offsets),
        )
        .route("/connectors/{name}/snapshot", post(snapshot))
}

/// Marks a call one worker passed on to another, so it is never passed on twice.
const PASSED_ON: &str = "x-rowstream-passed-on";

/// Calls that need the running connector itself (its live status, its state store, its
/// snapshot queue): a worker passes them on to the worker running the connector, at the
/// address that worker's status record gives, as Connect forwards to the owner. Everything
/// else is answered from the config topic by any worker.
pub(crate) async fn pass_on(
    State(a): State<Admin>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_string();
    let name = match path
        .strip_prefix("/connectors/")
        .and_then(|p| p.split_once('/'))
    {
        Some((name, "status" | "offsets" | "snapshot")) => name.to_string(),
        _ => return next.run(req).await,
    };
    if req.headers().contains_key(PASSED_ON) || a.connector(&name).is_some() {
        return next.run(req).await;
    }
    let Some(Some((st, _))) = a.remote(&name) else {
        return next.run(req).await;
    };
    let Some(rest) = st["rest"].as_str().map(str::to_string) else {
        return next.run(req).await;
    };
    let method = req.method().as_str().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or(path);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_status = target.ends_with("/status");
    let body = match axum::body::to_bytes(req.into_body(), 16 << 20).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut headers = vec![(PASSED_ON, "1")];
    if let Some(v) = auth.as_deref() {
        headers.push(("Authorization", v));
    }
    match crate::connect::http::client::call(&rest, &method, &target, &headers, &body).await {
        Ok((code, body)) => {
            let kind = match body.trim_start().starts_with(['{', '[']) {
                true => "application/json",
                false => "text/plain; charset=utf-8",
            };
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            (code, [(axum::http::header::CONTENT_TYPE, kind)], body).into_response()
        }
        // the status record is still an answer; the rest needs the owner
        Err(_) if is_status => ok(remote_status(&name, a.remote_gone(&name).flatten())),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "connector {name} runs on worker {}, which does not answer ({e}); retry once it is back or the group has moved the connector",
                st["worker_id"].as_str().unwrap_or("?")
            ),
        ),
    }
}

/// A JSON answer.
fn reply(code: StatusCode, v: Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    reply(StatusCode::OK, v)
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    reply(
        code,
        json!({ "error_code": code.as_u16(), "message": message.into() }),
    )
}

/// A refused call: Connect's error answer.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// The connector `name`, or Connect's 404.
fn find(a: &Admin, name: &str) -> Result<Arc<Control>, Refusal> {
    a.connector(name)
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("Connector {name} not found")))
}

/// With `admin.token` set, the bearer token a changing call must carry.
fn authorized(a: &Admin, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = &a.token else {
        return Ok(());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if g == token => Ok(()),
        _ => Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "this call changes the connector: send Authorization: Bearer <admin.token>".into(),
        )),
    }
}

/// Where this worker answers (Connect's `worker_id`).
fn worker_id(c: &Control) -> String {
    c.worker_id.clone()
}

async fn root(State(a): State<Admin>) -> Response {
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": "",
        "kafka_cluster_id": a.cluster_id.get(),
    }))
}

/// `GET /connectors`: the names; with `?expand=status` and/or `?expand=info`, Connect's map of
/// name → `{"status": ..., "info": ...}`.
async fn list(State(a): State<Admin>, uri: axum::http::Uri) -> Response {
    let q = uri.query().unwrap_or("");
    let expand = |what: &str| q.split('&').any(|p| p == format!("expand={what}"));
    let (status_too, info_too) = (expand("status"), expand("info"));
    if !status_too && !info_too {
        return ok(json!(a.names()));
    }
    let mut out = Map::new();
    for name in a.names() {
        let mut e = Map::new();
        if status_too {
            // Connect's fields only: the same answer from every worker of a group (rowstream's
            // live figures are in the connector's own status)
            let mut st = match a.connector(&name) {
                Some(c) => status_of(&c),
                None => remote_status(&name, a.remote_gone(&name).flatten()),
            };
            if let Some(m) = st.as_object_mut() {
                m.remove("rowstream");
            }
            e.insert("status".into(), st);
        }
        if info_too {
            if let Some(info) = info_value(&a, &name) {
                e.insert("info".into(), info);
            }
        }
        out.insert(name, Value::Object(e));
    }
    ok(Value::Object(out))
}

/// The config of `rowstream run`'s connector as Connect shows one: flat `section.key` pairs
/// (`kafka.properties.<name>` for librdkafka's) with text values and its `name`, secrets
/// replaced by `***`. (A worker's connectors show their config as submitted.)
fn flat_config(name: &str, cfg: &crate::config::Config) -> Map<String, Value> {
    let flat = typed_flat_config(cfg);
    crate::config::submitted(name, &flat).unwrap_or(flat)
}

/// The resolved config as flat `section.key` pairs with typed values, secrets masked.
fn typed_flat_config(cfg: &crate::config::Config) -> Map<String, Value> {
    let mut out = Map::new();
    let tree = serde_json::to_value(cfg).unwrap_or(Value::Null);
    let Some(sections) = tree.as_object() else {
        return out;
    };
    for (section, keys) in sections {
        let Some(keys) = keys.as_object() else {
            continue;
        };
        for (key, v) in keys {
            let path = format!("{section}.{key}");
            match (path.as_str(), v) {
                ("kafka.properties", Value::Object(props)) => {
                    for (p, pv) in props {
                        let secret = crate::config::is_secret_property(p);
                        let pv = if secret { json!("***") } else { pv.clone() };
                        out.insert(format!("kafka.properties.{p}"), pv);
                    }
                }
                ("source.url", Value::String(u)) => {
                    out.insert(path, json!(crate::config::redact_url(u)));
                }
                ("admin.token", Value::String(_)) => {
                    out.insert(path, json!("***"));
                }
                (_, Value::Null) => {}
                _ => {
                    out.insert(path, v.clone());
                }
            }
        }
    }
    out
}

/// Hand a config change to the worker and wait for its answer.
async fn change(
    a: &Admin,
    name: String,
    config: Option<Map<String, Value>>,
    (create_only, initial): (bool, Option<Target>),
    steer: Option<crate::connect::control::Steer>,
) -> Result<bool, Refusal> {
    let Some(tx) = &a.changes else {
        return Err(Refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "this process runs the connector of its config file (rowstream run): add, change and delete connectors over REST on a `rowstream worker`".into(),
        ));
    };
    let (answer, rx) = tokio::sync::oneshot::channel();
    let req = crate::connect::control::ConfigChange {
        name,
        steer,
        config,
        create_only,
        initial,
        answer,
    };
    let gone = || {
        Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the worker is stopping".into(),
        )
    };
    tx.send(req).await.map_err(|_| gone())?;
    match rx.await {
        Ok(Ok(created)) => Ok(created),
        Ok(Err((code, msg))) => Err(Refusal(code, msg)),
        Err(_) => Err(gone()),
    }
}

/// The answer to a created or replaced connector: Connect's connector info.
fn created(a: &Admin, name: &str, code: StatusCode) -> Response {
    match info_value(a, name) {
        Some(info) => reply(code, info),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("connector {name} was stored but this worker does not know it yet"),
        ),
    }
}

/// `POST /connectors` `{"name", "config": {...}}`: 201, 409 when it exists, 400 with every
/// problem of the config.
async fn create(State(a): State<Admin>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = authorized(&a, &headers) {
        return r.into_response();
    }
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    let (Some(name), Some(config)) = (v["name"].as_str(), v["config"].as_object()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"name\": \"...\", \"config\": {\"source.type\": ..., ...}}",
        );
    };
    // KIP-980: created held STOPPED or PAUSED
    let initial = match v.get("initial_state").and_then(Value::as_str) {
        None => None,
        Some(s) => match Target::parse(s) {
            Some(t) => Some(t),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("initial_state `{s}`: expected RUNNING, PAUSED or STOPPED"),
                )
            }
        },
    };
    match change(
        &a,
        name.to_string(),
        Some(config.clone()),
        (true, initial),
        None,
    )
    .await
    {
        Ok(_) => created(&a, name, StatusCode::CREATED),
        Err(r) => r.into_response(),
    }
}

/// `PUT /connectors/{name}/config` `{...}`: creates (201) or replaces (200, the connector
/// restarts with it).
async fn put_config(
    State(a): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = authorized(&a, &headers) {
        return r.into_response();
    }
    let config = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected a JSON object of config keys",
            )
        }
    };
    match change(&a, name.clone(), Some(config), (false, None), None).await {
        Ok(true) => created(&a, &name, StatusCode::CREATED),
        Ok(false) => created(&a, &name, StatusCode::OK),
        Err(r) => r.into_response(),
    }
}

/// `DELETE /connectors/{name}`: 204; the connector stops and its config is forgotten (its
/// stored position stays, so adding it again resumes).
async fn delete(State(a): State<Admin>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authorized(&a, &headers) {
        return r.into_response();
    }
    match change(&a, name, None, (false, None), None).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r.into_response(),
    }
}

/// Connector `name`'s config as every worker shows it (a worker's connector: as submitted;
/// `rowstream run`'s: from its file), secrets masked; None for an unknown connector.
fn config_of(a: &Admin, name: &str) -> Option<Map<String, Value>> {
    match a.known(name) {
        Some(k) => Some(crate::config::redacted(k.config)),
        None => a.connector(name).map(|c| flat_config(name, &c.cfg)),
    }
}

/// Is connector `name` held STOPPED (Connect: a stopped connector has no tasks)?
fn is_stopped(a: &Admin, name: &str) -> bool {
    match a.known(name) {
        Some(k) => k.target == Some(Target::Stopped),
        None => a
            .connector(name)
            .is_some_and(|c| c.target() == Target::Stopped),
    }
}

/// Connect's connector info of `name`, the same from every worker; None: unknown.
fn info_value(a: &Admin, name: &str) -> Option<Value> {
    let config = config_of(a, name)?;
    let tasks = match is_stopped(a, name) {
        true => json!([]),
        false => json!([{ "connector": name, "task": 0 }]),
    };
    Some(json!({ "name": name, "config": config, "tasks": tasks, "type": "source" }))
}

/// The refusal for an unknown connector.
fn not_found(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("Connector {name} not found"))
}

async fn info(State(a): State<Admin>, Path(name): Path<String>) -> Response {
    match info_value(&a, &name) {
        Some(v) => ok(v),
        None => not_found(&name),
    }
}

async fn config(State(a): State<Admin>, Path(name): Path<String>) -> Response {
    match config_of(&a, &name) {
        Some(c) => ok(Value::Object(c)),
        None => not_found(&name),
    }
}

/// `GET /connectors/{name}/tasks`: the one task with its config (none when STOPPED).
async fn tasks(State(a): State<Admin>, Path(name): Path<String>) -> Response {
    let Some(config) = config_of(&a, &name) else {
        return not_found(&name);
    };
    match is_stopped(&a, &name) {
        true => ok(json!([])),
        false => ok(json!([{ "id": { "connector": name, "task": 0 }, "config": config }])),
    }
}

/// Connect's connector status, plus rowstream's figures.
fn status_of(c: &Control) -> Value {
    let (state, trace) = c.state();
    let worker = worker_id(c);
    let version = env!("CARGO_PKG_VERSION");
    let mut task = json!({ "id": 0, "state": state, "worker_id": worker, "version": version });
    let mut connector = json!({ "state": state, "worker_id": worker, "version": version });
    if let Some(t) = &trace {
        task["trace"] = json!(t);
        connector["trace"] = json!(t);
    }
    let stored = c.store().and_then(|s| s.load().ok().flatten());
    let position = stored
        .as_ref()
        .and_then(|s| s.position.as_ref())
        .map(|p| p.to_string());
    // snapshot progress: tables whose snapshot is under way, and how many are done
    let (mut running, mut done) = (Map::new(), 0);
    for (t, ts) in stored.iter().flat_map(|s| s.tables.iter()) {
        match &ts.resume {
            Some(r) => {
                running.insert(t.clone(), json!({ "after": r.cursor }));
            }
            None => done += 1,
        }
    }
    let mut extra = json!({
        "position": position,
        "target": c.target().state(),
        "snapshot": { "tables_done": done, "in_progress": running },
    });
    let m = &c.metrics;
    extra["records"] = json!(m.records.load(Ordering::Relaxed));
    extra["snapshot_rows"] = json!(m.snapshot_rows.load(Ordering::Relaxed));
    extra["in_flight"] = json!(c.handles().map(|h| h.tracker.in_flight()).unwrap_or(0));
    if let Some(lag) = m.lag_ms() {
        extra["lag_ms"] = json!(lag);
    }
    if let Some(age) = m.checkpoint_age_ms() {
        extra["checkpoint_age_ms"] = json!(age);
    }
    let retained = m.source.retained_bytes.load(Ordering::Relaxed);
    if retained >= 0 {
        extra["source_retained_bytes"] = json!(retained);
    }
    // per table: rows read, the catalog's estimate, rate and time left
    let mut tables = Map::new();
    for (t, p) in m.snapshots() {
        let secs = p.started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
        let rate = p.rows as f64 / secs.max(1e-3);
        let mut v = json!({ "rows": p.rows, "done": p.done, "rows_per_sec": rate as u64 });
        if let Some(e) = p.estimate.filter(|&e| e > 0) {
            v["estimated_rows"] = json!(e);
            if !p.done && rate > 0.0 {
                v["eta_secs"] = json!((e.saturating_sub(p.rows) as f64 / rate).ceil() as u64);
            }
        }
        tables.insert(t, v);
    }
    extra["snapshot"]["tables"] = Value::Object(tables);
    let tasks = match state {
        ConnectorState::Stopped => json!([]),
        _ => json!([task]),
    };
    json!({
        "name": c.name,
        "connector": connector,
        "tasks": tasks,
        "type": "source",
        "rowstream": extra,
    })
}

async fn status(State(a): State<Admin>, Path(name): Path<String>) -> Response {
    match status_value(&a, &name) {
        Ok(v) => ok(v),
        Err(r) => r.into_response(),
    }
}

/// The status of connector `name`, running here or (from its record) elsewhere.
fn status_value(a: &Admin, name: &str) -> Result<Value, Refusal> {
    match a.connector(name) {
        Some(c) => Ok(status_of(&c)),
        None => match a.remote_gone(name) {
            Some(st) => Ok(remote_status(name, st)),
            None => Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("No status found for connector {name}"),
            )),
        },
    }
}

/// The status of a connector running on another worker, from the record it wrote; a record
/// of a worker the group no longer has is UNASSIGNED (Connect's state of a connector whose
/// worker is gone, until its new worker starts it).
fn remote_status(name: &str, st: Option<(Value, bool)>) -> Value {
    let (mut st, gone) = st.unwrap_or_else(|| {
        (
            json!({ "state": ConnectorState::Unassigned, "worker_id": "" }),
            false,
        )
    });
    if gone {
        st["state"] = json!(ConnectorState::Unassigned);
        if let Some(m) = st.as_object_mut() {
            m.remove("trace");
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    let mut connector =
        json!({ "state": st["state"], "worker_id": st["worker_id"], "version": version });
    let mut task =
        json!({ "id": 0, "state": st["state"], "worker_id": st["worker_id"], "version": version });
    if let Some(t) = st["trace"].as_str() {
        connector["trace"] = json!(t);
        task["trace"] = json!(t);
    }
    let tasks = match st["state"] == json!(ConnectorState::Stopped) {
        true => json!([]),
        false => json!([task]),
    };
    json!({ "name": name, "connector": connector, "tasks": tasks, "type": "source" })
}

/// Pause, resume and stop: set the target; the connector follows within a moment.
async fn steer(
    a: &Admin,
    headers: &HeaderMap,
    name: &str,
    how: crate::connect::control::Steer,
    code: StatusCode,
) -> Response {
    if let Err(r) = authorized(a, headers) {
        return r.into_response();
    }
    // a worker passes it on to whichever worker runs the connector
    if a.changes.is_some() {
        return match change(a, name.to_string(), None, (false, None), Some(how)).await {
            Ok(_) => code.into_response(),
            Err(r) => r.into_response(),
        };
    }
    match a.connector(name) {
        Some(c) => {
            match how {
                crate::connect::control::Steer::Target(t) => c.set_target(t),
                crate::connect::control::Steer::Restart => c.restart(),
            }
            code.into_response()
        }
        None => error(StatusCode::NOT_FOUND, how.unknown(name)),
    }
}

async fn pause(State(a): State<Admin>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    steer(
        &a,
        &headers,
        &name,
        Steer::Target(Target::Paused),
        StatusCode::ACCEPTED,
    )
    .await
}

async fn resume(State(a): State<Admin>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    steer(
        &a,
        &headers,
        &name,
        Steer::Target(Target::Running),
        StatusCode::ACCEPTED,
    )
    .await
}

async fn stop(State(a): State<Admin>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    steer(
        &a,
        &headers,
        &name,
        Steer::Target(Target::Stopped),
        StatusCode::NO_CONTENT,
    )
    .await
}

/// KIP-745: without parameters, 204 and a new run; with `includeTasks=true` or
/// `onlyFailed=true`, 202 and the status with RESTARTING for what restarts (with
/// `onlyFailed=true`, only a FAILED connector restarts; the one task is the connector's run).
async fn restart(
    State(a): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let flag = |k: &str| {
        uri.query()
            .unwrap_or("")
            .split('&')
            .any(|p| p.eq_ignore_ascii_case(&format!("{k}=true")))
    };
    let (include_tasks, only_failed) = (flag("includeTasks"), flag("onlyFailed"));
    if !include_tasks && !only_failed {
        return steer(&a, &headers, &name, Steer::Restart, StatusCode::NO_CONTENT).await;
    }
    let mut st = match status_value(&a, &name) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    if only_failed && st["connector"]["state"] != ConnectorState::Failed.name() {
        return reply(StatusCode::ACCEPTED, st);
    }
    let r = steer(&a, &headers, &name, Steer::Restart, StatusCode::ACCEPTED).await;
    if r.status() != StatusCode::ACCEPTED {
        return r;
    }
    st["connector"]["state"] = json!(ConnectorState::Restarting);
    // (a STOPPED connector has no task to show)
    for t in st["tasks"].as_array_mut().into_iter().flatten() {
        t["state"] = json!(ConnectorState::Restarting);
    }
    reply(StatusCode::ACCEPTED, st)
}

/// `POST /connectors/{name}/tasks/0/restart`: the one task is the connector's run.
async fn restart_task(
    State(a): State<Admin>,
    headers: HeaderMap,
    Path((name, task)): Path<(String, String)>,
) -> Response {
    if task != "0" {
        return error(
            StatusCode::NOT_FOUND,
            format!("Unknown task: {name}-{task}"),
        );
    }
    steer(&a, &headers, &name, Steer::Restart, StatusCode::NO_CONTENT).await
}

/// `GET /connectors/{name}/tasks/0/status`
async fn task_status(
    State(a): State<Admin>,
    Path((name, task)): Path<(String, String)>,
) -> Response {
    let missing = || {
        error(
            StatusCode::NOT_FOUND,
            format!("No status found for task {name}-{task}"),
        )
    };
    if task != "0" {
        return missing();
    }
    match status_value(&a, &name) {
        Ok(v) => match v["tasks"].get(0) {
            Some(t) => ok(t.clone()),
            // a STOPPED connector has no task
            None => missing(),
        },
        Err(_) => missing(),
    }
}

/// `GET /connector-plugins`: the two source types a connector config can name.
async fn plugins() -> Response {
    let v = env!("CARGO_PKG_VERSION");
    ok(json!([
        { "class": "postgres", "type": "source", "version": v },
        { "class": "mysql", "type": "source", "version": v },
    ]))
}

/// KIP-875's shape: one source partition (this connector's source), its offset the stored
/// position and snapshot progress.
async fn offsets(State(a): State<Admin>, Path(name): Path<String>) -> Response {
    let c = match find(&a, &name) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    // a store this worker has not opened (a connector STOPPED since its creation, or one
    // another worker runs) is read without opening it: opening claims the connector
    let loaded = match c.store() {
        Some(store) => store.load(),
        None => crate::checkpoint::store::Store::peek(&c.cfg).await,
    };
    match loaded {
        Ok(None) => ok(json!({ "offsets": [] })),
        Ok(Some(s)) => ok(json!({ "offsets": [{
            "partition": { "connector": c.name, "source": s.source_id },
            "offset": {
                "position": s.position,
                "event_time_ms": s.event_time_ms,
                "tables": s.tables,
            },
        }]})),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The store of a STOPPED connector `name` whose offsets a caller may change (KIP-875), or
/// the refusal.
async fn stopped_store(
    a: &Admin,
    headers: &HeaderMap,
    name: &str,
) -> Result<Arc<crate::checkpoint::store::Store>, Refusal> {
    authorized(a, headers)?;
    let c = find(a, name)?;
    if c.state().0 != ConnectorState::Stopped {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("Connectors must be in the STOPPED state before their offsets can be modified; stop it first: PUT /connectors/{name}/stop"),
        ));
    }
    // a connector STOPPED since it was created has not opened its store: open it now
    c.open_store()
        .await
        .map_err(|e| Refusal(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

/// KIP-875 reset: only a STOPPED connector; the stored position and snapshot progress are
/// forgotten, so the next resume snapshots every table again.
async fn reset_offsets(
    State(a): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let store = match stopped_store(&a, &headers, &name).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let source_id = match store.load() {
        Ok(s) => s.map(|s| s.source_id).unwrap_or_default(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let fresh = crate::checkpoint::store::State::fresh(source_id);
    match store.save(&fresh) {
        Ok(()) => ok(json!({
            "message": "The offsets for this connector have been reset successfully"
        })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// KIP-875 alter, only a STOPPED connector: `{"offsets": [{"partition": {...}, "offset":
/// {"position": ...}}]}` (the shape `GET .../offsets` answers) sets the position the next
/// resume starts from; snapshot progress is kept. (Postgres cannot go back behind its slot's
/// confirmed position: an earlier one starts there.)
async fn alter_offsets(
    State(a): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Response {
    let store = match stopped_store(&a, &headers, &name).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let entries = v["offsets"].as_array().cloned().unwrap_or_default();
    let [entry] = entries.as_slice() else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"offsets\": [{\"partition\": {...}, \"offset\": {\"position\": ...}}]} with one entry (a connector has one source partition); GET the offsets for the shape",
        );
    };
    let position: crate::model::position::SourcePosition =
        match serde_json::from_value(entry["offset"]["position"].clone()) {
            Ok(p) => p,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("offset.position is not a position of this source: {e}"),
                )
            }
        };
    let mut state = match store.load() {
        Ok(Some(s)) => s,
        Ok(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the connector has stored nothing yet: run it once first",
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Some(cur) = &state.position {
        if std::mem::discriminant(cur) != std::mem::discriminant(&position) {
            return error(
                StatusCode::BAD_REQUEST,
                "offset.position is of another kind of source than this connector's",
            );
        }
    }
    // the commit time of another position is unknown
    if state.position.as_ref() != Some(&position) {
        state.event_time_ms = -1;
    }
    state.position = Some(position);
    match store.save(&state) {
        Ok(()) => ok(json!({
            "message": "The offsets for this connector have been altered successfully"
        })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn snapshot(
    State(a): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = authorized(&a, &headers) {
        return r.into_response();
    }
    match find(&a, &name) {
        Ok(c) => crate::connect::http::health::snapshot_of(&c, body)
            .await
            .into_response(),
        Err(r) => r.into_response(),
    }
}
