//! Several server processes on one PostgreSQL database.

use parley_tests::{Backend, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_exchange_live_messages() {
    let Some(backend) = Backend::postgres().await else { return };
    let node_a = TestApp::spawn(backend).await;
    let node_b = node_a.another_node().await;
    assert_ne!(node_a.addr, node_b.addr);

    // The visitor is on node A, the agent on node B.
    let (vtoken, person_id) = node_a.visitor().await;
    let mut agent = node_b.agent_ws(&node_b.token).await;
    let mut widget = node_a.widget_ws(&vtoken).await;
    let online = agent.next_of("presence.update").await;
    assert_eq!(online["person_id"], person_id.as_str());

    let sent = widget.say("n1", "hello from node A").await;
    let got = agent.next_of("message.created").await;
    assert_eq!(got["message"]["id"], sent["id"]);
    let cid = sent["conversation_id"].as_str().unwrap();

    // The agent replies through node B; the visitor sees it on node A.
    node_b.post(&format!("/api/v1/conversations/{cid}/messages"), &node_b.token, json!({"body": "hello from node B"})).await.ok().unwrap();
    let reply = widget.next_message_not_from("person").await;
    assert_eq!(reply["message"]["body"], "hello from node B");

    // Typing crosses nodes too; and a message too large to ride in a NOTIFY
    // payload is fetched by the peer from the store.
    widget.send(json!({"type": "typing", "conversation_id": cid, "on": true})).await;
    assert_eq!(agent.next_of("typing").await["on"], true);
    let big = "b".repeat(20_000);
    node_b.post(&format!("/api/v1/conversations/{cid}/messages"), &node_b.token, json!({"body": big})).await.ok().unwrap();
    let big_frame = widget.next_of("message.created").await;
    assert_eq!(big_frame["message"]["body"].as_str().unwrap().len(), 20_000);

    // Seqs are shared: both nodes agree on the person's stream position.
    let mut widget_b = node_b.widget_ws(&vtoken).await;
    assert_eq!(widget_b.hello["seq"], big_frame["seq"]);
    widget_b.send(json!({"type": "resume", "after": 0})).await;
    let first = widget_b.next_of("message.created").await;
    assert_eq!(first["seq"], 1);
    assert_eq!(first["message"]["body"], "hello from node A");
}
