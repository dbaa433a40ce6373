//! People: upsert, merge, timeline, events, search, segments, quick add, and
//! that no workspace sees another's people.

use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    upsert_finds_people_by_external_id_then_email_and_types_their_attributes,
    an_anonymous_visitor_identified_later_is_merged_and_nothing_is_lost,
    batched_events_land_on_timelines_that_page_newest_first,
    search_matches_text_and_filters_with_an_exact_total_and_cursor_pages,
    every_operator_and_field_kind_selects_the_right_people,
    bad_filters_answer_422_naming_the_node,
    segments_stay_dynamic_and_nest,
    quick_add_finds_people_companies_and_segments,
    another_workspace_never_sees_these_people,
    company_conversations_are_shared_by_every_member,
    kept_search_results_follow_every_change,
    a_set_too_big_to_keep_still_pages_through_everyone_once_in_order,
);

async fn person(app: &TestApp, body: Value) -> Value {
    app.post("/api/v1/people", &app.token, body).await.ok().unwrap()
}

async fn search(app: &TestApp, body: Value) -> Value {
    app.post("/api/v1/people/search", &app.token, body).await.ok().unwrap()
}

/// Names of the people a filter selects, sorted.
async fn names(app: &TestApp, filter: Value) -> Vec<String> {
    let page = search(app, json!({"filter": filter, "limit": 200})).await;
    let mut out: Vec<String> = page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap_or("").to_owned()).collect();
    out.sort();
    assert_eq!(page["total"].as_i64().unwrap() as usize, out.len(), "total agrees with the items");
    out
}

async fn upsert_finds_people_by_external_id_then_email_and_types_their_attributes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post(
            "/api/v1/people",
            &app.token,
            json!({"external_id": "u-1", "email": "Ann@Example.com", "name": "Ann Lee", "phone": "+49 170 123-4567", "phone_kind": "mobile",
                   "company": "Acme", "manager": true, "country": "DE", "city": "Berlin", "location": {"lat": 52.52, "lon": 13.40},
                   "attributes": {"plan": "pro", "seats": 12, "beta": true, "renews_on": "2027-01-31"}, "tags": ["VIP", " vip ", "Beta"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let ann = created.body;
    let id = ann["id"].as_str().unwrap();
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(ann["phone"], "+491701234567");
    assert_eq!(ann["company"]["name"], "Acme");
    assert_eq!(ann["manager"], true);
    assert_eq!(ann["location"], json!({"lat": 52.52, "lon": 13.40}));
    assert_eq!(ann["tags"], json!(["beta", "vip"]));
    assert_eq!(ann["attributes"]["seats"], 12);
    assert_eq!(ann["attributes"]["renews_on"], "2027-01-31T00:00:00.000Z");

    // The same email without external_id is the same person: an update.
    let again = app.post("/api/v1/people", &app.token, json!({"email": "ann@example.com", "attributes": {"seats": 14}})).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["id"], id);
    assert_eq!(again.body["attributes"]["plan"], "pro", "attributes not named stay");
    assert_eq!(again.body["attributes"]["seats"], 14);
    // A second person of the same company joins it, whatever the case.
    let bob = person(&app, json!({"external_id": "u-2", "name": "Bob", "company": "ACME"})).await;
    assert_eq!(bob["company"]["id"], ann["company"]["id"]);

    // An attribute keeps its type.
    let wrong = app.post("/api/v1/people", &app.token, json!({"external_id": "u-2", "attributes": {"seats": "many"}})).await;
    assert_eq!((wrong.status, wrong.field()), (422, "attributes.seats"), "{wrong:?}");
    let wrong = app.post("/api/v1/people", &app.token, json!({"external_id": "u-2", "attributes": {"renews_on": "soon"}})).await;
    assert_eq!((wrong.status, wrong.field()), (422, "attributes.renews_on"));
    for (body, field) in [
        (json!({"name": "Nobody"}), "external_id"),
        (json!({"email": "not-an-email"}), "email"),
        (json!({"external_id": "x", "phone": "call me"}), "phone"),
        (json!({"external_id": "x", "phone_kind": "fax"}), "phone_kind"),
        (json!({"external_id": "x", "location": {"lat": 100, "lon": 0}}), "location.lat"),
        (json!({"external_id": "x", "tags": ["ok", ""]}), "tags.1"),
        (json!({"external_id": "x", "attributes": {"bad name!": 1}}), "attributes.bad name!"),
        (json!({"external_id": "x", "attributes": {"nested": {"a": 1}}}), "attributes.nested"),
        (json!({"external_id": "x", "shoe_size": 44}), "shoe_size"),
    ] {
        let a = app.post("/api/v1/people", &app.token, body.clone()).await;
        assert_eq!((a.status, a.field()), (422, field), "{body}: {a:?}");
    }
    let none = search(&app, json!({"q": "nobody"})).await;
    assert_eq!(none["total"], 0, "nothing half-written");

    // PATCH changes and removes; the changes are on the timeline.
    let patched = app
        .patch(&format!("/api/v1/people/{id}"), &app.token, json!({"name": "Ann Smith", "location": null, "attributes": {"beta": null}}))
        .await
        .ok()
        .unwrap();
    assert_eq!(patched["name"], "Ann Smith");
    assert!(patched["location"].is_null());
    assert!(patched["attributes"].get("beta").is_none());
    let taken = app.patch(&format!("/api/v1/people/{id}"), &app.token, json!({"external_id": "u-2"})).await;
    assert_eq!(taken.status, 409, "{taken:?}");
    let tl = app.get(&format!("/api/v1/people/{id}/timeline?name=attribute.changed"), &app.token).await.ok().unwrap();
    let changed: Vec<&str> = tl["items"].as_array().unwrap().iter().map(|e| e["data"]["name"].as_str().unwrap()).collect();
    for n in ["name", "attributes.beta", "attributes.seats"] {
        assert!(changed.contains(&n), "{n} in {changed:?}");
    }
    let got = app.get(&format!("/api/v1/people/{id}"), &app.token).await.ok().unwrap();
    let summary = got["events"].as_array().unwrap().iter().find(|e| e["name"] == "attribute.changed").unwrap();
    assert_eq!(summary["count"].as_i64().unwrap() as usize, changed.len());

    // Agents may not delete people; admins may, and then they are gone.
    let (_, agent) = app.teammate("Agent", "agent").await;
    assert_eq!(app.delete(&format!("/api/v1/people/{id}"), &agent).await.status, 403);
    assert_eq!(app.delete(&format!("/api/v1/people/{id}"), &app.token).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/people/{id}"), &app.token).await.status, 404);
    assert_eq!(search(&app, json!({"q": "ann"})).await["total"], 0);
}

async fn an_anonymous_visitor_identified_later_is_merged_and_nothing_is_lost(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let known =
        person(&app, json!({"external_id": "user-7", "name": "Kim Known", "attributes": {"plan": "pro"}, "tags": ["customer"]})).await;
    let known_id = known["id"].as_str().unwrap();

    // An anonymous visitor chats, tracks and browses.
    let (token, anon_id) = app.visitor_with(json!({"attributes": {"referrer": "ads"}})).await;
    let mut widget = app.widget_ws(&token).await;
    let msg = widget.say("m1", "hello before logging in").await;
    let cid = msg["conversation_id"].as_str().unwrap().to_owned();
    widget.send(json!({"type": "track", "name": "viewed_pricing", "data": {"plan": "pro"}})).await;
    widget.send(json!({"type": "page.view", "url": "https://shop.test/pricing", "title": "Pricing"})).await;
    widget.send(json!({"type": "ping"})).await;
    widget.next_of("pong").await;
    widget.close().await;

    // Then logs in: the widget boots with the user id and the same token.
    let s = app
        .request(
            "POST",
            "/widget/v1/session",
            None,
            Some(json!({"app_id": app.app_id, "token": token, "user_id": "user-7", "email": "kim@example.com"}).to_string()),
        )
        .await
        .ok()
        .unwrap();
    assert_eq!(s["person_id"], known_id);

    // The anonymous person is gone; everything moved to the known one.
    assert_eq!(app.get(&format!("/api/v1/people/{anon_id}"), &app.token).await.status, 404);
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["person"]["id"], known_id);
    let thread = app.thread(&cid).await;
    assert_eq!(thread[0]["author"]["id"], known_id);
    let p = app.get(&format!("/api/v1/people/{known_id}"), &app.token).await.ok().unwrap();
    assert_eq!(p["attributes"], json!({"plan": "pro", "referrer": "ads"}));
    assert_eq!(p["email"], "kim@example.com");
    assert_eq!(p["tags"], json!(["customer"]));
    let tl = app.get(&format!("/api/v1/people/{known_id}/timeline"), &app.token).await.ok().unwrap();
    let seen: Vec<&str> = tl["items"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    for n in ["person.merged", "conversation.started", "message.sent", "viewed_pricing", "page.view"] {
        assert!(seen.contains(&n), "{n} in {seen:?}");
    }
    let merged = tl["items"].as_array().unwrap().iter().find(|e| e["name"] == "person.merged").unwrap();
    assert_eq!(merged["data"]["from"], anon_id.as_str());

    // The visitor keeps chatting in the same conversation as the known person.
    let session_token = s["token"].as_str().unwrap();
    let state = app.request("GET", "/widget/v1/conversation", Some(session_token), None).await.ok().unwrap();
    assert_eq!(state["conversation"]["id"], cid.as_str(), "{state}");
    // A teammate's reply is on the timeline as received.
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "welcome back"})).await.ok().unwrap();
    let tl = app.get(&format!("/api/v1/people/{known_id}/timeline?name=message.received"), &app.token).await.ok().unwrap();
    assert_eq!(tl["items"].as_array().unwrap().len(), 1);
}

async fn batched_events_land_on_timelines_that_page_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let one = app
        .post("/api/v1/events", &app.token, json!({"person": {"external_id": "e-1"}, "name": "signed_up", "at": "2026-01-01T10:00:00Z"}))
        .await;
    assert_eq!(one.status, 202, "{one:?}");
    assert_eq!(one.body["people_created"], 1);
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"person": {"external_id": "e-1"}, "name": "purchased", "data": {"n": i}, "at": format!("2026-02-0{}T10:00:00Z", i + 1)}))
        .chain([json!({"person": {"email": "new@example.com"}, "name": "purchased"})])
        .collect();
    let a = app.post("/api/v1/events", &app.token, json!(batch)).await.ok().unwrap();
    assert_eq!((a["accepted"].as_i64(), a["people_created"].as_i64()), (Some(6), Some(1)));

    let id = app.post("/api/v1/people", &app.token, json!({"external_id": "e-1"})).await.body["id"].as_str().unwrap().to_owned();
    let got = app.get(&format!("/api/v1/people/{id}"), &app.token).await.ok().unwrap();
    let purchased = got["events"].as_array().unwrap().iter().find(|e| e["name"] == "purchased").unwrap().clone();
    assert_eq!(purchased["count"], 5);
    assert_eq!(purchased["first_at"], "2026-02-01T10:00:00.000Z");
    assert_eq!(purchased["last_at"], "2026-02-05T10:00:00.000Z");

    // Pages of two, newest first, until the cursor runs out.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/people/{id}/timeline?limit=2&before={c}"),
            None => format!("/api/v1/people/{id}/timeline?limit=2"),
        };
        let page = app.get(&path, &app.token).await.ok().unwrap();
        for e in page["items"].as_array().unwrap() {
            seen.push((e["name"].as_str().unwrap().to_owned(), e["data"]["n"].as_i64()));
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<(String, Option<i64>)> =
        (0..5).rev().map(|i| ("purchased".to_owned(), Some(i))).chain([("signed_up".to_owned(), None)]).collect();
    assert_eq!(seen, expected);
    let only = app.get(&format!("/api/v1/people/{id}/timeline?name=signed_up"), &app.token).await.ok().unwrap();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);

    // A bad item refuses the whole batch, naming it.
    let bad = app
        .post(
            "/api/v1/events",
            &app.token,
            json!([{"person": {"external_id": "e-1"}, "name": "fine"}, {"person": {"external_id": "e-1"}, "name": "<bad>"}]),
        )
        .await;
    assert_eq!((bad.status, bad.field()), (422, "1.name"), "{bad:?}");
    let unknown = app.post("/api/v1/events", &app.token, json!([{"person": {"id": "nope"}, "name": "x"}])).await;
    assert_eq!((unknown.status, unknown.field()), (422, "0.person.id"));
    let got = app.get(&format!("/api/v1/people/{id}"), &app.token).await.ok().unwrap();
    assert!(got["events"].as_array().unwrap().iter().all(|e| e["name"] != "fine"), "nothing of a refused batch is stored");
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"person": {"external_id": "e-1"}, "name": "x"})).collect();
    assert_eq!(app.post("/api/v1/events", &app.token, json!(too_many)).await.status, 413);
}

async fn search_matches_text_and_filters_with_an_exact_total_and_cursor_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (i, (name, country)) in [
        ("Anna Berg", "DE"),
        ("Anton Meier", "DE"),
        ("Bea Anders", "FR"),
        ("Carl Nilsson", "SE"),
        ("Dora Diaz", "ES"),
        ("Emil Engel", "DE"),
        ("Anke Ahn", "KR"),
    ]
    .iter()
    .enumerate()
    {
        person(&app, json!({"external_id": format!("s{i}"), "name": name, "email": format!("p{i}@mail{i}.test"), "country": country, "company": if i % 2 == 0 { "Northwind" } else { "Globex" }}))
            .await;
    }
    // Words match as prefixes of name, email and company.
    let an = search(&app, json!({"q": "an"})).await;
    let mut got: Vec<&str> = an["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    got.sort();
    assert_eq!(got, ["Anke Ahn", "Anna Berg", "Anton Meier", "Bea Anders"]);
    assert_eq!(search(&app, json!({"q": "p3@mail3"})).await["items"][0]["name"], "Carl Nilsson");
    assert_eq!(search(&app, json!({"q": "northw"})).await["total"], 4);
    // Text and filter together.
    let de = search(&app, json!({"q": "an", "filter": {"field": "country", "op": "eq", "value": "de"}})).await;
    assert_eq!(de["total"], 2);

    // Cursor pages in name order add up to the total, without repeats.
    let mut names = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = search(&app, json!({"sort": {"field": "name", "order": "asc"}, "limit": 3, "cursor": cursor})).await;
        assert_eq!(page["total"], 7);
        names.extend(page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 7);
    let bad = app.post("/api/v1/people/search", &app.token, json!({"cursor": "junk"})).await;
    assert_eq!((bad.status, bad.field()), (422, "cursor"));
    let bad = app.post("/api/v1/people/search", &app.token, json!({"limit": 0})).await;
    assert_eq!((bad.status, bad.field()), (422, "limit"));
    // Punctuation in the text is not syntax.
    assert_eq!(search(&app, json!({"q": "\"* OR ann AND ("})).await["total"], 0);
}

async fn every_operator_and_field_kind_selects_the_right_people(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let day = 86_400_000_i64;
    let now = chrono::Utc::now().timestamp_millis();
    let iso = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    // Berlin, Potsdam (inside the Berlin area), Paris, Lisbon; one without a place.
    let people = [
        json!({"external_id": "a", "name": "A", "email": "a@x.test", "country": "DE", "city": "Berlin", "location": {"lat": 52.52, "lon": 13.405},
               "attributes": {"plan": "Pro", "seats": 10, "beta": true, "renews": iso(now + 20 * day)}, "tags": ["vip", "beta"], "company": "Acme", "manager": true}),
        json!({"external_id": "b", "name": "B", "email": "b@y.test", "country": "DE", "city": "Potsdam", "location": {"lat": 52.39, "lon": 13.06},
               "attributes": {"plan": "free", "seats": 1, "beta": false, "renews": iso(now - 40 * day)}, "tags": ["beta"], "company": "Acme"}),
        json!({"external_id": "c", "name": "C", "email": "c@x.test", "country": "FR", "city": "Paris", "location": {"lat": 48.857, "lon": 2.352},
               "attributes": {"plan": "enterprise", "seats": 200}, "company": "Initech"}),
        json!({"external_id": "d", "name": "D", "phone": "+351 912 345 678", "country": "PT", "city": "Lisbon", "location": {"lat": 38.72, "lon": -9.14},
               "attributes": {"plan": "100% pro_"}}),
        json!({"external_id": "e", "name": "E"}),
    ];
    for p in people {
        person(&app, p).await;
    }
    // Events: A purchased 3 times recently, B twice long ago, C once recently.
    let mut evs = Vec::new();
    for (who, days_ago) in [("a", 1), ("a", 2), ("a", 3), ("b", 100), ("b", 120), ("c", 5)] {
        evs.push(json!({"person": {"external_id": who}, "name": "purchased", "at": now - days_ago * day}));
    }
    app.post("/api/v1/events", &app.token, json!(evs)).await.ok().unwrap();
    // B is online: a widget socket is open.
    let (vt, _) = app.visitor_with(json!({"user_id": "b"})).await;
    let mut online = app.widget_ws(&vt).await;
    online.send(json!({"type": "ping"})).await;
    online.next_of("pong").await;

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"field": "name", "op": "eq", "value": "a"}), vec!["A"]),
        (json!({"field": "email", "op": "contains", "value": "@x."}), vec!["A", "C"]),
        (json!({"field": "email", "op": "starts_with", "value": "B@"}), vec!["B"]),
        (json!({"field": "email", "op": "exists"}), vec!["A", "B", "C"]),
        (json!({"field": "phone", "op": "starts_with", "value": "+351"}), vec!["D"]),
        (json!({"field": "country", "op": "neq", "value": "DE"}), vec!["C", "D", "E"]),
        (json!({"field": "country", "op": "in", "value": ["FR", "pt"]}), vec!["C", "D"]),
        (json!({"field": "city", "op": "eq", "value": "paris"}), vec!["C"]),
        (json!({"field": "company", "op": "eq", "value": "acme"}), vec!["A", "B"]),
        (json!({"field": "manager", "op": "eq", "value": true}), vec!["A"]),
        (json!({"field": "online", "op": "eq", "value": true}), vec!["B"]),
        (json!({"field": "tags", "op": "contains", "value": "VIP"}), vec!["A"]),
        (json!({"field": "tags", "op": "in", "value": ["beta", "nothing"]}), vec!["A", "B"]),
        (json!({"not": {"field": "tags", "op": "exists"}}), vec!["C", "D", "E"]),
        (json!({"field": "attributes.plan", "op": "eq", "value": "PRO"}), vec!["A"]),
        (json!({"field": "attributes.plan", "op": "contains", "value": "% pro_"}), vec!["D"]),
        (json!({"field": "attributes.plan", "op": "neq", "value": "pro"}), vec!["B", "C", "D", "E"]),
        (json!({"field": "attributes.seats", "op": "gt", "value": 5}), vec!["A", "C"]),
        (json!({"field": "attributes.seats", "op": "lte", "value": 10}), vec!["A", "B"]),
        (json!({"field": "attributes.seats", "op": "between", "value": [2, 200]}), vec!["A", "C"]),
        (json!({"field": "attributes.seats", "op": "in", "value": [1, 200]}), vec!["B", "C"]),
        (json!({"field": "attributes.beta", "op": "eq", "value": false}), vec!["B"]),
        (json!({"field": "attributes.beta", "op": "exists"}), vec!["A", "B"]),
        (json!({"field": "attributes.renews", "op": "gt", "value": iso(now)}), vec!["A"]),
        (json!({"field": "attributes.renews", "op": "within_days", "value": 60}), vec!["A", "B"]),
        (json!({"field": "created_at", "op": "within_days", "value": 1}), vec!["A", "B", "C", "D", "E"]),
        (json!({"field": "created_at", "op": "lt", "value": "2020-01-01"}), vec![]),
        (json!({"field": "last_seen_at", "op": "exists"}), vec!["B"]),
        (json!({"field": "location", "op": "within_radius", "value": {"lat": 52.5, "lon": 13.4, "km": 50}}), vec!["A", "B"]),
        (json!({"field": "location", "op": "within_radius", "value": {"lat": 52.5, "lon": 13.4, "km": 5}}), vec!["A"]),
        // A polygon around western Europe with a notch cut out over Paris.
        (
            json!({"field": "location", "op": "in_polygon", "value": [[36, -10], [55, -10], [55, 15], [36, 15], [36, 4], [50, 4], [50, 1], [36, 1]]}),
            vec!["A", "B", "D"],
        ),
        (json!({"event": "purchased", "min_count": 2}), vec!["A", "B"]),
        (json!({"event": "purchased", "min_count": 2, "within_days": 30}), vec!["A"]),
        (json!({"event": "purchased", "within_days": 30}), vec!["A", "C"]),
        (json!({"event": "purchased", "max_count": 0}), vec!["D", "E"]),
        (json!({"event": "purchased", "max_count": 1, "within_days": 30}), vec!["B", "C", "D", "E"]),
        (
            json!({"or": [{"field": "country", "op": "eq", "value": "FR"}, {"and": [{"field": "country", "op": "eq", "value": "DE"}, {"not": {"field": "manager", "op": "eq", "value": true}}]}]}),
            vec!["B", "C"],
        ),
        (json!({"and": []}), vec!["A", "B", "C", "D", "E"]),
    ];
    for (filter, want) in cases {
        assert_eq!(names(&app, filter.clone()).await, want, "{filter}");
    }
    online.close().await;
}

async fn bad_filters_answer_422_naming_the_node(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    person(&app, json!({"external_id": "x", "attributes": {"seats": 3}})).await;
    let cases = [
        (json!({"and": [{"field": "name", "op": "eq", "value": "a"}, {"field": "name", "op": "gt", "value": "a"}]}), "filter.and.1.op"),
        (json!({"or": [{"field": "shoe", "op": "eq", "value": 1}]}), "filter.or.0.field"),
        (json!({"not": {"field": "attributes.seats", "op": "eq", "value": "many"}}), "filter.not.value"),
        (json!({"field": "attributes.unknown", "op": "eq", "value": 1}), "filter.field"),
        (json!({"field": "created_at", "op": "between", "value": ["2024-01-01"]}), "filter.value"),
        (json!({"field": "location", "op": "in_polygon", "value": [[0, 0], [1, 1]]}), "filter.value"),
        (json!({"event": "purchased", "min_count": 3, "max_count": 1}), "filter"),
        (json!({"segment": "no-such-segment"}), "filter"),
        (json!("everyone"), "filter"),
    ];
    for (filter, field) in cases {
        let a = app.post("/api/v1/people/search", &app.token, json!({"filter": filter})).await;
        assert_eq!(a.status, 422, "{filter}: {a:?}");
        assert!(a.field().starts_with(field), "{filter}: field {} should start with {field}", a.field());
        let s = app.post("/api/v1/segments", &app.token, json!({"name": "bad", "filter": filter})).await;
        assert_eq!(s.status, 422, "a segment refuses it too: {s:?}");
    }
    assert!(app.get("/api/v1/segments", &app.token).await.ok().unwrap().as_array().unwrap().is_empty(), "no bad segment stored");
}

async fn segments_stay_dynamic_and_nest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    person(&app, json!({"external_id": "1", "name": "One", "attributes": {"plan": "pro"}, "country": "DE"})).await;
    person(&app, json!({"external_id": "2", "name": "Two", "attributes": {"plan": "free"}, "country": "DE"})).await;
    let pro = app
        .post(
            "/api/v1/segments",
            &app.token,
            json!({"name": "Pro customers", "filter": {"field": "attributes.plan", "op": "eq", "value": "pro"}}),
        )
        .await;
    assert_eq!(pro.status, 201, "{pro:?}");
    let pro_id = pro.body["id"].as_str().unwrap().to_owned();
    assert_eq!(pro.body["count"], 1);
    // Someone who starts matching is in the segment from then on.
    person(&app, json!({"external_id": "2", "attributes": {"plan": "pro"}})).await;
    person(&app, json!({"external_id": "3", "name": "Three", "attributes": {"plan": "pro"}, "country": "FR"})).await;
    let s = app.get(&format!("/api/v1/segments/{pro_id}"), &app.token).await.ok().unwrap();
    assert_eq!(s["count"], 3);
    let members = app.get(&format!("/api/v1/segments/{pro_id}/people"), &app.token).await.ok().unwrap();
    assert_eq!(members["total"], 3);
    // A segment built on a segment.
    let de = app
        .post(
            "/api/v1/segments",
            &app.token,
            json!({"name": "German pros", "filter": {"and": [{"segment": pro_id}, {"field": "country", "op": "eq", "value": "DE"}]}}),
        )
        .await
        .ok()
        .unwrap();
    assert_eq!(de["count"], 2);
    let de_id = de["id"].as_str().unwrap();
    assert_eq!(names(&app, json!({"segment": de_id})).await, ["One", "Two"]);
    // No cycles; no deleting what another segment uses.
    let cycle = app.patch(&format!("/api/v1/segments/{pro_id}"), &app.token, json!({"filter": {"segment": de_id}})).await;
    assert_eq!(cycle.status, 422, "{cycle:?}");
    assert_eq!(app.delete(&format!("/api/v1/segments/{pro_id}"), &app.token).await.status, 409);
    let renamed = app.patch(&format!("/api/v1/segments/{de_id}"), &app.token, json!({"name": "DE pros"})).await.ok().unwrap();
    assert_eq!(renamed["name"], "DE pros");
    let list = app.get("/api/v1/segments", &app.token).await.ok().unwrap();
    let counts: Vec<(String, i64)> =
        list.as_array().unwrap().iter().map(|s| (s["name"].as_str().unwrap().to_owned(), s["count"].as_i64().unwrap())).collect();
    assert_eq!(counts, [("DE pros".to_owned(), 2), ("Pro customers".to_owned(), 3)]);
    assert_eq!(app.delete(&format!("/api/v1/segments/{de_id}"), &app.token).await.status, 204);
    assert_eq!(app.delete(&format!("/api/v1/segments/{pro_id}"), &app.token).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/segments/{pro_id}"), &app.token).await.status, 404);
}

async fn quick_add_finds_people_companies_and_segments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    person(&app, json!({"external_id": "1", "name": "Stella Stone", "company": "Stark Industries"})).await;
    person(&app, json!({"external_id": "2", "name": "Bob", "company": "Stark Industries"})).await;
    app.post("/api/v1/segments", &app.token, json!({"name": "Stale leads", "filter": {"field": "last_seen_at", "op": "exists"}}))
        .await
        .ok()
        .unwrap();
    let found = app.get("/api/v1/search?q=st", &app.token).await.ok().unwrap();
    // Bob is found through his company's name.
    assert_eq!(found["people"].as_array().unwrap().len(), 2, "{found}");
    assert_eq!(found["companies"][0]["name"], "Stark Industries");
    assert_eq!(found["companies"][0]["members"], 2);
    assert_eq!(found["segments"][0]["name"], "Stale leads");
    let none = app.get("/api/v1/search?q=zzz", &app.token).await.ok().unwrap();
    assert_eq!(none, json!({"people": [], "companies": [], "segments": []}));
}

async fn another_workspace_never_sees_these_people(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = person(&app, json!({"external_id": "same-id", "name": "Mine", "company": "Shared Name"})).await;
    let id = p["id"].as_str().unwrap();
    let company = p["company"]["id"].as_str().unwrap();
    let seg = app.post("/api/v1/segments", &app.token, json!({"name": "All", "filter": {"and": []}})).await.ok().unwrap();
    let seg_id = seg["id"].as_str().unwrap();
    let (other, _) = app.other_workspace().await;
    for (method, path) in [
        ("GET", format!("/api/v1/people/{id}")),
        ("PATCH", format!("/api/v1/people/{id}")),
        ("DELETE", format!("/api/v1/people/{id}")),
        ("GET", format!("/api/v1/people/{id}/timeline")),
        ("GET", format!("/api/v1/companies/{company}")),
        ("GET", format!("/api/v1/segments/{seg_id}")),
        ("PATCH", format!("/api/v1/segments/{seg_id}")),
        ("DELETE", format!("/api/v1/segments/{seg_id}")),
        ("GET", format!("/api/v1/segments/{seg_id}/people")),
    ] {
        let body = if method == "PATCH" { Some(json!({"name": "x"}).to_string()) } else { None };
        let a = app.request(method, &path, Some(&other), body).await;
        assert_eq!(a.status, 404, "{method} {path}: {a:?}");
    }
    // The same external_id elsewhere is another person; search, segments and
    // events stay inside each workspace.
    let theirs = app.post("/api/v1/people", &other, json!({"external_id": "same-id", "name": "Theirs", "company": "Shared Name"})).await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.body["company"]["id"], company);
    let everyone = app.post("/api/v1/people/search", &other, json!({})).await.ok().unwrap();
    assert_eq!(everyone["total"], 1);
    assert_eq!(everyone["items"][0]["name"], "Theirs");
    let via_segment = app.post("/api/v1/people/search", &other, json!({"filter": {"segment": seg_id}})).await;
    assert_eq!(via_segment.status, 422, "another workspace's segment is unknown here");
    let ev = app.post("/api/v1/events", &other, json!({"person": {"id": id}, "name": "x"})).await;
    assert_eq!((ev.status, ev.field()), (422, "person.id"));
    assert_eq!(app.get("/api/v1/search?q=mine", &other).await.ok().unwrap()["people"], json!([]));
    assert_eq!(search(&app, json!({})).await["total"], 1);
}

async fn company_conversations_are_shared_by_every_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let on = app.patch("/api/v1/workspace", &app.token, json!({"company_conversations": true})).await.ok().unwrap();
    assert_eq!(on["settings"]["company_conversations"], true);
    // Creating people of a company creates its one conversation.
    person(&app, json!({"external_id": "ann", "name": "Ann", "company": "Umbrella"})).await;
    person(&app, json!({"external_id": "ben", "name": "Ben", "company": "Umbrella"})).await;
    person(&app, json!({"external_id": "eve", "name": "Eve", "company": "Other Corp"})).await;
    let list = app.get("/api/v1/conversations", &app.token).await.ok().unwrap();
    let titles: Vec<&str> = list["items"].as_array().unwrap().iter().filter_map(|c| c["title"].as_str()).collect();
    assert_eq!(titles.iter().filter(|t| **t == "Umbrella").count(), 1, "{list}");

    let (ann_t, _) = app.visitor_with(json!({"user_id": "ann"})).await;
    let (ben_t, _) = app.visitor_with(json!({"user_id": "ben"})).await;
    let (eve_t, _) = app.visitor_with(json!({"user_id": "eve"})).await;
    let mut ann = app.widget_ws(&ann_t).await;
    let mut ben = app.widget_ws(&ben_t).await;
    let mut eve = app.widget_ws(&eve_t).await;
    let state = app.request("GET", "/widget/v1/conversation", Some(&ben_t), None).await.ok().unwrap();
    let cid = state["conversation"]["id"].as_str().unwrap().to_owned();

    // Ann writes without naming a conversation: it is the company's, and Ben sees it.
    let sent = ann.say("a1", "is the order shipped?").await;
    assert_eq!(sent["conversation_id"], cid.as_str());
    let got = ben.next_of("message.created").await;
    assert_eq!(got["message"]["body"], "is the order shipped?");
    assert_eq!(got["message"]["author"]["name"], "Ann");
    // Ben answers in the same conversation; Ann sees it.
    let b = ben.say("b1", "I asked them too").await;
    assert_eq!(b["conversation_id"], cid.as_str());
    ann.next_where("message.created", |f| f["message"]["body"] == "I asked them too").await;
    // A teammate's reply reaches both.
    app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "shipped today"})).await.ok().unwrap();
    for ws in [&mut ann, &mut ben] {
        ws.next_where("message.created", |f| f["message"]["body"] == "shipped today").await;
    }
    // Someone of another company can neither write there nor hear it.
    eve.send(json!({"type": "message.send", "echo_id": "e1", "conversation_id": cid, "body": "let me in"})).await;
    let err = eve.next_of("error").await;
    assert_eq!(err["code"], "not_found");
    eve.expect_none_of("message.created", std::time::Duration::from_millis(300)).await;
    assert_eq!(app.thread(&cid).await.len(), 3);

    // Closing it, deleting a message and deleting it reach every member.
    app.patch(&format!("/api/v1/conversations/{cid}"), &app.token, json!({"status": "closed"})).await.ok().unwrap();
    for ws in [&mut ann, &mut ben] {
        let f = ws.next_of("conversation.updated").await;
        assert_eq!((f["conversation"]["id"].as_str(), f["conversation"]["status"].as_str()), (Some(cid.as_str()), Some("closed")));
    }
    let mid = b["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/messages/{mid}"), &app.token).await.ok().unwrap();
    for ws in [&mut ann, &mut ben] {
        assert_eq!(ws.next_of("message.deleted").await["message_id"], mid.as_str());
    }
    app.delete(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    for ws in [&mut ann, &mut ben] {
        assert_eq!(ws.next_of("conversation.deleted").await["conversation_id"], cid.as_str());
    }
    eve.expect_none_of("conversation.updated", std::time::Duration::from_millis(200)).await;
}

/// Search results are kept while nobody changes (see `engine::search::cache`):
/// each kind of change must still show at once.
async fn kept_search_results_follow_every_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    for (i, name) in ["Kim Alder", "Kim Birch", "Kim Cedar"].iter().enumerate() {
        let p = person(&app, json!({"external_id": format!("k{i}"), "name": name, "tags": ["vip"]})).await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let vip = json!({"field": "tags", "op": "contains", "value": "vip"});
    let bought = json!({"event": "purchased", "min_count": 1});
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(1_300));
    settle().await;
    // Kept: the same answer twice, and the second page read from it.
    let first = search(&app, json!({"q": "kim", "limit": 2, "sort": {"field": "name", "order": "asc"}})).await;
    assert_eq!(first["total"], 3);
    let again = search(&app, json!({"q": "kim", "limit": 2, "sort": {"field": "name", "order": "asc"}})).await;
    assert_eq!(again["items"], first["items"]);
    let second =
        search(&app, json!({"q": "kim", "limit": 2, "sort": {"field": "name", "order": "asc"}, "cursor": first["next_cursor"]})).await;
    assert_eq!(second["items"][0]["name"], "Kim Cedar");
    assert!(second["next_cursor"].is_null());
    assert_eq!(search(&app, json!({"filter": vip})).await["total"], 3);
    assert_eq!(search(&app, json!({"filter": bought})).await["total"], 0);

    // A new person, a changed tag, an event and a removal each show at once.
    person(&app, json!({"external_id": "k9", "name": "Kim Dogwood"})).await;
    assert_eq!(search(&app, json!({"q": "kim"})).await["total"], 4);
    settle().await;
    assert_eq!(search(&app, json!({"filter": vip})).await["total"], 3);
    app.patch(&format!("/api/v1/people/{}", ids[0]), &app.token, json!({"tags": []})).await.ok().unwrap();
    assert_eq!(search(&app, json!({"filter": vip})).await["total"], 2);
    settle().await;
    assert_eq!(search(&app, json!({"filter": bought})).await["total"], 0);
    app.post("/api/v1/events", &app.token, json!({"person": {"external_id": "k1"}, "name": "purchased"})).await.ok().unwrap();
    assert_eq!(search(&app, json!({"filter": bought})).await["total"], 1);
    settle().await;
    assert_eq!(search(&app, json!({"q": "kim"})).await["total"], 4);
    app.delete(&format!("/api/v1/people/{}", ids[2]), &app.token).await.ok().unwrap();
    assert_eq!(search(&app, json!({"q": "kim"})).await["total"], 3);

    // Pages are kept as sent, and a kept page shows a person's change too:
    // a new name, and an event's count in their profile.
    let page = json!({"q": "kim", "limit": 2, "sort": {"field": "name", "order": "asc"}});
    settle().await;
    let kept = search(&app, page.clone()).await;
    assert_eq!(search(&app, page.clone()).await, kept);
    assert_eq!(kept["items"][1]["name"], "Kim Birch");
    app.patch(&format!("/api/v1/people/{}", ids[1]), &app.token, json!({"name": "Kim Beech"})).await.ok().unwrap();
    let renamed = search(&app, page.clone()).await;
    assert_eq!(renamed["items"][1]["name"], "Kim Beech");
    let segment: Value = app.post("/api/v1/segments", &app.token, json!({"name": "Buyers", "filter": bought})).await.ok().unwrap();
    let members = format!("/api/v1/segments/{}/people", segment["id"].as_str().unwrap());
    settle().await;
    assert_eq!(app.get(&members, &app.token).await.ok().unwrap()["total"], 1);
    app.post("/api/v1/events", &app.token, json!({"person": {"external_id": "k0"}, "name": "purchased"})).await.ok().unwrap();
    let now: Value = app.get(&members, &app.token).await.ok().unwrap();
    assert_eq!(now["total"], 2, "the segment's kept page follows the new event");
}

/// Past the matches a search keeps in order (10,000), each page is found by
/// walking the sort index and testing person after person: every match still
/// comes exactly once, in order, under the exact total, and a smaller set
/// read the other way agrees with it.
async fn a_set_too_big_to_keep_still_pages_through_everyone_once_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    const PEOPLE: usize = 10_300;
    for start in (0..PEOPLE).step_by(500) {
        let batch: Vec<Value> = (start..(start + 500).min(PEOPLE))
            .flat_map(|i| {
                let who = json!({"external_id": format!("walk-{i}")});
                let bought = (i % 3 == 0).then(|| json!({"person": who, "name": "purchased"}));
                std::iter::once(json!({"person": who, "name": "signed_up"})).chain(bought)
            })
            .collect();
        assert_eq!(app.post("/api/v1/events", &app.token, json!(batch)).await.status, 202);
    }
    let signed_up = json!({"event": "signed_up", "min_count": 1});
    let mut seen = Vec::new();
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"filter": signed_up, "sort": {"field": "created_at", "order": "desc"}, "limit": 200});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let page = search(&app, body).await;
        assert_eq!(page["total"], PEOPLE as i64, "every page tells the exact total");
        for p in page["items"].as_array().unwrap() {
            seen.push(p["external_id"].as_str().unwrap().to_owned());
            keys.push((p["created_at"].as_str().unwrap().to_owned(), p["id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), PEOPLE, "as many people as match");
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first, each once");
    let mut all = seen.clone();
    all.sort();
    all.dedup();
    let mut expected: Vec<String> = (0..PEOPLE).map(|i| format!("walk-{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "everyone who signed up, no one else");

    // The people who never bought are few enough to be kept in order; they
    // are the same people as the walk's, less the buyers.
    let never_bought =
        search(&app, json!({"filter": {"and": [signed_up, {"not": {"event": "purchased", "min_count": 1}}]}, "limit": 1})).await;
    assert_eq!(never_bought["total"], (0..PEOPLE).filter(|i| i % 3 != 0).count() as i64);
}
