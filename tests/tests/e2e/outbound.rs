//! Outbound: one personalised message to many people by chat, email and SMS,
//! the message log per recipient and channel, check-ins answered from their
//! link and followed up, SMS routes failing over, texts coming back in, and a
//! message from a profile.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use parley_tests::outside::{Receiver, Smtp};
use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_chat_to_a_segment_reaches_each_widget_personalised_and_the_log_shows_every_recipient,
    a_checkin_is_answered_from_its_link_counted_and_followed_up_with_only_the_rest,
    high_quality_sms_fails_over_to_the_next_route_and_the_provider_reports_it_delivered,
    high_quality_sms_gives_up_after_fifty_attempts,
    bad_outbound_requests_name_the_field_and_store_nothing,
    a_profile_sends_by_chat_or_email_and_templates_and_previews_render_snippets,
    companies_expand_to_members_or_managers_and_announcements_join_the_open_chat,
    an_outbound_chat_nobody_saw_is_emailed_after_the_delay_and_a_seen_one_is_not,
    an_outbound_the_sender_never_took_up_is_sent_after_a_restart_once_to_each,
    an_admin_sends_a_test_email_and_a_test_text_that_fails_over_to_the_next_route,
);

pub(crate) fn unique(name: &str) -> String {
    format!("{name}-{}@customer.test", uuid::Uuid::now_v7().simple())
}

pub(crate) async fn person(app: &TestApp, body: Value) -> String {
    let p = app.post("/api/v1/people", &app.token, body).await.ok().unwrap();
    p["id"].as_str().unwrap().to_owned()
}

/// Waits until the outbound has no queued delivery left and returns it.
pub(crate) async fn finished(app: &TestApp, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let o = app.get(&format!("/api/v1/outbound/{id}"), &app.token).await.ok().unwrap();
        if o["status"] == "sent" {
            return o;
        }
        assert!(tokio::time::Instant::now() < deadline, "still sending: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn log(app: &TestApp, id: &str, query: &str) -> Vec<Value> {
    let page = app.get(&format!("/api/v1/outbound/{id}/deliveries?limit=200{query}"), &app.token).await.ok().unwrap();
    page["items"].as_array().unwrap().clone()
}

/// Waits for `pred` to hold for the outbound.
async fn outbound_until(app: &TestApp, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let o = app.get(&format!("/api/v1/outbound/{id}"), &app.token).await.ok().unwrap();
        if pred(&o) {
            return o;
        }
        assert!(tokio::time::Instant::now() < deadline, "never came true: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first `/c/…` link in a text.
fn link_in(text: &str) -> String {
    let at = text.find("/c/").expect("a chat link");
    let start = text[..at].rfind("http").expect("an absolute link");
    text[start..].split_whitespace().next().unwrap().to_owned()
}

async fn a_chat_to_a_segment_reaches_each_widget_personalised_and_the_log_shows_every_recipient(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let smtp = Smtp::shared();
    let ann_email = unique("ann");
    // Ann is on the site now; Bob has no email; Cy is not on the pro plan.
    let (ann_token, ann) = app.visitor_with(json!({"email": ann_email, "name": "Ann Lee"})).await;
    app.patch(&format!("/api/v1/people/{ann}"), &app.token, json!({"attributes": {"plan": "pro"}})).await.ok().unwrap();
    let bob = person(
        &app,
        json!({"external_id": format!("bob-{}", uuid::Uuid::now_v7().simple()), "name": "Bob", "attributes": {"plan": "pro"}}),
    )
    .await;
    let cy = person(&app, json!({"email": unique("cy"), "name": "Cy", "attributes": {"plan": "free"}})).await;
    let seg = app
        .post("/api/v1/segments", &app.token, json!({"name": "Pro", "filter": {"field": "attributes.plan", "op": "eq", "value": "pro"}}))
        .await
        .ok()
        .unwrap();
    let (sam, sam_token) = app.teammate("Sam Rivera", "agent").await;
    let mut ann_ws = app.widget_ws(&ann_token).await;
    let mut agent = app.agent_ws(&app.token).await;

    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({
                "kind": "chat", "title": "News for {{default person.first_name \"you\"}}",
                "body": "Hi {{default person.first_name \"there\"}}, {{teammate.first_name}} here: pro news!",
                "channels": ["chat", "email"], "audience": {"segments": [seg["id"]]}, "from_teammate_id": sam,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["recipients"], 2, "{}", r.body);

    // Ann's open widget gets it from Sam, personalised.
    let m = ann_ws.next_of("message.created").await;
    assert_eq!(m["message"]["body"], "Hi Ann, Sam here: pro news!");
    assert_eq!(m["message"]["author"]["name"], "Sam Rivera");
    // Teammates watch it go out, to the end.
    let last = agent.next_where("outbound.progress", |f| f["outbound_id"] == id.as_str() && f["status"] == "sent").await;
    assert_eq!(last["total"], 4, "{last}");

    let o = finished(&app, &id).await;
    assert_eq!(o["by_channel"]["chat"]["sent"], 2, "{o}");
    assert_eq!(o["by_channel"]["email"]["sent"], 1, "{o}");
    assert_eq!(o["by_channel"]["email"]["skipped"], 1, "{o}");
    // The log, per recipient and channel, filterable.
    let all = log(&app, &id, "").await;
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|d| d["person_id"] != cy.as_str()), "Cy is not pro");
    let skipped = log(&app, &id, "&status=skipped").await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["person_id"], bob.as_str());
    assert_eq!(skipped[0]["channel"], "email");
    assert_eq!(skipped[0]["reason"], "no_email");
    let emails = log(&app, &id, "&channel=email&status=sent").await;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["person"]["email"], ann_email.as_str());
    assert_eq!(emails[0]["attempts"], 1);

    // The email has the same words, its own subject, and the link back to the chat.
    let mail = smtp.wait_for(&ann_email, 1, Duration::from_secs(15)).await.remove(0);
    assert_eq!(mail.subject(), "News for Ann");
    assert!(mail.text().contains("Hi Ann, Sam here: pro news!"), "{}", mail.text());
    assert!(link_in(&mail.text()).starts_with(&app.url("/c/")), "{}", mail.text());
    assert!(mail.header("List-Unsubscribe").is_some());

    // Each recipient has their own conversation, titled; Ann seeing it marks it delivered.
    let chats = log(&app, &id, "&channel=chat").await;
    let ann_chat = chats.iter().find(|d| d["person_id"] == ann.as_str()).unwrap();
    let conversation = ann_chat["conversation_id"].as_str().unwrap();
    let c = app.get(&format!("/api/v1/conversations/{conversation}"), &app.token).await.ok().unwrap();
    assert_eq!(c["title"], "News for Ann");
    // Sam wrote it: nothing in it is unread for Sam until Ann answers.
    let unread_for_sam =
        async || app.get(&format!("/api/v1/conversations/{conversation}"), &sam_token).await.ok().unwrap()["unread"].clone();
    assert_eq!(unread_for_sam().await, 0);
    ann_ws.send(json!({"type": "seen", "conversation_id": conversation, "message_id": ann_chat["message_id"]})).await;
    let o = outbound_until(&app, &id, |o| o["by_channel"]["chat"]["delivered"] == 1).await;
    assert_eq!(o["by_channel"]["chat"]["sent"], 1, "Bob has not seen his yet: {o}");
    ann_ws.send(json!({"type": "message.send", "echo_id": "ann-answers", "conversation_id": conversation, "body": "Tell me more"})).await;
    ann_ws.next_of("ack").await;
    assert_eq!(unread_for_sam().await, 1, "Ann's answer is unread for Sam");
    // It is on the person's timeline.
    let tl = app.get(&format!("/api/v1/people/{ann}/timeline?name=outbound.received"), &app.token).await.ok().unwrap();
    assert_eq!(tl["items"].as_array().unwrap().len(), 2, "chat and email: {tl}");
    // Another workspace sees none of it.
    let (other, _) = app.other_workspace().await;
    assert_eq!(app.get(&format!("/api/v1/outbound/{id}"), &other).await.status, 404);
    assert_eq!(app.get(&format!("/api/v1/outbound/{id}/deliveries"), &other).await.status, 404);
    ann_ws.close().await;
}

async fn a_checkin_is_answered_from_its_link_counted_and_followed_up_with_only_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let smtp = Smtp::shared();
    let emails: Vec<String> = ["ann", "bob", "cy"].iter().map(|n| unique(n)).collect();
    let mut ids = Vec::new();
    for (e, name) in emails.iter().zip(["Ann", "Bob", "Cy"]) {
        ids.push(person(&app, json!({"email": e, "name": name})).await);
    }
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({
                "kind": "checkin", "title": "Storm warning", "body": "{{person.first_name}}, are you safe?",
                "channels": ["chat", "email"], "audience": {"people": ids},
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let o = finished(&app, &id).await;
    assert_eq!((o["ok"].as_i64(), o["not_ok"].as_i64()), (Some(0), Some(3)), "{o}");

    // Ann opens the link in her email: a chat of her own, no widget or site needed.
    let mail = smtp.wait_for(&emails[0], 1, Duration::from_secs(15)).await.remove(0);
    let link = link_in(&mail.text());
    assert!(mail.text().contains("Ann, are you safe?"));
    let page = app.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-link=") && html.contains("/widget.js"), "{html}");
    let token = link.rsplit('/').next().unwrap();
    let s = app.request("POST", "/widget/v1/link", None, Some(json!({"token": token}).to_string())).await.ok().unwrap();
    assert_eq!(s["person_id"], ids[0].as_str());
    let visitor = s["token"].as_str().unwrap();
    let state = app
        .request("GET", &format!("/widget/v1/conversation?conversation_id={}", s["conversation_id"].as_str().unwrap()), Some(visitor), None)
        .await
        .ok()
        .unwrap();
    let checkin = &state["messages"][0];
    assert_eq!(checkin["kind"], "checkin");
    assert_eq!(checkin["body"], "Ann, are you safe?");

    // "I'm OK": counted once, however often pressed, and shown in the chat.
    let mut agent = app.agent_ws(&app.token).await;
    let mut ws = app.widget_ws(visitor).await;
    ws.send(json!({"type": "checkin.ok", "message_id": checkin["id"]})).await;
    let answer = ws.next_of("message.created").await;
    assert_eq!(answer["message"]["kind"], "checkin");
    assert_eq!(answer["message"]["author"]["type"], "person");
    let p = agent.next_where("outbound.progress", |f| f["outbound_id"] == id.as_str() && f["ok"] == 1).await;
    assert_eq!(p["ok"], 1);
    ws.send(json!({"type": "checkin.ok", "message_id": checkin["id"]})).await;
    // Someone else's message is not a check-in of hers.
    ws.send(json!({"type": "checkin.ok", "message_id": "nope"})).await;
    assert_eq!(ws.next_of("error").await["code"], "not_found");
    let o = app.get(&format!("/api/v1/outbound/{id}"), &app.token).await.ok().unwrap();
    assert_eq!((o["ok"].as_i64(), o["not_ok"].as_i64()), (Some(1), Some(2)), "{o}");
    let tl = app.get(&format!("/api/v1/people/{}/timeline?name=checkin.answered", ids[0]), &app.token).await.ok().unwrap();
    assert_eq!(tl["items"].as_array().unwrap().len(), 1, "{tl}");

    // The follow-up goes to exactly those who have not answered OK.
    let f = app
        .post(
            &format!("/api/v1/outbound/{id}/follow-up"),
            &app.token,
            json!({"body": "Please answer, {{person.first_name}}", "only": "not_ok"}),
        )
        .await;
    assert_eq!(f.status, 201, "{}", f.body);
    assert_eq!(f.body["recipients"], 2);
    let follow = f.body["id"].as_str().unwrap().to_owned();
    finished(&app, &follow).await;
    let got: BTreeSet<String> =
        log(&app, &follow, "&channel=chat").await.iter().map(|d| d["person_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, BTreeSet::from([ids[1].clone(), ids[2].clone()]));
    let bob_mail = smtp.wait_for(&emails[1], 2, Duration::from_secs(15)).await;
    assert!(bob_mail[1].text().contains("Please answer, Bob"), "{}", bob_mail[1].text());
    assert!(smtp.mail_for(&emails[0]).len() == 1, "Ann answered: no follow-up for her");

    // Archiving closes the links; a forged link opens nothing.
    app.post(&format!("/api/v1/outbound/{id}/archive"), &app.token, json!({})).await.ok().unwrap();
    assert_eq!(app.http.get(&link).send().await.unwrap().status(), 410);
    let again = app.request("POST", "/widget/v1/link", None, Some(json!({"token": token}).to_string())).await;
    assert_eq!((again.status, again.code()), (409, "link_closed"));
    let forged = format!("{}{}", &link[..link.len() - 2], if link.ends_with("00") { "11" } else { "00" });
    assert_eq!(app.http.get(&forged).send().await.unwrap().status(), 404);
    let forged_token = forged.rsplit('/').next().unwrap();
    let r = app.request("POST", "/widget/v1/link", None, Some(json!({"token": forged_token}).to_string())).await;
    assert_eq!(r.status, 404);
    assert_eq!(app.request("POST", "/widget/v1/link", None, Some("{\"token\":".into())).await.status, 400);
    let listed = app.get("/api/v1/outbound?archived=true", &app.token).await.ok().unwrap();
    assert_eq!(listed["items"][0]["id"], id.as_str());
    ws.close().await;
}

fn form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

async fn high_quality_sms_fails_over_to_the_next_route_and_the_provider_reports_it_delivered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let settings = json!({"from": "+15550001000", "routes": [
        {"name": "primary", "kind": "http", "url": first.url("/send"), "username": "acct", "password": "s3cret"},
        {"name": "backup", "kind": "http", "url": second.url("/send")},
    ]});
    // Only admins set SMS up; a route without its URL is named.
    let (_, agent) = app.teammate("Ag", "agent").await;
    assert_eq!(app.request("PUT", "/api/v1/sms", Some(&agent), Some(settings.to_string())).await.status, 403);
    let mut bad = settings.clone();
    bad["routes"][1]["url"] = Value::Null;
    let r = app.request("PUT", "/api/v1/sms", Some(&app.token), Some(bad.to_string())).await;
    assert_eq!((r.status, r.field()), (422, "routes.1.url"));
    let view = app.request("PUT", "/api/v1/sms", Some(&app.token), Some(settings.to_string())).await.ok().unwrap();
    assert_eq!(view["settings"]["routes"][0]["password"], "********", "passwords are not shown back");

    let ann = person(&app, json!({"email": unique("ann"), "name": "Ann", "phone": "+44 7700 900123"})).await;
    let nobody = person(&app, json!({"email": unique("nophone"), "name": "No Phone"})).await;
    first.fail_next(1000);
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({
                "kind": "one_way", "body": "Water is off until 6pm, {{person.first_name}}.", "channels": ["sms"],
                "audience": {"people": [ann, nobody]}, "options": {"sms_high_quality": true},
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    finished(&app, &id).await;
    let sent = log(&app, &id, "&status=sent").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0]["route"].as_str(), sent[0]["attempts"].as_i64()), (Some("backup"), Some(2)), "{:?}", sent[0]);
    let skipped = log(&app, &id, "&status=skipped").await;
    assert_eq!((skipped[0]["person_id"].as_str(), skipped[0]["reason"].as_str()), (Some(nobody.as_str()), Some("no_phone")));
    // The primary was asked first, with its credentials; the backup took it.
    let tried = first.received();
    assert_eq!(tried.len(), 1);
    assert!(tried[0].header("authorization").unwrap().starts_with("Basic "));
    let took = second.received();
    assert_eq!(took.len(), 1);
    let fields = form(&took[0].body);
    assert_eq!(fields["To"], "+447700900123");
    assert_eq!(fields["From"], "+15550001000");
    assert_eq!(fields["Body"], "Water is off until 6pm, Ann.");

    // The provider says it arrived: the log shows delivered.
    let callback = fields["StatusCallback"].clone();
    assert!(callback.starts_with(&app.url("/sms/v1/status/")), "{callback}");
    let ok = app.http.post(&callback).form(&[("MessageStatus", "delivered")]).send().await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(log(&app, &id, "&status=delivered").await.len(), 1);
    let forged = app.http.post(format!("{callback}x")).form(&[("MessageStatus", "failed")]).send().await.unwrap();
    assert_eq!(forged.status(), 404);
    assert_eq!(log(&app, &id, "&status=delivered").await.len(), 1, "a forged report changes nothing");

    // Standard SMS: the first route once, no retries.
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "one_way", "body": "Plain", "channels": ["sms"], "audience": {"people": [ann]}}),
        )
        .await
        .ok()
        .unwrap();
    let id2 = r["id"].as_str().unwrap().to_owned();
    finished(&app, &id2).await;
    let failed = log(&app, &id2, "&status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0]["route"].as_str(), failed[0]["attempts"].as_i64()), (Some("primary"), Some(1)));
    assert!(failed[0]["error"].as_str().unwrap().contains("500"), "{:?}", failed[0]);
    assert_eq!(second.received().len(), 1, "no failover for a standard SMS");

    // Ann texts back: it lands in her conversation, matched by her number.
    let inbound = view["inbound_url"].as_str().unwrap();
    let r =
        app.http.post(inbound).form(&[("From", "+447700900123"), ("To", "+15550001000"), ("Body", "Thanks, noted")]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let list = app.get("/api/v1/conversations", &app.token).await.ok().unwrap();
    let mine = list["items"].as_array().unwrap().iter().find(|c| c["person"]["id"] == ann.as_str()).expect("Ann's conversation");
    let thread = app.thread(mine["id"].as_str().unwrap()).await;
    assert_eq!(thread.last().unwrap()["body"], "Thanks, noted");
    let wrong = app.http.post(format!("{inbound}x")).form(&[("From", "+447700900123"), ("Body", "x")]).send().await.unwrap();
    assert_eq!(wrong.status(), 404);
    let stranger = app.http.post(inbound).form(&[("From", "+1 202 555 0199"), ("Body", "who?")]).send().await.unwrap();
    assert_eq!(stranger.status(), 404);
    let long = "x".repeat(5000);
    let oversize = app.http.post(inbound).form(&[("From", "+447700900123"), ("Body", long.as_str())]).send().await.unwrap();
    assert_eq!(oversize.status(), 413);
    let not_a_number = app.http.post(inbound).form(&[("From", "Ann"), ("Body", "hi")]).send().await.unwrap();
    assert_eq!(not_a_number.status(), 422);
    assert_eq!(app.thread(mine["id"].as_str().unwrap()).await.len(), thread.len(), "nothing refused was stored");
}

async fn high_quality_sms_gives_up_after_fifty_attempts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    first.fail_next(1000);
    second.fail_next(1000);
    let settings = json!({"from": "+15550001000", "routes": [
        {"name": "a", "kind": "http", "url": first.url("/send")}, {"name": "b", "kind": "http", "url": second.url("/send")},
    ]});
    app.request("PUT", "/api/v1/sms", Some(&app.token), Some(settings.to_string())).await.ok().unwrap();
    let ann = person(&app, json!({"email": unique("ann"), "phone": "+15550002000"})).await;
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "one_way", "body": "Evacuate", "channels": ["sms"],
            "audience": {"people": [ann]}, "options": {"sms_high_quality": true}}),
        )
        .await
        .ok()
        .unwrap();
    let id = r["id"].as_str().unwrap().to_owned();
    // Both routes fail: the delivery waits for its next round, still queued.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let d = loop {
        let d = log(&app, &id, "").await.remove(0);
        if d["attempts"] == 2 {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no first round: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(d["status"], "queued", "{d}");
    assert!(d["error"].as_str().unwrap().starts_with("b: "), "the last route's error is kept: {d}");
    // Skip ahead: 24 rounds have failed (their pauses would take hours here).
    let db = &app.engine.db;
    let skipped: anyhow::Result<()> = async {
        parley_engine::with_tx!(db, tx => {
            sqlx::query("UPDATE delivery SET attempts = 48 WHERE outbound_id = $1").bind(&id).execute(&mut *tx).await?;
        });
        Ok(())
    }
    .await;
    skipped.unwrap();
    let o = finished(&app, &id).await;
    assert_eq!(o["counts"]["failed"], 1, "{o}");
    let d = log(&app, &id, "").await.remove(0);
    assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("failed"), Some(50)), "{d}");
    assert_eq!(first.received().len() + second.received().len(), 4, "two rounds were really tried");
}

async fn bad_outbound_requests_name_the_field_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = person(&app, json!({"email": unique("ann"), "name": "Ann"})).await;
    let (other, _) = app.other_workspace().await;
    let theirs = app.post("/api/v1/people", &other, json!({"email": unique("theirs")})).await.ok().unwrap();
    let send = |body: Value| {
        let app = &app;
        async move { app.post("/api/v1/outbound", &app.token, body).await }
    };
    let base = json!({"kind": "chat", "body": "Hi", "channels": ["chat"], "audience": {"people": [ann]}});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (with(json!({"body": "Hi {{#if person.name}}"})), 422, "body"),
        (with(json!({"title": "{{"})), 422, "title"),
        (with(json!({"body": " "})), 422, "body"),
        (with(json!({"kind": "one_way"})), 422, "channels"),
        (with(json!({"channels": []})), 422, "channels"),
        (with(json!({"channels": ["chat", "sms"]})), 422, "channels"),
        (with(json!({"channels": ["fax"]})), 422, "channels.0"),
        (with(json!({"audience": {}})), 422, "audience"),
        (with(json!({"audience": {"filter": {"field": "nope", "op": "eq", "value": 1}}})), 422, "audience.filter.field"),
        (with(json!({"audience": {"filter": {"field": "email", "op": "eq", "value": "nobody@nowhere.test"}}})), 422, "audience"),
        (with(json!({"audience": {"people": [ann], "colour": "red"}})), 422, "audience.colour"),
        (with(json!({"options": {"sms_high_quality": "yes"}})), 422, "options.sms_high_quality"),
        (with(json!({"options": {"transparent": true}, "body": "Hi {{person.name}}"})), 422, "body"),
        (with(json!({"options": {"transparent": true}, "kind": "checkin"})), 422, "options.transparent"),
        (with(json!({"audience": {"people": [ann], "follow_up": {"outbound_id": "x", "only": "not_ok"}}})), 422, "audience.follow_up"),
    ];
    for (body, status, field) in cases {
        let r = send(body.clone()).await;
        assert_eq!((r.status, r.field()), (status, field), "{body} → {}", r.body);
    }
    // Ids from nowhere, or from another workspace, are unknown.
    for audience in [json!({"people": [theirs["id"]]}), json!({"segments": ["nope"]}), json!({"companies": ["nope"]})] {
        let r = send(with(json!({"audience": audience}))).await;
        assert_eq!(r.status, 404, "{audience} → {}", r.body);
    }
    assert_eq!(send(with(json!({"from_teammate_id": "nope"}))).await.status, 404);
    let malformed = app.request("POST", "/api/v1/outbound", Some(&app.token), Some("{\"kind\":".into())).await;
    assert_eq!(malformed.status, 400);
    // Nothing was stored by any of them.
    let list = app.get("/api/v1/outbound", &app.token).await.ok().unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    assert_eq!(app.get("/api/v1/outbound/nope", &app.token).await.status, 404);

    let ok = send(base.clone()).await.ok().unwrap();
    let id = ok["id"].as_str().unwrap();
    let r = app.get(&format!("/api/v1/outbound/{id}/deliveries?status=lost"), &app.token).await;
    assert_eq!((r.status, r.field()), (422, "status"));
    let r = app.post(&format!("/api/v1/outbound/{id}/follow-up"), &app.token, json!({"body": "x", "only": "not_ok"})).await;
    assert_eq!((r.status, r.field()), (422, "only"), "a plain chat has no OK answers");
    let r = app.post(&format!("/api/v1/outbound/{id}/follow-up"), &other, json!({"body": "x", "only": "not_delivered"})).await;
    assert_eq!(r.status, 404);
}

async fn a_profile_sends_by_chat_or_email_and_templates_and_previews_render_snippets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let smtp = Smtp::shared();
    let email = unique("dee");
    let (visitor, dee) = app.visitor_with(json!({"email": email, "name": "Dee Park"})).await;
    let mut ws = app.widget_ws(&visitor).await;

    // A preview renders for one person, as they will read it.
    let p = app
        .post(
            "/api/v1/outbound/preview",
            &app.token,
            json!({"body": "Hello {{person.first_name}} from {{workspace.name}}", "person_id": dee}),
        )
        .await
        .ok()
        .unwrap();
    assert_eq!(p["rendered"], "Hello Dee from Default");
    let bad = app.post("/api/v1/outbound/preview", &app.token, json!({"body": "{{#each}}", "person_id": dee})).await;
    assert_eq!((bad.status, bad.field()), (422, "body"));
    assert_eq!(app.post("/api/v1/outbound/preview", &app.token, json!({"body": "x", "person_id": "nope"})).await.status, 404);

    // From the profile: a chat arrives in her widget, an email in her mailbox.
    let r = app
        .post(
            &format!("/api/v1/people/{dee}/messages"),
            &app.token,
            json!({"body": "Quick question, {{person.first_name}}", "channel": "chat"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(ws.next_of("message.created").await["message"]["body"], "Quick question, Dee");
    let r = app
        .post(
            &format!("/api/v1/people/{dee}/messages"),
            &app.token,
            json!({"body": "Your invoice, {{person.first_name}}", "channel": "email", "title": "Invoice"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["delivery"]["channel"], "email");
    let mail = smtp.wait_for(&email, 1, Duration::from_secs(15)).await.remove(0);
    assert_eq!(mail.subject(), "Invoice");
    assert!(mail.text().starts_with("Your invoice, Dee"), "{}", mail.text());
    assert!(!mail.text().contains("/c/"), "a one-way email has no chat link");
    let r = app.post(&format!("/api/v1/people/{dee}/messages"), &app.token, json!({"body": "x", "channel": "sms"})).await;
    assert_eq!((r.status, r.field()), (422, "channels"), "SMS is not set up");
    assert_eq!(app.post("/api/v1/people/nope/messages", &app.token, json!({"body": "x", "channel": "chat"})).await.status, 404);

    // Templates: saved, found by kind and words, checked, replaced, deleted.
    let t = app
        .post(
            "/api/v1/templates",
            &app.token,
            json!({"kind": "chat", "title": "Welcome", "body": "Welcome {{person.first_name}}!", "channels": ["chat"]}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.body);
    let tid = t.body["id"].as_str().unwrap().to_owned();
    app.post("/api/v1/templates", &app.token, json!({"kind": "one_way", "title": "Outage", "body": "We are down"})).await.ok().unwrap();
    let found = app.get("/api/v1/templates?kind=chat&q=welc", &app.token).await.ok().unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["title"], "Welcome");
    let r = app.post("/api/v1/templates", &app.token, json!({"kind": "chat", "title": "Bad", "body": "{{#if}}"})).await;
    assert_eq!((r.status, r.field()), (422, "body"));
    let r = app.post("/api/v1/templates", &app.token, json!({"kind": "memo", "title": "Bad", "body": "x"})).await;
    assert_eq!((r.status, r.field()), (422, "kind"));
    let put = app
        .request(
            "PUT",
            &format!("/api/v1/templates/{tid}"),
            Some(&app.token),
            Some(json!({"kind": "chat", "title": "Welcome!", "body": "Hi"}).to_string()),
        )
        .await
        .ok()
        .unwrap();
    assert_eq!(put["title"], "Welcome!");
    let (other, _) = app.other_workspace().await;
    assert_eq!(app.get(&format!("/api/v1/templates/{tid}"), &other).await.status, 404);
    assert_eq!(app.delete(&format!("/api/v1/templates/{tid}"), &app.token).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/templates/{tid}"), &app.token).await.status, 404);
    ws.close().await;
}

async fn companies_expand_to_members_or_managers_and_announcements_join_the_open_chat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let company = format!("Acme {}", uuid::Uuid::now_v7().simple());
    let boss = person(&app, json!({"email": unique("boss"), "name": "Boss", "company": company, "manager": true})).await;
    let worker = person(&app, json!({"email": unique("worker"), "name": "Worker", "company": company})).await;
    let outsider = person(&app, json!({"email": unique("out"), "name": "Out"})).await;
    let p = app.get(&format!("/api/v1/people/{boss}"), &app.token).await.ok().unwrap();
    let company_id = p["company"]["id"].as_str().unwrap().to_owned();

    let send = |audience: Value, options: Value| {
        let app = &app;
        async move {
            let r = app
                .post(
                    "/api/v1/outbound",
                    &app.token,
                    json!({"kind": "chat", "body": "Hi", "channels": ["chat"], "audience": audience, "options": options}),
                )
                .await
                .ok()
                .unwrap();
            let id = r["id"].as_str().unwrap().to_owned();
            finished(app, &id).await;
            log(app, &id, "").await.iter().map(|d| d["person_id"].as_str().unwrap().to_owned()).collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(send(json!({"companies": [company_id]}), json!({})).await, BTreeSet::from([boss.clone(), worker.clone()]));
    assert_eq!(send(json!({"companies": [company_id]}), json!({"managers_only": true})).await, BTreeSet::from([boss.clone()]));
    // Exclusions win over everything listed.
    let got = send(json!({"people": [outsider], "companies": [company_id], "exclude": {"people": [worker]}}), json!({})).await;
    assert_eq!(got, BTreeSet::from([boss.clone(), outsider.clone()]));

    // An announcement goes into the chat the person already has, highlighted.
    let before = app.get("/api/v1/conversations?limit=200", &app.token).await.ok().unwrap();
    let outsiders: Vec<&Value> = before["items"].as_array().unwrap().iter().filter(|c| c["person"]["id"] == outsider.as_str()).collect();
    assert_eq!(outsiders.len(), 1);
    let conversation = outsiders[0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "announcement", "body": "New opening hours", "channels": ["chat"], "audience": {"people": [outsider]}}),
        )
        .await
        .ok()
        .unwrap();
    finished(&app, r["id"].as_str().unwrap()).await;
    let thread = app.thread(&conversation).await;
    let last = thread.last().unwrap();
    assert_eq!((last["kind"].as_str(), last["body"].as_str()), (Some("announcement"), Some("New opening hours")));
}

async fn an_outbound_chat_nobody_saw_is_emailed_after_the_delay_and_a_seen_one_is_not(backend: Backend) {
    let app = TestApp::spawn_with_fallback_delay(backend, Duration::from_secs(2)).await;
    let smtp = Smtp::shared();
    let (away, seen) = (unique("away"), unique("seen"));
    let away_id = person(&app, json!({"email": away, "name": "Away"})).await;
    let (token, seen_id) = app.visitor_with(json!({"email": seen, "name": "Seen"})).await;
    let mut ws = app.widget_ws(&token).await;
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "chat", "body": "Your parcel is here, {{person.first_name}}",
            "channels": ["chat"], "audience": {"people": [away_id, seen_id]}}),
        )
        .await
        .ok()
        .unwrap();
    let m = ws.next_of("message.created").await;
    ws.send(json!({"type": "seen", "conversation_id": m["message"]["conversation_id"], "message_id": m["message"]["id"]})).await;
    finished(&app, r["id"].as_str().unwrap()).await;
    // Away never opened the chat: one email with the message, after the delay.
    let mail = smtp.wait_for(&away, 1, Duration::from_secs(20)).await;
    assert!(mail[0].text().contains("Your parcel is here, Away"), "{}", mail[0].text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mail_for(&away).len(), 1, "one email, not one per job");
    assert!(smtp.mail_for(&seen).is_empty(), "Seen read it in the widget");
    ws.close().await;
}

async fn an_outbound_the_sender_never_took_up_is_sent_after_a_restart_once_to_each(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(person(&app, json!({"email": unique(&format!("p{i}")), "name": format!("P{i}")})).await);
    }
    // Stored as a crash would leave it: every delivery written, the sender
    // never told (the notice is lost with the process).
    let ws = app.get("/api/v1/workspace", &app.token).await.ok().unwrap()["id"].as_str().unwrap().to_owned();
    let input: parley_engine::outbound::OutboundInput = serde_json::from_value(json!({
        "kind": "chat", "body": "Back after the storm, {{person.first_name}}", "channels": ["chat"], "audience": {"people": ids},
    }))
    .unwrap();
    let created = parley_engine::outbound::create(&app.engine.db, &ws, &app.admin_id, input, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let o = app.get(&format!("/api/v1/outbound/{}", created.id), &app.token).await.ok().unwrap();
    assert_eq!(o["counts"]["queued"], 30, "nobody sends it before the restart: {o}");

    let app = app.restart().await;
    let o = finished(&app, &created.id).await;
    assert_eq!(o["counts"]["sent"], 30, "{o}");
    // Each person got it once.
    for (i, id) in ids.iter().enumerate() {
        let list = app.get("/api/v1/conversations?limit=200", &app.token).await.ok().unwrap();
        let theirs: Vec<&Value> = list["items"].as_array().unwrap().iter().filter(|c| c["person"]["id"] == id.as_str()).collect();
        assert_eq!(theirs.len(), 1, "one conversation for P{i}");
        let thread = app.thread(theirs[0]["id"].as_str().unwrap()).await;
        assert_eq!(thread.len(), 1);
        assert_eq!(thread[0]["body"], format!("Back after the storm, P{i}"));
    }
}

async fn an_admin_sends_a_test_email_and_a_test_text_that_fails_over_to_the_next_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let smtp = Smtp::shared();
    let (_, agent) = app.teammate("Ag", "agent").await;
    let to = unique("admin-test");
    let body = json!({"channel": "email", "to": to});
    // Only admins test the set-up; a bad address or channel is named.
    assert_eq!(app.post("/api/v1/test-message", &agent, body.clone()).await.status, 403);
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "email", "to": "not an address"})).await;
    assert_eq!((r.status, r.field()), (422, "to"), "{}", r.body);
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "chat", "to": to})).await;
    assert_eq!((r.status, r.field()), (422, "channel"), "{}", r.body);
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "email", "too": to})).await;
    assert_eq!(r.status, 422, "an unknown field is refused: {}", r.body);
    let r = app.request("POST", "/api/v1/test-message", Some(&app.token), Some("{\"channel\": ".into())).await;
    assert_eq!(r.status, 400, "malformed JSON: {}", r.body);
    assert_eq!(Smtp::shared().mail_for(&to).len(), 0, "nothing refused was sent");

    let r = app.post("/api/v1/test-message", &app.token, body).await.ok().unwrap();
    assert_eq!((r["ok"].as_bool(), r["attempts"][0]["via"].as_str()), (Some(true), Some("smtp")), "{r}");
    let mail = smtp.wait_for(&to, 1, Duration::from_secs(10)).await;
    assert!(mail[0].subject().starts_with("Test email from"), "{}", mail[0].subject());
    assert!(mail[0].text().contains("is set up"), "{}", mail[0].text());
    // Without an address it goes to the admin's own.
    let me = app.get("/api/v1/auth/me", &app.token).await.ok().unwrap();
    let own = me["teammate"]["email"].as_str().unwrap().to_owned();
    let before = smtp.mail_for(&own).len();
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "email"})).await.ok().unwrap();
    assert_eq!(r["to"].as_str(), Some(own.as_str()), "{r}");
    assert_eq!(smtp.wait_for(&own, before + 1, Duration::from_secs(10)).await.len(), before + 1);

    // SMS needs setting up first, and a phone number.
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "sms", "to": "+44 7700 900123"})).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (409, Some("sms_not_set_up")), "{}", r.body);
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let settings = json!({"from": "+15550001000", "routes": [
        {"name": "primary", "kind": "http", "url": first.url("/send")},
        {"name": "backup", "kind": "http", "url": second.url("/send")},
    ]});
    app.request("PUT", "/api/v1/sms", Some(&app.token), Some(settings.to_string())).await.ok().unwrap();
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "sms"})).await;
    assert_eq!((r.status, r.field()), (422, "to"), "{}", r.body);
    first.fail_next(1);
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "sms", "to": "+44 7700 900123"})).await.ok().unwrap();
    assert_eq!(r["ok"], true, "{r}");
    let tried: Vec<(&str, bool)> =
        r["attempts"].as_array().unwrap().iter().map(|a| (a["via"].as_str().unwrap(), a["ok"].as_bool().unwrap())).collect();
    assert_eq!(tried, [("primary", false), ("backup", true)], "{r}");
    assert!(r["attempts"][0]["error"].as_str().unwrap().contains("500"), "{r}");
    let got = second.wait_for(1, Duration::from_secs(5)).await;
    let f = form(&got[0].body);
    assert_eq!((f["To"].as_str(), f["From"].as_str()), ("+447700900123", "+15550001000"));
    // Every route refusing is an answer saying so, not an HTTP error.
    first.fail_next(1);
    second.fail_next(1);
    let r = app.post("/api/v1/test-message", &app.token, json!({"channel": "sms", "to": "+44 7700 900123"})).await.ok().unwrap();
    assert_eq!((r["ok"].as_bool(), r["attempts"].as_array().map(Vec::len)), (Some(false), Some(2)), "{r}");
}
