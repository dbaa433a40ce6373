//! The web app's People, Profile and Outbound sections, clicked through in
//! headless Chromium: filter people and message a segment, a check-in answered
//! from its link and followed up, a profile edited, and API errors shown where
//! the user acted.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use parley_tests::browser::{Driver, screenshot, wait_for};
use parley_tests::outside::Smtp;
use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

use super::browser::{in_widget, log_in};

on_both_backends!(
    filtering_people_saving_a_segment_and_messaging_it_reaches_their_widgets_in_a_real_browser,
    a_checkin_sent_from_the_composer_is_answered_counted_and_followed_up_in_a_real_browser,
    a_profile_is_edited_and_shows_its_timeline_and_conversations_in_a_real_browser,
    api_errors_are_shown_next_to_the_field_in_a_real_browser,
    an_area_drawn_on_the_map_finds_the_people_inside_it_in_a_real_browser,
    a_nested_any_of_group_in_the_filter_builder_finds_the_people_it_says_in_a_real_browser,
    a_template_saved_with_its_recipients_is_found_by_title_and_loaded_into_a_new_message_in_a_real_browser,
);

pub(crate) fn tag(backend: &Backend) -> &'static str {
    if backend.is_postgres() { "postgres" } else { "sqlite" }
}

pub(crate) fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::now_v7().simple())
}

pub(crate) async fn el(c: &Client, css: &str) -> Element {
    c.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"))
}

/// Clicks what `css` finds. A live update can draw that part of the page
/// anew between finding the element and clicking it, as a user would see it
/// redrawn; the element is then found again rather than failing the test.
pub(crate) async fn click(c: &Client, css: &str) {
    for _ in 0..3 {
        match el(c, css).await.click().await {
            Ok(()) => return,
            Err(e) if e.to_string().contains("stale element") => continue,
            Err(e) => panic!("clicking {css}: {e}"),
        }
    }
    panic!("clicking {css}: redrawn each time it was found");
}

pub(crate) async fn type_in(c: &Client, css: &str, text: &str) {
    el(c, css).await.send_keys(text).await.unwrap_or_else(|e| panic!("typing into {css}: {e}"));
}

pub(crate) async fn choose(c: &Client, css: &str, value: &str) {
    el(c, css).await.select_by_value(value).await.unwrap_or_else(|e| panic!("choosing {value} in {css}: {e}"));
}

pub(crate) async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The `data-*` attribute `attr` of every element matching `css`, sorted.
async fn attrs(c: &Client, css: &str, attr: &str) -> BTreeSet<String> {
    let v = js(c, &format!("return Array.from(document.querySelectorAll('{css}')).map(e => e.dataset.{attr})")).await;
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap_or_default().to_owned()).collect()
}

async fn person(app: &TestApp, body: Value) -> String {
    let p = app.post("/api/v1/people", &app.token, body).await.ok().unwrap();
    p["id"].as_str().unwrap().to_owned()
}

/// Opens a section from the navigation, as a user would.
pub(crate) async fn open_section(c: &Client, key: &str) {
    click(c, &format!("[data-testid=nav-{key}]")).await;
}

/// The outbound id the page shows (`#/outbound/{id}`), once it is not `previous`.
async fn outbound_in_url(c: &Client, previous: Option<&str>) -> String {
    let not = previous.map(|p| format!(" && location.hash !== '#/outbound/{p}'")).unwrap_or_default();
    let page = format!("/^#\\/outbound\\/./.test(location.hash) && location.hash !== '#/outbound/new'{not} && location.hash");
    let hash = wait_for(c, "an outbound page", &page).await;
    hash.as_str().unwrap().trim_start_matches("#/outbound/").to_owned()
}

/// Adds a person to the composer's recipients through quick add.
pub(crate) async fn quick_add(c: &Client, name: &str, id: &str) {
    type_in(c, "[data-testid=compose-recipient-input]", name).await;
    click(c, &format!("[data-testid=compose-suggestion][data-id='{id}']")).await;
    wait_for(
        c,
        "the chip",
        &format!("Array.from(document.querySelectorAll('[data-testid=compose-chip]')).some(e => e.textContent.includes('{name}'))"),
    )
    .await;
}

async fn filtering_people_saving_a_segment_and_messaging_it_reaches_their_widgets_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;

    // A dozen people: five on the pro plan. Ann is on the site with the widget open.
    let names = [
        "Ann Lee",
        "Bo Chen",
        "Cy Diaz",
        "Di Evans",
        "Ed Fox",
        "Flo Gray",
        "Gus Hill",
        "Hal Ito",
        "Ivy Jones",
        "Jo King",
        "Kim Lu",
        "Lia Moss",
    ];
    let mut ids = Vec::new();
    let mut pro = BTreeSet::new();
    let ann_ext = unique("ann");
    for (i, name) in names.iter().enumerate() {
        let plan = if i % 2 == 0 && i < 10 { "pro" } else { "free" };
        let ext = if i == 0 { ann_ext.clone() } else { unique("user") };
        let id = person(
            &app,
            json!({"external_id": ext, "name": name, "email": format!("{}@customer.test", unique("p")), "city": "Lyon", "attributes": {"plan": plan}}),
        )
        .await;
        if plan == "pro" {
            pro.insert(id.clone());
        }
        ids.push(id);
    }
    assert_eq!(pro.len(), 5);
    let (ann_token, ann) = app.visitor_with(json!({"user_id": ann_ext})).await;
    assert_eq!(ann, ids[0], "the widget session is the seeded Ann");
    let mut ann_ws = app.widget_ws(&ann_token).await;

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    open_section(&agent, "people").await;
    let total = wait_for(&agent, "everyone", "document.querySelector('[data-testid=people-total]')?.dataset.total === '12' && 12").await;
    assert_eq!(total, 12);
    assert_eq!(attrs(&agent, "[data-testid=people-row]", "personId").await.len(), 12);

    // Filter: plan is pro.
    click(&agent, "[data-testid=filter-add-condition]").await;
    choose(&agent, "[data-testid=filter-field]", "attributes.plan").await;
    choose(&agent, "[data-testid=filter-op]", "eq").await;
    type_in(&agent, "[data-testid=filter-value]", "pro").await;
    click(&agent, "[data-testid=filter-apply]").await;
    wait_for(&agent, "the pro total", "document.querySelector('[data-testid=people-total]')?.dataset.total === '5'").await;
    wait_for(&agent, "five rows", "document.querySelectorAll('[data-testid=people-row]').length === 5").await;
    assert_eq!(attrs(&agent, "[data-testid=people-row]", "personId").await, pro, "the table shows exactly the pro people");

    // Save it as a segment; it is listed with its count.
    type_in(&agent, "[data-testid=segment-name]", "Pro plan").await;
    click(&agent, "[data-testid=segment-save]").await;
    wait_for(&agent, "the segment note", "document.querySelector('[data-testid=people-segment]').textContent === 'Segment: Pro plan'")
        .await;
    let listed = wait_for(
        &agent,
        "the segment in the list",
        "Array.from(document.querySelectorAll('[data-testid=segment-open]')).map(b => b.textContent).join('|')",
    )
    .await;
    assert!(listed.as_str().unwrap().contains("Pro plan5"), "{listed}");
    let segments = app.get("/api/v1/segments", &app.token).await.ok().unwrap();
    let seg = segments.as_array().unwrap().iter().find(|s| s["name"] == "Pro plan").unwrap().clone();
    assert_eq!(seg["filter"], json!({"and": [{"field": "attributes.plan", "op": "eq", "value": "pro"}]}));
    screenshot(&agent, &format!("app-people-filtered-{tag}")).await;

    // Cleared, everyone is back; the segment reopens with its filter.
    click(&agent, "[data-testid=filter-clear]").await;
    wait_for(&agent, "everyone again", "document.querySelector('[data-testid=people-total]')?.dataset.total === '12'").await;
    click(&agent, "[data-testid=segment-open]").await;
    wait_for(&agent, "the segment's people", "document.querySelector('[data-testid=people-total]')?.dataset.total === '5'").await;
    let value = js(&agent, "return document.querySelector('[data-testid=filter-value]').value").await;
    assert_eq!(value, "pro", "the segment's filter is back in the builder");
    wait_for(&agent, "the segment note", "document.querySelector('[data-testid=people-segment]').textContent === 'Segment: Pro plan'")
        .await;

    // Phone width: the same page, one column.
    agent.set_window_size(375, 812).await.unwrap();
    screenshot(&agent, &format!("app-people-phone-{tag}")).await;
    agent.set_window_size(1280, 800).await.unwrap();

    // "Send a message" opens the composer with the segment as recipients.
    click(&agent, "[data-testid=people-send]").await;
    wait_for(&agent, "the composer", "location.hash === '#/outbound/new'").await;
    let chip =
        wait_for(&agent, "the segment chip", "document.querySelector('[data-testid=compose-chip][data-type=segment]')?.textContent").await;
    assert!(chip.as_str().unwrap().contains("Pro plan"), "{chip}");

    // A personalised chat, previewed for one of them.
    type_in(&agent, "[data-testid=compose-title]", "News for {{person.first_name}}").await;
    type_in(&agent, "[data-testid=compose-body]", "Hi ").await;
    choose(&agent, "[data-testid=compose-snippet]", "{{person.first_name}}").await;
    let body = js(&agent, "return document.querySelector('[data-testid=compose-body]').value").await;
    assert_eq!(body, "Hi {{person.first_name}}", "the snippet picker inserts at the cursor");
    wait_for(&agent, "sample recipients", "document.querySelector('[data-testid=compose-preview-person]').value").await;
    let expected = js(&agent, "const s = document.querySelector('[data-testid=compose-preview-person]'); return 'Hi ' + s.selectedOptions[0].textContent.split(' ')[0]").await;
    let shown = wait_for(
        &agent,
        "the preview",
        &format!("document.querySelector('[data-testid=compose-preview]').textContent === {expected} && document.querySelector('[data-testid=compose-preview]').textContent"),
    )
    .await;
    assert_eq!(shown, expected);
    screenshot(&agent, &format!("app-composer-{tag}")).await;

    // Send; the progress bar reaches done.
    click(&agent, "[data-testid=compose-send]").await;
    let id = outbound_in_url(&agent, None).await;
    wait_for(&agent, "done", "document.querySelector('[data-testid=outbound-progress]')?.dataset.status === 'sent'").await;
    let pct = js(&agent, "return document.querySelector('[data-testid=outbound-progress]').getAttribute('aria-valuenow')").await;
    assert_eq!(pct, "100");
    let o = app.get(&format!("/api/v1/outbound/{id}"), &app.token).await.ok().unwrap();
    assert_eq!(o["recipients"], 5, "{o}");
    assert_eq!(o["audience"]["segments"][0], seg["id"], "{o}");

    // Ann's widget receives it with her own first name.
    let m = ann_ws.next_of("message.created").await;
    assert_eq!(m["message"]["body"], "Hi Ann", "{m}");

    // The message log shows her delivery, and filters by channel.
    wait_for(&agent, "Ann's delivery", &format!("document.querySelector('[data-testid=delivery-row][data-person-id=\"{ann}\"]')")).await;
    assert_eq!(attrs(&agent, "[data-testid=delivery-row]", "personId").await, pro);
    choose(&agent, "[data-testid=outbound-log-status]", "failed").await;
    wait_for(&agent, "no failures", "document.querySelectorAll('[data-testid=delivery-row]').length === 0").await;
    choose(&agent, "[data-testid=outbound-log-status]", "").await;
    wait_for(&agent, "the log again", "document.querySelectorAll('[data-testid=delivery-row]').length === 5").await;
    screenshot(&agent, &format!("app-outbound-sent-{tag}")).await;

    // The list of sends shows it; reload and back work on the hash routes.
    open_section(&agent, "outbound").await;
    wait_for(&agent, "the send in the list", &format!("document.querySelector('[data-testid=outbound-row][data-outbound-id=\"{id}\"]')"))
        .await;
    screenshot(&agent, &format!("app-outbound-list-{tag}")).await;
    agent.back().await.unwrap();
    wait_for(
        &agent,
        "the send's page again",
        &format!("location.hash === '#/outbound/{id}' && document.querySelector('[data-testid=outbound-progress]')"),
    )
    .await;
    agent.refresh().await.unwrap();
    wait_for(
        &agent,
        "the send's page after a reload",
        "document.querySelector('[data-testid=outbound-progress]')?.dataset.status === 'sent'",
    )
    .await;
    ann_ws.close().await;
    agent.close().await.unwrap();
}

async fn a_checkin_sent_from_the_composer_is_answered_counted_and_followed_up_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let people: Vec<(String, String)> =
        ["Ann", "Bob", "Cy"].iter().map(|n| (n.to_string(), format!("{}@customer.test", unique(n)))).collect();
    let mut ids = Vec::new();
    for (name, email) in &people {
        ids.push(person(&app, json!({"name": format!("{name} Storm"), "email": email})).await);
    }

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    open_section(&agent, "outbound").await;
    click(&agent, "[data-testid=outbound-new]").await;
    click(&agent, "[data-testid=compose-kind-checkin]").await;
    for ((name, _), id) in people.iter().zip(&ids) {
        quick_add(&agent, name, id).await;
    }
    type_in(&agent, "[data-testid=compose-title]", "Storm warning").await;
    type_in(&agent, "[data-testid=compose-body]", "{{person.first_name}}, are you OK?").await;
    click(&agent, "[data-testid=compose-channel-email]").await;
    // Saved as a template, it can be loaded again.
    click(&agent, "[data-testid=compose-template-save]").await;
    wait_for(
        &agent,
        "the template saved",
        "document.querySelector('[data-testid=compose-template-status]').textContent === 'Saved “Storm warning”'",
    )
    .await;
    let templates = app.get("/api/v1/templates?kind=chat", &app.token).await.ok().unwrap();
    let template = templates.as_array().unwrap().iter().find(|t| t["title"] == "Storm warning").unwrap().clone();
    assert_eq!(template["body"], "{{person.first_name}}, are you OK?");
    assert_eq!(template["channels"], json!(["chat", "email"]));
    let template_id = template["id"].as_str().unwrap().to_owned();
    wait_for(
        &agent,
        "the template listed",
        &format!("document.querySelector('[data-testid=compose-template] option[value=\"{template_id}\"]')"),
    )
    .await;
    wait_for(
        &agent,
        "the preview",
        "/^(Ann|Bob|Cy), are you OK\\?$/.test(document.querySelector('[data-testid=compose-preview]').textContent)",
    )
    .await;
    click(&agent, "[data-testid=compose-send]").await;
    let id = outbound_in_url(&agent, None).await;
    wait_for(&agent, "sent", "document.querySelector('[data-testid=outbound-progress]')?.dataset.status === 'sent'").await;
    wait_for(&agent, "no OK yet", "document.querySelector('[data-testid=outbound-ok]').textContent === '0'").await;
    let o = app.get(&format!("/api/v1/outbound/{id}"), &app.token).await.ok().unwrap();
    assert_eq!((o["kind"].as_str(), o["recipients"].as_i64()), (Some("checkin"), Some(3)), "{o}");

    // Ann opens the link in her email and presses "I'm OK".
    let mail = Smtp::shared().wait_for(&people[0].1, 1, Duration::from_secs(15)).await.remove(0);
    let link = mail.text().split_whitespace().find(|w| w.contains("/c/")).unwrap().to_owned();
    let phone = driver.browser(420, 800).await;
    phone.goto(&link).await.unwrap();
    let message = in_widget("[data-testid=parley-message][data-author-type=teammate]");
    wait_for(&phone, "the check-in", &format!("{message} && {message}.querySelector('.bs button')")).await;
    wait_for(&phone, "the socket", "window.Parley && Parley._state && Parley._state().connected").await;
    phone.execute(&format!("{message}.querySelector('.bs button').click()"), vec![]).await.unwrap();

    // The count goes up on the outbound page, live.
    wait_for(&agent, "one OK", "document.querySelector('[data-testid=outbound-ok]').textContent === '1'").await;
    let not_ok = js(&agent, "return document.querySelector('[data-testid=outbound-not-ok]').textContent").await;
    assert_eq!(not_ok, "2");
    screenshot(&agent, &format!("app-outbound-checkin-{tag}")).await;

    // "Follow up with those not OK": a new send to exactly Bob and Cy.
    click(&agent, "[data-testid=outbound-follow-up]").await;
    let follow = outbound_in_url(&agent, Some(&id)).await;
    wait_for(&agent, "the follow-up sent", "document.querySelector('[data-testid=outbound-progress]')?.dataset.status === 'sent'").await;
    let expected: BTreeSet<String> = ids[1..].iter().cloned().collect();
    wait_for(&agent, "the follow-up's log", "document.querySelectorAll('[data-testid=delivery-row][data-channel=chat]').length === 2")
        .await;
    choose(&agent, "[data-testid=outbound-log-channel]", "chat").await;
    // The log reloads live while the send moves (emptied, then filled): the
    // rows are read in the same step as they are found complete.
    let rows = wait_for(
        &agent,
        "chat deliveries only",
        "(() => { const rows = Array.from(document.querySelectorAll('[data-testid=delivery-row]')); \
         return rows.length === 2 && rows.every(r => r.dataset.channel === 'chat') && rows.map(r => r.dataset.personId); })()",
    )
    .await;
    let shown: BTreeSet<String> = rows.as_array().unwrap().iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(shown, expected);
    let log = app.get(&format!("/api/v1/outbound/{follow}/deliveries?limit=200"), &app.token).await.ok().unwrap();
    let to: BTreeSet<String> = log["items"].as_array().unwrap().iter().map(|d| d["person_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(to, expected, "those not OK, and nobody else");
    let f = app.get(&format!("/api/v1/outbound/{follow}"), &app.token).await.ok().unwrap();
    assert_eq!(f["follow_up_of"], id.as_str());
    screenshot(&agent, &format!("app-outbound-follow-up-{tag}")).await;
    agent.set_window_size(375, 812).await.unwrap();
    screenshot(&agent, &format!("app-outbound-phone-{tag}")).await;
    agent.set_window_size(1280, 800).await.unwrap();

    // Archived, it moves to the archived list.
    click(&agent, "[data-testid=outbound-archive]").await;
    wait_for(&agent, "unarchive offered", "document.querySelector('[data-testid=outbound-unarchive]')").await;
    open_section(&agent, "outbound").await;
    click(&agent, "[data-testid=outbound-tab-archived]").await;
    wait_for(&agent, "the archived send", &format!("document.querySelector('[data-testid=outbound-row][data-outbound-id=\"{follow}\"]')"))
        .await;
    phone.close().await.unwrap();
    agent.close().await.unwrap();
}

async fn a_profile_is_edited_and_shows_its_timeline_and_conversations_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let email = format!("{}@customer.test", unique("pat"));
    let id = person(
        &app,
        json!({"name": "Pat Doe", "email": email, "company": "Acme", "attributes": {"plan": "free", "seats": 3}, "tags": ["trial"]}),
    )
    .await;
    // Enough events for more than one page of the timeline.
    let events: Vec<Value> =
        (0..34).map(|i| json!({"person": {"id": id}, "name": "page.view", "data": {"url": format!("/docs/{i}")}})).collect();
    assert_eq!(app.post("/api/v1/events", &app.token, Value::Array(events)).await.status, 202);
    for _ in 0..3 {
        assert_eq!(app.post("/api/v1/events", &app.token, json!({"person": {"id": id}, "name": "viewed_pricing"})).await.status, 202);
    }
    let sent = app
        .post(&format!("/api/v1/people/{id}/messages"), &app.token, json!({"body": "Welcome aboard", "channel": "chat"}))
        .await
        .ok()
        .unwrap();
    let conversation = sent["conversation_id"].as_str().unwrap().to_owned();

    // The profile opens straight from its address.
    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    agent.goto(&app.url(&format!("/#/people/{id}"))).await.unwrap();
    wait_for(&agent, "the profile", "document.querySelector('[data-testid=profile-name]')?.textContent === 'Pat Doe'").await;
    let details = el(&agent, "[data-testid=profile-details]").await.text().await.unwrap();
    assert!(details.contains("Acme"), "{details}");

    // Their conversation, linking into the inbox.
    let link =
        wait_for(&agent, "the conversation", "document.querySelector('[data-testid=profile-conversation]')?.getAttribute('href')").await;
    assert_eq!(link, format!("#/c/{conversation}").as_str());

    // The timeline: a page first, the next as it scrolls, and a name filter.
    wait_for(&agent, "a first page", "document.querySelectorAll('[data-testid=timeline-item]').length === 30").await;
    js(&agent, "document.querySelector('.sentinel').scrollIntoView(); return true").await;
    wait_for(&agent, "the next page", "document.querySelectorAll('[data-testid=timeline-item]').length > 30").await;
    choose(&agent, "[data-testid=timeline-filter]", "viewed_pricing").await;
    wait_for(
        &agent,
        "only viewed_pricing",
        "document.querySelectorAll('[data-testid=timeline-item]').length === 3 && Array.from(document.querySelectorAll('[data-testid=timeline-item]')).every(e => e.dataset.name === 'viewed_pricing')",
    )
    .await;

    // Edit an attribute, add one, add a tag.
    let plan = el(&agent, "[data-testid=profile-attr-value][data-name=plan]").await;
    plan.clear().await.unwrap();
    plan.send_keys("pro").await.unwrap();
    type_in(&agent, "[data-testid=profile-attr-name]", "region").await;
    type_in(&agent, "[data-testid=profile-attr-new-value]", "EU").await;
    click(&agent, "[data-testid=profile-attrs-save]").await;
    wait_for(&agent, "saved", "document.querySelector('[data-testid=profile-attrs-status]').textContent === 'Saved'").await;
    type_in(&agent, "[data-testid=profile-tag-input]", "vip\u{E007}").await;
    wait_for(
        &agent,
        "the new tag",
        "Array.from(document.querySelectorAll('[data-testid=profile-tag]')).some(t => t.textContent.startsWith('vip'))",
    )
    .await;
    screenshot(&agent, &format!("app-profile-{tag}")).await;

    // After a reload it is all still there, and stored.
    agent.refresh().await.unwrap();
    let shown =
        wait_for(&agent, "the saved plan", "document.querySelector('[data-testid=profile-attr-value][data-name=plan]')?.value").await;
    assert_eq!(shown, "pro");
    let region = js(&agent, "return document.querySelector('[data-testid=profile-attr-value][data-name=region]').value").await;
    assert_eq!(region, "EU");
    let tag_text = js(
        &agent,
        "return Array.from(document.querySelectorAll('[data-testid=profile-tag] .chip-text')).map(t => t.textContent).join(',')",
    )
    .await;
    assert_eq!(tag_text, "trial,vip");
    let p = app.get(&format!("/api/v1/people/{id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["attributes"], json!({"plan": "pro", "seats": 3, "region": "EU"}), "{p}");
    assert_eq!(p["tags"], json!(["trial", "vip"]));
    let changed = app.get(&format!("/api/v1/people/{id}/timeline?name=attribute.changed"), &app.token).await.ok().unwrap();
    assert!(!changed["items"].as_array().unwrap().is_empty(), "the edit is on the timeline: {changed}");

    // A message from the profile opens a second conversation.
    type_in(&agent, "[data-testid=profile-message-body]", "Thanks {{person.first_name}}!").await;
    click(&agent, "[data-testid=profile-message-send]").await;
    wait_for(&agent, "sent", "document.querySelector('[data-testid=profile-message-result]').textContent.startsWith('Sent.')").await;
    wait_for(&agent, "two conversations", "document.querySelectorAll('[data-testid=profile-conversation]').length === 2").await;

    agent.set_window_size(375, 812).await.unwrap();
    screenshot(&agent, &format!("app-profile-phone-{tag}")).await;
    agent.close().await.unwrap();
}

async fn api_errors_are_shown_next_to_the_field_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let id = person(&app, json!({"name": "Rae Quinn", "email": format!("{}@customer.test", unique("rae"))})).await;
    person(&app, json!({"name": "Sam Quinn", "email": format!("{}@customer.test", unique("sam"))})).await;
    assert_eq!(app.post("/api/v1/events", &app.token, json!({"person": {"id": id}, "name": "signed_up"})).await.status, 202);

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;

    // A bad snippet: the preview's 422 is shown under the body, and so is the send's.
    agent.goto(&app.url("/#/outbound/new")).await.unwrap();
    quick_add(&agent, "Rae", &id).await;
    type_in(&agent, "[data-testid=compose-body]", "Hello {{#if}}").await;
    let error = wait_for(&agent, "the body's error", "document.querySelector('[data-testid=compose-body-error]').textContent").await;
    assert!(!error.as_str().unwrap().is_empty());
    click(&agent, "[data-testid=compose-send]").await;
    wait_for(&agent, "the send's error", "document.querySelector('[data-testid=compose-body-error]').textContent && !document.querySelector('[data-testid=compose-send]').disabled").await;
    let general = js(&agent, "return document.querySelector('[data-testid=compose-error]').textContent").await;
    assert_eq!(general, "", "the error is on the body, not at the bottom");
    assert_eq!(js(&agent, "return location.hash").await, "#/outbound/new", "nothing was sent");
    let sends = app.get("/api/v1/outbound", &app.token).await.ok().unwrap();
    assert!(sends["items"].as_array().unwrap().is_empty());
    screenshot(&agent, &format!("app-composer-error-{tag}")).await;

    // No recipients: the audience's error is shown under the recipients.
    js(&agent, "document.querySelector('[data-testid=compose-chip] .chip-remove').click(); return true").await;
    let body = el(&agent, "[data-testid=compose-body]").await;
    body.clear().await.unwrap();
    body.send_keys("Hello").await.unwrap();
    click(&agent, "[data-testid=compose-send]").await;
    wait_for(&agent, "the audience's error", "document.querySelector('[data-testid=compose-audience-error]').textContent").await;

    // A filter the server refuses: the message is on the row that is wrong.
    open_section(&agent, "people").await;
    wait_for(&agent, "the people", "document.querySelector('[data-testid=people-total]')?.dataset.total === '2'").await;
    click(&agent, "[data-testid=filter-add-condition]").await;
    click(&agent, "[data-testid=filter-add-condition]").await;
    let rows = agent.find_all(Locator::Css("[data-testid=filter-row]")).await.unwrap();
    assert_eq!(rows.len(), 2);
    rows[1].find(Locator::Css("[data-testid=filter-field]")).await.unwrap().select_by_value("created_at").await.unwrap();
    rows[1].find(Locator::Css("[data-testid=filter-op]")).await.unwrap().select_by_value("within_days").await.unwrap();
    rows[1].find(Locator::Css("[data-testid=filter-value]")).await.unwrap().send_keys("0").await.unwrap();
    rows[0].find(Locator::Css("[data-testid=filter-value]")).await.unwrap().send_keys("Rae").await.unwrap();
    click(&agent, "[data-testid=filter-apply]").await;
    let second = wait_for(
        &agent,
        "the row's error",
        "document.querySelectorAll('[data-testid=filter-row]')[1].querySelector('.form-error').textContent",
    )
    .await;
    assert!(second.as_str().unwrap().contains("within_days"), "{second}");
    let first =
        js(&agent, "return document.querySelectorAll('[data-testid=filter-row]')[0].querySelector('.form-error').textContent").await;
    assert_eq!(first, "", "the good row has no error");
    screenshot(&agent, &format!("app-people-filter-error-{tag}")).await;

    // Mended: an event row instead of the bad one finds who signed up lately.
    click(&agent, "[data-testid=filter-clear]").await;
    wait_for(&agent, "everyone", "document.querySelector('[data-testid=people-total]')?.dataset.total === '2'").await;
    click(&agent, "[data-testid=filter-add-event]").await;
    type_in(&agent, "[data-testid=filter-event-name]", "signed_up").await;
    type_in(&agent, "[data-testid=filter-event-days]", "30").await;
    click(&agent, "[data-testid=filter-apply]").await;
    wait_for(&agent, "who signed up", "document.querySelector('[data-testid=people-total]')?.dataset.total === '1'").await;
    assert_eq!(attrs(&agent, "[data-testid=people-row]", "personId").await, BTreeSet::from([id.clone()]));

    // Picked by hand, the people go to the composer as chips of their own.
    click(&agent, "[data-testid=people-row-select]").await;
    wait_for(&agent, "the selection", "document.querySelector('[data-testid=people-selection]').textContent === '1 selected'").await;
    click(&agent, "[data-testid=people-send]").await;
    let chip =
        wait_for(&agent, "the person's chip", "document.querySelector('[data-testid=compose-chip][data-type=person]')?.textContent").await;
    assert!(chip.as_str().unwrap().contains("Rae Quinn"), "{chip}");
    assert_eq!(js(&agent, "return document.querySelectorAll('[data-testid=compose-chip]').length").await, 1);
    agent.set_window_size(375, 812).await.unwrap();
    screenshot(&agent, &format!("app-composer-phone-{tag}")).await;
    agent.close().await.unwrap();
}

async fn an_area_drawn_on_the_map_finds_the_people_inside_it_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let places =
        [("Paula", 48.85, 2.35), ("Pierre", 48.87, 2.30), ("Louise", 45.76, 4.84), ("Bernd", 52.52, 13.40), ("Marta", 40.42, -3.70)];
    let mut ids = HashMap::new();
    for (name, lat, lon) in places {
        ids.insert(
            name,
            person(&app, json!({"name": name, "email": format!("{}@example.test", unique(name)), "location": {"lat": lat, "lon": lon}}))
                .await,
        );
    }
    person(&app, json!({"name": "Nowhere", "email": format!("{}@example.test", unique("nowhere"))})).await;

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    open_section(&agent, "people").await;
    wait_for(&agent, "everyone", "document.querySelector('[data-testid=people-total]')?.dataset.total === '6'").await;
    click(&agent, "[data-testid=filter-add-condition]").await;
    choose(&agent, "[data-testid=filter-field]", "location").await;
    choose(&agent, "[data-testid=filter-op]", "in_polygon").await;
    // The map fits around the five places: Madrid to Berlin.
    let view = wait_for(
        &agent,
        "the map around the people",
        "(m => m?.dataset.ready && JSON.parse(m.dataset.view).maxLon > 13 && m.dataset.view)(document.querySelector('[data-testid=filter-map]'))",
    )
    .await;
    let view: Value = serde_json::from_str(view.as_str().unwrap()).unwrap();
    assert!(view["minLon"].as_f64().unwrap() < -3.7 && view["minLat"].as_f64().unwrap() < 40.42, "{view}");
    // Four clicks around Paris and Lyon.
    let map = el(&agent, "[data-testid=filter-map]").await;
    let size =
        js(&agent, "const r = document.querySelector('[data-testid=filter-map]').getBoundingClientRect(); return [r.width, r.height]")
            .await;
    let (w, h) = (size[0].as_f64().unwrap(), size[1].as_f64().unwrap());
    let f = |k: &str| view[k].as_f64().unwrap();
    for (lat, lon) in [(50.0, 0.5), (50.0, 6.5), (44.5, 6.5), (44.5, 0.5)] {
        let x = (lon - f("minLon")) / (f("maxLon") - f("minLon")) * w - w / 2.0;
        let y = (f("maxLat") - lat) / (f("maxLat") - f("minLat")) * h - h / 2.0;
        let clicks = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: map.clone(), duration: None, x: x.round(), y: y.round() })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        agent.perform_actions(clicks).await.unwrap();
    }
    let typed = wait_for(
        &agent,
        "four corners",
        "(t => t.split(';').length === 4 && t)(document.querySelector('[data-testid=filter-points]').value)",
    )
    .await;
    click(&agent, "[data-testid=filter-apply]").await;
    wait_for(&agent, "the people inside", "document.querySelector('[data-testid=people-total]')?.dataset.total === '3'").await;
    let inside: BTreeSet<String> = ["Paula", "Pierre", "Louise"].iter().map(|n| ids[n].clone()).collect();
    assert_eq!(attrs(&agent, "[data-testid=people-row]", "personId").await, inside);
    // The corners shown are the area searched: the API finds the same people.
    let corners: Vec<Vec<f64>> =
        typed.as_str().unwrap().split(';').map(|p| p.split(',').map(|v| v.trim().parse::<f64>().unwrap()).collect()).collect();
    let found = app
        .post("/api/v1/people/search", &app.token, json!({"filter": {"field": "location", "op": "in_polygon", "value": corners}}))
        .await
        .ok()
        .unwrap();
    assert_eq!(found["total"], 3, "{found}");
    screenshot(&agent, &format!("app-people-map-{tag}")).await;
    // One corner undone leaves too few: the builder says so at the row.
    click(&agent, "[data-testid=filter-map-undo]").await;
    click(&agent, "[data-testid=filter-map-undo]").await;
    click(&agent, "[data-testid=filter-apply]").await;
    wait_for(
        &agent,
        "the row's error",
        "document.querySelector('[data-testid=filter-row] .form-error')?.textContent.includes('3 corners')",
    )
    .await;
    agent.close().await.unwrap();
}

/// Marks the `n`th element matching `css` (in page order) with `data-pick`,
/// so that its controls can be reached by a plain selector.
async fn pick(c: &Client, css: &str, n: usize, name: &str) {
    let found = c
        .execute(
            "const e = document.querySelectorAll(arguments[0])[arguments[1]]; if (e) e.dataset.pick = arguments[2]; return !!e",
            vec![json!(css), json!(n), json!(name)],
        )
        .await
        .unwrap();
    assert_eq!(found, true, "no element {n} of {css}");
}

async fn a_nested_any_of_group_in_the_filter_builder_finds_the_people_it_says_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    // (name, city, plan, tags): in Lyon and (on pro or tagged vip).
    let people = [
        ("Ann Lee", "Lyon", "pro", vec![]),
        ("Bo Chen", "Lyon", "free", vec!["vip"]),
        ("Cy Diaz", "Lyon", "free", vec![]),
        ("Di Evans", "Paris", "pro", vec![]),
        ("Ed Fox", "Paris", "free", vec!["vip"]),
        ("Flo Gray", "Lyon", "pro", vec!["vip"]),
    ];
    let mut ids = HashMap::new();
    for (name, city, plan, tags) in &people {
        let id =
            person(&app, json!({"external_id": unique("u"), "name": name, "city": city, "attributes": {"plan": plan}, "tags": tags})).await;
        ids.insert(*name, id);
    }
    let set = |names: &[&str]| names.iter().map(|n| ids[n].clone()).collect::<BTreeSet<_>>();

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    open_section(&agent, "people").await;
    wait_for(&agent, "everyone", "document.querySelector('[data-testid=people-total]')?.dataset.total === '6'").await;

    // City is Lyon, and any of: plan is pro, has tag vip.
    click(&agent, "[data-testid=filter-add-condition]").await;
    click(&agent, "[data-testid=filter-add-group]").await;
    click(&agent, "[data-testid=filter-group-add-condition]").await;
    wait_for(
        &agent,
        "two rows in the group",
        "document.querySelectorAll('[data-testid=filter-group] [data-testid=filter-row]').length === 2",
    )
    .await;
    pick(&agent, "[data-testid=filter-row]", 0, "city").await;
    pick(&agent, "[data-testid=filter-group] [data-testid=filter-row]", 0, "plan").await;
    pick(&agent, "[data-testid=filter-group] [data-testid=filter-row]", 1, "vip").await;
    choose(&agent, "[data-pick=city] [data-testid=filter-field]", "city").await;
    choose(&agent, "[data-pick=city] [data-testid=filter-op]", "eq").await;
    type_in(&agent, "[data-pick=city] [data-testid=filter-value]", "Lyon").await;
    choose(&agent, "[data-pick=plan] [data-testid=filter-field]", "attributes.plan").await;
    choose(&agent, "[data-pick=plan] [data-testid=filter-op]", "eq").await;
    type_in(&agent, "[data-pick=plan] [data-testid=filter-value]", "pro").await;
    choose(&agent, "[data-pick=vip] [data-testid=filter-field]", "tags").await;
    choose(&agent, "[data-pick=vip] [data-testid=filter-op]", "contains").await;
    type_in(&agent, "[data-pick=vip] [data-testid=filter-value]", "vip").await;
    choose(&agent, "[data-testid=filter-group] [data-testid=filter-combinator]", "or").await;
    click(&agent, "[data-testid=filter-apply]").await;
    wait_for(&agent, "three in Lyon", "document.querySelector('[data-testid=people-total]')?.dataset.total === '3'").await;
    wait_for(&agent, "three rows", "document.querySelectorAll('[data-testid=people-row]').length === 3").await;
    assert_eq!(attrs(&agent, "[data-testid=people-row]", "personId").await, set(&["Ann Lee", "Bo Chen", "Flo Gray"]));
    screenshot(&agent, &format!("app-people-nested-group-{tag}")).await;

    // Saved, the segment holds the nested group as built.
    type_in(&agent, "[data-testid=segment-name]", "Lyon, pro or vip").await;
    click(&agent, "[data-testid=segment-save]").await;
    wait_for(
        &agent,
        "the segment note",
        "document.querySelector('[data-testid=people-segment]')?.textContent === 'Segment: Lyon, pro or vip'",
    )
    .await;
    let segments = app.get("/api/v1/segments", &app.token).await.ok().unwrap();
    let seg = segments.as_array().unwrap().iter().find(|s| s["name"] == "Lyon, pro or vip").unwrap().clone();
    let expected = json!({"and": [
        {"field": "city", "op": "eq", "value": "Lyon"},
        {"or": [{"field": "attributes.plan", "op": "eq", "value": "pro"}, {"field": "tags", "op": "contains", "value": "vip"}]},
    ]});
    assert_eq!(seg["filter"], expected);
    let found = app.post("/api/v1/people/search", &app.token, json!({"filter": expected})).await.ok().unwrap();
    let found: BTreeSet<String> = found["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(found, set(&["Ann Lee", "Bo Chen", "Flo Gray"]), "the API finds what the page showed");

    // The group switched to "all of": only the one on pro with the tag.
    choose(&agent, "[data-testid=filter-group] [data-testid=filter-combinator]", "and").await;
    click(&agent, "[data-testid=filter-apply]").await;
    wait_for(&agent, "one left", "document.querySelector('[data-testid=people-total]')?.dataset.total === '1'").await;
    wait_for(&agent, "one row", "document.querySelectorAll('[data-testid=people-row]').length === 1").await;
    assert_eq!(attrs(&agent, "[data-testid=people-row]", "personId").await, set(&["Flo Gray"]));

    // Removing the group leaves the city alone.
    click(&agent, "[data-testid=filter-group] .fb-group-head .fb-remove").await;
    click(&agent, "[data-testid=filter-apply]").await;
    wait_for(&agent, "everyone in Lyon", "document.querySelector('[data-testid=people-total]')?.dataset.total === '4'").await;
    assert_eq!(attrs(&agent, "[data-testid=people-row]", "personId").await, set(&["Ann Lee", "Bo Chen", "Cy Diaz", "Flo Gray"]));
    agent.close().await.unwrap();
}

async fn a_template_saved_with_its_recipients_is_found_by_title_and_loaded_into_a_new_message_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let ann = person(&app, json!({"name": "Ann Tipps", "email": format!("{}@customer.test", unique("ann"))})).await;
    let cy =
        person(&app, json!({"name": "Cy Tipps", "email": format!("{}@customer.test", unique("cy")), "attributes": {"plan": "pro"}})).await;
    person(&app, json!({"external_id": unique("bo"), "name": "Bo Tipps", "attributes": {"plan": "free"}})).await;
    let seg = app
        .post(
            "/api/v1/segments",
            &app.token,
            json!({"name": "Pro tippers", "filter": {"field": "attributes.plan", "op": "eq", "value": "pro"}}),
        )
        .await
        .ok()
        .unwrap();
    let seg = seg["id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/templates",
        &app.token,
        json!({"kind": "chat", "title": "Storm warning", "body": "Stay inside.", "channels": ["chat"]}),
    )
    .await
    .ok()
    .unwrap();

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    open_section(&agent, "outbound").await;
    click(&agent, "[data-testid=outbound-new]").await;
    quick_add(&agent, "Ann Tipps", &ann).await;
    quick_add(&agent, "Pro tippers", &seg).await;
    type_in(&agent, "[data-testid=compose-title]", "Weekly tips").await;
    type_in(&agent, "[data-testid=compose-body]", "Hi {{person.first_name}}, here are this week's tips.").await;
    click(&agent, "[data-testid=compose-channel-email]").await;
    click(&agent, "[data-testid=compose-template-save]").await;
    wait_for(&agent, "saved", "document.querySelector('[data-testid=compose-template-status]').textContent === 'Saved “Weekly tips”'")
        .await;
    let templates = app.get("/api/v1/templates?kind=chat&q=weekly", &app.token).await.ok().unwrap();
    assert_eq!(templates.as_array().unwrap().len(), 1, "{templates}");
    assert_eq!(templates[0]["audience"], json!({"people": [ann], "segments": [seg]}), "the recipients are kept with the template");

    // Another day, a new message: found by its title, loaded with everything.
    open_section(&agent, "people").await;
    open_section(&agent, "outbound").await;
    click(&agent, "[data-testid=outbound-new]").await;
    wait_for(&agent, "an empty composer", "document.querySelectorAll('[data-testid=compose-chip]').length === 0").await;
    wait_for(
        &agent,
        "both templates offered",
        "document.querySelectorAll('[data-testid=compose-template] option[value]:not([value=\"\"])').length === 2",
    )
    .await;
    type_in(&agent, "[data-testid=compose-template-search]", "weekly").await;
    let offered = wait_for(
        &agent,
        "only the weekly template",
        "(() => { const o = Array.from(document.querySelectorAll('[data-testid=compose-template] option')).filter(o => o.value); return o.length === 1 && o[0].textContent; })()",
    )
    .await;
    assert_eq!(offered, "Weekly tips");
    let id = templates[0]["id"].as_str().unwrap().to_owned();
    choose(&agent, "[data-testid=compose-template]", &id).await;
    wait_for(&agent, "loaded", "document.querySelector('[data-testid=compose-template-status]').textContent === 'Loaded “Weekly tips”'")
        .await;
    let chips = wait_for(
        &agent,
        "the recipients back",
        "(() => { const c = Array.from(document.querySelectorAll('[data-testid=compose-chip]')).map(e => e.dataset.type + ':' + e.textContent); return c.length === 2 && c; })()",
    )
    .await;
    let chips: Vec<String> = chips.as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert!(chips[0].starts_with("person:Ann Tipps"), "{chips:?}");
    assert!(chips[1].starts_with("segment:Segment: Pro tippers"), "{chips:?}");
    let form = js(
        &agent,
        "return [document.querySelector('[data-testid=compose-title]').value, document.querySelector('[data-testid=compose-body]').value, document.querySelector('[data-testid=compose-channel-email]').checked]",
    )
    .await;
    assert_eq!(form, json!(["Weekly tips", "Hi {{person.first_name}}, here are this week's tips.", true]));
    wait_for(
        &agent,
        "the preview",
        "/^Hi (Ann|Cy), here are this week's tips\\.$/.test(document.querySelector('[data-testid=compose-preview]').textContent)",
    )
    .await;
    screenshot(&agent, &format!("app-outbound-template-loaded-{tag}")).await;

    // Sent, it reaches the template's recipients: Ann and the segment's Cy.
    click(&agent, "[data-testid=compose-send]").await;
    let outbound = outbound_in_url(&agent, None).await;
    wait_for(&agent, "sent", "document.querySelector('[data-testid=outbound-progress]')?.dataset.status === 'sent'").await;
    let log = app.get(&format!("/api/v1/outbound/{outbound}/deliveries?channel=chat"), &app.token).await.ok().unwrap();
    let to: BTreeSet<String> = log["items"].as_array().unwrap().iter().map(|d| d["person_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(to, BTreeSet::from([ann, cy]));
    agent.close().await.unwrap();
}
