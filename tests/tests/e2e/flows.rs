//! Chatbot flows driven by a real widget client: buttons, questions with
//! validation, branches, actions, handoff, waits across a restart, a
//! teammate taking over; the `conversation.unanswered` trigger; and the
//! "send a chat message" module: proactive greetings and autoresponders.

use std::time::{Duration, Instant};

use parley_tests::{Backend, TestApp, Ws, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_lead_bot_asks_checks_branches_and_hands_over,
    a_teammate_reply_pauses_the_bot,
    a_wait_spanning_a_restart_fires_once,
    a_rule_starts_a_flow_by_name_and_a_flow_is_checked_on_save,
    an_unanswered_conversation_sets_off_its_rule_once,
    a_greeting_reaches_the_widget_from_the_chosen_teammate_once_per_period,
    an_autoresponder_answers_only_when_no_agent_is_online,
    a_schedule_runs_once_for_each_matching_person_at_its_time,
);

/// The next message from the bot (or a teammate), skipping the person's own.
async fn bot_says(widget: &mut Ws) -> Value {
    widget.next_message_not_from("person").await["message"].clone()
}

async fn own_message(widget: &mut Ws) -> Value {
    widget.next_where("message.created", |f| f["message"]["author"]["type"] == "person").await["message"].clone()
}

/// Polls `path` until `done` holds for it.
pub(crate) async fn until(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = app.get(path, &app.token).await.ok().unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_lead_bot_asks_checks_branches_and_hands_over(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tess, _) = app.teammate("Tess", "agent").await;
    let id = app
        .automation(json!({"name": "Lead bot", "kind": "flow", "trigger": "conversation.created", "flow": {"start": "hello", "nodes": {
            "hello": {"type": "message", "text": "Hi {{default person.first_name \"there\"}}! What can we help with?",
                      "buttons": [{"label": "Pricing", "next": "email"}, {"label": "Support", "next": "human"}]},
            "email": {"type": "ask", "text": "What is your work email?", "attribute": "email", "validate": "email", "next": "seats"},
            "seats": {"type": "ask", "text": "How many seats?", "attribute": "seats", "validate": "number", "next": "size"},
            "size": {"type": "branch", "conditions": [{"if": "person.attributes.seats > 50", "next": "big"}], "else": "human"},
            "big": {"type": "action", "script": "tag(\"big-lead\"); set_attribute(\"answered\", event.reply);", "next": "human"},
            "human": {"type": "handoff", "teammate_id": tess, "text": "Connecting you with Tess."}
        }}}))
        .await;
    let (vtoken, person_id) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let first = widget.say("v-1", "Hello").await;
    let cid = first["conversation_id"].as_str().unwrap().to_owned();

    let hello = bot_says(&mut widget).await;
    assert_eq!(hello["author"]["type"], "bot");
    assert_eq!(hello["body"], "Hi there! What can we help with?");
    assert_eq!(hello["buttons"], json!([{"label": "Pricing"}, {"label": "Support"}]));
    let hello_id = hello["id"].as_str().unwrap();

    // A choice that is not a button, and a message that does not exist,
    // are refused on a connection that stays up.
    widget.send(json!({"type": "reply.choose", "message_id": hello_id, "choice": "Free lunch"})).await;
    let e = widget.next_of("error").await;
    assert_eq!(e["field"], "choice", "{e}");
    widget.send(json!({"type": "reply.choose", "message_id": "nope", "choice": "Pricing"})).await;
    assert_eq!(widget.next_of("error").await["code"], "not_found");

    widget.send(json!({"type": "reply.choose", "message_id": hello_id, "choice": "Pricing"})).await;
    let picked = own_message(&mut widget).await;
    assert_eq!(picked["body"], "Pricing");
    assert_eq!(picked["conversation_id"], cid.as_str());
    assert_eq!(bot_says(&mut widget).await["body"], "What is your work email?");

    // A bad answer is asked again; a good one is stored on the person.
    widget.say("v-2", "ann at example").await;
    assert_eq!(bot_says(&mut widget).await["body"], "That does not look like a valid email address. What is your work email?");
    widget.say("v-3", "Ann@Example.com").await;
    assert_eq!(bot_says(&mut widget).await["body"], "How many seats?");
    widget.say("v-4", "120").await;
    let bye = bot_says(&mut widget).await;
    assert_eq!(bye["body"], "Connecting you with Tess.");

    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["email"], "ann@example.com");
    assert_eq!(p["attributes"]["seats"].as_f64(), Some(120.0), "{p}");
    assert_eq!(p["attributes"]["answered"], "120", "the action saw the last reply");
    assert!(p["tags"].as_array().unwrap().contains(&json!("big-lead")), "{p}");
    until(&app, &format!("/api/v1/conversations/{cid}"), |c| c["assignee"]["id"] == tess.as_str()).await;

    // The flow has ended: the person's next message gets no bot answer.
    widget.say("v-5", "Thanks").await;
    own_message(&mut widget).await;
    widget.expect_none_of("message.created", Duration::from_millis(500)).await;

    // Each step of the conversation is in the run log.
    let runs = until(&app, &format!("/api/v1/automations/{id}/runs"), |r| r["items"].as_array().is_some_and(|i| i.len() >= 5)).await;
    let triggers: Vec<&str> = runs["items"].as_array().unwrap().iter().map(|r| r["trigger"].as_str().unwrap()).collect();
    assert_eq!(triggers.last(), Some(&"conversation.created"), "{triggers:?}");
    assert!(triggers.contains(&"flow.choice") && triggers.contains(&"flow.answer"), "{triggers:?}");
    assert!(runs["items"].as_array().unwrap().iter().all(|r| r["outcome"] != "error"), "{runs}");

    // A small team goes straight to a human, without the tag.
    let (vtoken, person_id) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    widget.say("w-1", "Hi").await;
    let hello = bot_says(&mut widget).await;
    widget.send(json!({"type": "reply.choose", "message_id": hello["id"], "choice": "Pricing"})).await;
    assert_eq!(bot_says(&mut widget).await["body"], "What is your work email?");
    widget.say("w-2", "bob@example.com").await;
    bot_says(&mut widget).await;
    widget.say("w-3", "3").await;
    assert_eq!(bot_says(&mut widget).await["body"], "Connecting you with Tess.");
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert!(!p["tags"].as_array().unwrap().contains(&json!("big-lead")), "{p}");
}

async fn a_teammate_reply_pauses_the_bot(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.automation(json!({"name": "Ask email", "kind": "flow", "trigger": "conversation.created", "flow": {"start": "ask", "nodes": {
        "ask": {"type": "ask", "text": "Your email, please?", "attribute": "email", "validate": "email", "next": "thanks"},
        "thanks": {"type": "message", "text": "Thanks!"}
    }}}))
    .await;
    let (vtoken, person_id) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let first = widget.say("p-1", "Hi").await;
    assert_eq!(bot_says(&mut widget).await["body"], "Your email, please?");

    let cid = first["conversation_id"].as_str().unwrap();
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "Hi, I'm here to help"})).await.ok().unwrap();
    assert_eq!(bot_says(&mut widget).await["author"]["type"], "teammate");

    // The answer now goes to the teammate: the bot neither stores nor thanks.
    widget.say("p-2", "ann@example.com").await;
    own_message(&mut widget).await;
    widget.expect_none_of("message.created", Duration::from_millis(800)).await;
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert!(p["email"].is_null(), "{p}");
}

async fn a_wait_spanning_a_restart_fires_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app
        .automation(json!({"name": "Nudge", "kind": "flow", "trigger": "conversation.created", "flow": {"start": "hi", "nodes": {
            "hi": {"type": "message", "text": "Hi! Looking around?", "next": "pause"},
            "pause": {"type": "wait", "seconds": 2, "next": "nudge"},
            "nudge": {"type": "message", "text": "Still there? Ask us anything."}
        }}}))
        .await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let first = widget.say("r-1", "Hello").await;
    assert_eq!(bot_says(&mut widget).await["body"], "Hi! Looking around?");
    let cid = first["conversation_id"].as_str().unwrap().to_owned();
    widget.close().await;
    // The start is logged once its wait is queued.
    until(&app, &format!("/api/v1/automations/{id}/runs"), |r| r["items"].as_array().is_some_and(|i| !i.is_empty())).await;

    // The server goes down before the wait is over and comes back.
    let app = app.restart().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let nudge = bot_says(&mut widget).await;
    assert_eq!(nudge["body"], "Still there? Ask us anything.");

    // Once: nothing more comes, and the thread holds it once.
    widget.expect_none_of("message.created", Duration::from_millis(1500)).await;
    let thread = app.thread(&cid).await;
    let nudges = thread.iter().filter(|m| m["body"] == "Still there? Ask us anything.").count();
    assert_eq!(nudges, 1, "{thread:?}");
    let runs = until(&app, &format!("/api/v1/automations/{id}/runs"), |r| r["items"].as_array().is_some_and(|i| i.len() >= 2)).await;
    assert_eq!(runs["items"][0]["trigger"], "flow.wait");
    assert_eq!(runs["items"][0]["outcome"], "ok");
}

async fn a_rule_starts_a_flow_by_name_and_a_flow_is_checked_on_save(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A flow with no trigger of its own use: started by a rule.
    app.automation(json!({"name": "Refund bot", "kind": "flow", "trigger": "event.never", "flow": {"start": "q", "nodes": {
        "q": {"type": "message", "text": "Is this about a refund?", "buttons": [{"label": "Yes"}, {"label": "No"}], "next": "ok"},
        "ok": {"type": "message", "text": "Noted."}
    }}}))
    .await;
    app.automation(json!({"name": "Route refunds", "trigger": "message.received",
               "script": "if event.message.body.contains(\"refund\") { start_flow(\"refund bot\"); }"}))
        .await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    widget.say("f-1", "I want a refund").await;
    let q = bot_says(&mut widget).await;
    assert_eq!(q["body"], "Is this about a refund?");
    // Typing a button's label works like pressing it; a button without its
    // own next goes on to the step's.
    widget.say("f-2", "yes").await;
    assert_eq!(bot_says(&mut widget).await["body"], "Noted.");

    // Saving checks the whole graph and names the bad place.
    let bad = app
        .post(
            "/api/v1/automations",
            &app.token,
            json!({"name": "Broken", "kind": "flow", "trigger": "conversation.created",
                   "flow": {"start": "a", "nodes": {"a": {"type": "message", "text": "Hi", "next": "missing"}}}}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.field(), "flow.nodes.a.next");
    let bad = app
        .post(
            "/api/v1/automations",
            &app.token,
            json!({"name": "Broken", "kind": "flow", "trigger": "conversation.created",
                   "flow": {"start": "a", "nodes": {"a": {"type": "branch", "conditions": [{"if": "person.x >", "next": "a"}]}}}}),
        )
        .await;
    assert_eq!(bad.field(), "flow.nodes.a.conditions.0.if", "{}", bad.body);
    // A snippet with a syntax error: the place and where in the text.
    let bad = app
        .post(
            "/api/v1/automations",
            &app.token,
            json!({"name": "Broken", "kind": "flow", "trigger": "conversation.created",
                   "flow": {"start": "a", "nodes": {"a": {"type": "message", "text": "Hi\n{{#if person.name}}you"}}}}),
        )
        .await;
    assert_eq!((bad.status, bad.field()), (422, "flow.nodes.a.text"), "{}", bad.body);
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("line 2"), "{}", bad.body);
    let v = app
        .post("/api/v1/automations/validate", &app.token, json!({"flow": {"start": "a", "nodes": {"a": {"type": "wait", "seconds": 0}}}}))
        .await
        .ok()
        .unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["field"], "flow.nodes.a.seconds", "{v}");
    let bad = app
        .post("/api/v1/automations", &app.token, json!({"name": "Mixed", "kind": "flow", "trigger": "conversation.created", "script": "1"}))
        .await;
    assert_eq!(bad.field(), "script", "{}", bad.body);
}

async fn an_unanswered_conversation_sets_off_its_rule_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app
        .automation(json!({"name": "Apologise", "trigger": "conversation.unanswered", "params": {"minutes": 0.05},
               "script": "send_chat(\"Sorry for the wait: a teammate will be with you shortly.\");"}))
        .await;
    // Two messages nobody answers: one apology, for the first.
    let (vtoken, _) = app.visitor().await;
    let mut waiting = app.widget_ws(&vtoken).await;
    waiting.say("u-1", "Hello?").await;
    waiting.say("u-2", "Anyone?").await;
    // Answered within the minutes: no apology.
    let (vtoken2, _) = app.visitor().await;
    let mut answered = app.widget_ws(&vtoken2).await;
    let m = answered.say("a-1", "Hello?").await;
    let cid = m["conversation_id"].as_str().unwrap();
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "Hi! Right here."})).await.ok().unwrap();

    let sorry = bot_says(&mut waiting).await;
    assert_eq!(sorry["body"], "Sorry for the wait: a teammate will be with you shortly.");
    waiting.expect_none_of("message.created", Duration::from_millis(4000)).await;
    assert_eq!(bot_says(&mut answered).await["author"]["type"], "teammate");
    answered.expect_none_of("message.created", Duration::from_millis(500)).await;
    let runs = until(&app, &format!("/api/v1/automations/{id}/runs"), |r| !r["items"].as_array().unwrap().is_empty()).await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["items"][0]["trigger"], "conversation.unanswered");
}

async fn a_greeting_reaches_the_widget_from_the_chosen_teammate_once_per_period(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tess, _) = app.teammate("Tess", "agent").await;
    let id = app
        .automation(json!({"name": "Pricing greeting", "trigger": "page.view",
               "params": {"url": "/pricing*", "after_seconds": 1, "once_per_hours": 24},
               "script": format!("send_chat_as(\"{tess}\", `Hi, I'm {{{{teammate.first_name}}}}. Questions about ${{event.title}}?`);")}))
        .await;
    let view = |url: &str| json!({"type": "page.view", "url": url, "title": "Pricing"});

    // Stays on the pricing page: greeted by Tess in a conversation of its own.
    let (vtoken, _) = app.visitor().await;
    let mut stays = app.widget_ws(&vtoken).await;
    stays.send(view("https://shop.example/pricing?plan=team")).await;
    // Moves on before the second is over: not greeted.
    let (vtoken2, _) = app.visitor().await;
    let mut leaves = app.widget_ws(&vtoken2).await;
    leaves.send(view("https://shop.example/pricing")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    leaves.send(view("https://shop.example/about")).await;

    let hello = bot_says(&mut stays).await;
    assert_eq!(hello["author"]["type"], "teammate");
    assert_eq!(hello["author"]["id"], tess.as_str());
    assert_eq!(hello["author"]["name"], "Tess");
    assert_eq!(hello["body"], "Hi, I'm Tess. Questions about Pricing?");
    let cid = hello["conversation_id"].as_str().unwrap();
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["id"], cid);

    // Once per period: the same page again greets no more.
    stays.send(view("https://shop.example/pricing")).await;
    stays.expect_none_of("message.created", Duration::from_millis(2500)).await;
    leaves.expect_none_of("message.created", Duration::from_millis(100)).await;
    let runs = app.get(&format!("/api/v1/automations/{id}/runs"), &app.token).await.ok().unwrap();
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["items"][0]["outcome"], "ok");
}

async fn an_autoresponder_answers_only_when_no_agent_is_online(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.automation(json!({"name": "Away", "trigger": "message.received",
               "script": "if !agents_online() { send_chat(\"No one is in right now: we answer by email within a day.\"); }"}))
        .await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    widget.say("o-1", "Hello?").await;
    assert_eq!(bot_says(&mut widget).await["body"], "No one is in right now: we answer by email within a day.");

    // A teammate opens the inbox: no more autoresponses.
    let mut inbox = app.agent_ws(&app.token).await;
    widget.say("o-2", "Anyone now?").await;
    own_message(&mut widget).await;
    widget.expect_none_of("message.created", Duration::from_millis(800)).await;
    inbox.next_where("message.created", |f| f["message"]["body"] == "Anyone now?").await;
}

async fn a_schedule_runs_once_for_each_matching_person_at_its_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Two people on a trial with the widget open, one paying customer.
    let mut trial = Vec::new();
    for (name, plan) in [("Tia Moss", "trial"), ("Ugo Brandt", "trial"), ("Pat Paid", "paid")] {
        let (token, id) = app.visitor_with(json!({"name": name})).await;
        app.patch(&format!("/api/v1/people/{id}"), &app.token, json!({"attributes": {"plan": plan}})).await.ok().unwrap();
        trial.push((name, app.widget_ws(&token).await));
    }
    let filter = json!({"field": "attributes.plan", "op": "eq", "value": "trial"});

    // Bad schedules are refused before anything is saved.
    let bad = app
        .post("/api/v1/automations", &app.token, json!({"name": "x", "trigger": "schedule", "params": {"cron": "0 9 * *"}, "script": "1"}))
        .await;
    assert_eq!((bad.status, bad.field()), (422, "params.cron"), "{}", bad.body);
    let bad = app
        .post(
            "/api/v1/automations",
            &app.token,
            json!({"name": "x", "trigger": "schedule", "params": {"cron": "* * * * *", "filter": {"field": "plan", "op": "eq", "value": 1}}, "script": "1"}),
        )
        .await;
    assert_eq!((bad.status, bad.field()), (422, "params.filter.field"), "{}", bad.body);
    assert!(app.get("/api/v1/automations", &app.token).await.ok().unwrap().as_array().unwrap().is_empty());

    // Every minute, for the people on a trial. Edited at once: the time the
    // first version planned finds itself stale, only the edit runs.
    let id = app
        .automation(json!({"name": "Trial nudge", "trigger": "schedule", "params": {"cron": "* * * * *", "filter": filter},
               "script": "send_chat(\"old text\");"}))
        .await;
    let edited = app
        .patch(
            &format!("/api/v1/automations/{id}"),
            &app.token,
            json!({"script": "send_chat(`Hi {{person.first_name}}, your trial ends soon (${event.type}).`);"}),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);

    for (name, widget) in trial.iter_mut().take(2) {
        let m = widget.next_message_not_from_within("person", Duration::from_secs(75)).await["message"].clone();
        let first = name.split(' ').next().unwrap();
        assert_eq!(m["body"], format!("Hi {first}, your trial ends soon (schedule)."));
        assert_eq!(m["author"]["type"], "bot");
    }
    let runs = until(&app, &format!("/api/v1/automations/{id}/runs"), |r| r["items"].as_array().unwrap().len() >= 2).await;
    let items = runs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "one run per matching person: {runs}");
    assert!(items.iter().all(|r| r["trigger"] == "schedule" && r["outcome"] == "ok"), "{runs}");
    // The paying customer heard nothing; neither did anyone twice.
    trial[2].1.expect_none_of("message.created", Duration::from_millis(300)).await;
    trial[0].1.expect_none_of("message.created", Duration::from_millis(300)).await;
}
