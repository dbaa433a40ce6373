//! The team web app and the demo site, embedded in the binary.
//!
//! The page names the app's files under `/app/{version}/`, where the version
//! is a digest of all of them: a browser keeps them without asking again
//! (`immutable`) until a new build changes the version, and the modules'
//! relative imports stay under the same version. The page itself is served
//! with `no-cache` and an ETag, so a reload costs one 304 and no module
//! requests at all. It lists every module the inbox imports as a
//! `modulepreload`, so that a first visit fetches them at once instead of
//! discovering them one import level at a time (each a round trip and a
//! parse). The other sections' modules are imported when first opened
//! (`nav.js`), so a first visit neither fetches nor compiles them.
//! `/app/{file}` still serves the current files, revalidated by ETag.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use parley_engine::http::{Asset, digest_hex};
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

/// Where in the page the module preloads go.
const PRELOAD_MARK: &str = "<!-- module preloads -->";

/// A digest of every file of the app: what the page's file paths carry.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    // A name and its content, then a separator, for each file.
    let parts = APP_FILES.iter().flat_map(|(name, _, body)| [name.as_bytes(), body.as_bytes(), &[0u8][..]]);
    digest_hex(parts, 8)
});

static PAGE: LazyLock<Asset> = LazyLock::new(|| {
    let dir = format!("/app/{}/", *VERSION);
    let preloads: Vec<String> = inbox_modules()
        .into_iter()
        .filter(|name| *name != "app.js")
        .map(|name| format!("<link rel=\"modulepreload\" href=\"{dir}{name}\">"))
        .collect();
    let page = INDEX.replace("\"/app/", &format!("\"{dir}")).replace(PRELOAD_MARK, &preloads.join("\n  "));
    Asset::new("text/html; charset=utf-8", page)
});

/// The modules a file imports statically (`import … from './x.js'`), which
/// the browser must have before the file runs; `import('./x.js')` is left out.
fn static_imports(body: &str) -> impl Iterator<Item = &str> {
    body.lines()
        .filter(|l| l.trim_start().starts_with("import ") || l.trim_start().starts_with("} from "))
        .filter_map(|l| l.split("from './").nth(1))
        .filter_map(|from| from.split('\'').next())
}

/// `app.js` and every module it reaches through static imports, in the
/// order found.
fn inbox_modules() -> Vec<&'static str> {
    let mut found = vec!["app.js"];
    let mut next = 0;
    while let Some(name) = found.get(next).copied() {
        next += 1;
        let Some((_, _, body)) = APP_FILES.iter().find(|(n, _, _)| *n == name) else { continue };
        for module in static_imports(body) {
            if !found.contains(&module) {
                found.push(module);
            }
        }
    }
    found
}

static FILES: LazyLock<Vec<(&'static str, Asset)>> =
    LazyLock::new(|| APP_FILES.iter().map(|(name, mime, body)| (*name, Asset::new(mime, *body))).collect());

pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app/{file}", get(app_file))
        .route("/app/{version}/{file}", get(versioned_file))
        .route("/demo", get(demo))
        .with_state(engine)
}

async fn index(request: HeaderMap) -> Response {
    PAGE.answer(&request, "no-cache")
}

fn file(name: &str) -> Option<&'static Asset> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, served)| served)
}

async fn app_file(Path(name): Path<String>, request: HeaderMap) -> Response {
    match file(&name) {
        Some(served) => served.answer(&request, "no-cache"),
        None => parley_engine::Error::NotFound("file").into_response(),
    }
}

/// Another version than this build's is not served: a browser would keep
/// today's file under yesterday's name for good.
async fn versioned_file(Path((version, name)): Path<(String, String)>, request: HeaderMap) -> Response {
    match file(&name).filter(|_| version == *VERSION) {
        Some(served) => served.answer(&request, "public, max-age=31536000, immutable"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A module the app imports but the server does not list is never served.
    #[test]
    fn every_module_the_app_imports_is_served_and_the_inboxs_are_preloaded() {
        let page = std::str::from_utf8(PAGE.body()).unwrap_or_default();
        assert!(!page.contains(PRELOAD_MARK), "the mark is replaced");
        let dir = format!("/app/{}/", *VERSION);
        assert!(page.contains(&format!("src=\"{dir}app.js\"")) && page.contains(&format!("href=\"{dir}app.css\"")), "{page}");
        let inbox = inbox_modules();
        for (name, _, body) in APP_FILES {
            for module in static_imports(body) {
                assert!(APP_FILES.iter().any(|(n, _, _)| *n == module), "{name} imports {module}, which is not served");
            }
            for dynamic in body.split("import('./").skip(1) {
                let module = dynamic.split('\'').next().unwrap_or_default();
                assert!(APP_FILES.iter().any(|(n, _, _)| *n == module), "{name} imports {module}, which is not served");
            }
            if name.ends_with(".js") && *name != "app.js" {
                let preloaded = page.contains(&format!("href=\"{dir}{name}\""));
                assert_eq!(preloaded, inbox.contains(name), "{name}: preloaded exactly when the inbox imports it");
            }
        }
        // The inbox's own code arrives with the page; the sections' waits for them.
        for module in ["api.js", "socket.js", "person.js", "views.js", "ui.js", "nav.js"] {
            assert!(inbox.contains(&module), "{module} is the inbox's: {inbox:?}");
        }
        for module in ["people.js", "filter.js", "map.js", "profile.js", "composer.js", "outbound.js", "automations.js", "settings.js"] {
            assert!(!inbox.contains(&module), "{module} is a section's, loaded when opened: {inbox:?}");
        }
    }
}
