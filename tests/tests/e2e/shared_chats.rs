//! Shared (transparent) outbound chats: one conversation for all the
//! recipients, who see each other's messages in their widgets; what cannot
//! be shared is refused; a resend stores nothing twice; each member who
//! missed it is emailed.

use std::time::Duration;

use fantoccini::Locator;
use parley_tests::browser::{Driver, screenshot, wait_for};
use parley_tests::outside::Smtp;
use parley_tests::{Backend, TestApp, Ws, on_both_backends};
use serde_json::{Value, json};

use crate::browser::{in_widget, log_in, send_in_widget};
use crate::outbound::{finished, person, unique};

async fn log(app: &TestApp, id: &str) -> Vec<Value> {
    crate::outbound::log(app, id, "").await
}

on_both_backends!(
    a_shared_chat_reaches_every_recipient_and_their_replies_reach_each_other_but_no_one_else,
    a_private_chat_reply_reaches_only_the_teammates,
    shared_chats_that_cannot_be_one_message_to_all_are_refused_and_store_nothing,
    a_shared_chat_sent_again_after_a_crash_keeps_one_conversation_and_one_message,
    each_member_who_did_not_see_a_shared_chat_is_emailed_once_and_the_one_who_saw_it_is_not,
    a_shared_chat_shows_other_members_by_name_in_the_widget_and_its_members_in_the_inbox_in_real_browsers,
    a_person_who_was_sent_outbounds_is_deleted_and_a_shared_chat_stays_with_the_others,
);

async fn shared_chat(app: &TestApp, people: &[&str], body: &str) -> String {
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "chat", "title": "News from {{workspace.name}}", "body": body, "channels": ["chat"],
                   "audience": {"people": people}, "options": {"transparent": true}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["recipients"], people.len(), "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The next message in a widget written by someone else than `me`.
async fn next_not_mine(ws: &mut Ws, me: &str) -> Value {
    ws.next_where("message.created", |f| f["message"]["author"]["id"] != me).await["message"].clone()
}

async fn a_shared_chat_reaches_every_recipient_and_their_replies_reach_each_other_but_no_one_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (sam, _) = app.teammate("Sam Rivera", "agent").await;
    let (a_token, a) = app.visitor_with(json!({"name": "Ann Lee"})).await;
    let (b_token, b) = app.visitor_with(json!({"name": "Bob Stone"})).await;
    let (c_token, c) = app.visitor_with(json!({"name": "Cy Young"})).await;
    let (d_token, d) = app.visitor_with(json!({"name": "Dee Outsider"})).await;
    let (mut aw, mut bw, mut cw, mut dw) =
        (app.widget_ws(&a_token).await, app.widget_ws(&b_token).await, app.widget_ws(&c_token).await, app.widget_ws(&d_token).await);
    let mut agent = app.agent_ws(&app.token).await;

    // Teammate snippets are one text for all, so they may be used.
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "chat", "title": "Planning", "body": "Hello all, {{teammate.first_name}} here: who comes on Friday?",
                   "channels": ["chat"], "audience": {"people": [a, b, c]}, "options": {"transparent": true}, "from_teammate_id": sam}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();

    // One message in one conversation, in every recipient's widget.
    let mut first = Vec::new();
    for (ws, who) in [(&mut aw, &a), (&mut bw, &b), (&mut cw, &c)] {
        let m = next_not_mine(ws, who).await;
        assert_eq!(m["body"], "Hello all, Sam here: who comes on Friday?");
        assert_eq!(m["author"]["name"], "Sam Rivera");
        first.push(m);
    }
    let cid = first[0]["conversation_id"].as_str().unwrap().to_owned();
    assert!(first.iter().all(|m| m["conversation_id"] == cid.as_str() && m["id"] == first[0]["id"]), "{first:?}");

    // Every recipient's delivery is sent with the shared conversation and message.
    let o = finished(&app, &id).await;
    assert_eq!(o["by_channel"]["chat"]["sent"], 3, "{o}");
    let deliveries = log(&app, &id).await;
    assert_eq!(deliveries.len(), 3);
    for d in &deliveries {
        assert_eq!((d["status"].as_str(), d["conversation_id"].as_str()), (Some("sent"), Some(cid.as_str())), "{d}");
        assert_eq!(d["message_id"], first[0]["id"]);
    }
    let mut got: Vec<&str> = deliveries.iter().map(|d| d["person_id"].as_str().unwrap()).collect();
    got.sort_unstable();
    let mut want = vec![a.as_str(), b.as_str(), c.as_str()];
    want.sort_unstable();
    assert_eq!(got, want);

    // The inbox shows one shared conversation with its members.
    let conv = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(conv["transparent"], true);
    assert_eq!(conv["title"], "Planning");
    let names: Vec<&str> = conv["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Ann Lee", "Bob Stone", "Cy Young"]);
    let list = app.get("/api/v1/conversations?limit=100", &app.token).await.ok().unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "one conversation, not one per person: {list}");
    let doc: Value = app.http.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["components"]["schemas"]["Conversation"]["properties"]["members"].is_object(), "members is documented");
    assert!(doc["components"]["schemas"]["Member"]["properties"]["name"].is_object(), "Member is documented");

    // Ann answers from her widget as a widget does (no conversation named):
    // it goes into the shared chat and Bob and Cy see it as Ann's.
    let mine = aw.say("ann-1", "Count me in!").await;
    assert_eq!(mine["conversation_id"], cid.as_str());
    assert_eq!(mine["author"]["id"], a.as_str());
    for (ws, who) in [(&mut bw, &b), (&mut cw, &c)] {
        let m = next_not_mine(ws, who).await;
        assert_eq!((m["body"].as_str(), m["author"]["type"].as_str()), (Some("Count me in!"), Some("person")));
        assert_eq!((m["author"]["id"].as_str(), m["author"]["name"].as_str()), (Some(a.as_str()), Some("Ann Lee")));
    }
    let seen = agent.next_where("message.created", |f| f["message"]["body"] == "Count me in!").await;
    assert_eq!(seen["message"]["conversation_id"], cid.as_str());
    assert_eq!(seen["message"]["author"]["name"], "Ann Lee");

    // Bob names the conversation: Ann and Cy get his message.
    bw.send(json!({"type": "message.send", "echo_id": "bob-1", "conversation_id": cid, "body": "Me too"})).await;
    assert_eq!(bw.next_of("ack").await["message"]["author"]["name"], "Bob Stone");
    for (ws, who) in [(&mut aw, &a), (&mut cw, &c)] {
        let m = next_not_mine(ws, who).await;
        assert_eq!((m["body"].as_str(), m["author"]["id"].as_str()), (Some("Me too"), Some(b.as_str())));
    }

    // A private note reaches no member; a teammate's reply reaches them all.
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "Bob is a VIP", "kind": "note"}))
        .await
        .ok()
        .unwrap();
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "Great, see you all", "kind": "chat"}))
        .await
        .ok()
        .unwrap();
    for (ws, who) in [(&mut aw, &a), (&mut bw, &b), (&mut cw, &c)] {
        let m = next_not_mine(ws, who).await;
        assert_eq!(m["body"], "Great, see you all", "the note came first to {who}: {m}");
    }

    // Each member's widget lists the shared chat with everyone's messages.
    let state = app.request("GET", "/widget/v1/conversation", Some(&c_token), None).await.ok().unwrap();
    assert_eq!(state["conversation"]["id"], cid.as_str());
    let bodies: Vec<&str> = state["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Hello all, Sam here: who comes on Friday?", "Count me in!", "Me too", "Great, see you all"]);
    assert_eq!(state["unread"], 4, "the other members' messages are unread too");
    let state = app.request("GET", "/widget/v1/conversation", Some(&a_token), None).await.ok().unwrap();
    assert_eq!(state["unread"], 3, "not Ann's own");

    // Ann typing shows in Bob's and Cy's widgets (and the inbox), not in Dee's.
    aw.send(json!({"type": "typing", "conversation_id": cid, "on": true})).await;
    for ws in [&mut bw, &mut cw, &mut agent] {
        let t = ws.next_of("typing").await;
        assert_eq!((t["conversation_id"].as_str(), t["on"].as_bool()), (Some(cid.as_str()), Some(true)), "{t}");
        assert_eq!((t["author"]["id"].as_str(), t["author"]["name"].as_str()), (Some(a.as_str()), Some("Ann Lee")), "{t}");
    }
    aw.expect_none_of("typing", Duration::from_millis(300)).await;
    dw.expect_none_of("typing", Duration::from_millis(300)).await;

    // Dee was not sent it: nothing reached her, and she can neither read it nor write in it.
    dw.expect_none_of("message.created", Duration::from_millis(500)).await;
    let r = app.request("GET", &format!("/widget/v1/conversation?conversation_id={cid}"), Some(&d_token), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let state = app.request("GET", "/widget/v1/conversation", Some(&d_token), None).await.ok().unwrap();
    assert!(state["conversation"].is_null(), "{state}");
    dw.send(json!({"type": "message.send", "echo_id": "dee-1", "conversation_id": cid, "body": "Let me in"})).await;
    let e = dw.next_of("error").await;
    assert_eq!((e["code"].as_str(), e["echo_id"].as_str()), (Some("not_found"), Some("dee-1")), "{e}");
    assert_eq!(app.thread(&cid).await.len(), 5, "Dee's message is not in it");
    let _ = d;
}

async fn a_private_chat_reply_reaches_only_the_teammates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a_token, a) = app.visitor_with(json!({"name": "Ann"})).await;
    let (b_token, b) = app.visitor_with(json!({"name": "Bob"})).await;
    let (mut aw, mut bw) = (app.widget_ws(&a_token).await, app.widget_ws(&b_token).await);
    let mut agent = app.agent_ws(&app.token).await;
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "chat", "body": "Hi {{person.name}}", "channels": ["chat"], "audience": {"people": [a, b]}}),
        )
        .await
        .ok()
        .unwrap();
    let ma = next_not_mine(&mut aw, &a).await;
    let mb = next_not_mine(&mut bw, &b).await;
    assert_eq!((ma["body"].as_str(), mb["body"].as_str()), (Some("Hi Ann"), Some("Hi Bob")));
    assert_ne!(ma["conversation_id"], mb["conversation_id"], "one conversation each");
    finished(&app, r["id"].as_str().unwrap()).await;
    for cid in [&ma["conversation_id"], &mb["conversation_id"]] {
        let conv = app.get(&format!("/api/v1/conversations/{}", cid.as_str().unwrap()), &app.token).await.ok().unwrap();
        assert_eq!(conv["transparent"], false);
        assert!(conv.get("members").is_none(), "{conv}");
    }

    let mine = aw.say("ann-1", "Just for you").await;
    assert_eq!(mine["conversation_id"], ma["conversation_id"]);
    agent.next_where("message.created", |f| f["message"]["body"] == "Just for you").await;
    bw.expect_none_of("message.created", Duration::from_millis(700)).await;
}

async fn shared_chats_that_cannot_be_one_message_to_all_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = person(&app, json!({"email": unique("ann"), "name": "Ann"})).await;
    let bob = person(&app, json!({"email": unique("bob"), "name": "Bob"})).await;
    let base = json!({"kind": "chat", "body": "Hi all", "channels": ["chat"], "audience": {"people": [ann, bob]},
                      "options": {"transparent": true}});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let person_snippet = "a shared chat sends one message to all, so person snippets cannot be used";
    let cases = [
        (with(json!({"body": "Hi {{person.first_name}}"})), "body", person_snippet),
        (with(json!({"body": "Hi {{default person.name \"there\"}}"})), "body", person_snippet),
        // Renders alike for made-up people who both lack the attribute, not for real ones.
        (with(json!({"body": "Your plan: {{person.attributes.plan}}"})), "body", person_snippet),
        (with(json!({"body": "Hi {{#with person}}{{name}}{{/with}}"})), "body", person_snippet),
        (with(json!({"title": "For {{person.first_name}}"})), "title", person_snippet),
        (with(json!({"kind": "checkin"})), "options.transparent", "only a chat can be shared"),
        (with(json!({"kind": "announcement"})), "options.transparent", "only a chat can be shared"),
        (with(json!({"kind": "one_way", "channels": ["email"]})), "options.transparent", "only a chat can be shared"),
    ];
    for (body, field, words) in cases {
        let r = app.post("/api/v1/outbound", &app.token, body.clone()).await;
        assert_eq!((r.status, r.field()), (422, field), "{body} → {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{body} → {message}");
    }

    // More than 1,000 recipients: counted before anything is stored.
    let mut csv = String::from("email,name\n");
    for i in 0..1_001 {
        csv.push_str(&format!("many{i}-{}@many.test,Many {i}\n", uuid::Uuid::now_v7().simple()));
    }
    let res = app
        .http
        .post(app.url("/api/v1/people/import"))
        .bearer_auth(&app.token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
    let many = with(json!({"audience": {"filter": {"field": "email", "op": "contains", "value": "@many.test"}}}));
    let r = app.post("/api/v1/outbound", &app.token, many.clone()).await;
    assert_eq!((r.status, r.field()), (422, "options.transparent"), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("at most 1000 recipients"), "{}", r.body);

    // Nothing of any of them was stored: no outbound, no conversation.
    let list = app.get("/api/v1/outbound", &app.token).await.ok().unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let convs = app.get("/api/v1/conversations", &app.token).await.ok().unwrap();
    assert_eq!(convs["items"].as_array().unwrap().len(), 0, "{convs}");

    // The same audience as a private chat is fine.
    let mut private = many;
    private["options"]["transparent"] = json!(false);
    let r = app.post("/api/v1/outbound", &app.token, private).await;
    assert_eq!((r.status, r.body["recipients"].as_i64()), (201, Some(1_001)), "{}", r.body);
}

/// Runs SQL on the app's database (both backends take `$n` placeholders).
async fn execute(app: &TestApp, sql: &str, id: &str) {
    match &app.engine.db {
        parley_engine::Db::Sqlite { write, .. } => {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(write).await.unwrap();
        }
        parley_engine::Db::Postgres(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(pool).await.unwrap();
        }
    }
}

async fn a_shared_chat_sent_again_after_a_crash_keeps_one_conversation_and_one_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut people = Vec::new();
    for i in 0..3 {
        people.push(person(&app, json!({"email": unique(&format!("p{i}")), "name": format!("P{i}")})).await);
    }
    let refs: Vec<&str> = people.iter().map(String::as_str).collect();
    let id = shared_chat(&app, &refs, "The storm is over").await;
    finished(&app, &id).await;
    let before = log(&app, &id).await;
    let cid = before[0]["conversation_id"].as_str().unwrap().to_owned();

    // As a crash right after storing would leave it: the conversation and
    // its message are there, the deliveries were never recorded.
    execute(
        &app,
        "UPDATE delivery SET status = 'queued', conversation_id = NULL, message_id = NULL, claimed_at = NULL WHERE outbound_id = $1",
        &id,
    )
    .await;
    execute(&app, "UPDATE outbound SET status = 'sending', finished_at = NULL WHERE id = $1", &id).await;
    let app = app.restart().await;
    let o = finished(&app, &id).await;
    assert_eq!(o["by_channel"]["chat"]["sent"], 3, "{o}");

    let after = log(&app, &id).await;
    for d in &after {
        assert_eq!(d["conversation_id"], cid.as_str(), "{d}");
        assert_eq!(d["message_id"], before[0]["message_id"], "{d}");
    }
    let list = app.get("/api/v1/conversations?limit=100", &app.token).await.ok().unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let thread = app.thread(&cid).await;
    assert_eq!(thread.len(), 1, "{thread:?}");
    assert_eq!(thread[0]["body"], "The storm is over");

    // An admin may delete it for good: nothing else points at it.
    assert_eq!(app.delete(&format!("/api/v1/conversations/{cid}"), &app.token).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.status, 404);
    assert_eq!(app.get(&format!("/api/v1/outbound/{id}"), &app.token).await.status, 200, "the outbound and its log stay");
}

/// Per-member seen state exists (`conversation_member.seen_at`), so the
/// email fallback is per member: whoever did not see it gets it once, and
/// answers it by email as themselves.
async fn each_member_who_did_not_see_a_shared_chat_is_emailed_once_and_the_one_who_saw_it_is_not(backend: Backend) {
    let app = TestApp::spawn_with_fallback_delay(backend, Duration::from_secs(2)).await;
    let smtp = Smtp::shared();
    let (seen, away1, away2) = (unique("seen"), unique("away1"), unique("away2"));
    let (token, seen_id) = app.visitor_with(json!({"email": seen, "name": "Seen"})).await;
    let away1_id = person(&app, json!({"email": away1, "name": "Away One"})).await;
    let away2_id = person(&app, json!({"email": away2, "name": "Away Two"})).await;
    let mut ws = app.widget_ws(&token).await;

    let id = shared_chat(&app, &[&seen_id, &away1_id, &away2_id], "The parcel room is open until 6").await;
    let m = next_not_mine(&mut ws, &seen_id).await;
    finished(&app, &id).await;
    ws.send(json!({"type": "seen", "conversation_id": m["conversation_id"], "message_id": m["id"]})).await;
    let cid = m["conversation_id"].as_str().unwrap().to_owned();
    // Only Seen's delivery becomes delivered: the others did not read it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let delivered = loop {
        let delivered: Vec<Value> = log(&app, &id).await.into_iter().filter(|d| d["status"] == "delivered").collect();
        if !delivered.is_empty() || tokio::time::Instant::now() > deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["person_id"], seen_id.as_str());

    let mut reply_to = Vec::new();
    for to in [&away1, &away2] {
        let mail = smtp.wait_for(to, 1, Duration::from_secs(20)).await;
        let text = mail[0].text();
        assert!(text.contains("The parcel room is open until 6"), "{text}");
        // Each member's own link opens the shared chat.
        let at = text.find("/c/").unwrap_or_else(|| panic!("no link to the chat in {text}"));
        let token = text[at + 3..].split_whitespace().next().unwrap();
        let opened = app.request("POST", "/widget/v1/link", None, Some(json!({"token": token}).to_string())).await.ok().unwrap();
        assert_eq!(opened["conversation_id"], cid.as_str());
        let header = mail[0].header("Reply-To").unwrap_or_else(|| panic!("no Reply-To in the email to {to}"));
        reply_to.push(header.trim_matches(['<', '>']).rsplit('<').next().unwrap().trim_end_matches('>').to_owned());
    }
    assert_ne!(reply_to[0], reply_to[1], "each member has their own reply address");
    assert_eq!(log(&app, &id).await.iter().filter(|d| d["status"] == "delivered").count(), 1, "still only Seen's");

    // Each answers by email, as themselves, into the shared chat.
    for ((to, who), address) in [(&away1, &away1_id), (&away2, &away2_id)].into_iter().zip(&reply_to) {
        let raw = format!(
            "From: <{to}>\r\nTo: {address}\r\nSubject: Re: parcels\r\nMessage-ID: <{}@customer.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nThanks, on my way\r\n\r\n> The parcel room is open until 6\r\n",
            unique("reply")
        );
        let got = app.request("POST", "/api/v1/inbound/email", Some(&app.token), Some(raw)).await;
        assert_eq!(got.status, 201, "{}", got.body);
        assert_eq!((got.body["conversation_id"].as_str(), got.body["author"]["id"].as_str()), (Some(cid.as_str()), Some(who.as_str())));
        let m = next_not_mine(&mut ws, &seen_id).await;
        assert_eq!((m["body"].as_str(), m["author"]["id"].as_str()), (Some("Thanks, on my way"), Some(who.as_str())));
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mail_for(&away1).len(), 1, "one email each, not one per job");
    assert_eq!(smtp.mail_for(&away2).len(), 1, "one email each, not one per job");
    assert!(smtp.mail_for(&seen).is_empty(), "Seen read it in the widget");
    ws.close().await;
}

async fn a_shared_chat_shows_other_members_by_name_in_the_widget_and_its_members_in_the_inbox_in_real_browsers(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = if backend.is_postgres() { "postgres" } else { "sqlite" };
    let app = TestApp::spawn(backend).await;

    // Ann is on the demo site in a real browser; Bob and Cy on sockets.
    let visitor = driver.browser(1280, 800).await;
    visitor.goto(&app.url("/demo")).await.unwrap();
    let ann = wait_for(
        &visitor,
        "the widget to connect",
        "window.Parley && Parley._state && Parley._state().connected && Parley._state().person_id",
    )
    .await;
    let ann = ann.as_str().unwrap().to_owned();
    app.patch(&format!("/api/v1/people/{ann}"), &app.token, json!({"name": "Ann Lee"})).await.ok().unwrap();
    visitor.execute("Parley('show')", vec![]).await.unwrap();
    let (b_token, bob) = app.visitor_with(json!({"name": "Bob Stone"})).await;
    let (_, cy) = app.visitor_with(json!({"name": "Cy Young"})).await;
    let mut bw = app.widget_ws(&b_token).await;

    let id = shared_chat(&app, &[&ann, &bob, &cy], "Who comes on Friday?").await;
    let m = next_not_mine(&mut bw, &bob).await;
    finished(&app, &id).await;
    let cid = m["conversation_id"].as_str().unwrap().to_owned();
    wait_for(&visitor, "the teammate's message", &in_widget("[data-testid=parley-message][data-author-type=teammate]")).await;

    // Bob's message shows in Ann's widget as Bob's, on the other side.
    bw.send(json!({"type": "message.send", "echo_id": "bob-1", "conversation_id": cid, "body": "Me, with cake"})).await;
    bw.next_of("ack").await;
    let shown = wait_for(
        &visitor,
        "Bob's message",
        "(m => m && [m.classList.contains('me'), m.querySelector('.who') && m.querySelector('.who').textContent, m.textContent])(\
         Array.from(document.getElementById('parley-widget').shadowRoot.querySelectorAll('[data-testid=parley-message]'))\
         .find(e => e.textContent.includes('Me, with cake')))",
    )
    .await;
    assert_eq!(shown[0], false, "not shown as Ann's own: {shown}");
    assert_eq!(shown[1], "Bob Stone", "{shown}");

    // Ann answers from the widget: hers is shown as her own, and Bob gets it.
    send_in_widget(&visitor, "Count me in").await;
    let got = next_not_mine(&mut bw, &bob).await;
    assert_eq!((got["body"].as_str(), got["author"]["name"].as_str()), (Some("Count me in"), Some("Ann Lee")));
    let own = visitor
        .execute(
            "return Array.from(document.getElementById('parley-widget').shadowRoot.querySelectorAll('[data-testid=parley-message].me')).map(e => e.textContent)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(own.as_array().unwrap().len(), 1, "only Ann's own message is hers: {own}");
    screenshot(&visitor, &format!("shared-chat-widget-{tag}")).await;

    // The inbox: one conversation, whose header names its members.
    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    // The list loads after the socket is up: wait for the row, then read it.
    let css = format!("[data-testid=conversation-row][data-conversation-id='{cid}']");
    wait_for(&agent, "the shared chat in the list", &format!("document.querySelector(\"{css}\")")).await;
    let row = agent.find(Locator::Css(&css)).await.unwrap();
    let listed = row.text().await.unwrap();
    assert!(listed.contains("Ann Lee, Bob Stone, Cy Young"), "the row names every member: {listed}");
    row.click().await.unwrap();
    let header = wait_for(
        &agent,
        "the members in the header",
        "document.getElementById('thread-name').dataset.members === '3' && [document.getElementById('thread-name').textContent, document.getElementById('thread-sub').textContent]",
    )
    .await;
    assert_eq!(header[0], "Ann Lee, Bob Stone, Cy Young", "{header}");
    assert!(header[1].as_str().unwrap().contains("Shared chat: 3 people see each other's messages"), "{header}");
    let authors = wait_for(
        &agent,
        "everyone's messages in the thread",
        "(t => t.length === 3 && t)(Array.from(document.querySelectorAll('[data-testid=thread-message]')).map(e => e.textContent))",
    )
    .await;
    assert!(authors[1].as_str().unwrap().contains("Bob Stone"), "{authors}");
    assert!(authors[2].as_str().unwrap().contains("Ann Lee"), "{authors}");
    screenshot(&agent, &format!("shared-chat-inbox-{tag}")).await;
}

async fn a_person_who_was_sent_outbounds_is_deleted_and_a_shared_chat_stays_with_the_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = person(&app, json!({"email": unique("ann"), "name": "Ann"})).await;
    let bob = person(&app, json!({"email": unique("bob"), "name": "Bob"})).await;
    // Ann has an email delivery, an answered check-in and the first place in a shared chat.
    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "one_way", "title": "Hi", "body": "Hello", "channels": ["email"], "audience": {"people": [ann, bob]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let email_id = r.body["id"].as_str().unwrap().to_owned();
    finished(&app, &email_id).await;
    let shared = shared_chat(&app, &[&ann, &bob], "Hello both").await;
    finished(&app, &shared).await;
    let conversation = log(&app, &shared).await[0]["conversation_id"].as_str().unwrap().to_owned();

    // A shared chat cannot be made private after the fact.
    let r = app.patch(&format!("/api/v1/conversations/{conversation}"), &app.token, json!({"transparent": false})).await;
    assert_eq!((r.status, r.code()), (409, "shared_chat"), "{}", r.body);
    let c = app.get(&format!("/api/v1/conversations/{conversation}"), &app.token).await.ok().unwrap();
    assert_eq!((c["transparent"].as_bool(), c["members"].as_array().map(Vec::len)), (Some(true), Some(2)), "{c}");

    let r = app.delete(&format!("/api/v1/people/{ann}"), &app.token).await;
    assert_eq!(r.status, 204, "deleting a person who was sent outbounds: {}", r.body);
    assert_eq!(app.get(&format!("/api/v1/people/{ann}"), &app.token).await.status, 404);
    // Her deliveries went with her; Bob's stay.
    let people: Vec<Value> = log(&app, &email_id).await.iter().map(|d| d["person_id"].clone()).collect();
    assert_eq!(people, [json!(bob)]);
    // The shared chat is Bob's now, with its message.
    let c = app.get(&format!("/api/v1/conversations/{conversation}"), &app.token).await.ok().unwrap();
    assert_eq!(c["person"]["id"], bob.as_str(), "{c}");
    let members: Vec<&str> = c["members"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(members, [bob.as_str()], "{c}");
    let messages = app.get(&format!("/api/v1/conversations/{conversation}/messages"), &app.token).await.ok().unwrap();
    assert_eq!(messages["items"][0]["body"], "Hello both", "{messages}");
}
