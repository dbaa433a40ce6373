//! Chat messages a person missed reach their mailbox: after the (shortened)
//! delay, once, several in one email, not when they saw them, across a
//! restart; and their emailed answer lands back in the chat.

use std::time::Duration;

use parley_tests::outside::Smtp;
use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    missed_replies_are_emailed_once_together_and_an_emailed_answer_lands_in_the_chat,
    nothing_is_emailed_when_the_person_saw_the_messages_or_it_is_turned_off,
    a_restart_before_the_email_is_due_still_sends_it_once,
);

const DELAY: Duration = Duration::from_secs(2);

/// A visitor with an email address who wrote once and closed the tab:
/// (token, person id, conversation id, address).
async fn gone_visitor(app: &TestApp, name: &str) -> (String, String, String, String) {
    let email = format!("{}-{}@customer.test", name.to_lowercase(), uuid::Uuid::now_v7().simple());
    let (token, person_id) = app.visitor_with(json!({"name": name, "email": email})).await;
    let mut ws = app.widget_ws(&token).await;
    let conversation = ws.say("hello", "Hello, anyone?").await["conversation_id"].as_str().unwrap().to_owned();
    ws.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap()["online"] == true {
        assert!(tokio::time::Instant::now() < deadline, "the visitor stayed online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (token, person_id, conversation, email)
}

async fn reply(app: &TestApp, conversation: &str, body: Value) -> Value {
    app.post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, body).await.ok().unwrap()
}

fn raw_email(to: &str, from: &str, message_id: &str, text: &str) -> String {
    format!(
        "From: Ann <{from}>\r\nTo: {to}\r\nSubject: Re: your chat\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
    )
}

async fn inbound(app: &TestApp, token: &str, raw: &str) -> parley_tests::Answer {
    app.request("POST", "/api/v1/inbound/email", Some(token), Some(raw.to_owned())).await
}

async fn missed_replies_are_emailed_once_together_and_an_emailed_answer_lands_in_the_chat(backend: Backend) {
    let app = TestApp::spawn_with_fallback_delay(backend, DELAY).await;
    let smtp = Smtp::shared();
    let (_, person_id, conversation, email) = gone_visitor(&app, "Ann").await;

    reply(&app, &conversation, json!({"body": "Hi Ann, thanks for writing."})).await;
    reply(&app, &conversation, json!({"body": "An internal thought", "kind": "note"})).await;
    reply(&app, &conversation, json!({"body": "Not for email", "email_fallback": false})).await;
    reply(&app, &conversation, json!({"body": "Is Tuesday good for a call?"})).await;
    assert!(smtp.mail_for(&email).is_empty(), "emailed before the delay");

    let mail = smtp.wait_for(&email, 1, Duration::from_secs(15)).await.remove(0);
    assert_eq!(mail.subject(), "2 new messages from Default");
    let text = mail.text();
    assert!(text.contains("Admin wrote:\nHi Ann, thanks for writing."), "{text}");
    assert!(text.contains("Is Tuesday good for a call?"), "{text}");
    assert!(!text.contains("internal thought") && !text.contains("Not for email"), "{text}");
    let reply_to = mail.header("Reply-To").unwrap();
    assert!(reply_to.contains('+'), "{reply_to}");
    // Once: the later message's job sent it, the earlier ones found themselves stale.
    tokio::time::sleep(DELAY + Duration::from_secs(2)).await;
    assert_eq!(smtp.mail_for(&email).len(), 1);
    let tl = app.get(&format!("/api/v1/people/{person_id}/timeline?name=email.sent"), &app.token).await.ok().unwrap();
    assert_eq!(tl["items"][0]["data"]["reason"], "missed_chat", "{tl}");

    // Ann answers by email: the text above the quote is her message in the chat.
    let to = reply_to.trim_matches(['<', '>']).rsplit('<').next().unwrap().trim_end_matches('>').to_owned();
    let raw = raw_email(
        &to,
        &email,
        "answer-1@customer.test",
        "Yes, Tuesday works!\r\n\r\nOn Tue, Default wrote:\r\n> Is Tuesday good for a call?\r\n",
    );
    let got = inbound(&app, &app.token, &raw).await;
    assert_eq!(got.status, 201, "{}", got.body);
    assert_eq!(got.body["author"]["type"], "person");
    let thread = app.get(&format!("/api/v1/conversations/{conversation}/messages"), &app.token).await.ok().unwrap();
    let last = thread["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["body"].as_str().unwrap(), last["author"]["id"].as_str().unwrap()), ("Yes, Tuesday works!", person_id.as_str()));
    // The same email handed over again is not stored twice.
    assert_eq!(inbound(&app, &app.token, &raw).await.status, 200);
    let again = app.get(&format!("/api/v1/conversations/{conversation}/messages"), &app.token).await.ok().unwrap();
    assert_eq!(again["items"].as_array().unwrap().len(), thread["items"].as_array().unwrap().len());

    // A long reply (quoted thread, attachments) is taken up to 10 MiB; a larger one is 413.
    let long =
        format!("Sending the signed form.\r\n\r\nOn Tue, Default wrote:\r\n{}", "> quoted line of the earlier thread\r\n".repeat(12_000));
    let a = inbound(&app, &app.token, &raw_email(&to, &email, "answer-long@customer.test", &long)).await;
    assert_eq!((a.status, a.body["body"].as_str()), (201, Some("Sending the signed form.")), "{}", a.body);
    // Refused on its declared length, before the body is read (sending all
    // 11 MiB would race the server closing the connection).
    let answer = app.post_head_only("/api/v1/inbound/email", "message/rfc822", 11 * 1024 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"too_large""#), "{answer}");

    // Not an email, no conversation's address, no text, another workspace, an agent.
    assert_eq!(inbound(&app, &app.token, "hello").await.status, 400);
    let stranger = raw_email("parley+nosuchtoken@localhost", &email, "x@y", "Hi");
    let a = inbound(&app, &app.token, &stranger).await;
    assert_eq!((a.status, a.field()), (422, "to"), "{}", a.body);
    let a = inbound(&app, &app.token, &raw_email(&to, &email, "answer-2@customer.test", "> only a quote")).await;
    assert_eq!((a.status, a.field()), (422, "body"), "{}", a.body);
    let (other, _) = app.other_workspace().await;
    assert_eq!(inbound(&app, &other, &raw_email(&to, &email, "answer-3@customer.test", "Hi")).await.status, 422);
    let (_, agent) = app.teammate("Tess", "agent").await;
    assert_eq!(inbound(&app, &agent, &raw).await.status, 403);
}

async fn nothing_is_emailed_when_the_person_saw_the_messages_or_it_is_turned_off(backend: Backend) {
    let app = TestApp::spawn_with_fallback_delay(backend, DELAY).await;
    let smtp = Smtp::shared();

    // Bo comes back and reads the reply before the delay is over.
    let (token, _, conversation, email) = gone_visitor(&app, "Bo").await;
    let m = reply(&app, &conversation, json!({"body": "Here is your answer."})).await;
    let mut ws = app.widget_ws(&token).await;
    ws.send(json!({"type": "seen", "conversation_id": conversation, "message_id": m["id"]})).await;
    // While the widget is open a new message plans no email of its own; it is seen too.
    let m = reply(&app, &conversation, json!({"body": "Anything else?"})).await;
    ws.send(json!({"type": "seen", "conversation_id": conversation, "message_id": m["id"]})).await;

    // Cy's workspace turned it off.
    let (_, _, cy_conversation, cy_email) = gone_visitor(&app, "Cy").await;
    let off = app.patch("/api/v1/workspace", &app.token, json!({"email_fallback": false})).await.ok().unwrap();
    assert_eq!(off["settings"]["email_fallback"], false);
    reply(&app, &cy_conversation, json!({"body": "Hello Cy"})).await;

    tokio::time::sleep(DELAY + Duration::from_secs(3)).await;
    assert!(smtp.mail_for(&email).is_empty(), "Bo saw it, yet got an email");
    assert!(smtp.mail_for(&cy_email).is_empty(), "turned off, yet emailed");
    drop(ws);

    // A bot that opts out is not emailed; one that does not is.
    app.patch("/api/v1/workspace", &app.token, json!({"email_fallback": true})).await.ok().unwrap();
    for (name, on) in [("Quiet bot", false), ("Loud bot", true)] {
        let r = app
            .post(
                "/api/v1/automations",
                &app.token,
                json!({"name": name, "trigger": "event.ping", "email_fallback": on,
                       "script": format!("send_chat(\"{name} says hi\");")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let (_, _, _, dee) = gone_visitor(&app, "Dee").await;
    let t = app.post("/api/v1/events", &app.token, json!({"person": {"email": dee}, "name": "ping"})).await;
    assert_eq!(t.status, 202);
    let mail = smtp.wait_for(&dee, 1, Duration::from_secs(15)).await;
    let text = mail[0].text();
    assert!(text.contains("Loud bot says hi") && !text.contains("Quiet bot"), "{text}");
}

async fn a_restart_before_the_email_is_due_still_sends_it_once(backend: Backend) {
    let app = TestApp::spawn_with_fallback_delay(backend, Duration::from_secs(4)).await;
    let smtp = Smtp::shared();
    let (_, _, conversation, email) = gone_visitor(&app, "Eve").await;
    reply(&app, &conversation, json!({"body": "Sorry for the wait, Eve."})).await;
    let app = app.restart().await;
    let mail = smtp.wait_for(&email, 1, Duration::from_secs(20)).await;
    assert!(mail[0].text().contains("Sorry for the wait, Eve."));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mail_for(&email).len(), 1, "sent more than once");
    drop(app);
}
