//! Operations endpoints and request metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parley_engine::Engine;
use utoipa::OpenApi;

pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/api/openapi.json", get(openapi))
        .with_state(engine)
}

/// Ready when the database answers.
async fn ready(State(engine): State<Engine>) -> Response {
    if engine.db.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

/// One recorder per process (tests run several servers in one process).
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

async fn metrics_text() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render()).into_response()
}

/// Counts requests and their latency by route and status.
pub async fn track_requests(req: Request, next: Next) -> Response {
    prometheus();
    let start = Instant::now();
    let route =
        req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("parley_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("parley_http_request_seconds", "method" => method, "route" => route).record(start.elapsed().as_secs_f64());
    res
}

/// The whole REST API in one OpenAPI document.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    let mut doc = parley_inbox::ApiDoc::openapi();
    doc.merge(parley_widget::ApiDoc::openapi());
    doc.merge(parley_automations::ApiDoc::openapi());
    doc.info.title = "Parley".into();
    doc.info.description = Some("Parley's REST API. Realtime frames travel on /widget/v1/ws (visitors) and /api/v1/ws (teammates).".into());
    doc
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(api_doc())
}
