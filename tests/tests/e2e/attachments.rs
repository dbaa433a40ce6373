//! Files on messages: uploaded by teammates, downloaded by anyone with the
//! link (safely: nothing runs script on our origin), attached to an
//! announcement that reaches a visitor's widget, to an inbox reply, and
//! linked from the missed-message email.

use std::time::Duration;

use fantoccini::Locator;
use parley_tests::browser::{Driver, screenshot, wait_for};
use parley_tests::outside::Smtp;
use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

use super::browser::{in_widget, log_in, send_in_widget};
use super::browser_app::{choose, click, quick_add, type_in};

on_both_backends!(
    an_uploaded_file_downloads_as_it_was_and_html_or_svg_only_as_a_download,
    bad_uploads_name_the_field_and_unknown_links_are_not_found,
    an_announcement_with_a_file_reaches_the_visitors_widget_and_its_link_downloads_it,
    a_foreign_or_unknown_upload_is_refused_at_its_index_and_nothing_is_sent,
    a_reply_with_only_a_file_reaches_both_sockets_and_its_missed_email_links_it,
    an_agent_attaches_files_in_the_inbox_and_the_visitor_sees_them_in_a_real_browser,
    a_file_taken_back_before_sending_is_deleted_and_one_in_use_is_a_conflict,
    deleting_a_person_takes_their_files_and_keeps_what_others_use,
    a_chat_template_keeps_its_files_and_a_follow_up_carries_the_first_sends,
    the_sweep_removes_files_nothing_took_up_and_strays_a_crash_left,
    in_a_real_browser_a_removed_file_is_deleted_and_a_template_and_follow_up_bring_their_files,
);

/// A real 24×16 PNG (a solid colour), so a browser shows it as a picture.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x18\x00\x00\x00\x10\x08\x02\x00\x00\x00\x83\x46\x28\xc2\
\x00\x00\x00\x1aIDAT\x78\x9c\x63\xf0\x77\x7b\x4a\x15\xc4\x30\x6a\xd0\xa8\x41\xa3\x06\x8d\x1a\x44\x19\x02\x00\xe7\x44\x37\x1f\
\xa8\x29\xf3\x0a\x00\x00\x00\x00IEND\xae\x42\x60\x82";

async fn upload(app: &TestApp, name: &str, content_type: &str, bytes: &[u8]) -> Value {
    let r = app.upload(&app.token, name, content_type, bytes.to_vec()).await;
    assert_eq!(r.status, 201, "uploading {name}: {}", r.body);
    r.body
}

async fn an_uploaded_file_downloads_as_it_was_and_html_or_svg_only_as_a_download(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let png = upload(&app, "chart (final).png", "image/png", PNG).await;
    assert_eq!(
        (png["name"].as_str(), png["content_type"].as_str(), png["size"].as_i64()),
        (Some("chart (final).png"), Some("image/png"), Some(PNG.len() as i64))
    );
    // The link is all a visitor has: its id must not be guessable.
    let id = png["id"].as_str().unwrap();
    assert!(id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(png["url"].as_str().unwrap(), format!("/files/{id}/chart%20%28final%29.png"));
    let got = app.download(png["url"].as_str().unwrap()).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes, PNG);
    assert_eq!(got.header("content-type"), "image/png");
    assert!(got.header("content-disposition").starts_with("inline"), "{}", got.header("content-disposition"));
    assert_eq!(got.header("x-content-type-options"), "nosniff");

    // A PDF and plain text keep their type.
    let pdf = upload(&app, "terms.pdf", "application/pdf", b"%PDF-1.4 terms").await;
    assert_eq!(app.download(pdf["url"].as_str().unwrap()).await.header("content-type"), "application/pdf");

    // Markup would run script on our origin: it only ever comes as a download.
    let page = b"<html><script>alert(document.cookie)</script></html>";
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    for (name, content_type, bytes) in [("page.html", "text/html", &page[..]), ("logo.svg", "image/svg+xml", &svg[..])] {
        let u = upload(&app, name, content_type, bytes).await;
        assert_eq!(u["content_type"].as_str(), Some(content_type), "the declared type is kept");
        let got = app.download(u["url"].as_str().unwrap()).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.bytes, bytes, "{name}");
        assert_eq!(got.header("content-type"), "application/octet-stream", "{name}");
        assert!(got.header("content-disposition").starts_with("attachment;"), "{name}: {}", got.header("content-disposition"));
        assert!(got.header("content-disposition").contains(name), "{name}");
        assert_eq!(got.header("x-content-type-options"), "nosniff", "{name}");
    }

    // Uploading takes a teammate or an API key.
    let anonymous = app.http.post(app.url("/api/v1/uploads?name=x.txt")).body("hello").send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let key = app.post("/api/v1/api-keys", &app.token, json!({"name": "site backend"})).await.ok().unwrap();
    let by_key = app.upload(key["key"].as_str().unwrap(), "notes.txt", "text/plain", b"from the backend".to_vec()).await;
    assert_eq!(by_key.status, 201, "{}", by_key.body);
    let notes = app.download(by_key.body["url"].as_str().unwrap()).await;
    assert_eq!((notes.header("content-type"), notes.bytes.as_slice()), ("text/plain; charset=utf-8", &b"from the backend"[..]));
}

async fn bad_uploads_name_the_field_and_unknown_links_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    const MIB: usize = 1024 * 1024;
    // 10 MiB is taken; one byte more is a 413.
    let full = upload(&app, "full.bin", "application/octet-stream", &vec![7u8; 10 * MIB]).await;
    assert_eq!(full["size"].as_i64(), Some(10 * MIB as i64));
    let answer = app.post_head_only("/api/v1/uploads?name=big.bin", "application/octet-stream", 10 * MIB + 1).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"too_large""#), "{answer}");

    let long = "x".repeat(201);
    for (name, bytes, field) in [
        ("a/b.txt", &b"x"[..], "name"),
        ("..\\b.txt", b"x", "name"),
        (long.as_str(), b"x", "name"),
        ("", b"x", "name"),
        ("empty.txt", b"", "file"),
    ] {
        let r = app.upload(&app.token, name, "text/plain", bytes.to_vec()).await;
        assert_eq!((r.status, r.field()), (422, field), "{name:?}: {}", r.body);
    }
    let unnamed = app.http.post(app.url("/api/v1/uploads")).bearer_auth(&app.token).body("x").send().await.unwrap();
    assert_eq!(unnamed.status().as_u16(), 422);
    let body: Value = unnamed.json().await.unwrap();
    assert_eq!(body["error"]["field"], "name", "{body}");
    let r = app.upload(&app.token, "x.txt", "not a type", b"x".to_vec()).await;
    assert_eq!((r.status, r.field()), (422, "content_type"), "{}", r.body);

    let ok = upload(&app, "report.txt", "text/plain", b"quarterly").await;
    let id = ok["id"].as_str().unwrap();
    assert_eq!(app.download(&format!("/files/{id}/report.txt")).await.status, 200);
    assert_eq!(app.download(&format!("/files/{id}/other.txt")).await.status, 404, "the wrong name");
    let unknown = "0".repeat(48);
    assert_eq!(app.download(&format!("/files/{unknown}/report.txt")).await.status, 404, "an unknown id");
    assert_eq!(app.download("/files/nope/report.txt").await.status, 404, "not an id at all");
}

/// A visitor who has a chat and keeps the widget open: (person id,
/// conversation id, their socket).
async fn visitor_in_chat(app: &TestApp) -> (String, String, parley_tests::Ws) {
    let (token, person_id) = app.visitor().await;
    let mut ws = app.widget_ws(&token).await;
    let conversation = ws.say("hello", "Hello, is anyone there?").await["conversation_id"].as_str().unwrap().to_owned();
    (person_id, conversation, ws)
}

async fn an_announcement_with_a_file_reaches_the_visitors_widget_and_its_link_downloads_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = format!("ben-{}@customer.test", uuid::Uuid::now_v7().simple());
    let (token, person_id) = app.visitor_with(json!({"name": "Ben", "email": email})).await;
    let mut widget = app.widget_ws(&token).await;
    let conversation = widget.say("hello", "Hello, is anyone there?").await["conversation_id"].as_str().unwrap().to_owned();
    let menu = upload(&app, "menu.pdf", "application/pdf", b"%PDF-1.4 the new menu").await;

    let r = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "announcement", "body": "Our new menu is out", "channels": ["chat", "email"],
                   "audience": {"people": [person_id]}, "attachments": [menu["id"]]}),
        )
        .await
        .ok()
        .unwrap();
    let outbound_id = r["id"].as_str().unwrap().to_owned();

    let frame = widget.next_where("message.created", |f| f["message"]["kind"] == "announcement").await;
    let m = &frame["message"];
    assert_eq!(m["body"], "Our new menu is out");
    assert_eq!(m["conversation_id"].as_str(), Some(conversation.as_str()), "into the chat they have");
    let files = m["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{m}");
    assert_eq!((files[0]["id"].as_str(), files[0]["name"].as_str()), (menu["id"].as_str(), Some("menu.pdf")));
    assert_eq!(files[0]["size"].as_i64(), menu["size"].as_i64());
    // The widget has no teammate session: the link alone downloads it.
    let got = app.download(files[0]["url"].as_str().unwrap()).await;
    assert_eq!((got.status, got.bytes.as_slice()), (200, &b"%PDF-1.4 the new menu"[..]));

    // The thread lists it too, for teammates and in the widget's history.
    let thread = app.thread(&conversation).await;
    let last = thread.last().unwrap();
    assert_eq!(last["attachments"][0]["url"], files[0]["url"], "{last}");
    assert!(
        thread.iter().filter(|m| m["kind"] != "announcement").all(|m| m.get("attachments").is_none()),
        "only the announcement has files"
    );
    let c = app.get(&format!("/api/v1/conversations/{conversation}"), &app.token).await.ok().unwrap();
    assert_eq!(c["last_message"]["attachments"][0]["id"], menu["id"], "the inbox's summary too: {c}");
    let list = app.get("/api/v1/conversations", &app.token).await.ok().unwrap();
    assert_eq!(list["items"][0]["last_message"]["attachments"][0]["id"], menu["id"], "{list}");
    // The outbound shows what it carried.
    let o = app.get(&format!("/api/v1/outbound/{outbound_id}"), &app.token).await.ok().unwrap();
    assert_eq!(o["attachments"][0]["id"], menu["id"], "{o}");

    // Its email copy links the file by name, absolute, in both parts.
    let mail = Smtp::shared().wait_for(&email, 1, Duration::from_secs(15)).await.remove(0);
    let absolute = app.url(files[0]["url"].as_str().unwrap());
    assert!(mail.text().contains(&format!("menu.pdf: {absolute}")), "{}", mail.text());
    assert!(mail.html().contains(&format!("<a href=\"{absolute}\">menu.pdf</a>")), "{}", mail.html());
}

async fn a_foreign_or_unknown_upload_is_refused_at_its_index_and_nothing_is_sent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (person_id, _, _widget) = visitor_in_chat(&app).await;
    let mine = upload(&app, "ours.txt", "text/plain", b"ours").await;
    let (other_token, _) = app.other_workspace().await;
    let theirs = app.upload(&other_token, "theirs.txt", "text/plain", b"theirs".to_vec()).await.ok().unwrap();

    let send = |kind: &str, attachments: Value| {
        let app = &app;
        let body =
            json!({"kind": kind, "body": "News", "channels": ["chat"], "audience": {"people": [person_id]}, "attachments": attachments});
        async move { app.post("/api/v1/outbound", &app.token, body).await }
    };
    let r = send("announcement", json!([theirs["id"]])).await;
    assert_eq!((r.status, r.field()), (422, "attachments.0"), "{}", r.body);
    let r = send("chat", json!([mine["id"], "f".repeat(48)])).await;
    assert_eq!((r.status, r.field()), (422, "attachments.1"), "{}", r.body);
    let r = send("announcement", json!([mine["id"], mine["id"]])).await;
    assert_eq!((r.status, r.field()), (422, "attachments.1"), "listed twice: {}", r.body);
    let eleven: Vec<Value> = (0..11).map(|_| mine["id"].clone()).collect();
    assert_eq!(send("announcement", json!(eleven)).await.field(), "attachments");
    let r = send("checkin", json!([mine["id"]])).await;
    assert_eq!((r.status, r.field()), (422, "attachments"), "a check-in carries no files: {}", r.body);
    let one_way = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "one_way", "body": "News", "channels": ["email"], "audience": {"people": [person_id]}, "attachments": [mine["id"]]}),
        )
        .await;
    assert_eq!((one_way.status, one_way.field()), (422, "attachments"), "{}", one_way.body);

    // No outbound, so no delivery, was stored by any of them.
    let list = app.get("/api/v1/outbound", &app.token).await.ok().unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let deliveries: i64 = match &app.engine.db {
        parley_engine::Db::Sqlite { read, .. } => sqlx::query_scalar("SELECT COUNT(*) FROM delivery").fetch_one(read).await.unwrap(),
        parley_engine::Db::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM delivery").fetch_one(pool).await.unwrap(),
    };
    assert_eq!(deliveries, 0);

    // The same for a reply in the inbox.
    let conversation = app.get("/api/v1/conversations", &app.token).await.ok().unwrap()["items"][0]["id"].as_str().unwrap().to_owned();
    let before = app.thread(&conversation).await.len();
    let r = app
        .post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": "", "attachments": [theirs["id"]]}))
        .await;
    assert_eq!((r.status, r.field()), (422, "attachments.0"), "{}", r.body);
    assert_eq!(app.thread(&conversation).await.len(), before);
}

async fn a_reply_with_only_a_file_reaches_both_sockets_and_its_missed_email_links_it(backend: Backend) {
    let app = TestApp::spawn_with_fallback_delay(backend, Duration::from_secs(2)).await;
    let smtp = Smtp::shared();
    let email = format!("ann-{}@customer.test", uuid::Uuid::now_v7().simple());
    let (token, person_id) = app.visitor_with(json!({"name": "Ann", "email": email})).await;
    let mut widget = app.widget_ws(&token).await;
    let conversation = widget.say("hello", "Can you send me the invoice?").await["conversation_id"].as_str().unwrap().to_owned();
    let mut agents = app.agent_ws(&app.token).await;

    // A reply may be nothing but a file; without one it still needs words.
    let empty = app.post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": " "})).await;
    assert_eq!((empty.status, empty.field()), (422, "body"), "{}", empty.body);
    let invoice = upload(&app, "invoice #42.pdf", "application/pdf", b"%PDF-1.4 invoice").await;
    let sent = app
        .post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": "", "attachments": [invoice["id"]]}))
        .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(sent.body["attachments"][0]["name"], "invoice #42.pdf");
    let url = sent.body["attachments"][0]["url"].as_str().unwrap().to_owned();

    let to_agents = agents.next_where("message.created", |f| f["message"]["id"] == sent.body["id"]).await;
    assert_eq!(to_agents["message"]["attachments"][0]["url"].as_str(), Some(url.as_str()));
    let to_widget = widget.next_where("message.created", |f| f["message"]["id"] == sent.body["id"]).await;
    assert_eq!(to_widget["message"]["attachments"][0]["url"].as_str(), Some(url.as_str()));
    // The teammates' socket takes files too, and its ack lists them.
    agents
        .send(json!({"type": "message.send", "echo_id": "with-file", "conversation_id": conversation, "body": "Also this copy.",
                     "attachments": [invoice["id"]]}))
        .await;
    let ack = agents.next_of("ack").await;
    assert_eq!(ack["message"]["attachments"][0]["url"].as_str(), Some(url.as_str()), "{ack}");
    let to_widget = widget.next_where("message.created", |f| f["message"]["id"] == ack["message"]["id"]).await;
    assert_eq!(to_widget["message"]["attachments"][0]["name"], "invoice #42.pdf");

    // Ann closes the tab without reading it: the email links the file.
    widget.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap()["online"] == true {
        assert!(tokio::time::Instant::now() < deadline, "the visitor stayed online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reminder =
        app.post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": "Here it is, see the file."})).await;
    assert_eq!(reminder.status, 201);
    let mail = smtp.wait_for(&email, 1, Duration::from_secs(15)).await.remove(0);
    let absolute = app.url(&url);
    let text = mail.text();
    assert!(text.contains(&format!("invoice #42.pdf: {absolute}")), "{text}");
    let html = mail.html();
    assert!(html.contains(&format!("<a href=\"{absolute}\">invoice #42.pdf</a>")), "{html}");
    // And the link in the email downloads the file.
    let got = app.download(&url).await;
    assert_eq!((got.status, got.bytes.as_slice()), (200, &b"%PDF-1.4 invoice"[..]));

    // A deleted message shows its files no more; the file stays while the
    // other message carries it, and goes with the conversation.
    let deleted = app.delete(&format!("/api/v1/messages/{}", sent.body["id"].as_str().unwrap()), &app.token).await;
    assert_eq!(deleted.status, 204);
    let thread = app.thread(&conversation).await;
    assert!(thread.iter().all(|m| m["id"] != sent.body["id"]), "the deleted message is gone");
    assert_eq!(app.download(&url).await.status, 200, "\"Also this copy\" still carries it");
    assert_eq!(app.delete(&format!("/api/v1/conversations/{conversation}"), &app.token).await.status, 204);
    assert_eq!(app.download(&url).await.status, 404, "nothing uses it any more");
    assert!(!stored(&app, &invoice).exists(), "its bytes are gone from the data dir");
}

/// Where an upload's bytes are kept.
fn stored(app: &TestApp, upload: &Value) -> std::path::PathBuf {
    app.engine.uploads_dir.join(upload["id"].as_str().unwrap())
}

/// Whether the upload's link still downloads it, and its bytes are on disk.
async fn kept(app: &TestApp, upload: &Value) -> bool {
    let status = app.download(upload["url"].as_str().unwrap()).await.status;
    assert!(status == 200 || status == 404, "{status}");
    assert_eq!(stored(app, upload).exists(), status == 200, "the row and the file go together: {upload}");
    status == 200
}

async fn a_file_taken_back_before_sending_is_deleted_and_one_in_use_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (person_id, conversation, _widget) = visitor_in_chat(&app).await;
    let (_, agent) = app.teammate("Agnes Agent", "agent").await;

    // Picked by mistake and removed from the composer: gone at once.
    let typo = upload(&app, "wrong-file.txt", "text/plain", b"not this one").await;
    assert!(kept(&app, &typo).await);
    let path = format!("/api/v1/uploads/{}", typo["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, &app.token).await.status, 204);
    assert!(!kept(&app, &typo).await);
    assert_eq!(app.delete(&path, &app.token).await.status, 404, "already gone");
    let r = app
        .post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": "x", "attachments": [typo["id"]]}))
        .await;
    assert_eq!((r.status, r.field()), (422, "attachments.0"), "a deleted upload cannot be attached: {}", r.body);

    // An agent takes back their own files, not an admin's; another
    // workspace does not see it at all.
    let admins = upload(&app, "admins.txt", "text/plain", b"the admin's").await;
    let admins_path = format!("/api/v1/uploads/{}", admins["id"].as_str().unwrap());
    assert_eq!(app.delete(&admins_path, &agent).await.status, 403);
    let (other, _) = app.other_workspace().await;
    assert_eq!(app.delete(&admins_path, &other).await.status, 404);
    assert!(kept(&app, &admins).await);
    let own = app.upload(&agent, "agents.txt", "text/plain", b"the agent's".to_vec()).await.ok().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/uploads/{}", own["id"].as_str().unwrap()), &agent).await.status, 204);
    assert!(!kept(&app, &own).await);

    // Sent, it belongs to the message: deleting it is a conflict, and
    // deleting the message is what removes it.
    let sent = app
        .post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": "Here", "attachments": [admins["id"]]}))
        .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let r = app.delete(&admins_path, &app.token).await;
    assert_eq!((r.status, r.code()), (409, "upload_in_use"), "{}", r.body);
    assert!(kept(&app, &admins).await);
    assert_eq!(app.delete(&format!("/api/v1/messages/{}", sent.body["id"].as_str().unwrap()), &app.token).await.status, 204);
    assert!(!kept(&app, &admins).await, "the message was all that used it");

    // Listed by an outbound, it stays while the outbound does, whoever's
    // copy of the message is deleted.
    let flyer = upload(&app, "flyer.pdf", "application/pdf", b"%PDF-1.4 flyer").await;
    let o = app
        .post(
            "/api/v1/outbound",
            &app.token,
            json!({"kind": "announcement", "body": "Our flyer", "channels": ["chat"], "audience": {"people": [person_id]},
                   "attachments": [flyer["id"]]}),
        )
        .await
        .ok()
        .unwrap();
    let announced = wait_delivered(&app, o["id"].as_str().unwrap()).await;
    let r = app.delete(&format!("/api/v1/uploads/{}", flyer["id"].as_str().unwrap()), &app.token).await;
    assert_eq!((r.status, r.code()), (409, "upload_in_use"), "{}", r.body);
    assert_eq!(app.delete(&format!("/api/v1/messages/{announced}"), &app.token).await.status, 204);
    assert!(kept(&app, &flyer).await, "the outbound still lists it");
}

/// Waits until an outbound's one chat delivery is sent; returns its message id.
async fn wait_delivered(app: &TestApp, outbound_id: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let d = app.get(&format!("/api/v1/outbound/{outbound_id}/deliveries?channel=chat"), &app.token).await.ok().unwrap();
        if let Some(m) = d["items"][0]["message_id"].as_str() {
            return m.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "the chat was not delivered: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deleting_a_person_takes_their_files_and_keeps_what_others_use(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (person_id, conversation, widget) = visitor_in_chat(&app).await;
    widget.close().await;
    let (ours, shared) = (
        upload(&app, "their-contract.pdf", "application/pdf", b"%PDF-1.4 c").await,
        upload(&app, "price-list.txt", "text/plain", b"prices").await,
    );
    for files in [json!([ours["id"], shared["id"]]), json!([shared["id"]])] {
        let r = app
            .post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": "For you", "attachments": files}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // The price list also went to someone else.
    let (_, other_conversation, _other) = visitor_in_chat(&app).await;
    let r = app
        .post(
            &format!("/api/v1/conversations/{other_conversation}/messages"),
            &app.token,
            json!({"body": "Prices", "attachments": [shared["id"]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    assert_eq!(app.delete(&format!("/api/v1/people/{person_id}"), &app.token).await.status, 204);
    assert!(!kept(&app, &ours).await, "their contract went with them");
    assert!(kept(&app, &shared).await, "the other chat still carries the price list");
}

async fn a_chat_template_keeps_its_files_and_a_follow_up_carries_the_first_sends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (person_id, _, mut widget) = visitor_in_chat(&app).await;
    let guide = upload(&app, "guide.pdf", "application/pdf", b"%PDF-1.4 guide").await;
    let old_logo = upload(&app, "logo-old.png", "image/png", PNG).await;

    let t = app
        .post(
            "/api/v1/templates",
            &app.token,
            json!({"kind": "chat", "title": "Welcome pack", "body": "Hi {{person.first_name}}",
                                                     "channels": ["chat"], "attachments": [guide["id"], old_logo["id"]]}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.body);
    let tid = t.body["id"].as_str().unwrap().to_owned();
    let names =
        |t: &Value| t["attachments"].as_array().map(|a| a.iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>());
    assert_eq!(names(&t.body), Some(vec!["guide.pdf".to_owned(), "logo-old.png".to_owned()]));
    let listed = app.get("/api/v1/templates?kind=chat&q=welcome", &app.token).await.ok().unwrap();
    assert_eq!(names(&listed[0]), names(&t.body), "the list shows them too: {listed}");
    // A template's file is in use.
    let r = app.delete(&format!("/api/v1/uploads/{}", guide["id"].as_str().unwrap()), &app.token).await;
    assert_eq!(r.status, 409, "{}", r.body);

    // Bad files are refused at their index; email templates carry none.
    let (other, _) = app.other_workspace().await;
    let theirs = app.upload(&other, "theirs.txt", "text/plain", b"theirs".to_vec()).await.ok().unwrap();
    for (body, field) in [
        (json!({"kind": "chat", "title": "T", "body": "B", "attachments": [guide["id"], theirs["id"]]}), "attachments.1"),
        (json!({"kind": "one_way", "title": "T", "body": "B", "channels": ["email"], "attachments": [guide["id"]]}), "attachments"),
    ] {
        let r = app.post("/api/v1/templates", &app.token, body).await;
        assert_eq!((r.status, r.field()), (422, field), "{}", r.body);
    }
    let r = app
        .request(
            "PUT",
            &format!("/api/v1/templates/{tid}"),
            Some(&app.token),
            Some(json!({"kind": "chat", "title": "Welcome pack", "body": "B", "attachments": ["0".repeat(48)]}).to_string()),
        )
        .await;
    assert_eq!((r.status, r.field()), (422, "attachments.0"), "{}", r.body);
    assert_eq!(names(&app.get(&format!("/api/v1/templates/{tid}"), &app.token).await.ok().unwrap()).map(|n| n.len()), Some(2), "unchanged");

    // The new logo replaces the old: the old one, used by nothing else, goes.
    let new_logo = upload(&app, "logo.png", "image/png", PNG).await;
    let r = app
        .request(
            "PUT",
            &format!("/api/v1/templates/{tid}"),
            Some(&app.token),
            Some(
                json!({"kind": "chat", "title": "Welcome pack", "body": "Hi {{person.first_name}}", "channels": ["chat"],
                    "attachments": [guide["id"], new_logo["id"]]})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r.body), Some(vec!["guide.pdf".to_owned(), "logo.png".to_owned()]));
    assert!(!kept(&app, &old_logo).await, "the replaced file is gone");

    // Sent from the template (as the app does: its fields into an outbound)
    // and asking "are you OK", then followed up: the follow-up carries the
    // first send's files unless it says otherwise.
    let template = r.body;
    let ids: Vec<Value> = template["attachments"].as_array().unwrap().iter().map(|f| f["id"].clone()).collect();
    let first = app
        .post("/api/v1/outbound", &app.token, json!({"kind": "chat", "body": "Your welcome pack", "channels": template["channels"],
                                                    "audience": {"people": [person_id]}, "options": {"are_you_ok": true}, "attachments": ids}))
        .await
        .ok()
        .unwrap();
    let first_id = first["id"].as_str().unwrap();
    let m = widget.next_where("message.created", |f| f["message"]["body"] == "Your welcome pack").await;
    assert_eq!(m["message"]["attachments"].as_array().map(Vec::len), Some(2), "{m}");

    let again = app
        .post(&format!("/api/v1/outbound/{first_id}/follow-up"), &app.token, json!({"body": "Did you get the pack?", "only": "not_ok"}))
        .await
        .ok()
        .unwrap();
    let m = widget.next_where("message.created", |f| f["message"]["body"] == "Did you get the pack?").await;
    let files: Vec<&str> = m["message"]["attachments"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(files, ["guide.pdf", "logo.png"], "{m}");
    let o = app.get(&format!("/api/v1/outbound/{}", again["id"].as_str().unwrap()), &app.token).await.ok().unwrap();
    assert_eq!(o["attachments"].as_array().map(Vec::len), Some(2), "{o}");

    let bare = app
        .post(
            &format!("/api/v1/outbound/{first_id}/follow-up"),
            &app.token,
            json!({"body": "Still there?", "only": "not_ok", "attachments": []}),
        )
        .await
        .ok()
        .unwrap();
    let m = widget.next_where("message.created", |f| f["message"]["body"] == "Still there?").await;
    assert!(m["message"].get("attachments").is_none_or(|a| a.as_array().is_some_and(Vec::is_empty)), "{m}");
    let o = app.get(&format!("/api/v1/outbound/{}", bare["id"].as_str().unwrap()), &app.token).await.ok().unwrap();
    assert!(o.get("attachments").is_none(), "{o}");
    let r = app
        .post(
            &format!("/api/v1/outbound/{first_id}/follow-up"),
            &app.token,
            json!({"body": "x", "only": "not_ok", "attachments": [theirs["id"]]}),
        )
        .await;
    assert_eq!((r.status, r.field()), (422, "attachments.0"), "{}", r.body);

    // Deleting the template keeps the files the outbounds still list.
    assert_eq!(app.delete(&format!("/api/v1/templates/{tid}"), &app.token).await.status, 204);
    assert!(kept(&app, &guide).await && kept(&app, &new_logo).await);
    // A template nobody sent takes its files with it.
    let draft_file = upload(&app, "draft.txt", "text/plain", b"draft").await;
    let draft = app
        .post("/api/v1/templates", &app.token, json!({"kind": "chat", "title": "Draft", "body": "B", "attachments": [draft_file["id"]]}))
        .await
        .ok()
        .unwrap();
    assert_eq!(app.delete(&format!("/api/v1/templates/{}", draft["id"].as_str().unwrap()), &app.token).await.status, 204);
    assert!(!kept(&app, &draft_file).await);
}

async fn the_sweep_removes_files_nothing_took_up_and_strays_a_crash_left(backend: Backend) {
    use parley_engine::uploads::{Swept, sweep};
    let app = TestApp::spawn(backend).await;
    let (_, conversation, _widget) = visitor_in_chat(&app).await;
    let dir = &app.engine.uploads_dir;
    let sent = upload(&app, "sent.txt", "text/plain", b"sent").await;
    let r = app
        .post(&format!("/api/v1/conversations/{conversation}/messages"), &app.token, json!({"body": "x", "attachments": [sent["id"]]}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let templated = upload(&app, "templated.txt", "text/plain", b"templated").await;
    app.post("/api/v1/templates", &app.token, json!({"kind": "chat", "title": "T", "body": "B", "attachments": [templated["id"]]}))
        .await
        .ok()
        .unwrap();
    let forgotten = upload(&app, "forgotten.txt", "text/plain", b"picked, never sent").await;
    // What a crash leaves: a file whose row was never written, and a
    // half-written one; and a file that is not an upload at all.
    let (orphan, part, other) = (dir.join("ab".repeat(24)), dir.join(format!(".{}.part", "cd".repeat(24))), dir.join("README"));
    for p in [&orphan, &part, &other] {
        std::fs::write(p, "left over").unwrap();
    }
    let now = parley_engine::util::now_ms();

    // Within the grace period nothing is touched.
    let hour_ago = now - 3_600_000;
    let backdate = |p: &std::path::Path| {
        let old = std::time::UNIX_EPOCH + Duration::from_millis(hour_ago as u64 - 1000);
        std::fs::File::options().write(true).open(p).unwrap().set_modified(old).unwrap();
    };
    assert_eq!(sweep(&app.engine.db, dir, hour_ago).await.unwrap(), Swept::default());
    assert!(kept(&app, &forgotten).await && orphan.exists() && part.exists());

    // Past it, what nothing uses goes; what is used, or not ours, stays.
    for p in [&orphan, &part, &other] {
        backdate(p);
    }
    assert_eq!(sweep(&app.engine.db, dir, now + 1).await.unwrap(), Swept { unused: 1, stray: 2 });
    assert!(!kept(&app, &forgotten).await);
    assert!(!orphan.exists() && !part.exists());
    assert!(other.exists(), "a file not named like an upload is left alone");
    assert!(kept(&app, &sent).await && kept(&app, &templated).await);
    assert_eq!(sweep(&app.engine.db, dir, now + 1).await.unwrap(), Swept::default(), "nothing left to do");
}

async fn an_agent_attaches_files_in_the_inbox_and_the_visitor_sees_them_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = if backend.is_postgres() { "postgres" } else { "sqlite" };
    let app = TestApp::spawn(backend).await;
    // The files the agent picks, as they would be on their disk.
    let dir = app.data_dir.join("agent-desktop");
    std::fs::create_dir_all(&dir).unwrap();
    let (plan, notes) = (dir.join("floor plan.png"), dir.join("opening-notes.txt"));
    std::fs::write(&plan, PNG).unwrap();
    std::fs::write(&notes, "Doors open at nine.").unwrap();

    let visitor = driver.browser(1280, 800).await;
    visitor.goto(&app.url("/demo")).await.unwrap();
    wait_for(&visitor, "the widget to connect", "window.Parley && Parley._state && Parley._state().connected").await;
    visitor.execute("Parley('show')", vec![]).await.unwrap();
    send_in_widget(&visitor, "Can I see the floor plan?").await;
    wait_for(&visitor, "the ack", &in_widget("[data-testid=parley-message][data-message-id]")).await;

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    agent.wait().for_element(Locator::Css("[data-testid=conversation-row]")).await.unwrap().click().await.unwrap();
    wait_for(&agent, "the visitor's message", "document.querySelector('[data-testid=thread-message][data-author-type=person]')").await;

    // Both files at once: each uploads as soon as it is picked.
    let input = agent.find(Locator::Css("[data-testid=composer-attach-input]")).await.unwrap();
    input.send_keys(&format!("{}\n{}", plan.display(), notes.display())).await.unwrap();
    let done = "document.querySelectorAll('[data-testid=composer-attach-item][data-state=done]').length === 2";
    wait_for(&agent, "both uploads", done).await;
    let label = agent.execute("return document.querySelector('label[for=composer-attach-input]').textContent", vec![]).await.unwrap();
    assert_eq!(label, "Attach files");
    agent.find(Locator::Css("[data-testid=composer-input]")).await.unwrap().send_keys("Here it is, with our notes.\u{E007}").await.unwrap();

    // The thread shows the picture as a preview and the text file as a link.
    let sent = "document.querySelector('[data-testid=thread-message][data-author-type=teammate]')";
    wait_for(
        &agent,
        "the reply with its files",
        &format!("{sent} && {sent}.querySelectorAll('[data-testid=message-attachment]').length === 2"),
    )
    .await;
    wait_for(&agent, "the preview to load", &format!("{sent}.querySelector('img.msg-file-preview')?.naturalWidth === 24")).await;
    let link = agent
        .execute(&format!("const a = {sent}.querySelector('a[download]'); return [a.textContent, a.getAttribute('href')]"), vec![])
        .await
        .unwrap();
    assert!(link[0].as_str().unwrap().starts_with("opening-notes.txt"), "{link}");
    assert!(link[0].as_str().unwrap().ends_with("19 B"), "name and size: {link}");
    let cleared = agent.execute("return document.querySelectorAll('[data-testid=composer-attach-item]').length", vec![]).await.unwrap();
    assert_eq!(cleared, 0, "the composer is empty again");
    // The link the page shows downloads the file.
    let got = app.download(link[1].as_str().unwrap()).await;
    assert_eq!(got.bytes, b"Doors open at nine.");

    // The visitor's widget on the demo site shows them too, from our server.
    let files = in_widget("[data-testid=parley-message][data-author-type=teammate]");
    wait_for(
        &visitor,
        "the files in the widget",
        &format!("{files} && {files}.querySelectorAll('[data-testid=parley-attachment]').length === 2"),
    )
    .await;
    wait_for(&visitor, "the picture to load", &format!("{files}.querySelector('img')?.naturalWidth === 24")).await;
    let href = visitor.execute(&format!("return {files}.querySelector('a[download]').href"), vec![]).await.unwrap();
    assert_eq!(href.as_str(), Some(app.url(link[1].as_str().unwrap()).as_str()));
    let text = visitor.execute(&format!("return {files}.textContent"), vec![]).await.unwrap();
    assert!(
        text.as_str().unwrap().contains("Here it is, with our notes.") && text.as_str().unwrap().contains("opening-notes.txt"),
        "{text}"
    );

    screenshot(&agent, &format!("inbox-attachments-{tag}")).await;

    // An announcement from the outbound composer carries a file too; a
    // check-in offers none.
    let person_id =
        app.get("/api/v1/conversations", &app.token).await.ok().unwrap()["items"][0]["person"]["id"].as_str().unwrap().to_owned();
    app.patch(&format!("/api/v1/people/{person_id}"), &app.token, json!({"name": "Dana Demo"})).await.ok().unwrap();
    agent.goto(&app.url("/#/outbound/new")).await.unwrap();
    wait_for(
        &agent,
        "the composer's files",
        "document.querySelector('[data-testid=compose-attach-input]')?.closest('.attach')?.hidden === false",
    )
    .await;
    click(&agent, "[data-testid=compose-kind-checkin]").await;
    wait_for(&agent, "no files for a check-in", "document.querySelector('[data-testid=compose-attach-input]').closest('.attach').hidden")
        .await;
    click(&agent, "[data-testid=compose-kind-announcement]").await;
    quick_add(&agent, "Dana", &person_id).await;
    type_in(&agent, "[data-testid=compose-body]", "We open at nine from Monday.").await;
    agent.find(Locator::Css("[data-testid=compose-attach-input]")).await.unwrap().send_keys(&notes.display().to_string()).await.unwrap();
    wait_for(&agent, "the upload", "document.querySelectorAll('[data-testid=compose-attach-item][data-state=done]').length === 1").await;
    click(&agent, "[data-testid=compose-send]").await;
    let announced = in_widget("[data-testid=parley-message].k-announcement");
    wait_for(&visitor, "the announcement with its file", &format!("{announced}?.querySelector('[data-testid=parley-attachment]')")).await;
    let text = visitor.execute(&format!("return {announced}.textContent"), vec![]).await.unwrap();
    assert!(
        text.as_str().unwrap().contains("We open at nine from Monday.") && text.as_str().unwrap().contains("opening-notes.txt"),
        "{text}"
    );
    screenshot(&visitor, &format!("widget-attachments-{tag}")).await;
}

/// How many uploads of this name the database holds.
async fn uploads_named(app: &TestApp, name: &str) -> i64 {
    let q = "SELECT COUNT(*) FROM upload WHERE name = $1";
    match &app.engine.db {
        parley_engine::Db::Sqlite { read, .. } => sqlx::query_scalar(q).bind(name).fetch_one(read).await.unwrap(),
        parley_engine::Db::Postgres(pool) => sqlx::query_scalar(q).bind(name).fetch_one(pool).await.unwrap(),
    }
}

async fn in_a_real_browser_a_removed_file_is_deleted_and_a_template_and_follow_up_bring_their_files(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = if backend.is_postgres() { "postgres" } else { "sqlite" };
    let app = TestApp::spawn(backend).await;
    let person = app.post("/api/v1/people", &app.token, json!({"name": "Rosa Reader", "email": "rosa@customer.test"})).await.ok().unwrap();
    let person_id = person["id"].as_str().unwrap();
    let dir = app.data_dir.join("marketer-desktop");
    std::fs::create_dir_all(&dir).unwrap();
    let (wrong, guide) = (dir.join("wrong-file.txt"), dir.join("welcome-guide.txt"));
    std::fs::write(&wrong, "not this one").unwrap();
    std::fs::write(&guide, "Everything about your first week.").unwrap();

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    agent.goto(&app.url("/#/outbound/new")).await.unwrap();
    let input = "[data-testid=compose-attach-input]";
    wait_for(&agent, "the composer", &format!("document.querySelector('{input}')")).await;
    agent.find(Locator::Css(input)).await.unwrap().send_keys(&format!("{}\n{}", wrong.display(), guide.display())).await.unwrap();
    let done = |n: usize| format!("document.querySelectorAll('[data-testid=compose-attach-item][data-state=done]').length === {n}");
    wait_for(&agent, "both uploads", &done(2)).await;
    assert_eq!(uploads_named(&app, "wrong-file.txt").await, 1);

    // The wrong one is removed: it is deleted on the server, not left there.
    click(&agent, "[aria-label='Remove wrong-file.txt']").await;
    wait_for(&agent, "one file left", &done(1)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while uploads_named(&app, "wrong-file.txt").await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the removed file was not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Saved as a template, the file goes with it, and comes back with it.
    type_in(&agent, "[data-testid=compose-body]", "Welcome aboard, {{person.first_name}}!").await;
    type_in(&agent, "[data-testid=compose-title]", "Welcome pack").await;
    click(&agent, "[data-testid=compose-template-save]").await;
    wait_for(&agent, "saved", "document.querySelector('[data-testid=compose-template-status]').textContent === 'Saved “Welcome pack”'")
        .await;
    let templates = app.get("/api/v1/templates?kind=chat", &app.token).await.ok().unwrap();
    assert_eq!(templates[0]["attachments"][0]["name"], "welcome-guide.txt", "{templates}");
    let template_id = templates[0]["id"].as_str().unwrap().to_owned();

    agent.goto(&app.url("/#/outbound")).await.unwrap();
    agent.goto(&app.url("/#/outbound/new")).await.unwrap();
    wait_for(&agent, "the templates", &format!("document.querySelector('[data-testid=compose-template] option[value=\"{template_id}\"]')"))
        .await;
    wait_for(&agent, "an empty composer", &done(0)).await;
    choose(&agent, "[data-testid=compose-template]", &template_id).await;
    wait_for(&agent, "loaded", "document.querySelector('[data-testid=compose-template-status]').textContent === 'Loaded “Welcome pack”'")
        .await;
    wait_for(
        &agent,
        "the template's file",
        "Array.from(document.querySelectorAll('[data-testid=compose-attach-item][data-state=done]')).map(e => e.querySelector('.attach-name').textContent).join() === 'welcome-guide.txt'",
    )
    .await;
    click(&agent, "[data-testid=compose-option-are_you_ok]").await;
    quick_add(&agent, "Rosa", person_id).await;
    click(&agent, "[data-testid=compose-send]").await;

    // The send's page shows the file, and its follow-up starts with it.
    wait_for(&agent, "the send's page", "/^#\\/outbound\\/[^/]+$/.test(location.hash) && !location.hash.endsWith('/new')").await;
    let first = agent.execute("return location.hash.split('/')[2]", vec![]).await.unwrap().as_str().unwrap().to_owned();
    wait_for(
        &agent,
        "the sent file",
        "document.querySelector('.sent-message [data-testid=message-attachment]')?.textContent.includes('welcome-guide.txt')",
    )
    .await;
    wait_for(
        &agent,
        "the follow-up's file",
        "document.querySelector('[data-testid=follow-attach-item][data-state=done] .attach-name')?.textContent === 'welcome-guide.txt'",
    )
    .await;
    screenshot(&agent, &format!("outbound-follow-up-files-{tag}")).await;
    choose(&agent, "[data-testid=outbound-follow-only]", "not_ok").await;
    click(&agent, "[data-testid=outbound-follow-up]").await;
    wait_for(&agent, "the follow-up's page", &format!("location.hash.startsWith('#/outbound/') && !location.hash.includes('{first}')"))
        .await;
    let second = agent.execute("return location.hash.split('/')[2]", vec![]).await.unwrap().as_str().unwrap().to_owned();
    let o = app.get(&format!("/api/v1/outbound/{second}"), &app.token).await.ok().unwrap();
    assert_eq!(
        (o["follow_up_of"].as_str(), o["attachments"][0]["name"].as_str()),
        (Some(first.as_str()), Some("welcome-guide.txt")),
        "{o}"
    );
    assert_eq!(uploads_named(&app, "welcome-guide.txt").await, 1, "one file, used by the template and both sends");
}
