//! The listener (`admin.listen`, `worker.listen`): health, readiness and metrics
//! (`http::health`), `POST /snapshot`, and the Kafka Connect REST API (`http::rest`), bound
//! once per process.
//!
//! Invariant: the listener outlives in-process restarts: each run of a pipeline installs its
//! handles in its connector's `Control`; between runs the endpoints say so.

use super::health;
use crate::connect::control::Admin;
use axum::routing::{get, post};
use axum::Router;

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::admin";

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
        .route("/healthz", get(health::health))
        .route("/health", get(health::alive))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/snapshot", post(health::snapshot))
        .merge(super::rest::routes())
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            super::rest::pass_on,
        ))
        .with_state(admin);
    tracing::info!(target: LOG_TARGET,
        addr,
        "admin endpoint listening (/healthz, /metrics, POST /snapshot, the Kafka Connect REST API under /connectors)"
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(target: LOG_TARGET, error = %e, "admin endpoint stopped");
        }
    });
    Ok(())
}
