//! Who may do what: tokens, roles, participants, workspaces; and bad input.

use std::time::Duration;

use parley_tests::{Backend, TestApp, Ws, on_both_backends};
use serde_json::json;

on_both_backends!(
    another_workspace_sees_only_not_found,
    roles_and_participant_roles_limit_what_teammates_may_do,
    bad_credentials_are_refused_everywhere,
    malformed_oversize_and_empty_input_is_refused_and_nothing_is_stored,
    bad_frames_get_error_frames_and_the_socket_stays_open,
    api_keys_act_for_the_workspace,
);

async fn another_workspace_sees_only_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, person_id) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let msg = widget.say("w", "secret").await;
    let cid = msg["conversation_id"].as_str().unwrap();
    let mid = msg["id"].as_str().unwrap();

    let (other, other_app_id) = app.other_workspace().await;
    for (method, path) in [
        ("GET", format!("/api/v1/conversations/{cid}")),
        ("GET", format!("/api/v1/conversations/{cid}/messages")),
        ("PATCH", format!("/api/v1/conversations/{cid}")),
        ("POST", format!("/api/v1/conversations/{cid}/messages")),
        ("POST", format!("/api/v1/conversations/{cid}/archive")),
        ("POST", format!("/api/v1/conversations/{cid}/participants")),
        ("DELETE", format!("/api/v1/conversations/{cid}")),
        ("DELETE", format!("/api/v1/messages/{mid}")),
    ] {
        let body = match method {
            "PATCH" => Some(json!({"status": "closed"}).to_string()),
            "POST" if path.ends_with("/participants") => Some(json!({"teammate_id": app.admin_id}).to_string()),
            "POST" if path.ends_with("/messages") => Some(json!({"body": "x"}).to_string()),
            "POST" => Some("{}".to_owned()),
            _ => None,
        };
        let a = app.request(method, &path, Some(&other), body).await;
        // A participant add names an unknown teammate before the conversation is looked up.
        if path.ends_with("/participants") {
            assert!(a.status == 404 || a.status == 422, "{method} {path}: {a:?}");
        } else {
            assert_eq!(a.status, 404, "{method} {path}: {a:?}");
            assert_eq!(a.code(), "not_found");
        }
    }
    assert!(app.get("/api/v1/conversations", &other).await.ok().unwrap()["items"].as_array().unwrap().is_empty());
    // Nothing changed for the owner.
    assert_eq!(app.thread(cid).await.len(), 1);
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!((c["status"].as_str(), c["archived"].as_bool()), (Some("open"), Some(false)));

    // The other workspace's agents do not hear this one's events.
    let mut other_ws = app.agent_ws(&other).await;
    widget.say("w2", "still secret").await;
    other_ws.expect_none_of("message.created", Duration::from_millis(500)).await;

    // A visitor token is bound to its workspace: the other app's widget cannot
    // resume this person.
    let s = app
        .request("POST", "/widget/v1/session", None, Some(json!({"app_id": other_app_id, "token": vtoken}).to_string()))
        .await
        .ok()
        .unwrap();
    assert_ne!(s["person_id"], person_id.as_str());
    // Assigning a teammate of another workspace is a bad value.
    let other_me = app.get("/api/v1/auth/me", &other).await.ok().unwrap();
    let bad = app.patch(&format!("/api/v1/conversations/{cid}"), &app.token, json!({"assignee_id": other_me["teammate"]["id"]})).await;
    assert_eq!((bad.status, bad.field()), (422, "assignee_id"));
}

async fn roles_and_participant_roles_limit_what_teammates_may_do(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (agent_id, agent) = app.teammate("Agnes", "agent").await;
    let (watcher_id, watcher) = app.teammate("Walt", "agent").await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let m = widget.say("r", "hello").await;
    let cid = m["conversation_id"].as_str().unwrap();

    // Admin-only actions.
    let a = app.post("/api/v1/teammates", &agent, json!({"email": "x@y.z", "name": "X", "password": "password-1", "role": "agent"})).await;
    assert_eq!(a.status, 403);
    assert_eq!(app.post("/api/v1/api-keys", &agent, json!({"name": "k"})).await.status, 403);
    assert_eq!(app.delete(&format!("/api/v1/conversations/{cid}"), &agent).await.status, 403);
    assert_eq!(app.patch("/api/v1/workspace", &agent, json!({"require_identity": true})).await.status, 403);
    // Agents do not see the identity secret; admins do.
    assert!(app.get("/api/v1/workspace", &agent).await.ok().unwrap().get("identity_secret").is_none());
    assert!(app.get("/api/v1/workspace", &app.token).await.ok().unwrap()["identity_secret"].is_string());
    // Admins rename the workspace; a blank or multi-line name is refused and
    // changes nothing, even beside a good setting.
    assert_eq!(app.patch("/api/v1/workspace", &agent, json!({"name": "Agents' place"})).await.status, 403);
    for bad in ["  ".to_owned(), "Two\nlines".to_owned(), "x".repeat(101)] {
        let r = app.patch("/api/v1/workspace", &app.token, json!({"name": bad, "email_fallback": false})).await;
        assert_eq!((r.status, r.field()), (422, "name"), "{bad:?}: {}", r.body);
    }
    let w = app.get("/api/v1/workspace", &agent).await.ok().unwrap();
    assert_eq!(w["settings"]["email_fallback"], true, "a refused change stores nothing: {w}");
    let w = app.patch("/api/v1/workspace", &app.token, json!({"name": "  Acme Support "})).await.ok().unwrap();
    assert_eq!(w["name"], "Acme Support");
    assert_eq!(app.get("/api/v1/workspace", &agent).await.ok().unwrap()["name"], "Acme Support");

    // Participants: read_only and watcher cannot write; write can.
    let c = app
        .post(&format!("/api/v1/conversations/{cid}/participants"), &app.token, json!({"teammate_id": agent_id, "role": "read_only"}))
        .await
        .ok()
        .unwrap();
    assert!(c["participants"].as_array().unwrap().iter().any(|p| p["teammate"]["id"] == agent_id.as_str() && p["role"] == "read_only"));
    app.post(&format!("/api/v1/conversations/{cid}/participants"), &app.token, json!({"teammate_id": watcher_id, "role": "watcher"}))
        .await
        .ok()
        .unwrap();
    for token in [&agent, &watcher] {
        let r = app.post(&format!("/api/v1/conversations/{cid}/messages"), token, json!({"body": "let me"})).await;
        assert_eq!(r.status, 403, "{r:?}");
    }
    // Over the socket too.
    let mut ws = app.agent_ws(&agent).await;
    ws.send(json!({"type": "message.send", "echo_id": "ro", "conversation_id": cid, "body": "sneaky"})).await;
    let err = ws.next_of("error").await;
    assert_eq!((err["code"].as_str(), err["echo_id"].as_str()), (Some("forbidden"), Some("ro")));
    assert_eq!(app.thread(cid).await.len(), 1, "nothing was stored");
    // An agent cannot change another's role; an admin can.
    let r =
        app.post(&format!("/api/v1/conversations/{cid}/participants"), &watcher, json!({"teammate_id": agent_id, "role": "watcher"})).await;
    assert_eq!(r.status, 403);
    app.post(&format!("/api/v1/conversations/{cid}/participants"), &app.token, json!({"teammate_id": agent_id, "role": "write"}))
        .await
        .ok()
        .unwrap();
    let mine = app.post(&format!("/api/v1/conversations/{cid}/messages"), &agent, json!({"body": "now I can"})).await;
    assert_eq!(mine.status, 201);
    // Mute is per participant and anyone may mute themselves.
    let c = app
        .post(&format!("/api/v1/conversations/{cid}/participants"), &watcher, json!({"teammate_id": watcher_id, "muted": true}))
        .await
        .ok()
        .unwrap();
    let w = c["participants"].as_array().unwrap().iter().find(|p| p["teammate"]["id"] == watcher_id.as_str()).unwrap().clone();
    assert_eq!((w["role"].as_str(), w["muted"].as_bool()), (Some("watcher"), Some(true)));
    assert_eq!(
        app.post(&format!("/api/v1/conversations/{cid}/participants"), &app.token, json!({"teammate_id": agent_id, "role": "owner"}))
            .await
            .field(),
        "role"
    );
    // Removing a participant.
    let c = app.delete(&format!("/api/v1/conversations/{cid}/participants/{watcher_id}"), &app.token).await.ok().unwrap();
    assert!(c["participants"].as_array().unwrap().iter().all(|p| p["teammate"]["id"] != watcher_id.as_str()));
    assert_eq!(app.delete(&format!("/api/v1/conversations/{cid}/participants/{watcher_id}"), &app.token).await.status, 404);

    // Deleting messages: agents their own only, admins any.
    let person_msg = m["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/messages/{person_msg}"), &agent).await.status, 403);
    let own = mine.body["id"].as_str().unwrap();
    let mut agent_ws = app.agent_ws(&app.token).await;
    assert_eq!(app.delete(&format!("/api/v1/messages/{own}"), &agent).await.status, 204);
    let del = agent_ws.next_of("message.deleted").await;
    assert_eq!(del["message_id"], own);
    assert_eq!(widget.next_of("message.deleted").await["message_id"], own);
    assert_eq!(app.delete(&format!("/api/v1/messages/{person_msg}"), &app.token).await.status, 204);
    assert!(app.thread(cid).await.is_empty(), "deleted messages leave the thread");

    // Deleting a conversation is for admins, and it is gone for good.
    assert_eq!(app.delete(&format!("/api/v1/conversations/{cid}"), &app.token).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.status, 404);
    assert_eq!(widget.next_of("conversation.deleted").await["conversation_id"], cid);
}

async fn bad_credentials_are_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wrong = app.login(&app.admin_email, "wrong password").await;
    assert_eq!((wrong.status, wrong.code()), (401, "unauthorized"));
    let unknown = app.login("nobody@example.test", "whatever-123").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(app.get("/api/v1/conversations", "pst_not-a-token").await.status, 401);
    assert_eq!(app.request("GET", "/api/v1/conversations", None, None).await.status, 401);
    assert_eq!(app.request("GET", "/widget/v1/conversation", Some("pvt_nope"), None).await.status, 401);
    // A bad socket token is told so with close code 4001.
    for path in ["/api/v1/ws?token=pst_bad", "/widget/v1/ws?token=pvt_bad", "/api/v1/ws"] {
        use futures_util::StreamExt;
        let mut raw = Ws::connect_raw(&app.ws_url(path)).await;
        match tokio::time::timeout(Duration::from_secs(5), raw.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 4001),
            other => panic!("{path}: expected a 4001 close, got {other:?}"),
        }
    }
    // The session cookie opens the agent socket only from Parley's own pages.
    {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let login = app.login(&app.admin_email, parley_tests::ADMIN_PASSWORD).await.ok().unwrap();
        let cookie = format!("parley_session={}", login["token"].as_str().unwrap());
        for (origin, welcome) in [(format!("http://{}", app.addr), true), ("https://evil.example".to_owned(), false)] {
            let mut req = app.ws_url("/api/v1/ws").into_client_request().unwrap();
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
            req.headers_mut().insert("origin", origin.parse().unwrap());
            let (mut raw, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let first = tokio::time::timeout(Duration::from_secs(5), raw.next()).await.unwrap().unwrap().unwrap();
            match first {
                tokio_tungstenite::tungstenite::Message::Text(t) => assert!(welcome && t.as_str().contains("hello"), "{origin}: {t}"),
                tokio_tungstenite::tungstenite::Message::Close(Some(f)) => assert!(!welcome && u16::from(f.code) == 4001, "{origin}"),
                other => panic!("{origin}: {other:?}"),
            }
        }
    }
    // Logout ends the session.
    let login = app.login(&app.admin_email, parley_tests::ADMIN_PASSWORD).await.ok().unwrap();
    let t = login["token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/auth/me", t).await.status, 200);
    assert_eq!(app.request("POST", "/api/v1/auth/logout", Some(t), None).await.status, 204);
    assert_eq!(app.get("/api/v1/auth/me", t).await.status, 401);
    // An unknown app id is a 404 for the widget.
    let s = app.request("POST", "/widget/v1/session", None, Some(json!({"app_id": "nope"}).to_string())).await;
    assert_eq!(s.status, 404);
}

async fn malformed_oversize_and_empty_input_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let cid = widget.say("m", "hi").await["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/conversations/{cid}/messages");

    let malformed = app.request("POST", &path, Some(&app.token), Some("{\"body\": ".into())).await;
    assert_eq!((malformed.status, malformed.code()), (400, "malformed_json"));
    let wrong_type = app.request("POST", &path, Some(&app.token), Some("{\"body\": 42}".into())).await;
    assert_eq!((wrong_type.status, wrong_type.field()), (422, "body"));
    let missing = app.post(&path, &app.token, json!({})).await;
    assert_eq!((missing.status, missing.field()), (422, "body"));
    let empty = app.post(&path, &app.token, json!({"body": "   \n "})).await;
    assert_eq!((empty.status, empty.field()), (422, "body"));
    let bad_kind = app.post(&path, &app.token, json!({"body": "x", "kind": "announcement"})).await;
    assert_eq!((bad_kind.status, bad_kind.field()), (422, "kind"));
    let unknown_field = app.patch(&format!("/api/v1/conversations/{cid}"), &app.token, json!({"colour": "red"})).await;
    assert_eq!(unknown_field.status, 422);
    let bad_status = app.patch(&format!("/api/v1/conversations/{cid}"), &app.token, json!({"status": "done"})).await;
    assert_eq!((bad_status.status, bad_status.field()), (422, "status"));
    let too_big = app.post(&path, &app.token, json!({"body": "x".repeat(64 * 1024 + 1)})).await;
    assert_eq!((too_big.status, too_big.code()), (413, "too_large"));
    let way_too_big = app.post(&path, &app.token, json!({"body": "x".repeat(300 * 1024)})).await;
    assert_eq!(way_too_big.status, 413);
    // Exactly the limit is fine.
    let at_limit = app.post(&path, &app.token, json!({"body": "y".repeat(64 * 1024)})).await;
    assert_eq!(at_limit.status, 201);
    let unknown_conv = app.post("/api/v1/conversations/nope/messages", &app.token, json!({"body": "x"})).await;
    assert_eq!(unknown_conv.status, 404);
    let bad_teammate = app
        .post("/api/v1/teammates", &app.token, json!({"email": "not-an-email", "name": "N", "password": "password-1", "role": "agent"}))
        .await;
    assert_eq!((bad_teammate.status, bad_teammate.field()), (422, "email"));
    let short_pw = app
        .post("/api/v1/teammates", &app.token, json!({"email": "n@example.test", "name": "N", "password": "short", "role": "agent"}))
        .await;
    assert_eq!((short_pw.status, short_pw.field()), (422, "password"));
    let bad_role = app
        .post("/api/v1/teammates", &app.token, json!({"email": "n@example.test", "name": "N", "password": "password-1", "role": "boss"}))
        .await;
    assert_eq!((bad_role.status, bad_role.field()), (422, "role"));
    let dup = app
        .post("/api/v1/teammates", &app.token, json!({"email": &app.admin_email, "name": "N", "password": "password-1", "role": "agent"}))
        .await;
    assert_eq!((dup.status, dup.code()), (409, "email_taken"));

    let bodies: Vec<_> = app.thread(&cid).await.iter().map(|m| m["body"].as_str().unwrap().len()).collect();
    assert_eq!(bodies, [2, 64 * 1024], "only the valid messages were stored");
}

async fn bad_frames_get_error_frames_and_the_socket_stays_open(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("{not json".into(), "malformed_json", None),
        ("[1,2]".into(), "bad_frame", None),
        (json!({"no": "type"}).to_string(), "invalid", Some("type")),
        (json!({"type": "launch.rockets"}).to_string(), "unknown_type", Some("type")),
        (json!({"type": "message.send", "echo_id": "e1"}).to_string(), "invalid", Some("body")),
        (json!({"type": "message.send", "echo_id": "e2", "body": ""}).to_string(), "invalid", Some("body")),
        (json!({"type": "message.send", "echo_id": "e3", "body": "x".repeat(70_000)}).to_string(), "too_large", None),
        (json!({"type": "message.send", "echo_id": "e4", "body": "hi", "conversation_id": "nope"}).to_string(), "not_found", None),
        (json!({"type": "typing", "conversation_id": "nope", "on": true}).to_string(), "not_found", None),
        (json!({"type": "resume", "after": "yesterday"}).to_string(), "invalid", Some("after")),
        (json!({"type": "track", "name": "<b>", "data": {}}).to_string(), "invalid", Some("name")),
    ];
    for (text, code, field) in cases {
        widget.send_text(&text).await;
        let err = widget.next_of("error").await;
        assert_eq!(err["code"], code, "for {text:.80}: {err}");
        if let Some(f) = field {
            assert_eq!(err["field"], f, "for {text:.80}");
        }
    }
    // Still connected and working.
    let ok = widget.say("fine", "all good").await;
    assert_eq!(app.thread(ok["conversation_id"].as_str().unwrap()).await.len(), 1, "no bad frame stored anything");

    let mut agent = app.agent_ws(&app.token).await;
    agent.send_text("nonsense").await;
    assert_eq!(agent.next_of("error").await["code"], "malformed_json");
    agent.send(json!({"type": "message.send", "echo_id": "a", "body": "x"})).await;
    let err = agent.next_of("error").await;
    assert_eq!((err["field"].as_str(), err["echo_id"].as_str()), (Some("conversation_id"), Some("a")));
    agent.send(json!({"type": "ping"})).await;
    agent.next_of("pong").await;
}

async fn api_keys_act_for_the_workspace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.post("/api/v1/api-keys", &app.token, json!({"name": "backend"})).await;
    assert_eq!(key.status, 201);
    let key = key.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pak_"));
    let me = app.get("/api/v1/auth/me", &key).await.ok().unwrap();
    assert_eq!(me["workspace"]["id"], app.workspace_id.as_str());
    assert_eq!(app.get("/api/v1/conversations", &key).await.status, 200);
    // A key cannot mint more keys.
    assert_eq!(app.post("/api/v1/api-keys", &key, json!({"name": "again"})).await.status, 403);
    assert_eq!(app.post("/api/v1/api-keys", &app.token, json!({"name": ""})).await.field(), "name");
    // Listed by name, never with the key.
    let list = app.get("/api/v1/api-keys", &app.token).await.ok().unwrap();
    assert_eq!(list["items"][0]["name"], "backend", "{list}");
    assert!(list["items"][0].get("key").is_none() && !list.to_string().contains(&key), "{list}");
    let (al, agent) = app.teammate("Al", "agent").await;
    assert_eq!(app.get("/api/v1/api-keys", &agent).await.status, 403);

    // A teammate's role changes, and with it what they may do; the last admin stays one.
    assert_eq!(app.patch(&format!("/api/v1/teammates/{al}"), &agent, json!({"role": "admin"})).await.status, 403);
    let t = app.patch(&format!("/api/v1/teammates/{al}"), &app.token, json!({"role": "admin"})).await.ok().unwrap();
    assert_eq!(t["role"], "admin");
    assert_eq!(app.get("/api/v1/api-keys", &agent).await.status, 200);
    assert_eq!(app.patch(&format!("/api/v1/teammates/{al}"), &app.token, json!({"role": "boss"})).await.field(), "role");
    app.patch(&format!("/api/v1/teammates/{al}"), &app.token, json!({"role": "agent"})).await.ok().unwrap();
    let me = app.get("/api/v1/auth/me", &app.token).await.ok().unwrap();
    let me_id = me["teammate"]["id"].as_str().unwrap();
    let last = app.patch(&format!("/api/v1/teammates/{me_id}"), &app.token, json!({"role": "agent"})).await;
    assert_eq!((last.status, last.body["error"]["code"].as_str()), (409, Some("last_admin")), "{}", last.body);
    assert_eq!(app.patch("/api/v1/teammates/nope", &app.token, json!({"role": "agent"})).await.status, 404);
    // Another workspace's admin neither finds this teammate nor sees these keys;
    // a body that is not JSON is refused and changes nothing.
    let (other, _) = app.other_workspace().await;
    assert_eq!(app.patch(&format!("/api/v1/teammates/{al}"), &other, json!({"role": "admin"})).await.status, 404);
    assert_eq!(app.get("/api/v1/api-keys", &other).await.ok().unwrap()["items"], json!([]));
    let bad = app.request("PATCH", &format!("/api/v1/teammates/{al}"), Some(&app.token), Some("{\"role\":".into())).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(app.get("/api/v1/api-keys", &agent).await.status, 403, "still an agent");
}
