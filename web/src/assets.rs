//! The team web app and the demo site, embedded in the binary.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use parley_engine::{Engine, Result, workspace};
use serde::Deserialize;

/// Every file of the web app: (name under /app/, content type, content).
const APP_FILES: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../assets/app/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../assets/app/api.js")),
    ("socket.js", "text/javascript; charset=utf-8", include_str!("../assets/app/socket.js")),
    ("notify.js", "text/javascript; charset=utf-8", include_str!("../assets/app/notify.js")),
    ("views.js", "text/javascript; charset=utf-8", include_str!("../assets/app/views.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_str!("../assets/app/ui.js")),
    ("attach.js", "text/javascript; charset=utf-8", include_str!("../assets/app/attach.js")),
    ("nav.js", "text/javascript; charset=utf-8", include_str!("../assets/app/nav.js")),
    ("filter.js", "text/javascript; charset=utf-8", include_str!("../assets/app/filter.js")),
    ("map.js", "text/javascript; charset=utf-8", include_str!("../assets/app/map.js")),
    ("people.js", "text/javascript; charset=utf-8", include_str!("../assets/app/people.js")),
    ("profile.js", "text/javascript; charset=utf-8", include_str!("../assets/app/profile.js")),
    ("composer.js", "text/javascript; charset=utf-8", include_str!("../assets/app/composer.js")),
    ("outbound.js", "text/javascript; charset=utf-8", include_str!("../assets/app/outbound.js")),
    ("automations.js", "text/javascript; charset=utf-8", include_str!("../assets/app/automations.js")),
    ("canned.js", "text/javascript; charset=utf-8", include_str!("../assets/app/canned.js")),
    ("person.js", "text/javascript; charset=utf-8", include_str!("../assets/app/person.js")),
    ("settings.js", "text/javascript; charset=utf-8", include_str!("../assets/app/settings.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../assets/app/app.css")),
];

const INDEX: &str = include_str!("../assets/app/index.html");
const DEMO: &str = include_str!("../assets/demo.html");

pub fn router(engine: Engine) -> Router {
    Router::new().route("/", get(index)).route("/app/{file}", get(app_file)).route("/demo", get(demo)).with_state(engine)
}

async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(INDEX))
}

async fn app_file(Path(file): Path<String>) -> Response {
    match APP_FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "no-cache")], *body).into_response(),
        None => parley_engine::Error::NotFound("file").into_response(),
    }
}

#[derive(Deserialize)]
struct DemoQuery {
    app_id: Option<String>,
}

/// A sample customer site that embeds the widget exactly as a real one would,
/// for the first workspace (or `?app_id=`).
async fn demo(State(engine): State<Engine>, Query(q): Query<DemoQuery>) -> Result<Response> {
    let ws = match q.app_id {
        Some(app_id) => workspace::by_app_id(&engine.db, &app_id).await?,
        None => workspace::first(&engine.db).await?,
    };
    let page = DEMO.replace("{{APP_ID}}", &ws.app_id);
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-cache")], Html(page)).into_response())
}
