//! The web app's Automations and Settings sections in headless Chromium: a
//! flow built step by step that a real widget visitor then goes through, a
//! rule whose script error is shown at its line before it is fixed, saved and
//! dry-run, and settings changed through their pages and checked in the API.

use std::time::Duration;

use fantoccini::Client;
use parley_tests::browser::{Driver, screenshot, wait_for};
use parley_tests::outside::Smtp;
use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::json;

use super::browser::log_in;
use super::browser_app::{choose, click, el, js, open_section, tag, type_in, unique};
use super::flows::until;

on_both_backends!(
    a_flow_built_in_the_browser_greets_asks_and_hands_a_widget_visitor_to_the_team,
    a_flow_built_in_the_browser_branches_on_the_plan_tags_and_waits_before_it_answers,
    a_rule_with_a_script_error_shows_it_at_its_line_then_saves_and_dry_runs,
    settings_pages_create_a_key_a_teammate_hours_and_a_webhook,
    the_inbox_filters_by_team_and_archives_and_unarchives_in_a_real_browser,
);

/// Replaces what a text control holds.
async fn retype(c: &Client, css: &str, text: &str) {
    el(c, css).await.clear().await.unwrap();
    type_in(c, css, text).await;
}

/// The page of a saved automation: `#/automations/{id}`, not the new one's.
const SAVED_PAGE: &str = "location.hash.startsWith('#/automations/') && !location.hash.startsWith('#/automations/new') && location.hash";

async fn phone_shot(c: &Client, name: &str) {
    c.set_window_size(375, 812).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    screenshot(c, name).await;
    c.set_window_size(1280, 800).await.unwrap();
}

async fn a_flow_built_in_the_browser_greets_asks_and_hands_a_widget_visitor_to_the_team(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let (tess, _) = app.teammate("Tess", "agent").await;
    let sales = app.post("/api/v1/teams", &app.token, json!({"name": "Sales", "member_ids": [tess]})).await.ok().unwrap();
    let sales = sales["id"].as_str().unwrap().to_owned();

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    open_section(&agent, "automations").await;
    wait_for(
        &agent,
        "the empty list",
        "document.querySelector('[data-testid=automation-list]') && document.body.textContent.includes('No automations yet')",
    )
    .await;
    click(&agent, "[data-testid=automation-new-flow]").await;
    el(&agent, "[data-testid=flow-builder]").await;
    type_in(&agent, "[data-testid=automation-name]", "Lead bot").await;
    choose(&agent, "[data-testid=automation-trigger]", "conversation.created").await;

    // Two more steps: a question (step2) and the handoff (step3).
    choose(&agent, "[data-testid=flow-add-type]", "ask").await;
    click(&agent, "[data-testid=flow-add]").await;
    choose(&agent, "[data-testid=flow-add-type]", "handoff").await;
    click(&agent, "[data-testid=flow-add]").await;
    el(&agent, "[data-node-id=step3][data-node-type=handoff]").await;

    let hello = "[data-node-id=hello]";
    type_in(&agent, &format!("{hello} [data-testid=flow-node-text]"), "Hi! What brings you here?").await;
    click(&agent, &format!("{hello} [data-testid=flow-node-add-button]")).await;
    click(&agent, &format!("{hello} [data-testid=flow-node-add-button]")).await;
    wait_for(&agent, "two buttons", "document.querySelectorAll('[data-node-id=hello] [data-testid=flow-button]').length === 2").await;
    let buttons = js(&agent, "return document.querySelectorAll('[data-node-id=hello] [data-testid=flow-node-button-label]').length").await;
    assert_eq!(buttons, 2);
    let nth = |i: usize, what: &str| format!("{hello} [data-testid=flow-button][data-index='{i}'] [data-testid=flow-node-button-{what}]");
    type_in(&agent, &nth(0, "label"), "Pricing").await;
    choose(&agent, &nth(0, "next"), "step2").await;
    type_in(&agent, &nth(1, "label"), "Support").await;
    choose(&agent, &nth(1, "next"), "step3").await;

    let ask = "[data-node-id=step2]";
    type_in(&agent, &format!("{ask} [data-testid=flow-node-text]"), "What is your work email?").await;
    type_in(&agent, &format!("{ask} [data-testid=flow-node-attribute]"), "email").await;
    choose(&agent, &format!("{ask} [data-testid=flow-node-validate]"), "email").await;
    choose(&agent, &format!("{ask} [data-testid=flow-node-next]"), "step3").await;

    let handoff = "[data-node-id=step3]";
    choose(&agent, &format!("{handoff} [data-testid=flow-node-team]"), &sales).await;
    choose(&agent, &format!("{handoff} [data-testid=flow-node-teammate]"), &tess).await;
    type_in(&agent, &format!("{handoff} [data-testid=flow-node-text]"), "Connecting you with Tess.").await;

    click(&agent, "[data-testid=flow-validate]").await;
    wait_for(&agent, "the check", "document.querySelector('[data-testid=automation-saved]').textContent.includes('No problems')").await;
    click(&agent, "[data-testid=automation-enabled]").await;
    screenshot(&agent, &format!("app-automations-flow-builder-{tag}")).await;
    phone_shot(&agent, &format!("app-automations-flow-builder-phone-{tag}")).await;
    click(&agent, "[data-testid=automation-save]").await;
    let hash = wait_for(&agent, "the saved flow's page", SAVED_PAGE).await;
    let id = hash.as_str().unwrap().trim_start_matches("#/automations/").to_owned();
    el(&agent, "[data-testid=run-log]").await;

    let saved = app.get(&format!("/api/v1/automations/{id}"), &app.token).await.ok().unwrap();
    assert_eq!((saved["kind"].as_str(), saved["enabled"].as_bool()), (Some("flow"), Some(true)), "{saved}");
    assert_eq!(saved["flow"]["start"], "hello");
    assert_eq!(saved["flow"]["nodes"]["step3"]["team"], sales.as_str());

    // A visitor in a real widget goes through it.
    let (vtoken, person_id) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let first = widget.say("v-1", "Hello").await;
    let cid = first["conversation_id"].as_str().unwrap().to_owned();
    let greeting = widget.next_message_not_from("person").await["message"].clone();
    assert_eq!(greeting["body"], "Hi! What brings you here?");
    assert_eq!(greeting["buttons"], json!([{"label": "Pricing"}, {"label": "Support"}]));
    widget.send(json!({"type": "reply.choose", "message_id": greeting["id"], "choice": "Pricing"})).await;
    let question = widget.next_where("message.created", |f| f["message"]["author"]["type"] == "bot").await;
    assert_eq!(question["message"]["body"], "What is your work email?");
    widget.say("v-2", "ann@example.com").await;
    let bye = widget.next_where("message.created", |f| f["message"]["author"]["type"] == "bot").await;
    assert_eq!(bye["message"]["body"], "Connecting you with Tess.");

    let c = until(&app, &format!("/api/v1/conversations/{cid}"), |c| c["assignee"]["id"] == tess.as_str()).await;
    assert_eq!(c["team"]["id"], sales.as_str(), "{c}");
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["email"], "ann@example.com");

    // The run log and the list show its runs.
    until(&app, &format!("/api/v1/automations/{id}/runs"), |r| r["items"].as_array().is_some_and(|i| i.len() >= 2)).await;
    click(&agent, "[data-testid=run-log-refresh]").await;
    wait_for(&agent, "runs in the log", "document.querySelectorAll('[data-testid=run-item]').length >= 2").await;
    screenshot(&agent, &format!("app-automations-flow-{tag}")).await;
    open_section(&agent, "automations").await;
    wait_for(
        &agent,
        "the flow's recent runs",
        "document.querySelector('[data-testid=automation-row] [data-testid=automation-toggle]')?.checked && document.querySelectorAll('[data-testid=automation-runs] .run-badge').length >= 2",
    )
    .await;
    screenshot(&agent, &format!("app-automations-list-{tag}")).await;
    phone_shot(&agent, &format!("app-automations-list-phone-{tag}")).await;

    // Switched off from the list.
    click(&agent, "[data-testid=automation-toggle]").await;
    until(&app, &format!("/api/v1/automations/{id}"), |a| a["enabled"] == false).await;
    agent.close().await.unwrap();
}

/// The moment a message was stored, from its RFC 3339 `created_at`.
fn created_ms(m: &serde_json::Value) -> i64 {
    let at = m["created_at"].as_str().unwrap_or_else(|| panic!("no created_at in {m}"));
    chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}")).timestamp_millis()
}

async fn a_flow_built_in_the_browser_branches_on_the_plan_tags_and_waits_before_it_answers(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    agent.goto(&app.url("/#/automations/new?kind=flow")).await.unwrap();
    el(&agent, "[data-testid=flow-builder]").await;
    type_in(&agent, "[data-testid=automation-name]", "Plan bot").await;
    choose(&agent, "[data-testid=automation-trigger]", "conversation.created").await;

    // hello → step2 (branch) → step3 (action) → step4 (wait) → step5 (message);
    // otherwise step6 (message), renamed "later" once it is linked.
    for kind in ["branch", "action", "wait", "message", "message"] {
        choose(&agent, "[data-testid=flow-add-type]", kind).await;
        click(&agent, "[data-testid=flow-add]").await;
    }
    el(&agent, "[data-node-id=step6][data-node-type=message]").await;
    let node = |id: &str, what: &str| format!("[data-node-id={id}] [data-testid=flow-node-{what}]");

    type_in(&agent, &node("hello", "text"), "Hi! Let me look at your plan.").await;
    choose(&agent, &node("hello", "next"), "step2").await;
    type_in(&agent, &node("step2", "condition-if"), "person.attributes.plan == \"pro\"").await;
    choose(&agent, &node("step2", "condition-next"), "step3").await;
    choose(&agent, &node("step2", "else"), "step6").await;
    type_in(&agent, &node("step3", "script"), "tag(\"vip\");").await;
    choose(&agent, &node("step3", "next"), "step4").await;
    retype(&agent, &node("step4", "seconds"), "1").await;
    choose(&agent, &node("step4", "next"), "step5").await;
    type_in(&agent, &node("step5", "text"), "Thanks for being with us on Pro!").await;
    type_in(&agent, &node("step6", "text"), "Someone from the team will answer soon.").await;

    // Renaming a step keeps the links to it.
    // Select all, type the new id, leave the field: taken on change.
    el(&agent, &node("step6", "id")).await.send_keys("\u{e009}a\u{e009}later\u{e004}").await.unwrap();
    el(&agent, "[data-node-id=later][data-node-type=message]").await;
    let otherwise = js(&agent, "return document.querySelector('[data-node-id=step2] [data-testid=flow-node-else]').value").await;
    assert_eq!(otherwise, "later", "the branch still leads to the renamed step");

    click(&agent, "[data-testid=flow-validate]").await;
    wait_for(&agent, "the check", "document.querySelector('[data-testid=automation-saved]').textContent.includes('No problems')").await;
    click(&agent, "[data-testid=automation-enabled]").await;
    screenshot(&agent, &format!("app-automations-flow-branch-{tag}")).await;
    click(&agent, "[data-testid=automation-save]").await;
    let hash = wait_for(&agent, "the saved flow's page", SAVED_PAGE).await;
    let id = hash.as_str().unwrap().trim_start_matches("#/automations/").to_owned();
    let saved = app.get(&format!("/api/v1/automations/{id}"), &app.token).await.ok().unwrap();
    let nodes = &saved["flow"]["nodes"];
    assert_eq!(nodes["step2"]["conditions"], json!([{"if": "person.attributes.plan == \"pro\"", "next": "step3"}]), "{saved}");
    assert_eq!(nodes["step2"]["else"], "later");
    assert_eq!(nodes["step3"], json!({"type": "action", "script": "tag(\"vip\");", "next": "step4"}));
    assert_eq!(nodes["step4"], json!({"type": "wait", "seconds": 1, "next": "step5"}));
    assert!(nodes.get("step6").is_none(), "{saved}");

    // A visitor on the pro plan is tagged and answered after the wait.
    let (pro_token, pro) = app.visitor().await;
    app.patch(&format!("/api/v1/people/{pro}"), &app.token, json!({"attributes": {"plan": "pro"}})).await.ok().unwrap();
    let mut widget = app.widget_ws(&pro_token).await;
    widget.say("p-1", "Hello").await;
    let bot = |f: &serde_json::Value| f["message"]["author"]["type"] == "bot";
    let hello = widget.next_where("message.created", bot).await["message"].clone();
    assert_eq!(hello["body"], "Hi! Let me look at your plan.");
    let thanks = widget.next_where("message.created", bot).await["message"].clone();
    assert_eq!(thanks["body"], "Thanks for being with us on Pro!");
    let waited = created_ms(&thanks) - created_ms(&hello);
    assert!(waited >= 1000, "the answer came {waited} ms after the greeting, before the 1 s wait was over");
    let p = app.get(&format!("/api/v1/people/{pro}"), &app.token).await.ok().unwrap();
    assert_eq!(p["tags"], json!(["vip"]), "{p}");

    // Anyone else takes the other branch: no tag, the other answer.
    let (free_token, free) = app.visitor().await;
    let mut widget = app.widget_ws(&free_token).await;
    widget.say("f-1", "Hello").await;
    assert_eq!(widget.next_where("message.created", bot).await["message"]["body"], "Hi! Let me look at your plan.");
    assert_eq!(widget.next_where("message.created", bot).await["message"]["body"], "Someone from the team will answer soon.");
    let p = app.get(&format!("/api/v1/people/{free}"), &app.token).await.ok().unwrap();
    assert_eq!(p["tags"], json!([]), "{p}");
    agent.close().await.unwrap();
}

async fn a_rule_with_a_script_error_shows_it_at_its_line_then_saves_and_dry_runs(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let person = app.post("/api/v1/people", &app.token, json!({"external_id": unique("u"), "name": "Ann"})).await.ok().unwrap();
    let person_id = person["id"].as_str().unwrap().to_owned();

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    agent.goto(&app.url("/#/automations/new")).await.unwrap();
    type_in(&agent, "[data-testid=automation-name]", "Tag pricing visitors").await;
    choose(&agent, "[data-testid=automation-trigger]", "page.view").await;
    type_in(&agent, "[data-testid=automation-param-url]", "/pricing*").await;
    retype(&agent, "[data-testid=automation-script]", "let plan = \"pro\";\ntag(\"pricing\");\nlet broken = ;\n").await;
    let line =
        wait_for(&agent, "the problem at its line", "document.querySelector('[data-testid=automation-script-problem]')?.dataset.line")
            .await;
    assert_eq!(line, "3");
    let text = js(&agent, "return document.querySelector('[data-testid=automation-script-problem]').textContent").await;
    assert!(text.as_str().unwrap().starts_with("Line 3"), "{text}");
    wait_for(&agent, "the gutter mark", "document.querySelector('.code-gutter .is-error')?.dataset.line === '3'").await;

    // Saving it enabled is refused: nothing is stored.
    click(&agent, "[data-testid=automation-enabled]").await;
    click(&agent, "[data-testid=automation-save]").await;
    wait_for(&agent, "the refusal", "document.querySelector('[data-testid=automation-error]').textContent.includes('nothing was saved')")
        .await;
    screenshot(&agent, &format!("app-automations-rule-error-{tag}")).await;
    phone_shot(&agent, &format!("app-automations-rule-error-phone-{tag}")).await;
    let list = app.get("/api/v1/automations", &app.token).await.ok().unwrap();
    assert_eq!(list, json!([]), "a rule that does not compile is not saved");

    // Fixed, it checks clean, saves enabled and dry-runs.
    retype(&agent, "[data-testid=automation-script]", "let plan = \"pro\";\ntag(\"pricing\");\nset_attribute(\"plan\", plan);\n").await;
    click(&agent, "[data-testid=automation-validate]").await;
    wait_for(&agent, "no problems", "document.querySelectorAll('[data-testid=automation-script-problem]').length === 0").await;
    let caret = js(&agent, "return document.querySelector('[data-testid=automation-script-caret]').textContent").await;
    assert!(caret.as_str().unwrap().starts_with("Line "), "{caret}");
    click(&agent, "[data-testid=automation-save]").await;
    let hash = wait_for(&agent, "the saved rule's page", SAVED_PAGE).await;
    let id = hash.as_str().unwrap().trim_start_matches("#/automations/").to_owned();
    let saved = app.get(&format!("/api/v1/automations/{id}"), &app.token).await.ok().unwrap();
    assert_eq!((saved["enabled"].as_bool(), saved["trigger"].as_str()), (Some(true), Some("page.view")), "{saved}");
    assert_eq!(saved["params"]["url"], "/pricing*");

    retype(&agent, "[data-testid=dry-run-event]", &json!({"type": "page.view", "person_id": person_id, "url": "/pricing"}).to_string())
        .await;
    click(&agent, "[data-testid=dry-run]").await;
    wait_for(&agent, "the actions", "document.querySelectorAll('[data-testid=dry-run-action]').length === 2").await;
    let types = js(&agent, "return Array.from(document.querySelectorAll('[data-testid=dry-run-action]')).map(e => e.dataset.type)").await;
    assert_eq!(types, json!(["tag", "set_attribute"]));
    let shown = js(&agent, "return document.querySelector('[data-testid=dry-run-actions]').textContent").await;
    assert!(shown.as_str().unwrap().contains("pricing"), "{shown}");
    // A dry run changes nothing.
    let p = app.get(&format!("/api/v1/people/{person_id}"), &app.token).await.ok().unwrap();
    assert!(p["tags"].as_array().unwrap().is_empty(), "{p}");
    screenshot(&agent, &format!("app-automations-rule-{tag}")).await;
    phone_shot(&agent, &format!("app-automations-rule-phone-{tag}")).await;

    // An agent reads the rule but cannot switch, change or delete it.
    let (_, agent_token) = app.teammate("Ada", "agent").await;
    agent
        .execute("localStorage.setItem('parley_agent_token', arguments[0]); location.hash = '#/automations'", vec![json!(agent_token)])
        .await
        .unwrap();
    // A fresh page load, so the app starts a session with the agent's token.
    agent.refresh().await.unwrap();
    wait_for(
        &agent,
        "the list as an agent",
        "document.querySelector('[data-testid=automation-row] [data-testid=automation-toggle]')?.disabled === true",
    )
    .await;
    let new_buttons =
        js(&agent, "return document.querySelectorAll('[data-testid=automation-new-rule], [data-testid=automation-new-flow]').length").await;
    assert_eq!(new_buttons, json!(0));
    el(&agent, "[data-testid=automations-admins-only]").await;
    agent.goto(&app.url(&format!("/#/automations/{id}"))).await.unwrap();
    wait_for(&agent, "the rule as an agent", "document.querySelector('[data-testid=automation-save]')?.disabled === true").await;
    let delete = js(&agent, "return document.querySelectorAll('[data-testid=automation-delete]').length").await;
    assert_eq!(delete, json!(0));
    screenshot(&agent, &format!("app-automations-rule-agent-{tag}")).await;
    agent.close().await.unwrap();
}

async fn settings_pages_create_a_key_a_teammate_hours_and_a_webhook(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    open_section(&agent, "settings").await;
    wait_for(&agent, "the general page", "document.querySelector('.settings-body')?.dataset.ready").await;
    // The workspace renamed; a blank name is refused at its field.
    retype(&agent, "[data-testid=settings-workspace-name]", " ").await;
    click(&agent, "[data-testid=settings-general-save]").await;
    wait_for(&agent, "the name error", "document.querySelector('[data-testid=settings-workspace-name-error]').textContent").await;
    retype(&agent, "[data-testid=settings-workspace-name]", "Acme Support").await;
    click(&agent, "[data-testid=settings-general-save]").await;
    wait_for(&agent, "saved", "document.querySelector('[data-testid=settings-general-saved]').textContent === 'Saved'").await;
    assert_eq!(app.get("/api/v1/workspace", &app.token).await.ok().unwrap()["name"], "Acme Support");
    screenshot(&agent, &format!("app-settings-general-{tag}")).await;

    // A test email reaches the mailbox typed; a test text goes out through
    // the route just set up.
    click(&agent, "[data-testid=settings-tab-channels]").await;
    let to = format!("{}@example.test", unique("test-mail"));
    type_in(&agent, "[data-testid=test-email-to]", &to).await;
    click(&agent, "[data-testid=test-email-send]").await;
    wait_for(&agent, "the test email", "document.querySelector('[data-testid=test-email-result]')?.dataset.ok === 'true'").await;
    let mail = Smtp::shared().wait_for(&to, 1, Duration::from_secs(10)).await;
    assert_eq!(mail[0].subject(), "Test email from Acme Support");
    type_in(&agent, "[data-testid=test-sms-to]", "+44 7700 900123").await;
    click(&agent, "[data-testid=test-sms-send]").await;
    wait_for(&agent, "the refusal", "document.querySelector('[data-testid=test-sms-error]')?.textContent.includes('SMS')").await;
    type_in(&agent, "[data-testid=sms-from]", "+15550001000").await;
    click(&agent, "[data-testid=sms-save]").await;
    wait_for(&agent, "saved SMS", "document.querySelector('[data-testid=sms-saved]').textContent === 'Saved'").await;
    click(&agent, "[data-testid=test-sms-send]").await;
    let shown = wait_for(&agent, "the test text", "document.querySelector('[data-testid=test-sms-result]')?.dataset.ok === 'true' && document.querySelector('[data-testid=test-sms-result]').textContent").await;
    assert!(shown.as_str().unwrap().contains("log: sent"), "{shown}");
    screenshot(&agent, &format!("app-settings-channels-{tag}")).await;

    // An API key: shown once, then listed without it.
    click(&agent, "[data-testid=settings-tab-security]").await;
    type_in(&agent, "[data-testid=api-key-name]", "backend").await;
    click(&agent, "[data-testid=api-key-create]").await;
    let key = wait_for(&agent, "the new key", "document.querySelector('[data-testid=api-key-value]')?.textContent").await;
    let key = key.as_str().unwrap().to_owned();
    assert!(key.starts_with("pak_"), "{key}");
    wait_for(&agent, "the listed key", "document.querySelectorAll('[data-testid=api-key-row]').length === 1").await;
    let listed = js(&agent, "return document.querySelector('[data-testid=api-key-list]').textContent").await;
    assert!(listed.as_str().unwrap().contains("backend") && !listed.as_str().unwrap().contains(&key));
    let me = app.get("/api/v1/auth/me", &key).await.ok().unwrap();
    assert_eq!(me["workspace"]["id"], app.workspace_id.as_str(), "the key works");
    let keys = app.get("/api/v1/api-keys", &app.token).await.ok().unwrap();
    assert_eq!(keys["items"][0]["name"], "backend");
    screenshot(&agent, &format!("app-settings-security-{tag}")).await;
    phone_shot(&agent, &format!("app-settings-security-phone-{tag}")).await;

    // A teammate with a role; a bad email is shown at its field.
    click(&agent, "[data-testid=settings-tab-team]").await;
    let email = format!("{}@example.test", unique("rae"));
    type_in(&agent, "[data-testid=teammate-name]", "Rae").await;
    type_in(&agent, "[data-testid=teammate-email]", "not-an-email").await;
    type_in(&agent, "[data-testid=teammate-password]", "password-123").await;
    choose(&agent, "[data-testid=teammate-role]", "admin").await;
    click(&agent, "[data-testid=teammate-add]").await;
    wait_for(&agent, "the email error", "document.querySelector('[data-testid=teammate-email-error]').textContent").await;
    retype(&agent, "[data-testid=teammate-email]", &email).await;
    click(&agent, "[data-testid=teammate-add]").await;
    let row = format!("Array.from(document.querySelectorAll('[data-testid=teammate-row]')).some(r => r.textContent.includes('{email}'))");
    wait_for(&agent, "the new teammate", &row).await;
    let mates = app.get("/api/v1/teammates", &app.token).await.ok().unwrap();
    let rae = mates["items"].as_array().unwrap().iter().find(|t| t["email"] == email.as_str()).expect("Rae is a teammate");
    assert_eq!(rae["role"], "admin");
    // Rae's role changed back to agent from the list.
    let rae_id = rae["id"].as_str().unwrap().to_owned();
    choose(&agent, &format!("[data-testid=teammate-row][data-teammate-id='{rae_id}'] [data-testid=teammate-row-role]"), "agent").await;
    el(&agent, &format!("[data-testid=teammate-row][data-teammate-id='{rae_id}'][data-role=agent]")).await;
    let mates = app.get("/api/v1/teammates", &app.token).await.ok().unwrap();
    assert!(mates["items"].as_array().unwrap().iter().any(|t| t["id"] == rae_id.as_str() && t["role"] == "agent"), "{mates}");
    // A team made from the page, Rae ticked as its member, then deleted.
    type_in(&agent, "[data-testid=team-name]", "Billing").await;
    click(&agent, "[data-testid=team-add]").await;
    el(&agent, "[data-testid=team-row] summary").await.click().await.unwrap();
    click(&agent, &format!("[data-testid=team-member][data-teammate-id='{rae_id}']")).await;
    click(&agent, "[data-testid=team-members-save]").await;
    wait_for(&agent, "Rae in Billing", "document.querySelector('[data-testid=team-members]')?.textContent.includes('Rae')").await;
    let teams = app.get("/api/v1/teams", &app.token).await.ok().unwrap();
    let members: Vec<&str> = teams[0]["members"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!((teams[0]["name"].as_str(), members), (Some("Billing"), vec![rae_id.as_str()]), "{teams}");
    el(&agent, "[data-testid=team-row] summary").await.click().await.unwrap();
    screenshot(&agent, &format!("app-settings-team-{tag}")).await;
    click(&agent, "[data-testid=team-delete]").await;
    agent.accept_alert().await.unwrap();
    wait_for(&agent, "no teams", "document.querySelector('[data-testid=team-list]').textContent.includes('No teams yet')").await;
    assert_eq!(app.get("/api/v1/teams", &app.token).await.ok().unwrap(), json!([]));

    // Business hours: weekdays 9 to 5 in Paris, closed on Christmas.
    click(&agent, "[data-testid=settings-tab-hours]").await;
    click(&agent, "[data-testid=hours-always]").await;
    retype(&agent, "[data-testid=hours-timezone]", "Europe/Paris").await;
    type_in(&agent, "[data-testid=hours-holidays]", "2026-12-25").await;
    click(&agent, "[data-testid=hours-save]").await;
    wait_for(&agent, "saved hours", "document.querySelector('[data-testid=hours-saved]').textContent === 'Saved'").await;
    let w = app.get("/api/v1/workspace", &app.token).await.ok().unwrap();
    let bh = &w["settings"]["business_hours"];
    assert_eq!(bh["timezone"], "Europe/Paris", "{w}");
    assert_eq!(bh["weekly"]["mon"], json!([["09:00", "17:00"]]));
    assert!(bh["weekly"].get("sat").is_none(), "{bh}");
    assert_eq!(bh["holidays"], json!(["2026-12-25"]));
    screenshot(&agent, &format!("app-settings-hours-{tag}")).await;
    phone_shot(&agent, &format!("app-settings-hours-phone-{tag}")).await;

    // A webhook, then its (empty) delivery log.
    click(&agent, "[data-testid=settings-tab-webhooks]").await;
    type_in(&agent, "[data-testid=webhook-url]", "https://example.com/parley-hook").await;
    click(&agent, "[data-testid=webhook-add]").await;
    wait_for(&agent, "the webhook", "document.querySelectorAll('[data-testid=webhook-row]').length === 1").await;
    let hooks = app.get("/api/v1/webhooks", &app.token).await.ok().unwrap();
    assert_eq!(hooks[0]["url"], "https://example.com/parley-hook", "{hooks}");
    assert_eq!(hooks[0]["events"], json!(["*"]));
    click(&agent, "[data-testid=webhook-deliveries]").await;
    wait_for(&agent, "the delivery log", "document.querySelector('.webhook-log')?.textContent.includes('No deliveries yet')").await;
    screenshot(&agent, &format!("app-settings-webhooks-{tag}")).await;

    // The install snippet names this workspace.
    click(&agent, "[data-testid=settings-tab-install]").await;
    let snippet = wait_for(&agent, "the snippet", "document.querySelector('[data-testid=install-snippet]')?.textContent").await;
    assert!(snippet.as_str().unwrap().contains(&format!("data-app-id=\"{}\"", w["app_id"].as_str().unwrap())), "{snippet}");
    screenshot(&agent, &format!("app-settings-install-{tag}")).await;
    phone_shot(&agent, &format!("app-settings-install-phone-{tag}")).await;

    // Sign-out is in the navigation of every section.
    click(&agent, "[data-testid=nav-sign-out]").await;
    el(&agent, "[data-testid=login-email]").await;
    wait_for(&agent, "the login page", "!document.getElementById('login').hidden").await;
    agent.close().await.unwrap();
}

async fn the_inbox_filters_by_team_and_archives_and_unarchives_in_a_real_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let tag = tag(&backend);
    let app = TestApp::spawn(backend).await;
    let billing = app.post("/api/v1/teams", &app.token, json!({"name": "Billing", "member_ids": []})).await.ok().unwrap();
    let billing = billing["id"].as_str().unwrap().to_owned();
    let (tess, _) = app.teammate("Tess", "agent").await;
    let canned = json!({"kind": "chat", "title": "Refund policy", "body": "Refunds take five working days.", "channels": ["chat"]});
    app.post("/api/v1/templates", &app.token, canned).await.ok().unwrap();
    let mut cids = Vec::new();
    let mut pids = Vec::new();
    for text in ["My invoice is wrong", "Where is the API doc?"] {
        let (vtoken, pid) = app.visitor().await;
        pids.push(pid);
        let mut widget = app.widget_ws(&vtoken).await;
        let m = widget.say("v-1", text).await;
        cids.push(m["conversation_id"].as_str().unwrap().to_owned());
    }
    let (invoice, other) = (&cids[0], &cids[1]);
    app.patch(&format!("/api/v1/conversations/{invoice}"), &app.token, json!({"team_id": billing})).await.ok().unwrap();
    let payer = &pids[0];
    let patch = json!({"name": "Pat Payer", "attributes": {"plan": "pro"}, "tags": ["late-payer"]});
    app.patch(&format!("/api/v1/people/{payer}"), &app.token, patch).await.ok().unwrap();

    let agent = driver.browser(1280, 800).await;
    log_in(&agent, &app).await;
    wait_for(&agent, "both conversations", "document.querySelectorAll('[data-testid=conversation-row]').length === 2").await;
    let only = |id: &str| {
        format!(
            "(r => r.length === 1 && r[0].dataset.conversationId === '{id}')(document.querySelectorAll('[data-testid=conversation-row]'))"
        )
    };
    wait_for(&agent, "the team in the filter", &format!("document.querySelector('[data-testid=team-filter] option[value=\"{billing}\"]')"))
        .await;
    choose(&agent, "[data-testid=team-filter]", &billing).await;
    wait_for(&agent, "only Billing's", &only(invoice)).await;
    choose(&agent, "[data-testid=team-filter]", "none").await;
    wait_for(&agent, "only the unrouted one", &only(other)).await;
    choose(&agent, "[data-testid=team-filter]", "all").await;
    wait_for(&agent, "both again", "document.querySelectorAll('[data-testid=conversation-row]').length === 2").await;

    // Archived: it leaves the live list and is found under Archived.
    click(&agent, &format!("[data-testid=conversation-row][data-conversation-id='{invoice}']")).await;

    // Who writes: attributes, tags, their latest events and a link to the profile.
    click(&agent, "[data-testid=person-panel-toggle]").await;
    wait_for(&agent, "the person", "document.querySelector('[data-testid=person-panel-name]')?.textContent === 'Pat Payer'").await;
    let attrs = js(&agent, "return document.querySelector('[data-testid=person-panel-attributes]').textContent").await;
    assert!(attrs.as_str().unwrap().contains("plan") && attrs.as_str().unwrap().contains("pro"), "{attrs}");
    let tags = js(&agent, "return document.querySelector('[data-testid=person-panel-tags]').textContent").await;
    assert!(tags.as_str().unwrap().contains("late-payer"), "{tags}");
    wait_for(
        &agent,
        "their events",
        "document.querySelectorAll('[data-testid=person-panel-timeline] [data-testid=timeline-item]').length >= 1",
    )
    .await;
    let link = js(&agent, "return document.querySelector('[data-testid=person-panel-profile]').getAttribute('href')").await;
    assert_eq!(link, json!(format!("#/people/{payer}")));
    screenshot(&agent, &format!("app-inbox-person-{tag}")).await;
    phone_shot(&agent, &format!("app-inbox-person-phone-{tag}")).await;

    // A saved reply: "/" and part of its title, then Enter puts it in; Enter sends it.
    type_in(&agent, "[data-testid=composer-input]", "Hello! /refu").await;
    wait_for(&agent, "the saved reply", "document.querySelector('[data-testid=canned-item]')?.textContent.includes('Refund policy')").await;
    screenshot(&agent, &format!("app-inbox-canned-{tag}")).await;
    type_in(&agent, "[data-testid=composer-input]", "\u{E007}").await;
    let text = js(&agent, "return document.querySelector('[data-testid=composer-input]').value").await;
    assert_eq!(text, "Hello! Refunds take five working days.");
    type_in(&agent, "[data-testid=composer-input]", "\u{E007}").await;
    let messages = format!("/api/v1/conversations/{invoice}/messages");
    until(&app, &messages, |m| m["items"].as_array().unwrap().iter().any(|x| x["body"] == "Hello! Refunds take five working days.")).await;

    // Tess joins read-only, then may write, then leaves.
    let path = format!("/api/v1/conversations/{invoice}");
    let role_of = |c: &serde_json::Value| {
        c["participants"].as_array().unwrap().iter().find(|p| p["teammate"]["id"] == tess.as_str()).map(|p| p["role"].clone())
    };
    click(&agent, "[data-testid=participants-toggle]").await;
    choose(&agent, "[data-testid=participant-add-who]", &tess).await;
    choose(&agent, "[data-testid=participant-add-role]", "read_only").await;
    click(&agent, "[data-testid=participant-add]").await;
    until(&app, &path, |c| role_of(c) == Some(json!("read_only"))).await;
    let row = format!("[data-testid=participant][data-teammate-id='{tess}']");
    el(&agent, &format!("{row}[data-role=read_only]")).await;
    screenshot(&agent, &format!("app-inbox-participants-{tag}")).await;
    choose(&agent, &format!("{row} [data-testid=participant-role]"), "write").await;
    until(&app, &path, |c| role_of(c) == Some(json!("write"))).await;
    click(&agent, &format!("{row}[data-role=write] [data-testid=participant-remove]")).await;
    until(&app, &path, |c| role_of(c).is_none()).await;

    click(&agent, "[data-testid=archive-button]").await;
    wait_for(&agent, "the other one left", &only(other)).await;
    let c = app.get(&format!("/api/v1/conversations/{invoice}"), &app.token).await.ok().unwrap();
    assert_eq!(c["archived"], true, "{c}");
    click(&agent, "[data-testid=archived-filter]").await;
    wait_for(&agent, "the archived one", &only(invoice)).await;
    screenshot(&agent, &format!("app-inbox-archived-{tag}")).await;
    wait_for(&agent, "the unarchive button", "!document.querySelector('[data-testid=unarchive-button]').hidden").await;
    click(&agent, "[data-testid=unarchive-button]").await;
    until(&app, &format!("/api/v1/conversations/{invoice}"), |c| c["archived"] == false).await;
    wait_for(&agent, "no archived ones", "document.querySelectorAll('[data-testid=conversation-row]').length === 0").await;
    agent.close().await.unwrap();
}
