//! Teams: admins make them, conversations are routed to them by hand, by a
//! rule's `assign("Billing")` and by a flow's handoff, and the inbox lists a
//! team's conversations.

use std::time::Duration;

use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(teams_are_kept_by_admins_and_conversations_are_routed_to_them);

async fn conversation_of(app: &TestApp, id: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = app.get(&format!("/api/v1/conversations/{id}"), &app.token).await.ok().unwrap();
        if wanted(&c) {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "the conversation never got there: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

async fn teams_are_kept_by_admins_and_conversations_are_routed_to_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tess, agent_token) = app.teammate("Tess", "agent").await;

    // Admins make teams; names are unique whatever their case; members are checked.
    let billing = app.post("/api/v1/teams", &app.token, json!({"name": "Billing", "member_ids": [tess]})).await;
    assert_eq!(billing.status, 201, "{}", billing.body);
    let billing_id = billing.body["id"].as_str().unwrap().to_owned();
    assert_eq!(billing.body["members"][0]["name"], "Tess");
    let dup = app.post("/api/v1/teams", &app.token, json!({"name": "billing"})).await;
    assert_eq!((dup.status, dup.code()), (409, "team_exists"), "{}", dup.body);
    let bad = app.post("/api/v1/teams", &app.token, json!({"name": "Sales", "member_ids": [tess, "nobody"]})).await;
    assert_eq!((bad.status, bad.field()), (422, "member_ids.1"), "{}", bad.body);
    let bad = app.post("/api/v1/teams", &app.token, json!({"name": "  "})).await;
    assert_eq!((bad.status, bad.field()), (422, "name"));
    assert_eq!(app.post("/api/v1/teams", &agent_token, json!({"name": "Sales"})).await.status, 403);
    let sales = app.post("/api/v1/teams", &app.token, json!({"name": "Sales"})).await.ok().unwrap();
    let list = app.get("/api/v1/teams", &agent_token).await.ok().unwrap();
    assert_eq!(list.as_array().unwrap().iter().map(|t| t["name"].clone()).collect::<Vec<_>>(), [json!("Billing"), json!("Sales")]);
    // Another workspace sees none of them.
    let (other, _) = app.other_workspace().await;
    assert_eq!(app.get(&format!("/api/v1/teams/{billing_id}"), &other).await.status, 404);
    assert!(app.get("/api/v1/teams", &other).await.ok().unwrap().as_array().unwrap().is_empty());

    // A rule routes invoices to Billing by name; a flow hands sales questions to Sales.
    let r = app
        .post(
            "/api/v1/automations",
            &app.token,
            json!({"name": "Route", "trigger": "message.received",
                   "script": "if event.message.body.contains(\"invoice\") { assign(\"billing\"); } else if event.message.body.contains(\"price\") { start_flow(\"To sales\"); }"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let f = app
        .post(
            "/api/v1/automations",
            &app.token,
            json!({"name": "To sales", "kind": "flow", "trigger": "event.never", "flow": {"start": "h", "nodes": {
                "h": {"type": "handoff", "team": sales["id"], "text": "Passing you to our sales team."}}}}),
        )
        .await;
    assert_eq!(f.status, 201, "{}", f.body);
    let bad = app
        .post("/api/v1/automations/validate", &app.token, json!({"flow": {"start": "h", "nodes": {"h": {"type": "handoff", "team": ""}}}}))
        .await;
    assert_eq!(bad.ok().unwrap()["errors"][0]["field"], "flow.nodes.h.team");

    let (ann, _) = app.visitor_with(json!({"name": "Ann"})).await;
    let mut ann = app.widget_ws(&ann).await;
    let invoice = ann.say("t-1", "Where is my invoice?").await["conversation_id"].as_str().unwrap().to_owned();
    let c = conversation_of(&app, &invoice, |c| !c["team"].is_null()).await;
    assert_eq!(c["team"], json!({"id": billing_id, "name": "Billing"}));

    let (bo, _) = app.visitor_with(json!({"name": "Bo"})).await;
    let mut bo = app.widget_ws(&bo).await;
    let pricing = bo.say("t-2", "What is the price?").await["conversation_id"].as_str().unwrap().to_owned();
    let said = bo.next_message_not_from("person").await;
    assert_eq!(said["message"]["body"], "Passing you to our sales team.");
    let c = conversation_of(&app, &pricing, |c| !c["team"].is_null()).await;
    assert_eq!(c["team"]["name"], "Sales");

    // The inbox lists a team's conversations, and those of no team.
    let of_billing = app.get(&format!("/api/v1/conversations?team={billing_id}"), &agent_token).await.ok().unwrap();
    assert_eq!(ids(&of_billing), std::slice::from_ref(&invoice));
    let (carl, _) = app.visitor_with(json!({"name": "Carl"})).await;
    let mut carl = app.widget_ws(&carl).await;
    let plain = carl.say("t-3", "Hello").await["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(ids(&app.get("/api/v1/conversations?team=none", &agent_token).await.ok().unwrap()), std::slice::from_ref(&plain));

    // A teammate moves a conversation between teams, or off them; a bad team is the body's fault.
    let moved = app.patch(&format!("/api/v1/conversations/{plain}"), &agent_token, json!({"team_id": billing_id})).await.ok().unwrap();
    assert_eq!(moved["team"]["name"], "Billing");
    let bad = app.patch(&format!("/api/v1/conversations/{plain}"), &agent_token, json!({"team_id": "nope"})).await;
    assert_eq!((bad.status, bad.field()), (422, "team_id"));
    let off = app.patch(&format!("/api/v1/conversations/{plain}"), &agent_token, json!({"team_id": null})).await.ok().unwrap();
    assert!(off["team"].is_null());

    // Renaming shows everywhere; deleting a team leaves its conversations teamless.
    app.patch(&format!("/api/v1/teams/{billing_id}"), &app.token, json!({"name": "Accounts"})).await.ok().unwrap();
    assert_eq!(app.get(&format!("/api/v1/conversations/{invoice}"), &app.token).await.ok().unwrap()["team"]["name"], "Accounts");
    assert_eq!(app.delete(&format!("/api/v1/teams/{billing_id}"), &agent_token).await.status, 403);
    assert_eq!(app.delete(&format!("/api/v1/teams/{billing_id}"), &app.token).await.status, 204);
    assert!(app.get(&format!("/api/v1/conversations/{invoice}"), &app.token).await.ok().unwrap()["team"].is_null());
    assert_eq!(app.get(&format!("/api/v1/teams/{billing_id}"), &app.token).await.status, 404);
}
