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
use super::browser_app::{click, quick_add, type_in};

on_both_backends!(
    an_uploaded_file_downloads_as_it_was_and_html_or_svg_only_as_a_download,
    bad_uploads_name_the_field_and_unknown_links_are_not_found,
    an_announcement_with_a_file_reaches_the_visitors_widget_and_its_link_downloads_it,
    a_foreign_or_unknown_upload_is_refused_at_its_index_and_nothing_is_sent,
    a_reply_with_only_a_file_reaches_both_sockets_and_its_missed_email_links_it,
    an_agent_attaches_files_in_the_inbox_and_the_visitor_sees_them_in_a_real_browser,
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

    // A deleted message shows its files no more; deleting the conversation
    // takes their links with it, and the upload stays for other messages.
    let deleted = app.delete(&format!("/api/v1/messages/{}", sent.body["id"].as_str().unwrap()), &app.token).await;
    assert_eq!(deleted.status, 204);
    let thread = app.thread(&conversation).await;
    assert!(thread.iter().all(|m| m["id"] != sent.body["id"]), "the deleted message is gone");
    assert_eq!(app.delete(&format!("/api/v1/conversations/{conversation}"), &app.token).await.status, 204);
    assert_eq!(app.download(&url).await.status, 200);
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
