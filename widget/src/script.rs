//! `GET /widget.js`: the widget script, embedded in the binary.

use axum::http::header;
use axum::response::IntoResponse;

/// The widget: one file, its CSS inside, so a page loads exactly one asset.
pub const WIDGET_JS: &str = include_str!("../assets/widget.js");

#[utoipa::path(get, path = "/widget.js", tag = "widget", responses((status = 200, description = "The widget script", content_type = "text/javascript")))]
pub async fn serve() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Short caching: sites pick up a new version within minutes.
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        WIDGET_JS,
    )
}
