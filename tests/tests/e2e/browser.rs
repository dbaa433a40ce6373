//! The demo site's widget and the inbox page, in headless Chromium.

use fantoccini::{Client, Locator};
use parley_tests::browser::{Driver, screenshot, wait_for};
use parley_tests::{ADMIN_PASSWORD, Backend, TestApp, on_both_backends};

on_both_backends!(
    a_visitor_on_the_demo_site_and_an_agent_in_the_inbox_chat_in_real_browsers,
    a_person_unsubscribes_from_the_link_in_their_email_in_a_real_browser,
    a_person_answers_a_checkin_from_the_link_in_their_email_in_a_real_browser,
);

/// A JS expression for an element inside the widget's shadow root.
pub(crate) fn in_widget(selector: &str) -> String {
    format!("document.getElementById('parley-widget').shadowRoot.querySelector('{selector}')")
}

/// Types `text` into the widget's input and presses Send, as a visitor does.
pub(crate) async fn send_in_widget(c: &Client, text: &str) {
    let script = format!(
        "const i = {}; i.value = arguments[0]; i.dispatchEvent(new Event('input', {{bubbles: true}})); {}.click();",
        in_widget("[data-testid=parley-input]"),
        in_widget("[data-testid=parley-send]")
    );
    c.execute(&script, vec![text.into()]).await.unwrap();
}

/// Signs the admin in to the web app and waits for its socket.
pub(crate) async fn log_in(agent: &Client, app: &TestApp) {
    agent.goto(&app.url("/")).await.unwrap();
    agent.wait().for_element(Locator::Css("[data-testid=login-email]")).await.unwrap().send_keys(&app.admin_email).await.unwrap();
    agent.find(Locator::Css("[data-testid=login-password]")).await.unwrap().send_keys(ADMIN_PASSWORD).await.unwrap();
    agent.find(Locator::Css("[data-testid=login-submit]")).await.unwrap().click().await.unwrap();
    wait_for(agent, "the inbox socket", "window.__parley && window.__parley.connected").await;
}

async fn a_visitor_on_the_demo_site_and_an_agent_in_the_inbox_chat_in_real_browsers(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = if backend.is_postgres() { "postgres" } else { "sqlite" };
    let app = TestApp::spawn(backend).await;

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;

    // A reload asks for who is signed in and for the inbox's first lists
    // once each (the page asks while its modules load, the app takes the
    // answers over), and fetches no other section's code until it opens.
    agent.refresh().await.unwrap();
    wait_for(&agent, "the inbox socket after a reload", "window.__parley && window.__parley.connected").await;
    let asked = "['/auth/me', '/teammates', '/teams', '/conversations?status=open&archived=false']
        .map(p => performance.getEntriesByName(location.origin + '/api/v1' + p).length)";
    // An answer is listed once it has arrived.
    wait_for(&agent, "the inbox's answers", &format!("{asked}.every(n => n > 0)")).await;
    let asked = agent.execute(&format!("return {asked}"), vec![]).await.unwrap();
    assert_eq!(asked, serde_json::json!([1, 1, 1, 1]), "each asked for once");
    let section_code =
        "return performance.getEntriesByType('resource').filter(e => /\\/(people|filter|settings)\\.js$/.test(e.name)).length";
    assert_eq!(agent.execute(section_code, vec![]).await.unwrap(), 0, "the inbox loads without the other sections' code");
    agent.find(Locator::Css("[data-testid=nav-people]")).await.unwrap().click().await.unwrap();
    wait_for(&agent, "the People page", "document.querySelector('[data-testid=people-total]')?.dataset.total").await;
    assert_eq!(agent.execute(section_code, vec![]).await.unwrap(), 2, "People's code arrives when it opens");
    agent.find(Locator::Css("[data-testid=nav-inbox]")).await.unwrap().click().await.unwrap();

    let visitor = driver.browser(1280, 800).await;
    visitor.goto(&app.url("/demo")).await.unwrap();
    wait_for(&visitor, "the widget to connect", "window.Parley && Parley._state && Parley._state().connected").await;
    // The host page's hostile CSS must not reach the widget.
    visitor.execute("Parley('show')", vec![]).await.unwrap();
    wait_for(
        &visitor,
        "the panel",
        &format!("{} && !{}.hidden", in_widget("[data-testid=parley-panel]"), in_widget("[data-testid=parley-panel]")),
    )
    .await;
    // The demo page sets `* { font-family: serif !important; color: red }`.
    let style = visitor
        .execute(
            &format!("const s = getComputedStyle({}); return [s.fontFamily, s.color]", in_widget("[data-testid=parley-input]")),
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(style[0], "serif", "host CSS leaked into the widget: {style}");
    assert_ne!(style[1], "rgb(255, 0, 0)", "host CSS leaked into the widget: {style}");
    let host_color = visitor
        .execute("const s = document.createElement('span'); document.body.appendChild(s); return getComputedStyle(s).color", vec![])
        .await
        .unwrap();
    assert_eq!(host_color, "rgb(255, 0, 0)", "the demo page's hostile CSS is in force outside the widget");

    // The visitor types a message that looks like markup.
    let text = "<img src=x onerror=alert(1)> Hi, can you help me?";
    send_in_widget(&visitor, text).await;
    wait_for(&visitor, "the ack", &in_widget("[data-testid=parley-message][data-message-id]")).await;

    // The inbox shows the conversation live, unread, with a tone and a flashing title.
    wait_for(&agent, "the conversation row", "document.querySelector('[data-testid=conversation-row]')").await;
    let unread = wait_for(&agent, "the unread count", "document.querySelector('[data-testid=conversation-row]').dataset.unread").await;
    assert_eq!(unread, "1");
    wait_for(&agent, "the tone", "window.__parley.tonesPlayed > 0").await;
    wait_for(&agent, "the title flash", "window.__parley.titleFlashing").await;

    agent.find(Locator::Css("[data-testid=conversation-row]")).await.unwrap().click().await.unwrap();
    let shown = wait_for(&agent, "the message in the thread", "document.querySelector('[data-testid=thread-message][data-author-type=person]') && document.querySelector('[data-testid=thread-message][data-author-type=person]').textContent").await;
    assert!(shown.as_str().unwrap().contains(text), "the markup shows as text: {shown}");
    let injected = agent.execute("return document.querySelectorAll('[data-testid=thread-message] img').length", vec![]).await.unwrap();
    assert_eq!(injected, 0, "no element was injected from the message body");

    // The agent answers with Enter.
    let composer = agent.find(Locator::Css("[data-testid=composer-input]")).await.unwrap();
    composer.send_keys("Of course! What do you need?\u{E007}").await.unwrap();
    wait_for(&agent, "the reply in the thread", "document.querySelector('[data-testid=thread-message][data-author-type=teammate]')").await;

    // The widget shows the reply from the agent.
    let reply = wait_for(
        &visitor,
        "the reply in the widget",
        &format!(
            "{} && {}.textContent",
            in_widget("[data-testid=parley-message][data-author-type=teammate]"),
            in_widget("[data-testid=parley-message][data-author-type=teammate]")
        ),
    )
    .await;
    assert!(reply.as_str().unwrap().contains("Of course! What do you need?"), "{reply}");
    let shown_own = visitor
        .execute(&format!("return {}.textContent", in_widget("[data-testid=parley-message][data-author-type=person]")), vec![])
        .await
        .unwrap();
    assert!(shown_own.as_str().unwrap().contains(text), "the visitor's markup shows as text too");
    let widget_imgs = visitor
        .execute(&format!("return {}.querySelectorAll('img').length", in_widget("[data-testid=parley-panel]")), vec![])
        .await
        .unwrap();
    assert_eq!(widget_imgs, 0);

    screenshot(&visitor, &format!("demo-widget-{tag}")).await;
    screenshot(&agent, &format!("inbox-thread-{tag}")).await;

    // The agent typing shows in the widget.
    let composer = agent.find(Locator::Css("[data-testid=composer-input]")).await.unwrap();
    composer.send_keys("Let me check").await.unwrap();
    let typing =
        wait_for(&visitor, "the typing indicator", &format!("!{0}.hidden && {0}.textContent", in_widget("[data-testid=parley-typing]")))
            .await;
    assert!(typing.as_str().unwrap().contains("Admin"), "{typing}");

    // With the panel closed, a reply raises the unread badge; opening clears it.
    visitor.execute("Parley('hide')", vec![]).await.unwrap();
    composer.send_keys(" - found it!\u{E007}").await.unwrap();
    let badge =
        wait_for(&visitor, "the unread badge", &format!("!{0}.hidden && {0}.textContent", in_widget("[data-testid=parley-badge]"))).await;
    assert_eq!(badge, "1");
    visitor.execute("Parley('show')", vec![]).await.unwrap();
    wait_for(&visitor, "the badge to clear", &format!("{}.hidden", in_widget("[data-testid=parley-badge]"))).await;

    let list = app.get("/api/v1/conversations", &app.token).await.ok().unwrap();
    let cid = list["items"][0]["id"].as_str().unwrap().to_owned();
    let bodies: Vec<_> = app.thread(&cid).await.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies, [text, "Of course! What do you need?", "Let me check - found it!"]);

    // Assign to oneself from the header, close, reopen.
    let select = agent.find(Locator::Css("[data-testid=assignee-select]")).await.unwrap();
    select.select_by_value(&app.admin_id).await.unwrap();
    for _ in 0..50 {
        let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
        if c["assignee"]["id"] == app.admin_id.as_str() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["assignee"]["id"], app.admin_id.as_str(), "assigned from the inbox");
    agent.find(Locator::Css("[data-testid=close-button]")).await.unwrap().click().await.unwrap();
    wait_for(&agent, "the reopen button", "!document.querySelector('[data-testid=reopen-button]').hidden").await;
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["status"], "closed");
    agent.find(Locator::Css("[data-testid=reopen-button]")).await.unwrap().click().await.unwrap();
    wait_for(&agent, "the close button", "!document.querySelector('[data-testid=close-button]').hidden").await;
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["status"], "open");

    // The server restarts; a reply is written while the widget is away; the
    // widget reconnects on its own and resumes, missing nothing.
    let (addr, data_dir, backend) = (app.addr, app.data_dir.clone(), app.backend.clone());
    let mut app = app;
    app.stop().await;
    wait_for(&visitor, "the widget to notice", "!Parley._state().connected").await;
    let mut away = TestApp::spawn_in(backend.clone(), data_dir.clone()).await;
    away.post(&format!("/api/v1/conversations/{cid}/messages"), &away.token, serde_json::json!({"body": "Sent while you were away"}))
        .await
        .ok()
        .unwrap();
    away.stop().await;
    let back = TestApp::spawn_at(backend, data_dir, addr).await;
    wait_for(&visitor, "the widget to reconnect", "Parley._state().connected").await;
    wait_for(
        &visitor,
        "the missed reply",
        &format!(
            "Array.from({}.querySelectorAll('[data-testid=parley-message]')).some(m => m.textContent.includes('Sent while you were away'))",
            in_widget("[data-testid=parley-panel]")
        ),
    )
    .await;
    let shown = visitor
        .execute(
            &format!("return {}.querySelectorAll('[data-testid=parley-message]').length", in_widget("[data-testid=parley-panel]")),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown, 4, "each message once, none lost or doubled");
    screenshot(&visitor, &format!("demo-widget-after-restart-{tag}")).await;
    drop(back);

    visitor.close().await.unwrap();
    agent.close().await.unwrap();
}

async fn a_person_unsubscribes_from_the_link_in_their_email_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = if backend.is_postgres() { "postgres" } else { "sqlite" };
    let app = TestApp::spawn(backend).await;
    let email = format!("una-{}@customer.test", uuid::Uuid::now_v7().simple());
    let p = app.post("/api/v1/people", &app.token, serde_json::json!({"email": email, "name": "Una"})).await.ok().unwrap();
    let person = p["id"].as_str().unwrap().to_owned();
    app.automation(
        serde_json::json!({"name": "News", "trigger": "event.news", "script": r#"send_email("News", "Hello {{person.first_name}}");"#}),
    )
    .await;
    let t = app.post("/api/v1/events", &app.token, serde_json::json!({"person": {"email": email}, "name": "news"})).await;
    assert_eq!(t.status, 202);
    let mail = parley_tests::outside::Smtp::shared().wait_for(&email, 1, std::time::Duration::from_secs(15)).await.remove(0);
    let link = mail.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']).to_owned();

    // What the person sees: a question and a button, then the answer.
    let browser = driver.browser(420, 700).await;
    browser.goto(&link).await.unwrap();
    let heading = browser.wait().for_element(Locator::Css("h1")).await.unwrap().text().await.unwrap();
    assert_eq!(heading, "Unsubscribe");
    let body = browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(body.contains(&email), "{body}");
    screenshot(&browser, &format!("unsubscribe-ask-{tag}")).await;
    browser.find(Locator::Css("[data-testid=unsubscribe]")).await.unwrap().click().await.unwrap();
    wait_for(
        &browser,
        "the confirmation",
        "document.querySelector('h1') && document.querySelector('h1').textContent === 'You are unsubscribed'",
    )
    .await;
    screenshot(&browser, &format!("unsubscribe-done-{tag}")).await;
    let p = app.get(&format!("/api/v1/people/{person}"), &app.token).await.ok().unwrap();
    assert_eq!(p["unsubscribed"], true);
    browser.close().await.unwrap();
}

async fn a_person_answers_a_checkin_from_the_link_in_their_email_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = if backend.is_postgres() { "postgres" } else { "sqlite" };
    let app = TestApp::spawn(backend).await;
    let email = format!("olu-{}@customer.test", uuid::Uuid::now_v7().simple());
    let p = app.post("/api/v1/people", &app.token, serde_json::json!({"email": email, "name": "Olu Ade"})).await.ok().unwrap();
    let person = p["id"].as_str().unwrap().to_owned();
    let o = app
        .post(
            "/api/v1/outbound",
            &app.token,
            serde_json::json!({
                "kind": "checkin", "title": "Flood warning", "body": "Are you OK, {{person.first_name}}?",
                "channels": ["chat", "email"], "audience": {"people": [person]},
            }),
        )
        .await
        .ok()
        .unwrap();
    let id = o["id"].as_str().unwrap().to_owned();
    let mail = parley_tests::outside::Smtp::shared().wait_for(&email, 1, std::time::Duration::from_secs(15)).await.remove(0);
    let text = mail.text();
    let link = text.split_whitespace().find(|w| w.contains("/c/")).unwrap().to_owned();

    // The link opens the chat on its own page, full width on a phone.
    let browser = driver.browser(420, 800).await;
    browser.goto(&link).await.unwrap();
    let message = in_widget("[data-testid=parley-message][data-author-type=teammate]");
    let body = wait_for(&browser, "the check-in", &format!("{message} && {message}.querySelector('.b').textContent")).await;
    assert_eq!(body, "Are you OK, Olu?");
    let launcher_shown =
        browser.execute(&format!("return getComputedStyle({}).display", in_widget("[data-testid=parley-launcher]")), vec![]).await.unwrap();
    assert_eq!(launcher_shown, "none", "the link page is the chat itself");
    let width = browser
        .execute(&format!("return {}.getBoundingClientRect().width", in_widget("[data-testid=parley-panel]")), vec![])
        .await
        .unwrap();
    assert!(width.as_f64().unwrap() >= 400.0, "the panel fills the phone's width: {width}");
    wait_for(&browser, "the socket", "window.Parley && Parley._state && Parley._state().connected").await;
    screenshot(&browser, &format!("checkin-link-{tag}")).await;

    // "I'm OK" is counted, and stays answered after a reload.
    browser.execute(&format!("{message}.querySelector('.bs button').click()"), vec![]).await.unwrap();
    wait_for(&browser, "the answer in the chat", &in_widget("[data-testid=parley-message][data-author-type=person][data-message-id]"))
        .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = app.get(&format!("/api/v1/outbound/{id}"), &app.token).await.ok().unwrap();
        if o["ok"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the OK was not counted: {o}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.refresh().await.unwrap();
    let answered = format!("{message} && {message}.querySelector('.bs button.on') && {message}.querySelector('.bs button').disabled");
    wait_for(&browser, "the answered check-in", &answered).await;

    // A reply typed on the link page lands in that same conversation.
    wait_for(&browser, "the socket", "window.Parley && Parley._state && Parley._state().connected").await;
    send_in_widget(&browser, "We are fine, water at the door").await;
    let deliveries = app.get(&format!("/api/v1/outbound/{id}/deliveries?channel=chat"), &app.token).await.ok().unwrap();
    let conversation = deliveries["items"][0]["conversation_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let thread = app.thread(&conversation).await;
        if thread.last().is_some_and(|m| m["body"] == "We are fine, water at the door") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the reply did not arrive: {thread:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    screenshot(&browser, &format!("checkin-answered-{tag}")).await;
    browser.close().await.unwrap();
}
