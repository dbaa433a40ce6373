//! Automations: rules in rhai that react to messages, people and events,
//! their sandbox, dry runs, run logs and the guards against loops and failures.

use std::time::{Duration, Instant};

use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_message_received_rule_auto_replies_to_the_widget_as_the_bot,
    send_chat_as_writes_with_the_chosen_teammates_name,
    tags_and_attributes_set_by_a_rule_land_on_the_person,
    a_false_person_matches_condition_does_nothing,
    a_script_that_does_not_compile_is_refused_with_its_line_and_column,
    the_sandbox_stops_an_endless_loop_and_a_huge_allocation_quickly,
    an_automations_own_message_does_not_set_it_off_again,
    a_rule_that_keeps_failing_is_switched_off_with_the_reason,
    a_dry_run_lists_the_actions_and_does_nothing,
    bad_input_and_other_workspaces_get_clear_errors,
    automated_messages_are_rate_limited_per_conversation,
    a_page_view_rule_matches_its_url_glob,
    a_person_first_named_by_a_tracked_event_sets_off_person_created,
    after_business_hours_a_rule_answers_that_the_team_is_away,
    the_run_log_keeps_the_newest_thousand_runs,
);

/// Creates an enabled rule and returns its id.
async fn rule(app: &TestApp, trigger: &str, script: &str) -> String {
    app.automation(json!({"name": format!("On {trigger}"), "trigger": trigger, "script": script})).await
}

async fn runs(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/automations/{id}/runs"), &app.token).await.ok().unwrap();
    r["items"].as_array().cloned().unwrap_or_default()
}

/// A known person (created over REST, so `person.created` fires) and their id.
async fn person(app: &TestApp, external_id: &str, attributes: Value) -> String {
    let p = app.post("/api/v1/people", &app.token, json!({"external_id": external_id, "name": "Ann", "attributes": attributes})).await;
    p.ok().unwrap()["id"].as_str().unwrap().to_owned()
}

async fn track(app: &TestApp, external_id: &str, name: &str, data: Value) {
    let r = app.post("/api/v1/events", &app.token, json!({"person": {"external_id": external_id}, "name": name, "data": data})).await;
    assert_eq!(r.status, 202, "{}", r.body);
}

async fn a_message_received_rule_auto_replies_to_the_widget_as_the_bot(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = rule(
        &app,
        "message.received",
        r#"if event.message.body.contains("price") { send_chat(`Hi {{person.first_name}}, prices are on /pricing?plan={{default person.attributes.plan "free"}}`); }"#,
    )
    .await;
    let (vtoken, _) = app.visitor_with(json!({"name": "Vera Lind"})).await;
    let mut widget = app.widget_ws(&vtoken).await;

    let sent = widget.say("m-1", "What is the price?").await;
    let reply = widget.next_message_not_from("person").await;
    assert_eq!(reply["message"]["author"]["type"], "bot");
    // Snippets filled in for the person; a missing attribute takes its default.
    assert_eq!(reply["message"]["body"], "Hi Vera, prices are on /pricing?plan=free");
    assert_eq!(reply["message"]["conversation_id"], sent["conversation_id"]);

    // The run log tells what set it off and what it did.
    let log = app.wait_runs(&id, 1).await;
    assert_eq!(log[0]["trigger"], "message.received");
    assert_eq!(log[0]["outcome"], "ok");
    // The log keeps what the script asked for, snippets unfilled.
    assert_eq!(
        log[0]["actions"],
        json!([{"type": "send_chat", "text": "Hi {{person.first_name}}, prices are on /pricing?plan={{default person.attributes.plan \"free\"}}"}])
    );
    assert!(log[0]["error"].is_null());
    assert!(log[0]["duration_us"].as_i64().unwrap() > 0);

    // A message the script does not care about is a run without actions.
    widget.say("m-2", "Thanks").await;
    own_message(&mut widget).await;
    let log = app.wait_runs(&id, 2).await;
    assert_eq!(log[0]["actions"], json!([]));
    widget.expect_none_of("message.created", Duration::from_millis(300)).await;
}

/// Skips to the widget's frame of its own latest message.
async fn own_message(widget: &mut parley_tests::Ws) {
    widget.next_where("message.created", |f| f["message"]["author"]["type"] == "person").await;
}

async fn send_chat_as_writes_with_the_chosen_teammates_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tess, _) = app.teammate("Tess", "agent").await;
    rule(&app, "conversation.created", &format!(r#"send_chat_as("{tess}", "Hello, I am Tess"); assign("{tess}");"#)).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let sent = widget.say("c-1", "Hello?").await;
    let reply = widget.next_message_not_from("person").await;
    assert_eq!(reply["message"]["author"]["type"], "teammate");
    assert_eq!(reply["message"]["author"]["id"], tess.as_str());
    assert_eq!(reply["message"]["author"]["name"], "Tess");
    assert_eq!(reply["message"]["body"], "Hello, I am Tess");

    let cid = sent["conversation_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
        if c["assignee"]["id"] == tess.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "not assigned: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A second message in the same conversation is not a new conversation.
    widget.say("c-2", "Still there?").await;
    own_message(&mut widget).await;
    widget.expect_none_of("message.created", Duration::from_millis(500)).await;
}

async fn tags_and_attributes_set_by_a_rule_land_on_the_person(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = rule(
        &app,
        "event.upgraded",
        r#"tag("Customer"); untag("trial"); set_attribute("plan", event.data.plan); set_attribute("seats", 12);"#,
    )
    .await;
    let pid =
        app.post("/api/v1/people", &app.token, json!({"external_id": "u-1", "name": "Ann", "tags": ["trial", "vip"]})).await.ok().unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();
    track(&app, "u-1", "upgraded", json!({"plan": "pro"})).await;
    let log = app.wait_runs(&id, 1).await;
    assert_eq!(log[0]["outcome"], "ok", "{}", log[0]);
    assert_eq!(log[0]["trigger"], "event.upgraded");
    let p = app.get(&format!("/api/v1/people/{pid}"), &app.token).await.ok().unwrap();
    let mut tags: Vec<String> = serde_json::from_value(p["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["customer", "vip"]);
    assert_eq!(p["attributes"]["plan"], "pro");
    assert_eq!(p["attributes"]["seats"], 12);

    // Another event name does not set it off.
    track(&app, "u-1", "downgraded", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&app, &id).await.len(), 1);
}

async fn a_false_person_matches_condition_does_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let script = r#"if person_matches(#{field: "attributes.plan", op: "eq", value: "enterprise"}) { tag("big-fish"); } else { set_attribute("checked", true); }"#;
    let id = rule(&app, "event.visited", script).await;
    let small = person(&app, "s-1", json!({"plan": "free"})).await;
    let big = person(&app, "b-1", json!({"plan": "enterprise"})).await;

    track(&app, "s-1", "visited", json!({})).await;
    let log = app.wait_runs(&id, 1).await;
    assert_eq!(log[0]["outcome"], "ok", "{}", log[0]);
    assert_eq!(log[0]["actions"], json!([{"type": "set_attribute", "name": "checked", "value": true}]));
    let p = app.get(&format!("/api/v1/people/{small}"), &app.token).await.ok().unwrap();
    assert_eq!(p["tags"], json!([]));

    track(&app, "b-1", "visited", json!({})).await;
    let log = app.wait_runs(&id, 2).await;
    assert_eq!(log[0]["actions"], json!([{"type": "tag", "name": "big-fish"}]));
    let p = app.get(&format!("/api/v1/people/{big}"), &app.token).await.ok().unwrap();
    assert_eq!(p["tags"], json!(["big-fish"]));

    // A bad filter is the run's error, named.
    let bad = rule(&app, "event.visited", r#"person_matches(#{field: "nope", op: "eq", value: 1});"#).await;
    track(&app, "b-1", "visited", json!({})).await;
    let log = app.wait_runs(&bad, 1).await;
    assert_eq!(log[0]["outcome"], "error");
    assert!(log[0]["error"].as_str().unwrap().contains("person_matches"), "{}", log[0]);
}

async fn a_script_that_does_not_compile_is_refused_with_its_line_and_column(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bad = "let x = 1;\nlet y = x + ;\nsend_chat(\"hi\");";
    let a = app.post("/api/v1/automations", &app.token, json!({"name": "Broken", "trigger": "message.received", "script": bad})).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.field(), "script");
    assert_eq!(a.code(), "invalid_script");
    assert!(a.body["error"]["message"].as_str().unwrap().contains("line 2, column"), "{}", a.body);

    let v = app.post("/api/v1/automations/validate", &app.token, json!({"script": bad})).await.ok().unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["line"], 2);
    assert!(v["errors"][0]["column"].as_u64().unwrap() > 0);
    assert!(!v["errors"][0]["message"].as_str().unwrap().is_empty());
    let v = app.post("/api/v1/automations/validate", &app.token, json!({"script": "send_chat(\"hi\");"})).await.ok().unwrap();
    assert_eq!(v, json!({"ok": true, "errors": []}));

    // Changing a good rule to a broken script is refused the same way, and
    // the rule keeps its old script.
    let id = rule(&app, "message.received", "send_chat(\"hi\");").await;
    let p = app.patch(&format!("/api/v1/automations/{id}"), &app.token, json!({"script": bad})).await;
    assert_eq!(p.status, 422);
    assert_eq!(p.field(), "script");
    let a = app.get(&format!("/api/v1/automations/{id}"), &app.token).await.ok().unwrap();
    assert_eq!(a["script"], "send_chat(\"hi\");");
}

async fn the_sandbox_stops_an_endless_loop_and_a_huge_allocation_quickly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (script, expected) in [
        ("let n = 0;\nloop { n += 1; }", "stopped"),
        ("let s = \"x\";\nwhile true { s += s; }", "too large"),
        ("let a = [];\na.pad(100000000, 0);", "too large"),
    ] {
        let id = rule(&app, "message.received", script).await;
        let started = Instant::now();
        let t = app.post(&format!("/api/v1/automations/{id}/test"), &app.token, json!({"event": {}})).await.ok().unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "{script} took {:?}", started.elapsed());
        assert_eq!(t["ok"], false, "{t}");
        assert!(t["error"]["message"].as_str().unwrap().contains(expected), "{script}: {t}");
        assert_eq!(t["error"]["line"], 2, "{t}");
    }
}

async fn an_automations_own_message_does_not_set_it_off_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = rule(&app, "message.sent", r#"send_chat("A teammate answered: we also sent you an email.");"#).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let sent = widget.say("l-1", "Hello").await;
    let cid = sent["conversation_id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "Hi!"})).await.ok().unwrap();

    let bot = widget.next_where("message.created", |f| f["message"]["author"]["type"] == "bot").await;
    assert_eq!(bot["message"]["body"], "A teammate answered: we also sent you an email.");
    // Its own message is a message.sent too, but it does not run again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.wait_runs(&id, 1).await.len(), 1);
    let bots = app.thread(&cid).await.iter().filter(|m| m["author"]["type"] == "bot").count();
    assert_eq!(bots, 1);
    // A note is not a sent message.
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "internal", "kind": "note"})).await.ok().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&app, &id).await.len(), 1);
}

async fn a_rule_that_keeps_failing_is_switched_off_with_the_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = rule(&app, "event.ping", "let n = 0;\nloop { n += 1; }").await;
    person(&app, "f-1", json!({})).await;
    for i in 1..=3 {
        track(&app, "f-1", "ping", json!({})).await;
        app.wait_runs(&id, i).await;
    }
    let a = app.get(&format!("/api/v1/automations/{id}"), &app.token).await.ok().unwrap();
    assert_eq!(a["enabled"], false, "{a}");
    assert_eq!(a["failures"], 3);
    let reason = a["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("switched off after 3 failed runs") && reason.contains("stopped"), "{reason}");
    let log = runs(&app, &id).await;
    assert!(log.iter().all(|r| r["outcome"] == "error"));
    assert_eq!(log[0]["error"], reason, "the last run tells why it was switched off");

    // Switched off, it runs no more.
    track(&app, "f-1", "ping", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs(&app, &id).await.len(), 3);

    // Fixed and enabled again, it runs and its failures are forgotten.
    let a = app
        .patch(&format!("/api/v1/automations/{id}"), &app.token, json!({"script": "tag(\"pinged\");", "enabled": true}))
        .await
        .ok()
        .unwrap();
    assert_eq!(a["enabled"], true);
    assert!(a["disabled_reason"].is_null());
    assert_eq!(a["failures"], 0);
    track(&app, "f-1", "ping", json!({})).await;
    let log = app.wait_runs(&id, 4).await;
    assert_eq!(log[0]["outcome"], "ok", "the changed script runs, not a cached one: {}", log[0]);
}

async fn a_dry_run_lists_the_actions_and_does_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, person_id) = app.visitor_with(json!({"name": "Dora"})).await;
    let mut widget = app.widget_ws(&vtoken).await;
    let sent = widget.say("d-1", "hi").await;
    own_message(&mut widget).await;
    let cid = sent["conversation_id"].as_str().unwrap().to_owned();
    // On a trigger that never fires here, so only the dry run runs it.
    let id = rule(
        &app,
        "event.refund_requested",
        r#"if event.message.body == "refund" { send_chat(`Sorry ${person.name}`); tag("refund"); close(); } note(conversation.status);"#,
    )
    .await;
    let t = app
        .post(
            &format!("/api/v1/automations/{id}/test"),
            &app.token,
            json!({"event": {"conversation_id": cid, "message": {"body": "refund"}}}),
        )
        .await
        .ok()
        .unwrap();
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(
        t["actions"],
        json!([{"type": "send_chat", "text": "Sorry Dora"}, {"type": "tag", "name": "refund"}, {"type": "close"}, {"type": "note", "text": "open"}])
    );
    widget.expect_none_of("message.created", Duration::from_millis(500)).await;
    assert_eq!(app.thread(&cid).await.len(), 1);
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["tags"], json!([]));
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["status"], "open");
    assert!(runs(&app, &id).await.is_empty(), "a dry run is not logged as a run");

    // The person and conversation must be the workspace's.
    let t = app.post(&format!("/api/v1/automations/{id}/test"), &app.token, json!({"event": {"person_id": "nobody"}})).await;
    assert_eq!(t.status, 422);
    assert_eq!(t.field(), "event.person_id");
    let t = app.post(&format!("/api/v1/automations/{id}/test"), &app.token, json!({"event": 3})).await;
    assert_eq!(t.status, 422);
}

async fn bad_input_and_other_workspaces_get_clear_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |body: Value| app.post("/api/v1/automations", &app.token, body);
    let a = post(json!({"name": "x", "trigger": "message.recieved", "script": "1"})).await;
    assert_eq!((a.status, a.field()), (422, "trigger"));
    assert!(a.body["error"]["message"].as_str().unwrap().contains("message.received"));
    let a = post(json!({"name": "x", "trigger": "page.view", "params": {"url": 5}, "script": "1"})).await;
    assert_eq!((a.status, a.field()), (422, "params.url"));
    let a = post(json!({"name": "x", "trigger": "message.sent", "params": {"minutes": 5}, "script": "1"})).await;
    assert_eq!((a.status, a.field()), (422, "params.minutes"));
    let a = post(json!({"name": "x", "trigger": "schedule", "script": "1"})).await;
    assert_eq!((a.status, a.field()), (422, "params.cron"));
    let a = post(json!({"name": "x", "kind": "flow", "trigger": "message.sent", "flow": {}})).await;
    assert_eq!((a.status, a.field()), (422, "flow.start"));
    let a = post(json!({"name": "x", "kind": "flow", "trigger": "message.sent"})).await;
    assert_eq!((a.status, a.field()), (422, "flow"));
    let a = post(json!({"name": "x", "kind": "bot", "trigger": "message.sent", "script": "1"})).await;
    assert_eq!((a.status, a.field()), (422, "kind"));
    let a = post(json!({"name": "", "trigger": "message.sent", "script": "1"})).await;
    assert_eq!((a.status, a.field()), (422, "name"));
    let a = post(json!({"name": "x", "trigger": "message.sent"})).await;
    assert_eq!((a.status, a.field()), (422, "script"));
    let a = post(json!({"name": "x", "trigger": "message.sent", "script": "1", "colour": "red"})).await;
    assert_eq!(a.status, 422);
    let a = app.request("POST", "/api/v1/automations", Some(&app.token), Some("{\"name\": ".into())).await;
    assert_eq!((a.status, a.code()), (400, "malformed_json"));
    let a = app.request("POST", "/api/v1/automations", None, Some("{}".into())).await;
    assert_eq!(a.status, 401);
    let a = app.get("/api/v1/automations/nope", &app.token).await;
    assert_eq!((a.status, a.code()), (404, "not_found"));
    // Too long a script is named; too large a body is refused before parsing.
    let long = format!("let x = 1;{}", " ".repeat(64 * 1024));
    let a = post(json!({"name": "x", "trigger": "message.sent", "script": long})).await;
    assert_eq!((a.status, a.field()), (422, "script"));
    let a = post(json!({"name": "x", "trigger": "message.sent", "script": "x".repeat(300 * 1024)})).await;
    assert_eq!(a.status, 413);
    assert_eq!(app.get("/api/v1/automations", &app.token).await.ok().unwrap(), json!([]), "nothing half-written");

    let id = rule(&app, "message.received", "send_chat(\"hi\");").await;
    let list = app.get("/api/v1/automations", &app.token).await.ok().unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (other, _) = app.other_workspace().await;
    for (method, path, body) in [
        ("GET", format!("/api/v1/automations/{id}"), None),
        ("PATCH", format!("/api/v1/automations/{id}"), Some(json!({"name": "mine"}))),
        ("DELETE", format!("/api/v1/automations/{id}"), None),
        ("POST", format!("/api/v1/automations/{id}/test"), Some(json!({"event": {}}))),
        ("GET", format!("/api/v1/automations/{id}/runs"), None),
    ] {
        let a = app.request(method, &path, Some(&other), body.map(|b| b.to_string())).await;
        assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
    }
    let theirs = app.get("/api/v1/automations", &other).await.ok().unwrap();
    assert_eq!(theirs, json!([]));

    // Agents may read but not change automations.
    let (_, agent) = app.teammate("Agnes", "agent").await;
    assert_eq!(app.get(&format!("/api/v1/automations/{id}"), &agent).await.status, 200);
    assert_eq!(app.delete(&format!("/api/v1/automations/{id}"), &agent).await.status, 403);
    assert_eq!(app.delete(&format!("/api/v1/automations/{id}"), &app.token).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/automations/{id}"), &app.token).await.status, 404);

    // The endpoints are in the OpenAPI document.
    let doc = app.request("GET", "/api/openapi.json", None, None).await.ok().unwrap();
    for path in [
        "/api/v1/automations",
        "/api/v1/automations/{id}",
        "/api/v1/automations/validate",
        "/api/v1/automations/{id}/test",
        "/api/v1/automations/{id}/runs",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}

async fn automated_messages_are_rate_limited_per_conversation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = rule(&app, "message.received", r#"send_chat("Got it"); send_chat("We will answer soon");"#).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    for i in 1..=3 {
        widget.say(&format!("r-{i}"), "hello").await;
        app.wait_runs(&id, i).await;
    }
    let log = runs(&app, &id).await;
    let outcomes: Vec<&str> = log.iter().rev().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["ok", "ok", "skipped"]);
    assert!(log[0]["error"].as_str().unwrap().contains("per conversation per minute"));
    let cid = app.get("/api/v1/conversations", &app.token).await.ok().unwrap()["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.thread(&cid).await.iter().filter(|m| m["author"]["type"] == "bot").count(), 4);
}

async fn a_page_view_rule_matches_its_url_glob(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.automation(json!({"name": "Pricing visitors", "trigger": "page.view", "params": {"url": "/pricing*"}, "script": "tag(\"pricing\"); set_attribute(\"last_page\", event.url);"}),
    )
    .await;
    let (vtoken, person_id) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    widget.send(json!({"type": "page.view", "url": "https://shop.example/about", "title": "About"})).await;
    widget.send(json!({"type": "page.view", "url": "https://shop.example/pricing?plan=pro", "title": "Pricing"})).await;
    let log = app.wait_runs(&id, 1).await;
    assert_eq!(log[0]["trigger"], "page.view");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&app, &id).await.len(), 1, "the about page does not match");
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["tags"], json!(["pricing"]));
    assert_eq!(p["attributes"]["last_page"], "https://shop.example/pricing?plan=pro");
}

async fn a_person_first_named_by_a_tracked_event_sets_off_person_created(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = rule(&app, "person.created", r#"tag("new");"#).await;
    let ingested = app
        .post(
            "/api/v1/events",
            &app.token,
            json!([{"person": {"external_id": "fresh-1"}, "name": "signed_up"}, {"person": {"external_id": "fresh-1"}, "name": "opened"}]),
        )
        .await
        .ok()
        .unwrap();
    assert_eq!(ingested["people_created"], 1);
    let log = app.wait_runs(&id, 1).await;
    assert_eq!(log[0]["trigger"], "person.created");
    let found = app
        .post("/api/v1/people/search", &app.token, json!({"filter": {"field": "tags", "op": "contains", "value": "new"}}))
        .await
        .ok()
        .unwrap();
    assert_eq!(found["items"][0]["external_id"], "fresh-1");
    // An event about a known person creates no one.
    track(&app, "fresh-1", "opened", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&app, &id).await.len(), 1);
}

async fn after_business_hours_a_rule_answers_that_the_team_is_away(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let set = |hours: Value| app.patch("/api/v1/workspace", &app.token, json!({"business_hours": hours}));
    // No hours set: always open.
    let w = app.get("/api/v1/workspace", &app.token).await.ok().unwrap();
    assert_eq!((w["settings"]["business_hours"].clone(), w["settings"]["open_now"].clone()), (Value::Null, json!(true)));
    // Open on no day of the week: closed now, whatever the day.
    let closed = json!({"timezone": "Europe/Berlin", "weekly": {}, "holidays": ["2026-12-25"]});
    let w = set(closed.clone()).await.ok().unwrap();
    assert_eq!(w["settings"]["business_hours"], closed);
    assert_eq!(w["settings"]["open_now"], false);

    let id = rule(&app, "message.received", r#"if !in_business_hours() { send_chat("We are away now and answer from 9:00."); }"#).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    widget.say("h-1", "Anyone there?").await;
    let reply = widget.next_message_not_from("person").await;
    assert_eq!(reply["message"]["body"], "We are away now and answer from 9:00.");

    // Open around the clock: the rule stays quiet.
    let day = json!([["00:00", "24:00"]]);
    let always = json!({"timezone": "UTC", "weekly": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day}, "holidays": []});
    assert_eq!(set(always.clone()).await.ok().unwrap()["settings"]["open_now"], true);
    widget.say("h-2", "Hello again").await;
    own_message(&mut widget).await;
    let log = app.wait_runs(&id, 2).await;
    assert_eq!(log[0]["actions"], json!([]));
    widget.expect_none_of("message.created", Duration::from_millis(300)).await;

    // Bad hours are refused naming the part, and change nothing; agents may not set them.
    let bad = set(json!({"timezone": "UTC", "weekly": {"mon": [["17:00", "09:00"]]}})).await;
    assert_eq!((bad.status, bad.field()), (422, "business_hours.weekly.mon.0"));
    let bad = app
        .patch(
            "/api/v1/workspace",
            &app.token,
            json!({"company_conversations": true, "business_hours": {"timezone": "Nowhere/Land", "weekly": {}}}),
        )
        .await;
    assert_eq!((bad.status, bad.field()), (422, "business_hours.timezone"));
    let w = app.get("/api/v1/workspace", &app.token).await.ok().unwrap();
    assert_eq!((w["settings"]["business_hours"].clone(), w["settings"]["company_conversations"].clone()), (always, json!(false)));
    let (_, agent) = app.teammate("Aga", "agent").await;
    assert_eq!(app.patch("/api/v1/workspace", &agent, json!({"business_hours": null})).await.status, 403);
    let many: Vec<String> = (0..1001).map(|d| format!("2027-01-{:02}", d % 28 + 1)).collect();
    let bad = set(json!({"timezone": "UTC", "weekly": {}, "holidays": many})).await;
    assert_eq!((bad.status, bad.field()), (422, "business_hours.holidays"));
    // null clears them.
    let w = set(Value::Null).await.ok().unwrap();
    assert!(w["settings"]["business_hours"].is_null());
}

async fn the_run_log_keeps_the_newest_thousand_runs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = rule(&app, "event.ping", r#"set_attribute("last_ping", event.data.n);"#).await;
    person(&app, "p-1", json!({})).await;
    let batch: Vec<Value> = (0..1000).map(|n| json!({"person": {"external_id": "p-1"}, "name": "ping", "data": {"n": n}})).collect();
    assert_eq!(app.post("/api/v1/events", &app.token, json!(batch)).await.status, 202);
    let values = |runs: &[Value]| -> Vec<i64> { runs.iter().filter_map(|r| r["actions"][0]["value"].as_i64()).collect() };
    let first = wait_all_runs(&app, &id, |all| all.len() >= 1000).await;
    assert_eq!(first.len(), 1000);
    // One more run: the oldest is dropped, the log stays at 1000.
    track(&app, "p-1", "ping", json!({"n": 1000})).await;
    let all = wait_all_runs(&app, &id, |all| values(all).contains(&1000)).await;
    assert_eq!(all.len(), 1000);
    let oldest = first.last().unwrap()["id"].clone();
    assert!(all.iter().all(|r| r["id"] != oldest), "the oldest run is the one dropped");
}

/// The whole run log once `done` says it is complete.
async fn wait_all_runs(app: &TestApp, id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    // A thousand runs on PostgreSQL took over a minute on a loaded machine
    // with the rest of the suite beside them.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let all = all_runs(app, id).await;
        if done(&all) {
            return all;
        }
        assert!(Instant::now() < deadline, "the runs did not come: {}", all.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The whole run log, newest first, read page by page.
async fn all_runs(app: &TestApp, id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/automations/{id}/runs?limit=200&before={c}"),
            None => format!("/api/v1/automations/{id}/runs?limit=200"),
        };
        let page = app.get(&path, &app.token).await.ok().unwrap();
        all.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}
