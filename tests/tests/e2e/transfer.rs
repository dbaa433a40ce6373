//! People in and out as CSV over the API, and synthetic people from the seeder.

use parley_engine::people::seed::{SeedOptions, seed};
use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    an_import_reports_bad_rows_by_line_and_keeps_the_good_ones,
    an_export_lists_matching_people_safely_and_only_from_its_workspace,
    only_admins_import_and_large_files_are_refused,
    seeded_people_are_complete_and_consistent,
);

/// Posts a CSV body to the import endpoint; `query` is appended as is.
async fn import(app: &TestApp, token: &str, query: &str, csv: &str) -> (u16, Value) {
    let res = app
        .http
        .post(app.url(&format!("/api/v1/people/import{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null))
}

/// The export for `query`: (status, content type, disposition, body).
async fn export(app: &TestApp, token: &str, query: &str) -> (u16, String, String, String) {
    let res = app.http.get(app.url(&format!("/api/v1/people/export{query}"))).bearer_auth(token).send().await.unwrap();
    let header = |n: &str| res.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    (res.status().as_u16(), ct, cd, res.text().await.unwrap())
}

/// Rows of a CSV text as cells, the header first.
fn rows(csv: &str) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(csv.as_bytes());
    r.records().map(|rec| rec.unwrap().iter().map(str::to_owned).collect()).collect()
}

fn cell<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let i = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    &row[i]
}

fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn person_by_external_id(app: &TestApp, external_id: &str) -> Value {
    let (_, _, _, csv) = export(app, &app.token, "").await;
    let rows = rows(&csv);
    let row =
        rows[1..].iter().find(|r| cell(&rows[0], r, "external_id") == external_id).unwrap_or_else(|| panic!("{external_id} in {csv}"));
    let id = cell(&rows[0], row, "id");
    app.get(&format!("/api/v1/people/{id}"), &app.token).await.ok().unwrap()
}

async fn an_import_reports_bad_rows_by_line_and_keeps_the_good_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app
        .post("/api/v1/people", &app.token, json!({"external_id": "u-1", "email": "old@example.test", "attributes": {"plan": "free"}}))
        .await
        .ok()
        .unwrap();
    // Line 4 holds a cell over two lines, so u-4 is on line 6; its seats
    // are not a number, which only the database write finds out.
    let csv = "external_id,email,name,plan,seats,tags,signed up,Notes\n\
               u-1,Ann@Example.test,Ann,pro,3,vip;beta,2024-03-01,\n\
               u-2,bad-email,Bob,free,1,,,\n\
               u-3,cy@example.test,=1+2,free,2,trial|VIP,,\"two\nlines\"\n\
               u-4,dee@example.test,Dee,pro,many,,,\n";
    let (status, report) = import(&app, &app.token, &format!("?map={}", encode(r#"{"Notes": "skip"}"#)), csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(1), Some(2)),
        "{report}"
    );
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report}");
    assert_eq!((errors[0]["line"].as_u64(), errors[0]["field"].as_str()), (Some(3), Some("email")), "{report}");
    assert_eq!((errors[1]["line"].as_u64(), errors[1]["field"].as_str()), (Some(6), Some("attributes.seats")), "{report}");
    assert!(errors[1]["reason"].as_str().unwrap().contains("number"), "{report}");

    // u-1 was updated in place: the same person, with typed attributes.
    let ann = person_by_external_id(&app, "u-1").await;
    assert_eq!(ann["id"], before["id"]);
    assert_eq!(ann["email"], "ann@example.test");
    assert_eq!(ann["attributes"]["plan"], "pro");
    assert_eq!(ann["attributes"]["seats"], json!(3), "a number column makes a number: {ann}");
    assert_eq!(ann["attributes"]["signed_up"], "2024-03-01T00:00:00.000Z");
    assert_eq!(ann["tags"], json!(["beta", "vip"]));
    assert!(ann["attributes"].get("Notes").is_none(), "a skipped column is not stored");
    let cy = person_by_external_id(&app, "u-3").await;
    assert_eq!((cy["name"].as_str(), cy["tags"].clone()), (Some("=1+2"), json!(["trial", "vip"])));

    // Importing the same rows again creates nobody.
    let (_, again) = import(&app, &app.token, "", "external_id,email\nu-1,ann@example.test\nu-3,cy@example.test\n").await;
    assert_eq!((again["created"].as_u64(), again["updated"].as_u64()), (Some(0), Some(2)), "{again}");

    // A header that cannot work, and a bad map.
    let (status, body) = import(&app, &app.token, "", "name,company\nAnn,Acme\n").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_csv")), "{body}");
    let (status, body) = import(&app, &app.token, &format!("?map={}", encode(r#"{"Missing": "email"}"#)), "email\na@b.co\n").await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("map.Missing")), "{body}");
    let (status, _) = import(&app, &app.token, "?map=%7Bnot", "email\na@b.co\n").await;
    assert_eq!(status, 400);
}

async fn an_export_lists_matching_people_safely_and_only_from_its_workspace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let csv = "external_id,email,name,phone,plan,tags\n\
               u-1,ann@example.test,Ann Archer,+49 170 1234567,pro,vip\n\
               u-2,bob@example.test,@Bob,,free,\n\
               u-3,cy@example.test,Cy,,pro,vip\n";
    assert_eq!(import(&app, &app.token, "", csv).await.1["created"], 3);
    let (other, _) = app.other_workspace().await;
    assert_eq!(import(&app, &other, "", "email,name\nzed@example.test,Zed Other\n").await.1["created"], 1);

    let (status, ct, cd, text) = export(&app, &app.token, "").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert_eq!(cd, "attachment; filename=\"people.csv\"");
    let all = rows(&text);
    let h = &all[0];
    assert_eq!(h[..4], ["id", "external_id", "email", "phone"]);
    assert_eq!(h.last().map(String::as_str), Some("attributes.plan"));
    assert_eq!(all.len(), 4, "three people, none from the other workspace: {text}");
    assert!(!text.contains("zed@example.test"));
    let bob = all.iter().find(|r| cell(h, r, "external_id") == "u-2").unwrap();
    assert_eq!(cell(h, bob, "name"), "'@Bob", "formula-like text is defused");
    let ann = all.iter().find(|r| cell(h, r, "external_id") == "u-1").unwrap();
    assert_eq!(cell(h, ann, "phone"), "'+491701234567");
    assert_eq!((cell(h, ann, "tags"), cell(h, ann, "attributes.plan")), ("vip", "pro"));

    // Free text narrows it; a filter is checked and applied.
    let (_, _, _, text) = export(&app, &app.token, "?q=archer").await;
    let found = rows(&text);
    assert_eq!(found.len(), 2, "{text}");
    assert_eq!(cell(&found[0], &found[1], "email"), "ann@example.test");
    let vip = encode(&json!({"field": "tags", "op": "contains", "value": "vip"}).to_string());
    let (status, _, _, text) = export(&app, &app.token, &format!("?filter={vip}")).await;
    assert_eq!(status, 200);
    assert!(text.contains("ann@example.test") && text.contains("cy@example.test"), "{text}");
    assert_eq!(export(&app, &app.token, "?filter=%7Bnope").await.0, 400);

    // The other workspace sees only its own.
    let (_, _, _, theirs) = export(&app, &other, "").await;
    assert_eq!(rows(&theirs).len(), 2, "{theirs}");
    assert!(theirs.contains("zed@example.test") && !theirs.contains("ann@example.test"));

    // An export reads back in as the same people.
    let (_, again) = import(&app, &app.token, "", &text).await;
    assert_eq!((again["created"].as_u64(), again["failed"].as_u64()), (Some(0), Some(0)), "{again}");
}

async fn only_admins_import_and_large_files_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, agent) = app.teammate("Agnes", "agent").await;
    let (status, body) = import(&app, &agent, "", "email\na@example.test\n").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (_, _, _, text) = export(&app, &app.token, "").await;
    assert_eq!(rows(&text).len(), 1, "nothing was imported: {text}");

    let mut big = String::from("email,notes\n");
    while big.len() < 300 * 1024 {
        big.push_str(&format!("p{}@example.test,{}\n", big.len(), "x".repeat(100)));
    }
    let (status, body) = import(&app, &app.token, "", &big).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
}

async fn seeded_people_are_complete_and_consistent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = &app.engine.db;
    let report =
        seed(db, &app.workspace_id, SeedOptions { people: 60, events_per_person: 3, seed: 11, conversations: 30 }, |_| {}).await.unwrap();
    assert_eq!(report.people, 60);
    assert!(report.companies >= 1 && report.events > 0);
    assert!((10..=50).contains(&report.conversations) && report.messages >= report.conversations, "{report:?}");
    // A second run adds to the first instead of colliding with it, and
    // reuses the seeded agents.
    let again =
        seed(db, &app.workspace_id, SeedOptions { people: 10, events_per_person: 1, seed: 11, conversations: 10 }, |_| {}).await.unwrap();
    let conversations = report.conversations + again.conversations;
    let team = app.get("/api/v1/teammates", &app.token).await.ok().unwrap();
    assert_eq!(team["items"].as_array().map(Vec::len), Some(10), "the admin and nine seeded agents: {team}");
    let page = app.post("/api/v1/people/search", &app.token, json!({"limit": 200})).await.ok().unwrap();
    assert_eq!(page["total"], 70);

    let ws = &app.workspace_id;
    let count = |sql: &'static str| async move {
        let (n,): (i64,) = parley_engine::with_db!(db, pool => sqlx::query_as(sql).bind(ws).fetch_one(pool).await.unwrap());
        n
    };
    assert_eq!(count("SELECT COUNT(*) FROM person_attribute WHERE workspace_id = $1").await, 4 * 70);
    assert_eq!(count("SELECT COUNT(*) FROM attribute_def WHERE workspace_id = $1").await, 4);
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM event_summary s WHERE s.workspace_id = $1 AND s.count <> \
             (SELECT COUNT(*) FROM event e WHERE e.person_id = s.person_id AND e.name = s.name)"
        )
        .await,
        0,
        "summaries agree with events"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM event e WHERE e.workspace_id = $1 AND NOT EXISTS (SELECT 1 FROM event_summary s WHERE s.person_id = e.person_id AND s.name = e.name)").await,
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM person p WHERE p.workspace_id = $1 AND p.tags <> '[]' AND NOT EXISTS (SELECT 1 FROM person_tag t WHERE t.person_id = p.id)").await,
        0,
        "tags are indexed"
    );

    // Seeded people are found by full text, and read like any other.
    let someone = &page["items"][0];
    let first = someone["name"].as_str().unwrap().split(' ').next().unwrap();
    let found = app.post("/api/v1/people/search", &app.token, json!({"q": first, "limit": 200})).await.ok().unwrap();
    assert!(found["items"].as_array().unwrap().iter().any(|p| p["id"] == someone["id"]), "{first}: {found}");
    if let Some(phone) = someone["phone"].as_str() {
        let digits = &phone[1..];
        let found = app.post("/api/v1/people/search", &app.token, json!({"q": digits})).await.ok().unwrap();
        assert!(found["items"].as_array().unwrap().iter().any(|p| p["id"] == someone["id"]), "{digits}: {found}");
    }
    let p = app.get(&format!("/api/v1/people/{}", someone["id"].as_str().unwrap()), &app.token).await.ok().unwrap();
    let plan = p["attributes"]["plan"].as_str().unwrap();
    assert!(["free", "pro", "enterprise"].contains(&plan), "{p}");
    assert!(p["attributes"]["seats"].is_number() && p["attributes"]["beta"].is_boolean(), "{p}");
    assert!(p["location"]["lat"].is_number() && p["country"].is_string() && p["city"].is_string(), "{p}");
    let (_, _, _, text) = export(&app, &app.token, "").await;
    assert_eq!(rows(&text).len(), 71);

    // The seeded conversations are in the inbox, each under one status.
    let mut listed = Vec::new();
    for status in ["open", "snoozed", "closed"] {
        for archived in [false, true] {
            let page =
                app.get(&format!("/api/v1/conversations?status={status}&archived={archived}&limit=100"), &app.token).await.ok().unwrap();
            listed.extend(page["items"].as_array().unwrap().iter().cloned());
        }
    }
    assert_eq!(listed.len() as u64, conversations);
    for c in &listed {
        assert!(c["person"]["id"].is_string() && c["last_message"]["body"].is_string(), "{c}");
    }
    let mine = app.get("/api/v1/conversations?status=closed&assignee=me&limit=100", &app.token).await.ok().unwrap();
    let closed_mine =
        listed.iter().filter(|c| c["status"] == "closed" && c["archived"] == false && c["assignee"]["id"] == app.admin_id.as_str());
    assert_eq!(mine["items"].as_array().unwrap().len(), closed_mine.count());
    // A thread reads back every message of it, oldest first, and the person's
    // timeline holds the conversation.
    let c = &listed[0];
    let id = c["id"].as_str().unwrap();
    let thread = app.get(&format!("/api/v1/conversations/{id}/messages?limit=100"), &app.token).await.ok().unwrap();
    let messages = thread["items"].as_array().unwrap();
    assert!(!messages.is_empty() && messages.last().unwrap()["id"] == c["last_message"]["id"], "{thread}");
    let person = c["person"]["id"].as_str().unwrap();
    let timeline = app.get(&format!("/api/v1/people/{person}/timeline?name=conversation.started"), &app.token).await.ok().unwrap();
    assert!(timeline["items"].as_array().unwrap().iter().any(|e| e["data"]["conversation_id"] == id), "{timeline}");
}
