//! What rules send out of Parley: emails through a real SMTP server on
//! loopback (with their unsubscribe link), and signed webhooks to a loopback
//! receiver that fails on command.

use std::time::Duration;

use parley_tests::outside::{Receiver, Smtp};
use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_rules_email_arrives_personalised_and_its_unsubscribe_link_stops_the_next,
    a_rules_webhook_is_signed_and_tried_again_until_it_is_taken,
    webhook_subscribers_get_the_events_they_asked_for_signed_and_logged,
);

async fn track(app: &TestApp, email: &str, name: &str, data: Value) {
    let r = app.post("/api/v1/events", &app.token, json!({"person": {"email": email}, "name": name, "data": data})).await;
    assert_eq!(r.status, 202, "{}", r.body);
}

async fn a_rules_email_arrives_personalised_and_its_unsubscribe_link_stops_the_next(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let smtp = Smtp::shared();
    let email = format!("ann-{}@customer.test", uuid::Uuid::now_v7().simple());
    let p = app.post("/api/v1/people", &app.token, json!({"email": email, "name": "Ann Lee"})).await.ok().unwrap();
    let person_id = p["id"].as_str().unwrap().to_owned();
    let id = app.automation(json!({"name": "Trial ending", "trigger": "event.trial_ending",
               "script": r#"send_email("Your trial, {{person.first_name}}", "Hi {{person.first_name}},\n\nYour plan: " + event.data.plan);"#}),
    )
    .await;

    // Markup in what the site sent stays text in both parts.
    track(&app, &email, "trial_ending", json!({"plan": "<b>Pro</b> & more"})).await;
    let mail = smtp.wait_for(&email, 1, Duration::from_secs(15)).await.remove(0);
    assert_eq!(mail.subject(), "Your trial, Ann");
    assert!(mail.header("From").unwrap().contains("Default"), "{:?}", mail.header("From"));
    let text = mail.text();
    assert!(text.starts_with("Hi Ann,\n\nYour plan: <b>Pro</b> & more"), "{text}");
    let html = mail.html();
    assert!(html.contains("Your plan: &lt;b&gt;Pro&lt;/b&gt; &amp; more"), "{html}");
    assert!(!html.contains("<b>Pro</b>"), "{html}");
    // The unsubscribe link is in the text, the HTML and the header, all the same.
    let link = mail.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']).to_owned();
    assert!(link.starts_with(&app.url("/u/")), "{link}");
    assert!(text.contains(&link) && html.contains(&link), "{text}\n{html}");
    assert_eq!(app.wait_runs(&id, 1).await[0]["outcome"], "ok");

    // The email is on the person's timeline (written once the server took it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let tl = loop {
        let tl = app.get(&format!("/api/v1/people/{person_id}/timeline?name=email.sent"), &app.token).await.ok().unwrap();
        if !tl["items"].as_array().unwrap().is_empty() || tokio::time::Instant::now() > deadline {
            break tl;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(tl["items"][0]["data"]["subject"], "Your trial, Ann", "{tl}");

    // Opening the link asks first (mail scanners open links); a forged or
    // cut link is refused; the button unsubscribes.
    let http = reqwest::Client::new();
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=\"post\">"));
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["unsubscribed"], false, "a GET must not unsubscribe");
    let forged = format!("{}0", &link[..link.len() - 1]);
    let forged = if forged == link { format!("{}1", &link[..link.len() - 1]) } else { forged };
    assert_eq!(http.post(&forged).send().await.unwrap().status(), 404);
    let done = http.post(&link).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("You are unsubscribed"));
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["unsubscribed"], true);
    let tl = app.get(&format!("/api/v1/people/{person_id}/timeline?name=unsubscribed"), &app.token).await.ok().unwrap();
    assert_eq!(tl["items"].as_array().unwrap().len(), 1, "{tl}");

    // The next time the rule runs, no email goes out, and the rule did not fail.
    track(&app, &email, "trial_ending", json!({"plan": "Pro"})).await;
    let log = app.wait_runs(&id, 2).await;
    assert_eq!(log[0]["outcome"], "ok", "{log:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.mail_for(&email).len(), 1, "an unsubscribed person got email");
}

async fn a_rules_webhook_is_signed_and_tried_again_until_it_is_taken(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    receiver.fail_next(2);
    let email = format!("bo-{}@customer.test", uuid::Uuid::now_v7().simple());
    let p = app.post("/api/v1/people", &app.token, json!({"email": email, "name": "Bo"})).await.ok().unwrap();

    // A bad URL is the script's error at run time, and a dry run shows the call.
    let id = app
        .automation(json!({"name": "To the CRM", "trigger": "event.signed_up",
               "script": format!(r#"webhook("{}", #{{person: person.email, plan: event.data.plan}});"#, receiver.url("/hooks/parley"))}))
        .await;
    let dry = app
        .post(&format!("/api/v1/automations/{id}/test"), &app.token, json!({"event": {"person_id": p["id"], "data": {"plan": "pro"}}}))
        .await
        .ok()
        .unwrap();
    assert_eq!(dry["actions"][0]["type"], "webhook", "{dry}");
    assert_eq!(dry["actions"][0]["url"], receiver.url("/hooks/parley"), "{dry}");
    assert!(receiver.received().is_empty(), "a dry run posted");

    track(&app, &email, "signed_up", json!({"plan": "pro"})).await;
    // Two failures, then the third try is taken: 1 s and 2 s apart.
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 500, 200]);
    let last = &got[2];
    assert_eq!(last.path, "/hooks/parley");
    let body: Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(body, json!({"person": email, "plan": "pro"}));
    // The signature is the workspace's: HMAC-SHA256 of "timestamp.body".
    let secret = app.get("/api/v1/workspace", &app.token).await.ok().unwrap()["identity_secret"].as_str().unwrap().to_owned();
    let ts = last.header("x-parley-timestamp").unwrap();
    let expected = format!("sha256={}", parley_engine::auth::user_hash(&secret, &format!("{ts}.{}", last.body)));
    assert_eq!(last.header("x-parley-signature"), Some(expected.as_str()));
    assert_eq!(last.header("x-parley-automation"), Some(id.as_str()));
    // Nothing more comes once it was taken.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received().len(), 3);

    // A script that names no real URL fails its run with the reason.
    let bad = app.automation(json!({"name": "Bad hook", "trigger": "event.signed_up", "script": r#"webhook("ftp://x", #{});"#})).await;
    track(&app, &email, "signed_up", json!({"plan": "pro"})).await;
    let log = app.wait_runs(&bad, 1).await;
    assert_eq!(log[0]["outcome"], "error", "{log:?}");
    assert!(log[0]["error"].as_str().unwrap().contains("http://"), "{log:?}");
}

async fn webhook_subscribers_get_the_events_they_asked_for_signed_and_logged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;

    // Bad subscriptions are refused, naming the field; agents and other workspaces see nothing.
    let post = |body: Value| app.post("/api/v1/webhooks", &app.token, body);
    let bad = post(json!({"url": "ftp://x", "events": ["message.created"]})).await;
    assert_eq!((bad.status, bad.field()), (422, "url"), "{}", bad.body);
    let bad = post(json!({"url": receiver.url("/in"), "events": ["message.created", "message.exploded"]})).await;
    assert_eq!((bad.status, bad.field()), (422, "events.1"), "{}", bad.body);
    let bad = post(json!({"url": receiver.url("/in"), "events": ["*"], "secret": "short"})).await;
    assert_eq!((bad.status, bad.field()), (422, "secret"), "{}", bad.body);
    let hook = post(json!({"url": receiver.url("/in"), "events": ["message.created", "conversation.created"]})).await;
    assert_eq!(hook.status, 201, "{}", hook.body);
    let (id, secret) = (hook.body["id"].as_str().unwrap().to_owned(), hook.body["secret"].as_str().unwrap().to_owned());
    assert!(secret.starts_with("whsec_"));
    let (_, agent) = app.teammate("Tess", "agent").await;
    assert_eq!(app.get("/api/v1/webhooks", &agent).await.status, 403);
    let (other, _) = app.other_workspace().await;
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}/deliveries"), &other).await.status, 404);

    // The receiver fails once; the delivery is tried again and logged.
    receiver.fail_next(1);
    let (vtoken, person_id) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    widget.say("w-1", "Hello from the site").await;
    // The new conversation and its message: two events, one failing once.
    let got = receiver.wait_for(3, Duration::from_secs(15)).await;
    let events: Vec<&str> = got.iter().filter(|r| r.status == 200).map(|r| r.header("x-parley-event").unwrap()).collect();
    assert!(events.contains(&"message.created") && events.contains(&"conversation.created"), "{events:?}");
    let message = got.iter().find(|r| r.status == 200 && r.header("x-parley-event") == Some("message.created")).unwrap();
    let body: Value = serde_json::from_str(&message.body).unwrap();
    assert_eq!(body["data"]["message"]["body"], "Hello from the site");
    assert_eq!(body["data"]["message"]["author"]["id"], person_id.as_str());
    let ts = message.header("x-parley-timestamp").unwrap();
    let expected = format!("sha256={}", parley_engine::auth::user_hash(&secret, &format!("{ts}.{}", message.body)));
    assert_eq!(message.header("x-parley-signature"), Some(expected.as_str()));

    // The log is written once each answer is in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), &app.token).await.ok().unwrap();
        let settled = log["items"].as_array().unwrap().iter().all(|d| d["status"] != "queued");
        if settled || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    assert!(items.iter().all(|d| d["status"] == "delivered"), "{log}");
    let retried: Vec<&Value> = items.iter().filter(|d| d["attempts"] == 2).collect();
    assert_eq!(retried.len(), 1, "one delivery took two tries: {log}");
    assert_eq!(retried[0]["response_status"], 200);
    assert_eq!(retried[0]["error"], "the receiver answered 500 Internal Server Error", "{log}");
    let bad = app.get(&format!("/api/v1/webhooks/{id}/deliveries?status=lost"), &app.token).await;
    assert_eq!((bad.status, bad.field()), (422, "status"));

    // Not subscribed: a tracked event; switched off: nothing more.
    let r = app.post("/api/v1/events", &app.token, json!({"person": {"id": person_id}, "name": "viewed_pricing"})).await;
    assert_eq!(r.status, 202);
    app.patch(&format!("/api/v1/webhooks/{id}"), &app.token, json!({"enabled": false})).await.ok().unwrap();
    widget.say("w-2", "Anyone?").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 3, "{:?}", receiver.received());
    assert_eq!(app.delete(&format!("/api/v1/webhooks/{id}"), &app.token).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}"), &app.token).await.status, 404);
}
