//! `GET /widget.js`: the widget script, embedded in the binary.

use std::sync::LazyLock;

use axum::http::HeaderMap;
use axum::response::Response;
use parley_engine::http::Asset;

/// The widget: one file, its CSS inside, so a page loads exactly one asset.
pub const WIDGET_JS: &str = include_str!("../assets/widget.js");

#[utoipa::path(get, path = "/widget.js", tag = "widget", responses((status = 200, description = "The widget script", content_type = "text/javascript")))]
pub async fn serve(request: HeaderMap) -> Response {
    static SCRIPT: LazyLock<Asset> = LazyLock::new(|| Asset::new("text/javascript; charset=utf-8", WIDGET_JS));
    // Short caching: sites pick up a new version within minutes. After that a
    // visitor's browser asks again with its ETag and, most of the time, gets a
    // 304 instead of the script on every page of the site.
    SCRIPT.answer(&request, "public, max-age=300")
}
