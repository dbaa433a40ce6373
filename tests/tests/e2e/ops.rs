//! Operations: health, readiness, metrics, the OpenAPI document, the pages.

use parley_tests::{Backend, TestApp};

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let get = |p: &str| app.http.get(app.url(p)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let (vtoken, _) = app.visitor().await;
    app.widget_ws(&vtoken).await.say("m", "count me").await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("parley_http_requests_total"), "{metrics:.500}");
    assert!(metrics.contains("parley_messages_total"), "{metrics:.500}");
}

#[tokio::test]
async fn the_openapi_document_lists_every_rest_endpoint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc: serde_json::Value = app.http.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/workspace", "get"),
        ("/api/v1/workspace", "patch"),
        ("/api/v1/test-message", "post"),
        ("/api/v1/teammates", "get"),
        ("/api/v1/teammates", "post"),
        ("/api/v1/api-keys", "post"),
        ("/api/v1/conversations", "get"),
        ("/api/v1/conversations/{id}", "get"),
        ("/api/v1/conversations/{id}", "patch"),
        ("/api/v1/conversations/{id}", "delete"),
        ("/api/v1/conversations/{id}/messages", "get"),
        ("/api/v1/conversations/{id}/messages", "post"),
        ("/api/v1/conversations/{id}/participants", "post"),
        ("/api/v1/conversations/{id}/participants/{teammate_id}", "delete"),
        ("/api/v1/conversations/{id}/archive", "post"),
        ("/api/v1/conversations/{id}/unarchive", "post"),
        ("/api/v1/messages/{id}", "delete"),
        ("/api/v1/uploads", "post"),
        ("/files/{id}/{name}", "get"),
        ("/widget/v1/session", "post"),
        ("/widget/v1/conversation", "get"),
        ("/widget.js", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is missing from /api/openapi.json");
    }
}

#[tokio::test]
async fn the_inbox_app_and_the_demo_site_are_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    let etag = page.headers()["etag"].clone();
    let index = page.text().await.unwrap();
    // The page names this build's files under their version, kept by the browser for good.
    let script = index.split("src=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    assert!(script.starts_with("/app/") && script.ends_with("/app.js") && script.len() > "/app/app.js".len(), "{script}");
    assert!(index.contains(&format!("modulepreload\" href=\"{}", script.replace("app.js", "ui.js"))), "an inbox module is preloaded");
    // A section's code waits until the section opens, and is served then.
    let people = script.replace("app.js", "people.js");
    assert!(!index.contains(&people), "People's code is not preloaded");
    assert_eq!(app.http.get(app.url(&people)).send().await.unwrap().status(), 200);
    let res = app.http.get(app.url(&script)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(app.http.get(app.url("/app/0123456789abcdef/app.js")).send().await.unwrap().status(), 404, "another build's version");
    // A reload of the page the browser holds costs a 304.
    let again = app.http.get(app.url("/")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    for f in ["app.js", "api.js", "socket.js", "notify.js", "views.js", "attach.js", "app.css"] {
        let res = app.http.get(app.url(&format!("/app/{f}"))).send().await.unwrap();
        assert_eq!(res.status(), 200, "{f}");
    }
    assert_eq!(app.http.get(app.url("/app/missing.js")).send().await.unwrap().status(), 404);
    let demo = app.http.get(app.url("/demo")).send().await.unwrap().text().await.unwrap();
    assert!(demo.contains(&format!("data-app-id=\"{}\"", app.app_id)), "the demo embeds this workspace's widget");
}
