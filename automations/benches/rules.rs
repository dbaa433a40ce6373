//! Rule evaluation throughput: one happening against a workspace's 20 rules,
//! each a compiled script run in its own sandbox to a list of actions (what
//! the runner does per rule, minus the database).
//!
//! `cargo bench -p parley-automations --bench rules`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parley_automations::script::{self, Host, Input};
use serde_json::{Value, json};

/// Answers without a database, as fast as a cached answer would be.
struct Quiet;

impl Host for Quiet {
    fn person_matches(&self, _: &Value) -> Result<bool, String> {
        Ok(false)
    }
    fn agents_online(&self) -> bool {
        true
    }
    fn in_business_hours(&self) -> Result<bool, String> {
        Ok(true)
    }
}

/// Twenty rules of the kinds support teams write: keyword replies, routing by
/// attribute, tagging, after-hours answers. Most do nothing for a given
/// message, as in life.
fn rules() -> Vec<String> {
    let mut rules = Vec::new();
    for (i, word) in ["price", "refund", "invoice", "cancel", "password", "bug", "demo", "api"].iter().enumerate() {
        rules.push(format!(
            r#"if event.message.body.contains("{word}") {{ send_chat(`About {word}, ${{person.name}}: see /help/{i}`); tag("{word}"); }}"#
        ));
    }
    for plan in ["free", "pro", "enterprise", "trial"] {
        rules.push(format!(r#"if person.attributes.plan == "{plan}" && !agents_online() {{ assign("team-{plan}"); }}"#));
    }
    for tag in ["vip", "partner", "churn-risk", "beta"] {
        rules.push(format!(r#"if person.tags.contains("{tag}") {{ note("{tag} wrote: " + event.message.body); }}"#));
    }
    rules.push(r#"if !in_business_hours() { send_chat("We are back at 9:00."); }"#.to_owned());
    rules.push(r#"if now.weekday > 5 { tag("weekend"); }"#.to_owned());
    rules.push(r#"let n = event.message.body.len(); if n > 500 { tag("long"); }"#.to_owned());
    rules.push(r#"if person.email.ends_with("@example.com") { set_attribute("internal", true); }"#.to_owned());
    rules
}

fn input() -> Input {
    Input {
        event: json!({"message": {"body": "Hi, what is the price of the pro plan for 12 seats?", "author": {"type": "person"}}}),
        person: json!({"id": "p1", "name": "Ann", "email": "ann@customer.test",
            "attributes": {"plan": "pro", "seats": 12}, "tags": ["vip", "newsletter"], "company": "Umbrella"}),
        conversation: json!({"id": "c1", "status": "open", "assignee": null}),
        now_ms: 1_795_000_000_000,
    }
}

fn evaluate(c: &mut Criterion) {
    let asts: Vec<_> = rules().iter().map(|r| script::compile(r).expect("a benchmark rule compiles")).collect();
    assert_eq!(asts.len(), 20);
    let host: Arc<dyn Host> = Arc::new(Quiet);
    let input = input();
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(asts.len() as u64));
    group.bench_function("a message against 20 rules", |b| {
        b.iter(|| {
            let mut actions = 0;
            for ast in &asts {
                actions += script::run(ast, black_box(&input), host.clone()).map_or(0, |a| a.len());
            }
            // The price rule and the vip note fire.
            assert_eq!(actions, 3);
            actions
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
