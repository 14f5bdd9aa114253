//! The host's HTTP server: `/metrics` (Prometheus text exposition),
//! `/healthz` (alive), `/readyz` (ready for traffic, see
//! [`readiness`](super::readiness)), `/` (the live status page) and
//! `/api/status` (what the page shows beside the metrics: readiness and the
//! recent dead letters).
//!
//! The server only reads: it never blocks or slows the records' path, and
//! it stops with the process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Serialize;

use super::metrics::metrics;
use super::readiness::readiness;
use super::recent::{RecentDeadLetter, recent};

/// The status page: one file, no external resources (it must work on a
/// cluster without internet access).
const STATUS_PAGE: &str = include_str!("status_page.html");

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("telemetry.listen: cannot listen on {address}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

struct Served {
    pipeline: String,
    registry: Registry,
}

/// Start serving on `address` for `pipeline`; returns the bound address
/// (port 0 picks a free port).
pub async fn serve(address: SocketAddr, pipeline: &str) -> Result<SocketAddr, ServeError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { address, source })?;
    let state = Arc::new(Served {
        pipeline: pipeline.to_owned(),
        registry: metrics().registry(pipeline),
    });
    let app = Router::new()
        .route("/", get(|| async { Html(STATUS_PAGE) }))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/status", get(status))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!("the telemetry server stopped: {error}");
        }
    });
    tracing::info!("metrics, health and the status page on http://{bound}/");
    Ok(bound)
}

async fn metrics_text(State(state): State<Arc<Served>>) -> impl IntoResponse {
    metrics()
        .ready
        .set(i64::from(readiness().waiting_for().is_empty()));
    let mut body = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            body,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            error.to_string().into_bytes(),
        ),
    }
}

async fn ready() -> (StatusCode, String) {
    let waiting = readiness().waiting_for();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", waiting.join(", ")),
        )
    }
}

/// What `/api/status` answers.
#[derive(Serialize)]
struct Status {
    pipeline: String,
    ready: bool,
    waiting_for: Vec<&'static str>,
    recent_dead_letters: Vec<RecentDeadLetter>,
}

async fn status(State(state): State<Arc<Served>>) -> Json<Status> {
    let waiting_for = readiness().waiting_for();
    Json(Status {
        pipeline: state.pipeline.clone(),
        ready: waiting_for.is_empty(),
        waiting_for,
        recent_dead_letters: recent(),
    })
}
