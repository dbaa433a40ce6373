//! Synthetic people for benchmarks and demos: names, companies, phones,
//! places, tags, typed attributes and a timeline, from a seeded RNG so two
//! runs with the same seed describe the same people.
//!
//! Speed matters more here than anywhere else (a million people should take
//! minutes), so rows go in with multi-row INSERTs instead of the one-person
//! write path. Every table that path fills is filled the same way, so a
//! seeded person is indistinguishable from an imported one: indexed
//! attributes, tags, the search text (and on SQLite the FTS index, through
//! the same triggers), events and their summaries.
//!
//! With `conversations` set, some people also have a conversation with the
//! team (a few messages each way, open, snoozed or closed, some archived,
//! half of them assigned), so the inbox can be measured at size too. Its
//! teammates are the workspace's own plus a few seeded agents.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::db::Conn;
use crate::filter::AttrKind;
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result, on_conn, with_db, with_tx};

/// People per transaction.
const BATCH: usize = 5_000;
/// Binds per statement: under SQLite's 32,766 (PostgreSQL allows 65,535).
const MAX_BINDS: usize = 32_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug)]
pub struct SeedOptions {
    pub people: u64,
    /// On average; each person gets 0 to twice this many.
    pub events_per_person: u32,
    pub seed: u64,
    /// About this many of the new people get a conversation.
    pub conversations: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SeedReport {
    pub people: u64,
    pub companies: u64,
    pub events: u64,
    pub conversations: u64,
    pub messages: u64,
}

/// Public so benchmarks can query names that exist.
pub const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lukas", "Maya", "Noah", "Olga", "Paul",
    "Quinn", "Rosa", "Sami", "Tara", "Ugo", "Vera", "Wim", "Xenia", "Yusuf", "Zoë", "Amir", "Bea", "Chen", "Dana", "Emil", "Fatima",
    "Gabriel", "Hana", "Ivan", "Jana", "Kofi", "Lea", "Marco", "Nina", "Oskar", "Priya", "Rafael", "Sofia", "Tomás", "Uma", "Viktor",
    "Wen", "Yara", "Zeno", "Alice", "Bruno", "Chloé", "Dmitri", "Eva", "Finn", "Hiro", "Isla", "José", "Lina",
];

pub const LAST_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Garcia",
    "Rossi",
    "Dubois",
    "Nowak",
    "Jensen",
    "Smith",
    "Kim",
    "Tanaka",
    "Silva",
    "Novak",
    "Horvat",
    "Berg",
    "Fischer",
    "Weber",
    "Martin",
    "Lopez",
    "Bianchi",
    "Moreau",
    "Kowalski",
    "Larsen",
    "Brown",
    "Park",
    "Sato",
    "Costa",
    "Dvořák",
    "Kovač",
    "Lind",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Fernández",
    "Romano",
    "Laurent",
    "Wiśniewski",
    "Nielsen",
    "Taylor",
    "Lee",
    "Suzuki",
    "Pereira",
    "Svoboda",
    "Petrov",
    "Andersen",
    "Schulz",
    "Keller",
    "Ruiz",
    "Ricci",
    "Lefèvre",
    "Zieliński",
    "Olsen",
    "Wilson",
    "Choi",
    "Watanabe",
    "Almeida",
    "Novák",
    "Ivanova",
    "Eriksson",
    "Meyer",
    "O'Brien",
];

/// A real city: name, ISO country, calling code, latitude, longitude.
pub const CITIES: &[(&str, &str, &str, f64, f64)] = &[
    ("Berlin", "DE", "49", 52.520, 13.405),
    ("Munich", "DE", "49", 48.137, 11.575),
    ("Hamburg", "DE", "49", 53.551, 9.993),
    ("Paris", "FR", "33", 48.857, 2.352),
    ("Lyon", "FR", "33", 45.764, 4.836),
    ("London", "GB", "44", 51.507, -0.128),
    ("Manchester", "GB", "44", 53.481, -2.243),
    ("Dublin", "IE", "353", 53.350, -6.260),
    ("Amsterdam", "NL", "31", 52.370, 4.895),
    ("Madrid", "ES", "34", 40.417, -3.704),
    ("Barcelona", "ES", "34", 41.385, 2.173),
    ("Lisbon", "PT", "351", 38.722, -9.139),
    ("Rome", "IT", "39", 41.903, 12.496),
    ("Milan", "IT", "39", 45.464, 9.190),
    ("Vienna", "AT", "43", 48.208, 16.373),
    ("Zurich", "CH", "41", 47.377, 8.541),
    ("Stockholm", "SE", "46", 59.329, 18.069),
    ("Copenhagen", "DK", "45", 55.676, 12.568),
    ("Warsaw", "PL", "48", 52.230, 21.012),
    ("Prague", "CZ", "420", 50.076, 14.438),
    ("New York", "US", "1", 40.713, -74.006),
    ("San Francisco", "US", "1", 37.775, -122.419),
    ("Chicago", "US", "1", 41.878, -87.630),
    ("Austin", "US", "1", 30.267, -97.743),
    ("Toronto", "CA", "1", 43.653, -79.383),
    ("Mexico City", "MX", "52", 19.433, -99.133),
    ("São Paulo", "BR", "55", -23.551, -46.633),
    ("Sydney", "AU", "61", -33.869, 151.209),
    ("Tokyo", "JP", "81", 35.676, 139.650),
    ("Singapore", "SG", "65", 1.352, 103.820),
    ("Bangalore", "IN", "91", 12.972, 77.595),
    ("Cape Town", "ZA", "27", -33.925, 18.424),
];

const COMPANY_WORDS: (&[&str], &[&str], &[&str]) = (
    &[
        "Blue", "Bright", "Quiet", "Swift", "Green", "Iron", "Silver", "North", "Amber", "Clear", "Bold", "Lucky", "Red", "Deep", "Open",
        "True",
    ],
    &["Harbor", "Pine", "Summit", "River", "Falcon", "Orbit", "Meadow", "Anchor", "Beacon", "Canyon", "Cedar", "Comet", "Forge", "Lantern"],
    &["Labs", "Systems", "Works", "Studio", "Analytics", "Logistics", "Health", "Foods", "Media", "Energy", "Robotics", "Partners"],
);

/// Public, like the names and cities, for benchmarks to filter by.
pub const TAGS: &[&str] =
    &["vip", "beta", "newsletter", "churn-risk", "partner", "trial", "webinar", "early-adopter", "support-priority", "events"];
const FREE_MAIL: &[&str] = &["example.com", "mail.example", "inbox.example.org", "post.example.net"];
const PATHS: &[&str] = &["/", "/pricing", "/docs", "/blog", "/features", "/signup", "/account", "/integrations"];
/// Event names and their weight out of 100.
const EVENTS: &[(&str, u32)] = &[("page.view", 55), ("signed_in", 22), ("purchased", 10), ("invited_teammate", 6), ("exported_report", 7)];
/// What people ask and teammates answer in seeded conversations.
const ASKED: &[&str] = &[
    "Hi, I can't log in since this morning.",
    "How do I invite a colleague to our account?",
    "Is there a discount for non-profits?",
    "The export to CSV stops half way.",
    "Can I change the email address on my account?",
    "Do you have an API for orders?",
    "My invoice shows the wrong company name.",
    "Thanks, that worked!",
];
const ANSWERED: &[&str] = &[
    "Thanks for reaching out! Let me have a look.",
    "Could you send me a screenshot of what you see?",
    "I've reset it on our side, please try again.",
    "You'll find it under Settings, then Team.",
    "I've passed this on to our billing team.",
    "Glad to hear it. Anything else I can help with?",
];
/// Agents a seed adds to the workspace for its conversations.
const SEED_AGENTS: usize = 9;
/// The seeded attributes and their kinds.
const ATTRIBUTES: &[(&str, AttrKind)] =
    &[("plan", AttrKind::String), ("seats", AttrKind::Number), ("beta", AttrKind::Bool), ("signed_up", AttrKind::Date)];

/// A value to bind; one enum so one insert routine serves every table.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(bool),
}

macro_rules! cell_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Cell {
            fn from($v: $t) -> Cell {
                $e
            }
        })*
    };
}

cell_from! {
    String => |v| Cell::Text(Some(v)),
    &str => |v| Cell::Text(Some(v.to_owned())),
    Option<String> => |v| Cell::Text(v),
    i64 => |v| Cell::Int(Some(v)),
    Option<i64> => |v| Cell::Int(v),
    Option<f64> => |v| Cell::Float(v),
    bool => |v| Cell::Bool(v),
}

/// Rows of one table, flattened: `width` cells a row.
struct Table {
    head: &'static str,
    width: usize,
    cells: Vec<Cell>,
}

impl Table {
    fn new(head: &'static str, width: usize) -> Table {
        Table { head, width, cells: Vec::new() }
    }

    fn row<const N: usize>(&mut self, cells: [Cell; N]) {
        debug_assert_eq!(N, self.width);
        self.cells.extend(cells);
    }

    fn rows(&self) -> usize {
        self.cells.len() / self.width
    }

    /// Inserts every row with as few statements as the bind limit allows.
    async fn insert(&self, c: &mut Conn<'_>) -> Result<()> {
        let per_statement = MAX_BINDS / self.width;
        for chunk in self.cells.chunks(per_statement * self.width) {
            on_conn!(c, c => {
                let mut q = sqlx::QueryBuilder::new(self.head);
                q.push_values(chunk.chunks(self.width), |mut b, row| {
                    for cell in row {
                        match cell {
                            Cell::Text(v) => b.push_bind(v.as_deref()),
                            Cell::Int(v) => b.push_bind(*v),
                            Cell::Float(v) => b.push_bind(*v),
                            Cell::Bool(v) => b.push_bind(*v),
                        };
                    }
                });
                q.build().execute(&mut **c).await?;
            });
        }
        Ok(())
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A name as the local part of an email: ASCII letters only.
fn mail_part(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' | 'ě' => Some('e'),
            'í' | 'ì' | 'î' | 'ï' => Some('i'),
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => Some('o'),
            'ú' | 'ù' | 'û' | 'ü' => Some('u'),
            'ñ' | 'ń' => Some('n'),
            'ç' | 'č' => Some('c'),
            'ř' => Some('r'),
            'ś' => Some('s'),
            'ž' | 'ź' | 'ż' => Some('z'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The `i`-th company name; past the word combinations a number is added.
fn company_name(i: usize) -> String {
    let (a, n, s) = COMPANY_WORDS;
    let combos = a.len() * n.len() * s.len();
    let k = i % combos;
    let base = format!("{} {} {}", a[k % a.len()], n[(k / a.len()) % n.len()], s[k / (a.len() * n.len())]);
    if i < combos { base } else { format!("{base} {}", i / combos + 1) }
}

struct Company {
    id: String,
    name: String,
    domain: String,
}

/// The companies people of this run belong to: existing ones are reused
/// (a second run adds to the first), missing ones created.
async fn companies(db: &Db, workspace_id: &str, n: usize, rng: &mut StdRng, now: i64) -> Result<(Vec<Company>, u64)> {
    let existing: Vec<(String, String)> = with_db!(db, pool => sqlx::query_as(
        "SELECT lower(name), id FROM company WHERE workspace_id = $1")
        .bind(workspace_id).fetch_all(pool).await?);
    let existing: HashMap<String, String> = existing.into_iter().collect();
    let mut out = Vec::with_capacity(n);
    let mut table = Table::new("INSERT INTO company (id, workspace_id, name, created_at, updated_at) ", 5);
    for i in 0..n {
        let name = company_name(i);
        let id = match existing.get(&name.to_lowercase()) {
            Some(id) => id.clone(),
            None => {
                let id = new_id();
                let at = now - rng.random_range(0..3 * 365 * DAY_MS);
                table.row([id.clone().into(), workspace_id.into(), name.clone().into(), at.into(), at.into()]);
                id
            }
        };
        out.push(Company { domain: format!("{}.example", mail_part(&name)), id, name });
    }
    with_tx!(db, tx => {
        table.insert(&mut Conn::from(&mut *tx)).await?;
    });
    Ok((out, table.rows() as u64))
}

/// Declares the seeded attributes, refusing a workspace that already uses
/// one of the names for another kind.
async fn attribute_defs(db: &Db, workspace_id: &str, now: i64) -> Result<()> {
    let known = super::profile::schema(db, workspace_id).await?.attributes;
    for (name, kind) in ATTRIBUTES {
        if let Some(k) = known.get(*name).filter(|k| *k != kind) {
            return Err(Error::Conflict {
                code: "attribute_kind",
                message: format!("attribute {name} already holds {} values; seeding needs {}", k.as_str(), kind.as_str()),
            });
        }
    }
    with_tx!(db, tx => {
        for (name, kind) in ATTRIBUTES {
            sqlx::query("INSERT INTO attribute_def (workspace_id, name, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(workspace_id).bind(*name).bind(kind.as_str()).bind(now).execute(&mut *tx).await?;
        }
    });
    Ok(())
}

/// One batch's rows for every table.
struct Batch {
    person: Table,
    attribute: Table,
    tag: Table,
    event: Table,
    summary: Table,
    conversation: Table,
    message: Table,
    participant: Table,
    read: Table,
}

/// A person's events by name: how many, the first and the last time.
type Summary = BTreeMap<&'static str, (i64, i64, i64)>;

impl Batch {
    /// One event on `person`'s timeline, counted into their summary.
    fn event(&mut self, summary: &mut Summary, ws: &str, person: &str, name: &'static str, data: String, at: i64) {
        self.event.row([new_id().into(), ws.into(), person.into(), name.into(), data.into(), at.into()]);
        let s = summary.entry(name).or_insert((0, at, at));
        s.0 += 1;
        s.1 = s.1.min(at);
        s.2 = s.2.max(at);
    }

    fn new() -> Batch {
        Batch {
            person: Table::new(
                "INSERT INTO person (id, workspace_id, external_id, email, phone, phone_kind, name, company_id, manager, country, city, \
                 lat, lon, attributes, tags, unsubscribed, search_text, created_at, updated_at, last_seen_at) ",
                20,
            ),
            attribute: Table::new("INSERT INTO person_attribute (person_id, workspace_id, name, str_value, num_value) ", 5),
            tag: Table::new("INSERT INTO person_tag (person_id, workspace_id, tag) ", 3),
            event: Table::new("INSERT INTO event (id, workspace_id, person_id, name, data, at) ", 6),
            summary: Table::new("INSERT INTO event_summary (person_id, workspace_id, name, count, first_at, last_at) ", 6),
            conversation: Table::new(
                "INSERT INTO conversation (id, workspace_id, person_id, status, snoozed_until, archived, assignee_id, person_seen_at, \
                 last_message_id, created_at, updated_at) ",
                11,
            ),
            message: Table::new(
                "INSERT INTO message (id, workspace_id, conversation_id, author_type, author_id, body, kind, created_at) ",
                8,
            ),
            participant: Table::new("INSERT INTO participant (conversation_id, teammate_id, workspace_id, role, muted, added_at) ", 6),
            read: Table::new("INSERT INTO teammate_read (conversation_id, teammate_id, workspace_id, read_at) ", 4),
        }
    }

    async fn insert(&self, db: &Db) -> Result<()> {
        with_tx!(db, tx => {
            let mut c = Conn::from(&mut *tx);
            // People first: the other tables refer to them.
            let tables = [
                &self.person,
                &self.attribute,
                &self.tag,
                &self.event,
                &self.summary,
                &self.conversation,
                &self.message,
                &self.participant,
                &self.read,
            ];
            for t in tables {
                t.insert(&mut c).await?;
            }
        });
        Ok(())
    }
}

struct Generator<'a> {
    rng: StdRng,
    workspace_id: &'a str,
    companies: &'a [Company],
    events_per_person: u32,
    now: i64,
    /// Who answers and is assigned seeded conversations.
    teammates: &'a [String],
    /// The chance that a person has a conversation.
    conversation_chance: f64,
}

impl Generator<'_> {
    /// Adds person number `idx` and everything about them to `b`; returns
    /// how many events they got.
    fn person(&mut self, idx: u64, b: &mut Batch) -> u64 {
        let ws = self.workspace_id;
        let now = self.now;
        let rng = &mut self.rng;
        let id = new_id();
        let first = *pick(rng, FIRST_NAMES);
        let last = *pick(rng, LAST_NAMES);
        let name = format!("{first} {last}");
        let company = if rng.random_bool(0.8) { Some(pick(rng, self.companies)) } else { None };
        let domain = match company {
            Some(c) if rng.random_bool(0.7) => c.domain.clone(),
            _ => (*pick(rng, FREE_MAIL)).to_owned(),
        };
        let email = format!("{}.{}.{idx}@{domain}", mail_part(first), mail_part(last));
        let &(city, country, dial, lat, lon) = pick(rng, CITIES);
        let phone = rng.random_bool(0.6).then(|| format!("+{dial}{}", rng.random_range(100_000_000_u64..10_000_000_000)));
        let phone_kind = phone.as_ref().map(|_| match rng.random_range(0..100) {
            0..60 => "mobile",
            60..85 => "work",
            _ => "home",
        });
        // A few km around the city centre.
        let lat = lat + rng.random_range(-0.05..0.05);
        let lon = lon + rng.random_range(-0.05..0.05) / lat.to_radians().cos().max(0.2);
        let mut tags: Vec<&str> = (0..rng.random_range(0..=3)).map(|_| *pick(rng, TAGS)).collect();
        tags.sort_unstable();
        tags.dedup();
        let created_at = now - rng.random_range(0..3 * 365 * DAY_MS);
        let last_seen_at = rng.random_bool(0.7).then(|| now - rng.random_range(0..(now - created_at).clamp(1, 90 * DAY_MS)));
        let (plan, seats) = match rng.random_range(0..100) {
            0..60 => ("free", 1),
            60..90 => ("pro", rng.random_range(2..50)),
            _ => ("enterprise", rng.random_range(50..2000)),
        };
        let beta = rng.random_bool(0.15);
        let signed_up = created_at - created_at.rem_euclid(DAY_MS);
        let manager = company.is_some() && rng.random_bool(0.05);
        let unsubscribed = rng.random_bool(0.03);

        let attributes = json!({"plan": plan, "seats": seats, "beta": beta, "signed_up": rfc3339(signed_up)}).to_string();
        let search_text = super::profile::search_text(Some(&name), Some(&email), phone.as_deref(), company.map(|c| c.name.as_str()));
        let tags_json = serde_json::to_string(&tags).unwrap_or_else(|_| "[]".to_owned());
        b.person.row([
            id.clone().into(),
            ws.into(),
            format!("usr_{idx}").into(),
            email.into(),
            phone.into(),
            phone_kind.map(str::to_owned).into(),
            name.into(),
            company.map(|c| c.id.clone()).into(),
            manager.into(),
            country.into(),
            city.into(),
            Some(lat).into(),
            Some(lon).into(),
            attributes.into(),
            tags_json.into(),
            unsubscribed.into(),
            search_text.into(),
            created_at.into(),
            created_at.into(),
            last_seen_at.into(),
        ]);
        let attribute_rows: [(&str, Option<String>, Option<f64>); 4] = [
            ("plan", Some(plan.to_owned()), None),
            ("seats", None, Some(seats as f64)),
            ("beta", None, Some(if beta { 1.0 } else { 0.0 })),
            ("signed_up", None, Some(signed_up as f64)),
        ];
        for (n, s, v) in attribute_rows {
            b.attribute.row([id.clone().into(), ws.into(), n.into(), s.into(), v.into()]);
        }
        for t in &tags {
            b.tag.row([id.clone().into(), ws.into(), (*t).into()]);
        }

        // The timeline: within 180 days, never before the person existed.
        let count = rng.random_range(0..=2 * self.events_per_person);
        let since = created_at.max(now - 180 * DAY_MS);
        let mut summary = Summary::new();
        for _ in 0..count {
            let mut roll = rng.random_range(0..100);
            let name = EVENTS
                .iter()
                .find(|(_, w)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or("page.view", |(n, _)| n);
            let at = rng.random_range(since..=now);
            let data = match name {
                "page.view" => json!({"path": pick(rng, PATHS)}).to_string(),
                "purchased" => json!({"amount": rng.random_range(5..500), "currency": "EUR"}).to_string(),
                _ => "{}".to_owned(),
            };
            b.event(&mut summary, ws, &id, name, data, at);
        }
        let mut count = u64::from(count);
        if self.conversation_chance > 0.0 && !self.teammates.is_empty() && self.rng.random_bool(self.conversation_chance) {
            count += self.conversation(&id, since, b, &mut summary);
        }
        for (n, (count, first, last)) in summary {
            b.summary.row([id.clone().into(), ws.into(), n.into(), count.into(), first.into(), last.into()]);
        }
        count
    }

    /// A conversation of `person` with the team, begun after `since`: its
    /// messages, the teammates who wrote (participants), what they have
    /// read, and the timeline's events for it. Returns how many events.
    fn conversation(&mut self, person: &str, since: i64, b: &mut Batch, summary: &mut Summary) -> u64 {
        let (ws, now, teammates) = (self.workspace_id, self.now, self.teammates);
        let rng = &mut self.rng;
        let id = new_id();
        let assignee = rng.random_bool(0.5).then(|| pick(rng, teammates).clone());
        let answerer = assignee.clone().unwrap_or_else(|| pick(rng, teammates).clone());
        let started = rng.random_range(since..=now);
        let n = rng.random_range(1..=8_u64);
        // Most conversations are the person asking; some begin with a
        // teammate reaching out.
        let person_first = rng.random_bool(0.8);
        b.event(summary, ws, person, "conversation.started", json!({"conversation_id": id}).to_string(), started);
        let (mut at, mut updated) = (started, started);
        let mut last = (String::new(), false);
        let mut answered = false;
        for k in 0..n {
            let by_person = (k % 2 == 0) == person_first;
            let mid = new_id();
            let (kind, author, body) = match by_person {
                true => ("person", person.to_owned(), *pick(rng, ASKED)),
                false => ("teammate", answerer.clone(), *pick(rng, ANSWERED)),
            };
            b.message.row([
                mid.clone().into(),
                ws.into(),
                id.clone().into(),
                kind.into(),
                author.into(),
                body.into(),
                "chat".into(),
                at.into(),
            ]);
            let name = if by_person { "message.sent" } else { "message.received" };
            b.event(summary, ws, person, name, json!({"conversation_id": id, "message_id": mid}).to_string(), at);
            answered |= !by_person;
            last = (mid, by_person);
            updated = at;
            at = (at + rng.random_range(30_000..3_600_000)).min(now);
        }
        let (status, snoozed_until) = match rng.random_range(0..100) {
            0..60 => ("closed", None),
            60..90 => ("open", None),
            _ => ("snoozed", Some(now + rng.random_range(3_600_000..7 * DAY_MS))),
        };
        let archived = status == "closed" && rng.random_bool(0.3);
        // The person has seen what the team wrote, but not always the last.
        let person_seen = if last.1 || rng.random_bool(0.7) { updated } else { started };
        b.conversation.row([
            id.clone().into(),
            ws.into(),
            person.into(),
            status.into(),
            snoozed_until.into(),
            archived.into(),
            assignee.into(),
            person_seen.into(),
            Some(last.0).into(),
            started.into(),
            updated.into(),
        ]);
        if answered {
            b.participant.row([id.clone().into(), answerer.clone().into(), ws.into(), "write".into(), false.into(), started.into()]);
            // Closed ones were read to the end; some open ones have news.
            let read_at = if status == "closed" || !last.1 || rng.random_bool(0.5) { updated } else { started };
            b.read.row([id.into(), answerer.into(), ws.into(), read_at.into()]);
        }
        // Its start and each message.
        1 + n
    }
}

/// The workspace's teammates, with the seed's agents added when missing.
async fn teammates(db: &Db, workspace_id: &str) -> Result<Vec<String>> {
    let known: Vec<(String, String)> = with_db!(db, pool => sqlx::query_as(
        "SELECT email, id FROM teammate WHERE workspace_id = $1 ORDER BY created_at, id")
        .bind(workspace_id).fetch_all(pool).await?);
    let mut ids: Vec<String> = known.iter().map(|(_, id)| id.clone()).collect();
    for i in 1..=SEED_AGENTS {
        let email = format!("agent{i}@seed.example.com");
        if known.iter().any(|(e, _)| *e == email) {
            continue;
        }
        // Nobody knows the password: an admin sets one to use the account.
        let password = crate::util::new_token("");
        let name = format!("{} (seeded agent)", FIRST_NAMES[i * 7 % FIRST_NAMES.len()]);
        let role = crate::auth::Role::Agent;
        let t = crate::workspace::create_teammate(
            db,
            workspace_id,
            crate::workspace::NewTeammate { email: &email, name: &name, password: &password, role },
        )
        .await?;
        ids.push(t.id);
    }
    Ok(ids)
}

/// Adds `opts.people` synthetic people to a workspace; `progress` hears how
/// many are stored after each transaction.
#[tracing::instrument(skip_all, fields(workspace = %workspace_id, people = opts.people))]
pub async fn seed(db: &Db, workspace_id: &str, opts: SeedOptions, mut progress: impl FnMut(u64)) -> Result<SeedReport> {
    let now = now_ms();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    // Numbering goes on after the people already there, so a second run
    // adds new people instead of colliding with the first.
    let (offset,): (i64,) = with_db!(db, pool => sqlx::query_as("SELECT COUNT(*) FROM person WHERE workspace_id = $1")
        .bind(workspace_id).fetch_one(pool).await?);
    attribute_defs(db, workspace_id, now).await?;
    let n_companies = usize::try_from(opts.people / 50).unwrap_or(usize::MAX).max(1);
    let (companies, companies_created) = companies(db, workspace_id, n_companies, &mut rng, now).await?;
    let teammates = match opts.conversations {
        0 => Vec::new(),
        _ => teammates(db, workspace_id).await?,
    };
    let conversation_chance = (opts.conversations as f64 / opts.people.max(1) as f64).clamp(0.0, 1.0);
    let mut g = Generator {
        rng,
        workspace_id,
        companies: &companies,
        events_per_person: opts.events_per_person,
        now,
        teammates: &teammates,
        conversation_chance,
    };
    let mut report = SeedReport { companies: companies_created, ..Default::default() };
    let first = u64::try_from(offset).unwrap_or(0);
    while report.people < opts.people {
        let n = (opts.people - report.people).min(BATCH as u64);
        let mut batch = Batch::new();
        for i in 0..n {
            report.events += g.person(first + report.people + i, &mut batch);
        }
        batch.insert(db).await?;
        report.conversations += batch.conversation.rows() as u64;
        report.messages += batch.message.rows() as u64;
        report.people += n;
        progress(report.people);
    }
    // Fresh planner statistics: search plans at this size depend on them.
    with_tx!(db, tx => {
        sqlx::query("ANALYZE").execute(&mut *tx).await?;
    });
    tracing::info!(
        people = report.people,
        companies = report.companies,
        events = report.events,
        conversations = report.conversations,
        "seeded"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_names_are_distinct() {
        let names: std::collections::HashSet<String> = (0..20_000).map(|i| company_name(i).to_lowercase()).collect();
        assert_eq!(names.len(), 20_000);
    }

    #[test]
    fn email_parts_are_plain_ascii() {
        assert_eq!(mail_part("Zoë"), "zoe");
        assert_eq!(mail_part("O'Brien"), "obrien");
        assert_eq!(mail_part("Wiśniewski"), "wisniewski");
        for n in FIRST_NAMES.iter().chain(LAST_NAMES) {
            let p = mail_part(n);
            assert!(!p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()), "{n} -> {p}");
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_people() {
        let companies = [Company { id: "c".into(), name: "Blue Harbor Labs".into(), domain: "blueharborlabs.example".into() }];
        let teammates = ["t1".to_owned(), "t2".to_owned()];
        let run = |seed| {
            let mut g = Generator {
                rng: StdRng::seed_from_u64(seed),
                workspace_id: "w",
                companies: &companies,
                events_per_person: 3,
                now: 1 << 41,
                teammates: &teammates,
                conversation_chance: 0.5,
            };
            let mut b = Batch::new();
            let events: u64 = (0..50).map(|i| g.person(i, &mut b)).sum();
            // Column 6 is the name, 3 the email.
            let names: Vec<String> = b
                .person
                .cells
                .chunks(20)
                .map(|r| match (&r[6], &r[3]) {
                    (Cell::Text(Some(n)), Cell::Text(Some(e))) => format!("{n} <{e}>"),
                    _ => String::new(),
                })
                .collect();
            (names, events, b.summary.rows(), b.event.rows(), b.conversation.rows(), b.message.rows())
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a.0, run(8).0);
        assert_eq!(a.1 as usize, a.3, "every event is a row");
        assert!(a.2 <= a.3);
        // About half the people have a conversation, each with 1 to 8 messages.
        assert!((10..=40).contains(&a.4), "{} conversations", a.4);
        assert!(a.5 >= a.4 && a.5 <= 8 * a.4);
    }
}
