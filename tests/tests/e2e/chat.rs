//! Chatting: visitor ⇄ agent, resume, idempotent sends, restarts, archive, notes.

use std::time::Duration;

use parley_tests::{Backend, TestApp, on_both_backends};
use serde_json::json;

on_both_backends!(
    a_visitor_and_an_agent_chat_live_both_ways,
    a_reconnecting_visitor_gets_every_missed_frame_in_order,
    the_same_echo_id_sent_twice_is_stored_once,
    every_acked_message_survives_a_server_restart,
    an_archived_conversation_refuses_the_person_until_unarchived,
    notes_never_reach_the_person,
    threads_and_the_inbox_list_page_with_cursors,
    presence_follows_open_widget_connections,
    a_crowd_connecting_at_once_is_online_together_and_offline_once_gone,
    assign_close_and_reopen_reach_the_inbox_live,
    a_burst_from_many_visitors_is_stored_once_each_in_order,
    a_client_away_longer_than_frames_are_kept_is_told_to_reload,
    each_conversation_of_an_inbox_page_has_its_own_unread_count_last_message_and_participants,
);

async fn a_visitor_and_an_agent_chat_live_both_ways(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut agent = app.agent_ws(&app.token).await;
    assert_eq!(agent.hello["type"], "hello");
    assert_eq!(agent.hello["teammate_id"], app.admin_id);

    let (vtoken, person_id) = app.visitor_with(json!({"name": "Vera Visitor"})).await;
    let mut widget = app.widget_ws(&vtoken).await;
    assert_eq!(widget.hello["person_id"], person_id);

    let sent = widget.say("v-1", "Hello, is anyone there?").await;
    assert_eq!(sent["body"], "Hello, is anyone there?");
    assert_eq!(sent["author"]["type"], "person");
    let conversation_id = sent["conversation_id"].as_str().unwrap().to_owned();

    // The agent sees it live, with the conversation it belongs to.
    let created = agent.next_of("message.created").await;
    assert_eq!(created["message"]["id"], sent["id"]);
    assert_eq!(created["conversation"]["person"]["name"], "Vera Visitor");
    assert!(created["seq"].as_i64().unwrap() > agent.hello["seq"].as_i64().unwrap());

    // The inbox lists it as unread for the agent.
    let list = app.get("/api/v1/conversations?status=open", &app.token).await.ok().unwrap();
    assert_eq!(list["items"][0]["id"], conversation_id.as_str());
    assert_eq!(list["items"][0]["unread"], 1);

    // The agent replies over REST; the visitor sees it live with the agent's name.
    let reply = app
        .post(&format!("/api/v1/conversations/{conversation_id}/messages"), &app.token, json!({"body": "Hi Vera, how can I help?"}))
        .await;
    assert_eq!(reply.status, 201);
    let seen = widget.next_message_not_from("person").await;
    assert_eq!(seen["message"]["body"], "Hi Vera, how can I help?");
    assert_eq!(seen["message"]["author"]["type"], "teammate");
    assert_eq!(seen["message"]["author"]["name"], "Admin");

    // And the visitor answers again over the same socket.
    widget.say("v-2", "Where is my order?").await;
    let again = agent.next_message_not_from("teammate").await;
    assert_eq!(again["message"]["body"], "Where is my order?");

    let thread: Vec<String> = app.thread(&conversation_id).await.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(thread, ["Hello, is anyone there?", "Hi Vera, how can I help?", "Where is my order?"]);

    // Typing reaches the other side, without a seq (it is not replayed).
    widget.send(json!({"type": "typing", "conversation_id": conversation_id, "on": true})).await;
    let typing = agent.next_of("typing").await;
    assert_eq!(typing["author"]["type"], "person");
    assert_eq!(typing["on"], true);
    assert!(typing.get("seq").is_none());
}

async fn a_reconnecting_visitor_gets_every_missed_frame_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let first = widget.say("r-1", "first").await;
    let conversation_id = first["conversation_id"].as_str().unwrap().to_owned();
    let own = widget.next_of("message.created").await;
    let last_seq = own["seq"].as_i64().unwrap();
    widget.close().await;

    // While the visitor is away, the agent writes three messages.
    for i in 1..=3 {
        app.post(&format!("/api/v1/conversations/{conversation_id}/messages"), &app.token, json!({"body": format!("missed {i}")}))
            .await
            .ok()
            .unwrap();
    }

    let mut widget = app.widget_ws(&vtoken).await;
    assert_eq!(widget.hello["seq"], last_seq + 3, "hello tells the stream's position");
    widget.send(json!({"type": "resume", "after": last_seq})).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let f = widget.next_of("message.created").await;
        got.push((f["seq"].as_i64().unwrap(), f["message"]["body"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        got,
        vec![(last_seq + 1, "missed 1".to_owned()), (last_seq + 2, "missed 2".to_owned()), (last_seq + 3, "missed 3".to_owned())]
    );

    // New frames continue after the replay, in order.
    app.post(&format!("/api/v1/conversations/{conversation_id}/messages"), &app.token, json!({"body": "live again"})).await.ok().unwrap();
    let live = widget.next_of("message.created").await;
    assert_eq!(live["seq"], last_seq + 4);
    assert_eq!(live["message"]["body"], "live again");

    // A resume from the future is refused, and the socket stays usable.
    widget.send(json!({"type": "resume", "after": 1_000_000})).await;
    let err = widget.next_of("error").await;
    assert_eq!(err["field"], "after");
    widget.send(json!({"type": "ping"})).await;
    widget.next_of("pong").await;
}

async fn the_same_echo_id_sent_twice_is_stored_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let a = widget.say("dup-1", "only once please").await;
    // The client did not see the ack (say it reconnected) and resends.
    let mut widget2 = app.widget_ws(&vtoken).await;
    let b = widget2.say("dup-1", "only once please").await;
    assert_eq!(a["id"], b["id"], "the resend is acked with the stored message");
    let thread = app.thread(a["conversation_id"].as_str().unwrap()).await;
    assert_eq!(thread.len(), 1);

    // Two tabs resending the same echo_id at the same moment: still once.
    let mut tab_a = app.widget_ws(&vtoken).await;
    let mut tab_b = app.widget_ws(&vtoken).await;
    let frame = json!({"type": "message.send", "echo_id": "both-tabs", "body": "sent from two tabs"});
    tab_a.send(frame.clone()).await;
    tab_b.send(frame).await;
    let (ack_a, ack_b) = (tab_a.next_of("ack").await, tab_b.next_of("ack").await);
    assert_eq!(ack_a["message"]["id"], ack_b["message"]["id"]);
    assert_eq!(ack_a["message"]["body"], "sent from two tabs");
    assert_eq!(app.thread(a["conversation_id"].as_str().unwrap()).await.len(), 2);

    // The agent's REST replies are idempotent the same way.
    let cid = a["conversation_id"].as_str().unwrap();
    let r1 = app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "hi", "echo_id": "agent-1"})).await;
    let r2 = app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "hi", "echo_id": "agent-1"})).await;
    assert_eq!((r1.status, r2.status), (201, 200));
    assert_eq!(r1.body["id"], r2.body["id"]);
    assert_eq!(app.thread(cid).await.len(), 3);
}

async fn every_acked_message_survives_a_server_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(widget.say(&format!("keep-{i}"), &format!("message {i}")).await["id"].clone());
    }
    let cid = {
        let list = app.get("/api/v1/conversations", &app.token).await.ok().unwrap();
        list["items"][0]["id"].as_str().unwrap().to_owned()
    };
    drop(widget);
    let app = app.restart().await;
    let thread = app.thread(&cid).await;
    let stored: Vec<_> = thread.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(stored, ids, "every acked message, in order");
    // The visitor's session survived too, and so did the stream position.
    let mut widget = app.widget_ws(&vtoken).await;
    assert_eq!(widget.hello["seq"], 20);
    widget.say("after-restart", "still here").await;
}

async fn an_archived_conversation_refuses_the_person_until_unarchived(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let m = widget.say("a-1", "please help").await;
    let cid = m["conversation_id"].as_str().unwrap().to_owned();

    let archived = app.post(&format!("/api/v1/conversations/{cid}/archive"), &app.token, json!({})).await.ok().unwrap();
    assert_eq!(archived["archived"], true);
    let update = widget.next_of("conversation.updated").await;
    assert_eq!(update["conversation"]["archived"], true);

    widget.send(json!({"type": "message.send", "echo_id": "a-2", "conversation_id": cid, "body": "hello?"})).await;
    let err = widget.next_of("error").await;
    assert_eq!(err["code"], "conversation_archived");
    assert_eq!(err["echo_id"], "a-2");
    // The person no longer sees it on load.
    let state = app.request("GET", "/widget/v1/conversation", Some(&vtoken), None).await.ok().unwrap();
    assert!(state["conversation"].is_null());
    assert_eq!(app.thread(&cid).await.len(), 1, "nothing was stored");
    // It is in the archived list, not the live one.
    let live = app.get("/api/v1/conversations", &app.token).await.ok().unwrap();
    assert!(live["items"].as_array().unwrap().iter().all(|c| c["id"] != cid.as_str()));
    let arch = app.get("/api/v1/conversations?archived=true", &app.token).await.ok().unwrap();
    assert_eq!(arch["items"][0]["id"], cid.as_str());

    app.post(&format!("/api/v1/conversations/{cid}/unarchive"), &app.token, json!({})).await.ok().unwrap();
    widget.send(json!({"type": "message.send", "echo_id": "a-3", "conversation_id": cid, "body": "back again"})).await;
    let ack = widget.next_of("ack").await;
    assert_eq!(ack["message"]["conversation_id"], cid.as_str());
}

async fn notes_never_reach_the_person(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let cid = widget.say("n-1", "hi").await["conversation_id"].as_str().unwrap().to_owned();
    widget.next_of("message.created").await;
    let mut agent = app.agent_ws(&app.token).await;

    let note =
        app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": "VIP, be nice", "kind": "note"})).await;
    assert_eq!(note.status, 201);
    assert_eq!(note.body["kind"], "note");
    let seen = agent.next_of("message.created").await;
    assert_eq!(seen["message"]["kind"], "note");
    widget.expect_none_of("message.created", Duration::from_millis(500)).await;

    // Not in the widget's history either, nor in a replay.
    let state = app.request("GET", "/widget/v1/conversation", Some(&vtoken), None).await.ok().unwrap();
    assert!(state["messages"].as_array().unwrap().iter().all(|m| m["kind"] != "note"));
    let mut again = app.widget_ws(&vtoken).await;
    again.send(json!({"type": "resume", "after": 0})).await;
    again.send(json!({"type": "ping"})).await;
    loop {
        let f = again.next().await.unwrap();
        assert_ne!(f["message"]["kind"], "note", "a note was replayed to the person");
        if f["type"] == "pong" {
            break;
        }
    }
    // People cannot write notes.
    widget.send(json!({"type": "message.send", "echo_id": "n-2", "body": "x", "kind": "note"})).await;
    let ack = widget.next_of("ack").await;
    assert_eq!(ack["message"]["kind"], "chat");
}

async fn threads_and_the_inbox_list_page_with_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 7 visitors, 7 conversations.
    let mut cids = Vec::new();
    for i in 0..7 {
        let (t, _) = app.visitor().await;
        let mut w = app.widget_ws(&t).await;
        cids.push(w.say("x", &format!("visitor {i}")).await["conversation_id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=3&cursor={c}"),
            None => "/api/v1/conversations?limit=3".to_owned(),
        };
        let page = app.get(&path, &app.token).await.ok().unwrap();
        for c in page["items"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    cids.reverse();
    assert_eq!(seen, cids, "newest activity first, each once");

    // A long thread pages backwards, each page oldest first.
    let cid = &cids[0];
    for i in 0..12 {
        app.post(&format!("/api/v1/conversations/{cid}/messages"), &app.token, json!({"body": format!("m{i}")})).await.ok().unwrap();
    }
    let p1 = app.get(&format!("/api/v1/conversations/{cid}/messages?limit=5"), &app.token).await.ok().unwrap();
    let bodies =
        |p: &serde_json::Value| p["items"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(bodies(&p1), ["m7", "m8", "m9", "m10", "m11"]);
    let before = p1["next_cursor"].as_str().unwrap();
    let p2 = app.get(&format!("/api/v1/conversations/{cid}/messages?limit=5&before={before}"), &app.token).await.ok().unwrap();
    assert_eq!(bodies(&p2), ["m2", "m3", "m4", "m5", "m6"]);
    let before = p2["next_cursor"].as_str().unwrap();
    let p3 = app.get(&format!("/api/v1/conversations/{cid}/messages?limit=5&before={before}"), &app.token).await.ok().unwrap();
    assert_eq!(bodies(&p3), ["visitor 6", "m0", "m1"]);
    assert!(p3["next_cursor"].is_null());
    let bad = app.get("/api/v1/conversations?cursor=garbage", &app.token).await;
    assert_eq!((bad.status, bad.field()), (422, "cursor"));
}

async fn presence_follows_open_widget_connections(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut agent = app.agent_ws(&app.token).await;
    let (vtoken, person_id) = app.visitor().await;
    let tab1 = app.widget_ws(&vtoken).await;
    let online = agent.next_of("presence.update").await;
    assert_eq!((online["person_id"].as_str(), online["online"].as_bool()), (Some(person_id.as_str()), Some(true)));
    let mut tab2 = app.widget_ws(&vtoken).await;
    let cid = tab2.say("p", "hi").await["conversation_id"].as_str().unwrap().to_owned();
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["person"]["online"], true);

    // Closing one of two tabs keeps the person online.
    tab1.close().await;
    agent.expect_none_of("presence.update", Duration::from_millis(500)).await;
    tab2.close().await;
    let offline = agent.next_of("presence.update").await;
    assert_eq!(offline["online"], false);
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &app.token).await.ok().unwrap();
    assert_eq!(c["person"]["online"], false);
}

/// Visitors connecting and leaving at the same moment: each one's presence
/// is recorded (on SQLite, many in one write), none lost or left behind.
async fn a_crowd_connecting_at_once_is_online_together_and_offline_once_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let mut visitors = Vec::new();
    for i in 0..40 {
        visitors.push(app.visitor_with(json!({"email": format!("crowd-{i}-{tag}@crowd.test"), "name": format!("Crowd {i}")})).await);
    }
    let online = async || {
        let filter = json!({"and": [{"field": "online", "op": "eq", "value": true}, {"field": "email", "op": "contains", "value": tag}]});
        app.post("/api/v1/people/search", &app.token, json!({"filter": filter})).await.ok().unwrap()["total"].as_i64().unwrap()
    };
    assert_eq!(online().await, 0);
    // A socket says hello once its presence is written.
    let sockets = futures_util::future::join_all(visitors.iter().map(|(t, _)| app.widget_ws(t))).await;
    assert_eq!(online().await, 40);
    // One of them opens a second tab and closes the first at once: still online.
    let mut sockets = sockets.into_iter();
    let first = sockets.next().unwrap();
    let again = app.widget_ws(&visitors[0].0).await;
    first.close().await;
    assert_eq!(online().await, 40);
    futures_util::future::join_all(sockets.chain([again]).map(|s| s.close())).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while online().await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still online: {}", online().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, id) in &visitors {
        let p = app.get(&format!("/api/v1/people/{id}"), &app.token).await.ok().unwrap();
        assert!(p["last_seen_at"].is_string(), "{p}");
    }
}

async fn assign_close_and_reopen_reach_the_inbox_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (agent_id, agent_token) = app.teammate("Alice", "agent").await;
    let mut alice = app.agent_ws(&agent_token).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let cid = widget.say("c", "help").await["conversation_id"].as_str().unwrap().to_owned();

    let c = app.patch(&format!("/api/v1/conversations/{cid}"), &app.token, json!({"assignee_id": agent_id})).await.ok().unwrap();
    assert_eq!(c["assignee"]["name"], "Alice");
    let upd = alice.next_of("conversation.updated").await;
    assert_eq!(upd["conversation"]["assignee"]["id"], agent_id.as_str());
    let mine = app.get("/api/v1/conversations?assignee=me", &agent_token).await.ok().unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let unassigned = app.get("/api/v1/conversations?assignee=none", &agent_token).await.ok().unwrap();
    assert_eq!(unassigned["items"].as_array().unwrap().len(), 0);

    app.patch(&format!("/api/v1/conversations/{cid}"), &agent_token, json!({"status": "closed"})).await.ok().unwrap();
    assert_eq!(alice.next_of("conversation.updated").await["conversation"]["status"], "closed");
    let closed_frame = widget.next_where("conversation.updated", |f| f["conversation"]["status"] == "closed").await;
    assert_eq!(closed_frame["conversation"]["archived"], false);
    assert!(closed_frame["conversation"].get("participants").is_none(), "the person sees no internals");
    let closed = app.get("/api/v1/conversations?status=closed", &agent_token).await.ok().unwrap();
    assert_eq!(closed["items"][0]["id"], cid.as_str());

    // The person writing again reopens it.
    widget.say("c2", "one more thing").await;
    let c = app.get(&format!("/api/v1/conversations/{cid}"), &agent_token).await.ok().unwrap();
    assert_eq!(c["status"], "open");

    // Snoozing needs a time; unassigning takes null.
    let bad = app.patch(&format!("/api/v1/conversations/{cid}"), &agent_token, json!({"status": "snoozed"})).await;
    assert_eq!((bad.status, bad.field()), (422, "snoozed_until"));
    let s = app
        .patch(
            &format!("/api/v1/conversations/{cid}"),
            &agent_token,
            json!({"status": "snoozed", "snoozed_until": "2030-01-01T09:00:00Z", "assignee_id": null}),
        )
        .await
        .ok()
        .unwrap();
    assert_eq!(s["status"], "snoozed");
    assert_eq!(s["transparent"], false);
    let t = app.patch(&format!("/api/v1/conversations/{cid}"), &agent_token, json!({"transparent": true})).await.ok().unwrap();
    assert_eq!(t["transparent"], true);
    assert_eq!(
        alice.next_where("conversation.updated", |f| f["conversation"]["transparent"] == true).await["conversation"]["id"],
        cid.as_str()
    );
    assert_eq!(s["snoozed_until"], "2030-01-01T09:00:00.000Z");
    assert!(s["assignee"].is_null());
}

/// Many visitors writing at once (on SQLite they share write transactions):
/// every message is acked and stored once, in order, a refused one spoils
/// nothing, and the agents see each once with seqs in order.
async fn a_burst_from_many_visitors_is_stored_once_each_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut agent = app.agent_ws(&app.token).await;
    let start_seq = agent.hello["seq"].as_i64().unwrap();

    // One visitor whose conversation is archived keeps writing into it.
    let (archived_token, _) = app.visitor().await;
    let mut archived = app.widget_ws(&archived_token).await;
    let archived_cid = archived.say("first", "before the archive").await["conversation_id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/conversations/{archived_cid}/archive"), &app.token, json!({})).await.ok().unwrap();

    const VISITORS: usize = 12;
    const EACH: usize = 15;
    let mut tasks = Vec::new();
    for v in 0..VISITORS {
        let (token, _) = app.visitor().await;
        let mut ws = app.widget_ws(&token).await;
        tasks.push(tokio::spawn(async move {
            // Send everything without waiting, then collect the acks; one
            // message is sent twice with the same echo_id.
            for i in 0..EACH {
                ws.send(json!({"type": "message.send", "echo_id": format!("{v}-{i}"), "body": format!("v{v} m{i}")})).await;
            }
            ws.send(json!({"type": "message.send", "echo_id": format!("{v}-0"), "body": format!("v{v} m0")})).await;
            let mut acks = Vec::new();
            while acks.len() < EACH + 1 {
                let f = ws.next_of("ack").await;
                acks.push((
                    f["echo_id"].as_str().unwrap().to_owned(),
                    f["message"]["id"].as_str().unwrap().to_owned(),
                    f["message"]["conversation_id"].as_str().unwrap().to_owned(),
                ));
            }
            acks
        }));
    }
    for _ in 0..5 {
        archived.send(json!({"type": "message.send", "echo_id": "late", "conversation_id": archived_cid, "body": "hello?"})).await;
        assert_eq!(archived.next_of("error").await["code"], "conversation_archived");
    }
    let mut all_ids = std::collections::HashSet::new();
    for (v, t) in tasks.into_iter().enumerate() {
        let acks = t.await.unwrap();
        let first = acks.iter().find(|a| a.0 == format!("{v}-0")).unwrap().1.clone();
        let dup = acks.iter().filter(|a| a.0 == format!("{v}-0")).collect::<Vec<_>>();
        assert_eq!(dup.len(), 2, "both sends of the same echo_id are acked");
        assert!(dup.iter().all(|a| a.1 == first), "with the same stored message");
        let cid = acks[0].2.clone();
        assert!(acks.iter().all(|a| a.2 == cid), "one conversation per visitor");
        let bodies: Vec<String> = app.thread(&cid).await.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("v{v} m{i}")).collect();
        assert_eq!(bodies, expected, "stored once each, in the order sent");
        all_ids.extend(acks.into_iter().map(|a| a.1));
    }
    assert_eq!(all_ids.len(), VISITORS * EACH);
    assert_eq!(app.thread(&archived_cid).await.len(), 1, "nothing reached the archived conversation");

    // The agent saw every message once, with seqs rising one by one.
    let mut seen = std::collections::HashSet::new();
    let mut last = start_seq;
    while seen.len() < VISITORS * EACH {
        let f = agent.next().await.unwrap();
        if let Some(seq) = f["seq"].as_i64() {
            assert_eq!(seq, last + 1, "seqs arrive in order without gaps: {f}");
            last = seq;
        }
        if f["type"] == "message.created" && f["message"]["author"]["type"] == "person" && f["message"]["body"] != "before the archive" {
            assert!(seen.insert(f["message"]["id"].as_str().unwrap().to_owned()), "delivered twice: {f}");
        }
    }
    assert_eq!(seen, all_ids);
}

async fn a_client_away_longer_than_frames_are_kept_is_told_to_reload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vtoken, _) = app.visitor().await;
    let mut widget = app.widget_ws(&vtoken).await;
    let cid = widget.say("o-1", "one").await["conversation_id"].as_str().unwrap().to_owned();
    widget.say("o-2", "two").await;
    widget.say("o-3", "three").await;
    widget.close().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Everything is "old": all but each stream's newest frame go.
    let pruned = app.engine.hub.prune(0).await.unwrap();
    assert!(pruned >= 2, "pruned {pruned}");

    let mut widget = app.widget_ws(&vtoken).await;
    assert_eq!(widget.hello["seq"], 3, "the position survives pruning");
    widget.send(json!({"type": "resume", "after": 0})).await;
    let err = widget.next_of("error").await;
    assert_eq!(err["code"], "resync_required");
    // What is still kept replays as usual, and new frames keep coming.
    widget.send(json!({"type": "resume", "after": 2})).await;
    assert_eq!(widget.next_of("message.created").await["seq"], 3);
    widget.say("o-4", "four").await;
    assert_eq!(widget.next_of("message.created").await["seq"], 4);
    // The messages themselves are all still there.
    assert_eq!(app.thread(&cid).await.len(), 4);
}

async fn each_conversation_of_an_inbox_page_has_its_own_unread_count_last_message_and_participants(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Three visitors write one, two and three messages; the agent answers
    // the second, which reads it.
    let mut ids = Vec::new();
    for n in 1..=3 {
        let (vtoken, _) = app.visitor_with(json!({"name": format!("Visitor {n}")})).await;
        let mut widget = app.widget_ws(&vtoken).await;
        let mut sent = json!(null);
        for k in 1..=n {
            sent = widget.say(&format!("v{n}-{k}"), &format!("message {k} of visitor {n}")).await;
        }
        ids.push(sent["conversation_id"].as_str().unwrap().to_owned());
    }
    let reply = app.post(&format!("/api/v1/conversations/{}/messages", ids[1]), &app.token, json!({"body": "On it, Visitor 2"})).await;
    assert_eq!(reply.status, 201);

    let list = app.get("/api/v1/conversations?status=open", &app.token).await.ok().unwrap();
    let items = list["items"].as_array().unwrap();
    let row = |id: &str| items.iter().find(|c| c["id"] == id).cloned().unwrap_or_else(|| panic!("{id} listed: {list}"));
    let (one, two, three) = (row(&ids[0]), row(&ids[1]), row(&ids[2]));
    assert_eq!((one["unread"].as_i64(), two["unread"].as_i64(), three["unread"].as_i64()), (Some(1), Some(0), Some(3)), "{list}");
    assert_eq!(one["last_message"]["body"], "message 1 of visitor 1");
    assert_eq!(two["last_message"]["body"], "On it, Visitor 2");
    assert_eq!(two["last_message"]["author"]["name"], "Admin");
    assert_eq!(three["last_message"]["body"], "message 3 of visitor 3");
    assert_eq!(one["participants"].as_array().map(Vec::len), Some(0), "{one}");
    assert_eq!(two["participants"][0]["teammate"]["id"], app.admin_id.as_str(), "{two}");
    assert_eq!(three["participants"].as_array().map(Vec::len), Some(0), "{three}");
    // One conversation read on its own agrees with the page.
    let alone = app.get(&format!("/api/v1/conversations/{}", ids[2]), &app.token).await.ok().unwrap();
    assert_eq!(alone["last_message"]["body"], "message 3 of visitor 3");
    assert_eq!(alone["unread"], 3, "{alone}");
}
