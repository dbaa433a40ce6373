//! The widget's sessions, identity verification, history and script.

use std::io::Write;

use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::json;

on_both_backends!(
    anonymous_visitors_keep_their_person_across_page_loads,
    identity_verification_trusts_only_a_valid_user_hash,
    the_widget_loads_history_and_unread_count,
);

async fn anonymous_visitors_keep_their_person_across_page_loads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, person) = app.visitor().await;
    // The next page load sends the stored token back.
    let again = app
        .request("POST", "/widget/v1/session", None, Some(json!({"app_id": app.app_id, "token": token}).to_string()))
        .await
        .ok()
        .unwrap();
    assert_eq!(again["person_id"], person.as_str());
    assert_eq!(again["token"], token.as_str());
    // A lead is a person the inbox knows, with what the site told us.
    let (t2, _) = app.visitor_with(json!({"email": "lead@example.test", "name": "Lena Lead"})).await;
    let mut w = app.widget_ws(&t2).await;
    let cid = w.say("l", "pricing?").await["conversation_id"].as_str().unwrap().to_owned();
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!((c["person"]["name"].as_str(), c["person"]["email"].as_str()), (Some("Lena Lead"), Some("lead@example.test")));
    // Over-long fields are refused, naming the field.
    let long =
        app.request("POST", "/widget/v1/session", None, Some(json!({"app_id": app.app_id, "name": "n".repeat(500)}).to_string())).await;
    assert_eq!((long.status, long.field()), (422, "name"));
}

async fn identity_verification_trusts_only_a_valid_user_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app.get("/api/v1/workspace", &app.token).await.ok().unwrap()["identity_secret"].as_str().unwrap().to_owned();
    let good = parley_engine::auth::user_hash(&secret, "user-42");
    let session = |body: serde_json::Value| {
        let mut body = body;
        body["app_id"] = app.app_id.clone().into();
        app.request("POST", "/widget/v1/session", None, Some(body.to_string()))
    };

    // Verified: the same user on two devices is one person.
    let a = session(json!({"user_id": "user-42", "user_hash": good, "name": "Uma"})).await.ok().unwrap();
    let b = session(json!({"user_id": "user-42", "user_hash": good})).await.ok().unwrap();
    assert_eq!(a["person_id"], b["person_id"]);
    assert_ne!(a["token"], b["token"]);

    // Verification required: a missing or forged hash is refused.
    app.patch("/api/v1/workspace", &app.token, json!({"require_identity": true})).await.ok().unwrap();
    let forged = session(json!({"user_id": "user-42", "user_hash": parley_engine::auth::user_hash("guess", "user-42")})).await;
    assert_eq!(forged.status, 403);
    let missing = session(json!({"user_id": "user-42"})).await;
    assert_eq!(missing.status, 403);
    let other_user = session(json!({"user_id": "user-43", "user_hash": good})).await;
    assert_eq!(other_user.status, 403, "a hash for user-42 does not admit user-43");
    let ok = session(json!({"user_id": "user-42", "user_hash": good})).await.ok().unwrap();
    assert_eq!(ok["person_id"], a["person_id"]);
    // Anonymous visitors are still welcome.
    assert_eq!(session(json!({})).await.status, 200);
}

async fn the_widget_loads_history_and_unread_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let empty = app.request("GET", "/widget/v1/conversation", Some(&vtoken), None).await.ok().unwrap();
    assert!(empty["conversation"].is_null());
    let mut w = app.widget_ws(&vtoken).await;
    let cid = w.say("h", "question").await["conversation_id"].as_str().unwrap().to_owned();
    for body in ["answer one", "answer two"] {
        app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": body})).await.ok().unwrap();
    }
    let state = app.request("GET", "/widget/v1/conversation", Some(&vtoken), None).await.ok().unwrap();
    assert_eq!(state["conversation"]["id"], cid.as_str());
    let bodies: Vec<_> = state["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["question", "answer one", "answer two"]);
    assert_eq!(state["unread"], 2);
    assert_eq!(state["seq"], 3);

    // Seeing the newest message clears the count and tells the agents.
    let mut agent = app.agent_ws(&app.token).await;
    let newest = state["messages"][2]["id"].as_str().unwrap();
    w.send(json!({"type": "seen", "conversation_id": cid, "message_id": newest})).await;
    let seen = agent.next_of("conversation.seen").await;
    assert_eq!(seen["message_id"], newest);
    let state = app.request("GET", "/widget/v1/conversation", Some(&vtoken), None).await.ok().unwrap();
    assert_eq!(state["unread"], 0);
    // The agent reading it clears the agent's unread count.
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["unread"], 0, "the agent answered, so has read it");
    w.say("h2", "thanks!").await;
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["unread"], 1);
    let last = c["last_message"]["id"].as_str().unwrap().to_owned();
    agent.send(json!({"type": "seen", "conversation_id": cid, "message_id": last})).await;
    agent.send(json!({"type": "ping"})).await;
    agent.next_of("pong").await;
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["unread"], 0);
}

#[tokio::test]
async fn the_widget_script_fits_its_size_budget_and_allows_cross_origin_use() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app.http.get(app.url("/widget.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let etag = res.headers()["etag"].clone();
    let script = res.bytes().await.unwrap();
    // A visitor's browser asking again with the copy it holds gets no script.
    let again = app.http.get(app.url("/widget.js")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    // Everything the widget loads is this one file (its CSS is inside).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&script).unwrap();
    let gzipped = gz.finish().unwrap().len();
    eprintln!("widget.js: {} bytes, {gzipped} bytes gzipped", script.len());
    assert!(gzipped <= 25 * 1024, "widget.js is {gzipped} bytes gzipped, over the 25 KB budget");
    // Nothing else is fetched by it: no imports, no stylesheet links.
    let text = String::from_utf8(script.to_vec()).unwrap();
    assert!(!text.contains("import(") && !text.contains("<link"), "the widget must load nothing else");

    // Sites on other origins may call the widget API.
    let pre = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/widget/v1/session"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
}
