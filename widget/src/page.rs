//! The few HTML pages the visitor side serves itself (the unsubscribe and
//! chat links from emails and texts), in one look. Titles are escaped here;
//! bodies are built by the callers from escaped parts.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use parley_engine::mail::escape;

/// A short page with a heading and a few lines (or a form).
pub fn notice(status: StatusCode, title: &str, body: &str) -> Response {
    let style = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#222;\
                 overflow-wrap:anywhere}button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#2b59c3;\
                 color:#fff;cursor:pointer}";
    document(status, title, style, &format!("<h1>{}</h1>{body}", escape(title)))
}

/// A page the widget fills whole (a chat opened from a link).
pub fn full(status: StatusCode, title: &str, body: &str) -> Response {
    document(status, title, "html,body{margin:0;height:100%;font-family:system-ui,sans-serif;color:#222;background:#f3f4f6}", body)
}

fn document(status: StatusCode, title: &str, style: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{style}</style></head><body>{body}</body></html>",
        escape(title)
    );
    (status, Html(html)).into_response()
}
