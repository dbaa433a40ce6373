//! Outbound: one message, written once with snippets, sent to many people by
//! chat, email and SMS, with a delivery row per recipient and channel.
//!
//! Sending is in two halves. [`create`] checks the request at the edge,
//! evaluates the audience at that moment (people, segments, an inline
//! filter, companies; minus exclusions) and writes the outbound and every
//! delivery row in one transaction, with one set-based `INSERT … SELECT`
//! however many people match, so a send to 100,000 answers at once. Who
//! cannot be reached on a channel (no address, unsubscribed) is written as
//! skipped with the reason. The automations worker then [`claim`]s queued
//! rows in chunks, sends them and [`record`]s each outcome; the counts are
//! read back from the rows, so progress is always what is stored.
//!
//! Check-ins are outbound chats with an "I'm OK" button; each recipient's
//! signed link ([`link_token`]) opens their chat without the widget.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{user_hash, verify_user_hash};
use crate::filter;
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result, search, snippets, with_db, with_tx};

/// The longest title (the email subject).
const MAX_TITLE: usize = 200;
/// People listed by id in one audience, at most.
const MAX_LISTED: usize = 5_000;
/// The most recipients of a shared (transparent) chat: everyone in it sees
/// everyone's messages, which stops being a conversation well before this.
pub const MAX_SHARED: i64 = 1_000;
/// A claimed row not recorded within this time is claimed again (its
/// worker died).
const CLAIM_TIMEOUT_MS: i64 = 120_000;
const PAGE_MAX: i64 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Two-way: a new conversation with each person, from a teammate.
    Chat,
    /// Email and/or SMS; no reply expected.
    OneWay,
    /// A highlighted message into each person's existing chat.
    Announcement,
    /// A chat with an "I'm OK" button.
    Checkin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::OneWay => "one_way",
            Kind::Announcement => "announcement",
            Kind::Checkin => "checkin",
        }
    }
    fn parse(s: &str) -> Kind {
        match s {
            "one_way" => Kind::OneWay,
            "announcement" => Kind::Announcement,
            "checkin" => Kind::Checkin,
            _ => Kind::Chat,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Chat,
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Chat => "chat",
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "chat" => Some(Channel::Chat),
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// Who gets it. Everything listed is a union; `exclude` is taken away.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
    /// Companies expand to their members (managers only with `managers_only`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclude>,
    /// A follow-up's recipients: set by the server (a request giving it is
    /// refused by [`check`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUpOf>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FollowUpOf {
    pub outbound_id: String,
    pub only: FollowUpOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpOnly {
    /// Recipients who have not answered "I'm OK".
    NotOk,
    /// Recipients reached on no channel.
    NotDelivered,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// SMS tried over every route in turn, up to 50 attempts with pauses;
    /// otherwise the first route once.
    #[serde(default)]
    pub sms_high_quality: bool,
    /// Add the "I'm OK" button to a chat (a check-in always has it).
    #[serde(default)]
    pub are_you_ok: bool,
    /// A chat (kind `chat` only) to everyone at once: one shared
    /// conversation whose members see each other's messages, with one
    /// message in it, so the body and title cannot use person snippets; at
    /// most [`MAX_SHARED`] recipients. Otherwise each person gets a private
    /// conversation that only teammates see.
    #[serde(default)]
    pub transparent: bool,
    /// Companies reach only their managers.
    #[serde(default)]
    pub managers_only: bool,
    /// Chat messages a person does not see are emailed to them later.
    #[serde(default = "yes")]
    pub email_fallback: bool,
}

fn yes() -> bool {
    true
}

impl Default for Options {
    fn default() -> Self {
        Options { sms_high_quality: false, are_you_ok: false, transparent: false, managers_only: false, email_fallback: true }
    }
}

/// `POST /outbound`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundInput {
    pub kind: Kind,
    /// The email subject and the chat's title; snippets allowed.
    #[serde(default)]
    pub title: Option<String>,
    pub body: String,
    pub channels: Vec<Channel>,
    pub audience: Audience,
    #[serde(default)]
    pub options: Options,
    /// Who it comes from (chat); the sender when unset.
    #[serde(default)]
    pub from_teammate_id: Option<String>,
    /// Upload ids (`POST /uploads`) every recipient's message carries, at
    /// most 10; kinds `chat` and `announcement` only.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// An outbound as stored, with its live counts.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Outbound {
    pub id: String,
    pub kind: Kind,
    pub title: Option<String>,
    pub body: String,
    pub channels: Vec<Channel>,
    pub audience: Audience,
    pub options: Options,
    pub from_teammate_id: Option<String>,
    pub created_by: String,
    pub follow_up_of: Option<String>,
    /// Files each recipient's message carries (left out when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::uploads::Attachment>,
    /// `sending` until every delivery has an outcome, then `sent`.
    pub status: String,
    /// People it went to (each may have several deliveries).
    pub recipients: i64,
    pub archived: bool,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// Deliveries by status, all channels.
    pub counts: Counts,
    /// Deliveries by channel, then status.
    #[schema(value_type = Object)]
    pub by_channel: BTreeMap<String, Counts>,
    /// Check-ins: people who answered "I'm OK", and those who have not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_ok: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Counts {
    fn add(&mut self, status: &str, n: i64) {
        match status {
            "queued" => self.queued += n,
            "sent" => self.sent += n,
            "delivered" => self.delivered += n,
            "failed" => self.failed += n,
            "skipped" => self.skipped += n,
            _ => {}
        }
    }
    pub fn total(&self) -> i64 {
        self.queued + self.sent + self.delivered + self.failed + self.skipped
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    title: Option<String>,
    body: String,
    channels: String,
    audience: String,
    options: String,
    from_teammate_id: Option<String>,
    created_by: String,
    follow_up_of: Option<String>,
    status: String,
    recipients: i64,
    archived: bool,
    created_at: i64,
    finished_at: Option<i64>,
    attachments: String,
}

const SELECT: &str = "SELECT id, kind, title, body, channels, audience, options, from_teammate_id, created_by, follow_up_of, \
     status, recipients, archived, created_at, finished_at, attachments FROM outbound ";

impl Row {
    fn into_outbound(self) -> Result<Outbound> {
        let bad = |e: serde_json::Error| Error::Internal(anyhow::anyhow!("stored outbound: {e}"));
        Ok(Outbound {
            kind: Kind::parse(&self.kind),
            channels: serde_json::from_str(&self.channels).map_err(bad)?,
            audience: serde_json::from_str(&self.audience).map_err(bad)?,
            options: serde_json::from_str(&self.options).map_err(bad)?,
            attachments: Vec::new(),
            id: self.id,
            title: self.title,
            body: self.body,
            from_teammate_id: self.from_teammate_id,
            created_by: self.created_by,
            follow_up_of: self.follow_up_of,
            status: self.status,
            recipients: self.recipients,
            archived: self.archived,
            created_at: rfc3339(self.created_at),
            finished_at: self.finished_at.map(rfc3339),
            counts: Counts::default(),
            by_channel: BTreeMap::new(),
            ok: None,
            not_ok: None,
        })
    }
}

impl Outbound {
    /// Chat messages carry the "I'm OK" button.
    pub fn asks_ok(&self) -> bool {
        self.kind == Kind::Checkin || self.options.are_you_ok
    }
}

/// Checks what a request asks for: the kind's channels, the texts as
/// snippets, the sender. The audience is checked by [`create`].
pub fn check(input: &OutboundInput) -> Result<()> {
    check_body_parts(input)?;
    if input.audience.follow_up.is_some() {
        return Err(Error::invalid("audience.follow_up", "use POST /outbound/{id}/follow-up for a follow-up"));
    }
    Ok(())
}

fn check_body_parts(input: &OutboundInput) -> Result<()> {
    crate::chat::check_body("body", &input.body)?;
    snippets::check("body", &input.body)?;
    if let Some(t) = &input.title {
        if t.len() > MAX_TITLE {
            return Err(Error::invalid("title", format!("title is longer than {MAX_TITLE} bytes")));
        }
        snippets::check("title", t)?;
    }
    if input.channels.is_empty() {
        return Err(Error::invalid("channels", "choose at least one channel: chat, email or sms"));
    }
    for (i, c) in input.channels.iter().enumerate() {
        if input.channels[..i].contains(c) {
            return Err(Error::invalid(format!("channels.{i}"), format!("{} is listed twice", c.as_str())));
        }
    }
    if !input.attachments.is_empty() && !matches!(input.kind, Kind::Chat | Kind::Announcement) {
        return Err(Error::invalid(
            "attachments",
            format!("only chats and announcements carry attachments, not a {}", input.kind.as_str().replace('_', "-")),
        ));
    }
    let chat = input.channels.contains(&Channel::Chat);
    match input.kind {
        Kind::OneWay if chat => return Err(Error::invalid("channels", "a one-way message goes by email or SMS, not chat")),
        Kind::Chat | Kind::Checkin | Kind::Announcement if !chat => {
            return Err(Error::invalid("channels", format!("a {} needs the chat channel", input.kind.as_str())));
        }
        _ => {}
    }
    if input.options.transparent {
        if input.kind != Kind::Chat {
            return Err(Error::invalid(
                "options.transparent",
                format!(
                    "only a chat can be shared (transparent); a {} goes to each person on their own",
                    input.kind.as_str().replace('_', "-")
                ),
            ));
        }
        same_for_everyone("body", &input.body)?;
        if let Some(t) = &input.title {
            same_for_everyone("title", t)?;
        }
    }
    Ok(())
}

/// A shared chat's text is one message for all: it may not depend on the
/// person. It is rendered for two made-up people who differ in everything;
/// a text that names `person` at all is refused too, since a value both
/// lack (an attribute) renders alike for them and differently for real people.
fn same_for_everyone(field: &str, text: &str) -> Result<()> {
    let refused = || Error::invalid(field, "a shared chat sends one message to all, so person snippets cannot be used");
    let someone = |n: u8| {
        let name = format!("Person{n} Surname{n}");
        json!({
            "person": {"id": format!("p{n}"), "name": name, "first_name": format!("Person{n}"), "last_name": format!("Surname{n}"),
                       "email": format!("p{n}@example.test"), "phone": format!("+1555000000{n}"), "company": format!("Company{n}"),
                       "country": format!("C{n}"), "city": format!("City{n}"), "tags": [format!("tag{n}")],
                       "attributes": {format!("a{n}"): n}},
            "teammate": {"name": "Teammate", "first_name": "Teammate", "email": "teammate@example.test"},
            "workspace": {"name": "Workspace"},
        })
    };
    if snippets::render(field, text, &someone(1))? != snippets::render(field, text, &someone(2))? || names_person(text) {
        return Err(refused());
    }
    Ok(())
}

/// Whether a placeholder of `text` mentions `person`.
fn names_person(text: &str) -> bool {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or(after.len());
        let inside = &after[..close];
        let word = |i: usize| inside.as_bytes().get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if inside.match_indices("person").any(|(i, w)| !word(i.wrapping_sub(1)) && !word(i + w.len())) {
            return true;
        }
        rest = &after[close..];
    }
    false
}

/// The audience as SQL over `person p`, with its binds from `$first`.
struct AudienceSql {
    sql: String,
    binds: Vec<filter::Bind>,
}

/// A JSON list parameter as an SQL set, in either dialect.
pub(crate) fn list_sql(pg: bool, placeholder: &str) -> String {
    if pg {
        format!("(SELECT jsonb_array_elements_text(CAST({placeholder} AS jsonb)))")
    } else {
        format!("(SELECT value FROM json_each({placeholder}))")
    }
}

/// Checks an audience against the workspace (every id known, the filter
/// valid) and compiles it. Unknown or foreign ids are 404s.
async fn audience_sql(db: &Db, ws: &str, a: &Audience, managers_only: bool, first: usize) -> Result<AudienceSql> {
    let pg = db.is_postgres();
    let mut binds: Vec<filter::Bind> = Vec::new();
    // Each bind's placeholder follows from how many came before it.
    let bind = |binds: &mut Vec<filter::Bind>, b: filter::Bind| {
        binds.push(b);
        format!("${}", first + binds.len() - 1)
    };
    let mut any: Vec<String> = Vec::new();
    if a.people.len() > MAX_LISTED {
        return Err(Error::invalid("audience.people", format!("list at most {MAX_LISTED} people; use a segment or filter for more")));
    }
    if !a.people.is_empty() {
        known(db, ws, "person", &a.people).await?;
        let p = bind(&mut binds, filter::Bind::Text(json!(a.people).to_string()));
        any.push(format!("p.id IN {}", list_sql(pg, &p)));
    }
    if !a.companies.is_empty() {
        known(db, ws, "company", &a.companies).await?;
        let p = bind(&mut binds, filter::Bind::Text(json!(a.companies).to_string()));
        let managers = if managers_only { " AND p.manager" } else { "" };
        any.push(format!("(p.company_id IN {}{managers})", list_sql(pg, &p)));
    }
    if let Some(f) = filters_sql(db, ws, &a.segments, a.filter.as_ref(), "audience", first + binds.len()).await? {
        binds.extend(f.binds);
        any.push(format!("({})", f.sql));
    }
    if let Some(f) = &a.follow_up {
        let o = bind(&mut binds, filter::Bind::Text(f.outbound_id.clone()));
        let only = match f.only {
            FollowUpOnly::NotOk => {
                format!("NOT EXISTS (SELECT 1 FROM checkin_reply r WHERE r.outbound_id = {o} AND r.person_id = p.id AND r.ok)")
            }
            FollowUpOnly::NotDelivered => format!(
                "NOT EXISTS (SELECT 1 FROM delivery r WHERE r.outbound_id = {o} AND r.person_id = p.id AND r.status IN ('sent', 'delivered'))"
            ),
        };
        any.push(format!("(EXISTS (SELECT 1 FROM delivery d0 WHERE d0.outbound_id = {o} AND d0.person_id = p.id) AND {only})"));
    }
    if any.is_empty() {
        return Err(Error::invalid("audience", "choose people, segments, companies or a filter"));
    }
    let mut sql = format!("({})", any.join(" OR "));
    if let Some(x) = &a.exclude {
        let mut out: Vec<String> = Vec::new();
        if !x.people.is_empty() {
            let p = bind(&mut binds, filter::Bind::Text(json!(x.people).to_string()));
            out.push(format!("p.id IN {}", list_sql(pg, &p)));
        }
        if let Some(f) = filters_sql(db, ws, &x.segments, x.filter.as_ref(), "audience.exclude", first + binds.len()).await? {
            binds.extend(f.binds);
            out.push(format!("({})", f.sql));
        }
        if !out.is_empty() {
            sql = format!("{sql} AND NOT ({})", out.join(" OR "));
        }
    }
    Ok(AudienceSql { sql, binds })
}

/// Segments and an inline filter as one SQL condition (either matches),
/// placeholders from `$first`. Each part is checked on its own first, so an
/// error names the part that is wrong (`{path}.filter.and.1.op`).
async fn filters_sql(db: &Db, ws: &str, segments: &[String], f: Option<&Value>, path: &str, first: usize) -> Result<Option<filter::Sql>> {
    let mut parts: Vec<Value> = Vec::new();
    for s in segments {
        crate::segments::load(db, ws, s).await?;
        parts.push(json!({"segment": s}));
    }
    if let Some(f) = f {
        search::resolve_filter(db, ws, f, &format!("{path}.filter")).await?;
        parts.push(f.clone());
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let f = search::resolve_filter(db, ws, &json!({"or": parts}), path).await?;
    Ok(Some(filter::to_sql(&f, db.dialect(), first, 1, now_ms())))
}

/// Every id is a `table` row of the workspace, or the answer is its 404.
async fn known(db: &Db, ws: &str, table: &'static str, ids: &[String]) -> Result<()> {
    let pg = db.is_postgres();
    let text = format!("SELECT COUNT(DISTINCT id) FROM {table} WHERE workspace_id = $1 AND id IN {}", list_sql(pg, "$2"));
    let list = json!(ids).to_string();
    let n: i64 = with_db!(db, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(text)).bind(ws).bind(&list).fetch_one(pool).await?);
    let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len();
    if n as usize != distinct {
        return Err(Error::NotFound(table));
    }
    Ok(())
}

/// `POST /outbound` answer.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    pub id: String,
    pub status: String,
    pub recipients: i64,
}

/// Stores an outbound and all its deliveries; the worker sends them. The
/// audience is evaluated now: who matches later is not added.
#[tracing::instrument(skip_all, fields(workspace = %ws))]
pub async fn create(db: &Db, ws: &str, created_by: &str, input: OutboundInput, follow_up_of: Option<&str>) -> Result<Created> {
    match follow_up_of {
        None => check(&input)?,
        Some(_) => check_body_parts(&input)?,
    }
    if let Some(t) = &input.from_teammate_id {
        crate::workspace::teammate(db, ws, t).await?;
    }
    let attachments = crate::uploads::resolve(db, ws, &input.attachments).await?;
    let attachments = json!(attachments.iter().map(|a| &a.id).collect::<Vec<_>>()).to_string();
    if input.channels.contains(&Channel::Sms) && crate::sms::settings(db, ws).await?.is_none_or(|s| s.routes.is_empty()) {
        return Err(Error::invalid("channels", "SMS is not set up for this workspace: add a route in the SMS settings first"));
    }
    if input.options.transparent {
        // Counted before anything is stored, and no further than the cap.
        let a = audience_sql(db, ws, &input.audience, input.options.managers_only, 2).await?;
        let count =
            format!("SELECT COUNT(*) FROM (SELECT 1 FROM person p WHERE p.workspace_id = $1 AND {} LIMIT {}) n", a.sql, MAX_SHARED + 1);
        let binds = filter::Sql { sql: String::new(), binds: a.binds };
        let n: i64 = with_db!(db, pool => {
            let q = binds.bind_to(sqlx::query(sqlx::AssertSqlSafe(count.as_str())).bind(ws));
            sqlx::Row::try_get(&q.fetch_one(pool).await?, 0)?
        });
        if n > MAX_SHARED {
            return Err(Error::invalid(
                "options.transparent",
                format!("a shared chat has at most {MAX_SHARED} recipients; this audience has more: send a private chat instead"),
            ));
        }
    }
    // $1 workspace, $2 outbound, $3 now, $4 channels; the audience from $5.
    let audience = audience_sql(db, ws, &input.audience, input.options.managers_only, 5).await?;
    let pg = db.is_postgres();
    // A delivery's id is the outbound's and its place in person order. The
    // sender claims in id order, so a chunk is a run of neighbouring people,
    // and what it writes (deliveries, conversations, messages and their echo
    // ids, timeline events and summaries) sits together in every index
    // keyed by person or by these ids, instead of one page each at random.
    let new_row_id = if pg {
        "CAST($2 AS TEXT) || lpad(to_hex(row_number() OVER (ORDER BY p.id, c.ch)), 8, '0')"
    } else {
        "$2 || printf('%08x', row_number() OVER (ORDER BY p.id, c.ch))"
    };
    let insert = format!(
        "INSERT INTO delivery (id, workspace_id, outbound_id, person_id, channel, status, reason, created_at, updated_at) \
         SELECT {new_row_id}, $1, $2, p.id, c.ch, \
           CASE WHEN c.ch = 'email' AND (p.email IS NULL OR p.email = '') THEN 'skipped' \
                WHEN c.ch = 'sms' AND (p.phone IS NULL OR p.phone = '') THEN 'skipped' \
                WHEN c.ch <> 'chat' AND p.unsubscribed THEN 'skipped' ELSE 'queued' END, \
           CASE WHEN c.ch = 'email' AND (p.email IS NULL OR p.email = '') THEN 'no_email' \
                WHEN c.ch = 'sms' AND (p.phone IS NULL OR p.phone = '') THEN 'no_phone' \
                WHEN c.ch <> 'chat' AND p.unsubscribed THEN 'unsubscribed' ELSE NULL END, \
           $3, $3 \
         FROM person p, {} c WHERE p.workspace_id = $1 AND {}",
        if pg {
            "(SELECT jsonb_array_elements_text(CAST($4 AS jsonb)) AS ch)".to_owned()
        } else {
            "(SELECT value AS ch FROM json_each($4))".to_owned()
        },
        audience.sql
    );
    let id = new_id();
    let now = now_ms();
    let channels = json!(input.channels).to_string();
    let (audience_text, options_text) = (json!(input.audience).to_string(), json!(input.options).to_string());
    let recipients = with_tx!(db, tx => {
        sqlx::query("INSERT INTO outbound (id, workspace_id, kind, title, body, channels, audience, options, from_teammate_id, created_by, \
                     follow_up_of, status, recipients, created_at, attachments) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'sending', 0, $12, $13)")
            .bind(&id).bind(ws).bind(input.kind.as_str()).bind(&input.title).bind(&input.body).bind(&channels)
            .bind(&audience_text).bind(&options_text).bind(&input.from_teammate_id).bind(created_by).bind(follow_up_of).bind(now).bind(&attachments)
            .execute(&mut *tx).await?;
        let q = sqlx::query(sqlx::AssertSqlSafe(insert.as_str())).bind(ws).bind(&id).bind(now).bind(&channels);
        filter::Sql { sql: String::new(), binds: audience.binds.clone() }.bind_to(q).execute(&mut *tx).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT person_id) FROM delivery WHERE outbound_id = $1")
            .bind(&id).fetch_one(&mut *tx).await?;
        if n == 0 {
            return Err(Error::invalid("audience", "the audience matches nobody"));
        }
        sqlx::query("UPDATE outbound SET recipients = $1 WHERE id = $2").bind(n).bind(&id).execute(&mut *tx).await?;
        n
    });
    metrics::counter!("parley_outbound_deliveries_total").increment(recipients as u64 * input.channels.len() as u64);
    Ok(Created { id, status: "sending".into(), recipients })
}

/// One outbound as stored, without counts.
pub async fn load(db: &Db, ws: &str, id: &str) -> Result<Outbound> {
    let row: Option<Row> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1 AND workspace_id = $2")))
        .bind(id).bind(ws).fetch_optional(pool).await?);
    let row = row.ok_or(Error::NotFound("outbound"))?;
    let ids: Vec<String> =
        serde_json::from_str(&row.attachments).map_err(|e| Error::Internal(anyhow::anyhow!("stored outbound attachments: {e}")))?;
    let mut o = row.into_outbound()?;
    o.attachments = crate::uploads::resolve(db, ws, &ids).await?;
    Ok(o)
}

/// The workspace an outbound belongs to (for the worker and signed links).
pub async fn workspace_of(db: &Db, id: &str) -> Result<Option<String>> {
    Ok(with_db!(db, pool => sqlx::query_scalar("SELECT workspace_id FROM outbound WHERE id = $1").bind(id).fetch_optional(pool).await?))
}

/// One outbound with its live counts (and OK answers for a check-in).
pub async fn get(db: &Db, ws: &str, id: &str) -> Result<Outbound> {
    let mut o = load(db, ws, id).await?;
    let rows: Vec<(String, String, i64)> = with_db!(db, pool => sqlx::query_as(
        "SELECT channel, status, n FROM delivery_count WHERE outbound_id = $1 AND n > 0")
        .bind(id).fetch_all(pool).await?);
    for (channel, status, n) in rows {
        o.counts.add(&status, n);
        o.by_channel.entry(channel).or_default().add(&status, n);
    }
    if o.asks_ok() {
        let ok: i64 = with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM checkin_reply WHERE outbound_id = $1 AND ok")
            .bind(id).fetch_one(pool).await?);
        o.ok = Some(ok);
        o.not_ok = Some(o.recipients - ok);
    }
    Ok(o)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// `true`: archived ones; `false` (default): the rest.
    pub archived: Option<bool>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// Outbounds newest first, with counts.
pub async fn list(db: &Db, ws: &str, q: &ListQuery) -> Result<crate::chat::Page<Outbound>> {
    let limit = q.limit.unwrap_or(50).clamp(1, PAGE_MAX);
    let before = q.cursor.clone().unwrap_or_else(|| "~".into());
    let ids: Vec<String> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT id FROM outbound WHERE workspace_id = $1 AND archived = $2 AND id < $3 ORDER BY id DESC LIMIT $4")
        .bind(ws).bind(q.archived.unwrap_or(false)).bind(&before).bind(limit + 1).fetch_all(pool).await?);
    let more = ids.len() as i64 > limit;
    let mut items = Vec::new();
    for id in ids.iter().take(limit as usize) {
        items.push(get(db, ws, id).await?);
    }
    let next_cursor = if more { items.last().map(|o| o.id.clone()) } else { None };
    Ok(crate::chat::Page { items, next_cursor })
}

/// Archives or restores an outbound. An archived check-in's links open
/// nothing any more.
pub async fn set_archived(db: &Db, ws: &str, id: &str, archived: bool) -> Result<Outbound> {
    let n = with_tx!(db, tx => {
        sqlx::query("UPDATE outbound SET archived = $1 WHERE id = $2 AND workspace_id = $3").bind(archived).bind(id).bind(ws)
            .execute(&mut *tx).await?.rows_affected()
    });
    if n == 0 {
        return Err(Error::NotFound("outbound"));
    }
    get(db, ws, id).await
}

/// `POST /outbound/{id}/follow-up`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpInput {
    pub body: String,
    pub only: FollowUpOnly,
    #[serde(default)]
    pub title: Option<String>,
    /// Defaults to the first send's channels.
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// Upload ids the follow-up's messages carry; defaults to the first
    /// send's files (`[]` for none).
    #[serde(default)]
    pub attachments: Option<Vec<String>>,
}

/// A new outbound like `id`, to those of its recipients who have not
/// answered OK (or were not reached).
pub async fn follow_up(db: &Db, ws: &str, created_by: &str, id: &str, f: FollowUpInput) -> Result<Created> {
    let first = load(db, ws, id).await?;
    if f.only == FollowUpOnly::NotOk && !first.asks_ok() {
        return Err(Error::invalid("only", "only a check-in has OK answers to follow up on"));
    }
    let input = OutboundInput {
        kind: first.kind,
        title: f.title.or(first.title),
        body: f.body,
        channels: f.channels.unwrap_or(first.channels),
        audience: Audience { follow_up: Some(FollowUpOf { outbound_id: id.to_owned(), only: f.only }), ..Audience::default() },
        options: first.options,
        from_teammate_id: first.from_teammate_id,
        attachments: f.attachments.unwrap_or_else(|| first.attachments.into_iter().map(|a| a.id).collect()),
    };
    create(db, ws, created_by, input, Some(id)).await.map_err(|e| match e {
        Error::Unprocessable { field, .. } if field == "audience" => {
            Error::invalid("only", "everyone has answered: there is nobody to follow up with")
        }
        e => e,
    })
}

/// A delivery row as the message log shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    pub id: String,
    #[sqlx(skip)]
    pub person: Option<crate::people::PersonSummary>,
    pub person_id: String,
    pub channel: String,
    pub route: Option<String>,
    pub status: String,
    /// Why it was skipped: `no_email`, `no_phone`, `unsubscribed`.
    pub reason: Option<String>,
    pub attempts: i32,
    pub error: Option<String>,
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    #[serde(skip)]
    pub updated_ms: i64,
    #[sqlx(skip)]
    pub updated_at: String,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub channel: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// The message log of an outbound, filtered by status and channel.
pub async fn deliveries(db: &Db, ws: &str, id: &str, q: &DeliveryQuery) -> Result<crate::chat::Page<Delivery>> {
    load(db, ws, id).await?;
    if let Some(s) = &q.status
        && !["queued", "sent", "delivered", "failed", "skipped"].contains(&s.as_str())
    {
        return Err(Error::invalid("status", "status is one of queued, sent, delivered, failed, skipped"));
    }
    if let Some(c) = &q.channel
        && Channel::parse(c).is_none()
    {
        return Err(Error::invalid("channel", "channel is one of chat, email, sms"));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, PAGE_MAX);
    let after = q.cursor.clone().unwrap_or_default();
    let mut rows: Vec<Delivery> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, person_id, channel, route, status, reason, attempts, error, conversation_id, message_id, updated_at AS updated_ms \
         FROM delivery WHERE outbound_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR channel = $3) AND id > $4 \
         ORDER BY id LIMIT $5")
        .bind(id).bind(&q.status).bind(&q.channel).bind(&after).bind(limit + 1).fetch_all(pool).await?);
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<String> = rows.iter().map(|d| d.person_id.clone()).collect();
    let people = crate::people::profile::many(db, ws, &ids).await?;
    for d in &mut rows {
        d.updated_at = rfc3339(d.updated_ms);
        d.person = people.iter().find(|p| p.id == d.person_id).map(|p| crate::people::PersonSummary {
            id: p.id.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            external_id: p.external_id.clone(),
            online: p.online,
        });
    }
    let next_cursor = if more { rows.last().map(|d| d.id.clone()) } else { None };
    Ok(crate::chat::Page { items: rows, next_cursor })
}

/// A queued delivery claimed by a worker.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Work {
    pub id: String,
    pub person_id: String,
    pub channel: String,
    pub attempts: i32,
}

/// Claims up to `limit` queued deliveries of an outbound that are due, in
/// id order, which is the order of their people (see [`create`]). A claim
/// lapses after two minutes, so a worker that died leaves nothing
/// stuck; on PostgreSQL nodes skip each other's rows.
pub async fn claim(db: &Db, outbound_id: &str, limit: i64) -> Result<Vec<Work>> {
    let now = now_ms();
    let lapsed = now - CLAIM_TIMEOUT_MS;
    let lock = if db.is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
    let text = format!(
        "UPDATE delivery SET claimed_at = $2 WHERE id IN (SELECT id FROM delivery WHERE outbound_id = $1 AND status = 'queued' \
         AND next_at <= $2 AND (claimed_at IS NULL OR claimed_at < $3) ORDER BY id LIMIT $4{lock}) \
         RETURNING id, person_id, channel, attempts"
    );
    let mut rows: Vec<Work> = with_tx!(db, tx => sqlx::query_as(sqlx::AssertSqlSafe(text))
        .bind(outbound_id).bind(now).bind(lapsed).bind(limit).fetch_all(&mut *tx).await?);
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

/// What happened to one delivery.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// `sent`, `delivered`, `failed`, `skipped`, or `queued` to try again.
    pub status: &'static str,
    pub reason: Option<String>,
    pub route: Option<String>,
    pub error: Option<String>,
    pub provider_id: Option<String>,
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    /// Tries made in this go (added to the row's attempts).
    pub tries: i32,
    /// For `queued`: not before this time.
    pub next_at: i64,
}

/// Records outcomes of claimed deliveries with one statement (plus the
/// timeline's), all in one transaction; what reached someone goes on their
/// timeline.
pub async fn record(db: &Db, ws: &str, outbound_id: &str, done: &[(Work, Outcome)]) -> Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let rows = outcome_rows(done.iter().map(|(w, o)| (w.id.as_str(), o)));
    let timeline: Vec<(&str, String)> = done
        .iter()
        .filter(|(_, o)| o.status == "sent")
        .map(|(w, o)| (w.person_id.as_str(), received(outbound_id, &w.channel, &w.id, o.route.as_deref())))
        .collect();
    with_tx!(db, tx => {
        let mut c = crate::db::Conn::from(&mut *tx);
        update_deliveries(&mut c, &rows, now).await?;
        if !timeline.is_empty() {
            crate::events::write_many(&mut c, timeline.iter().map(|(p, d)| (ws, *p, "outbound.received", d.as_str(), now))).await?;
        }
    });
    Ok(())
}

/// What a delivery that reached its person puts on their timeline.
pub(crate) fn received(outbound_id: &str, channel: &str, delivery_id: &str, route: Option<&str>) -> String {
    json!({"outbound_id": outbound_id, "channel": channel, "delivery_id": delivery_id, "route": route}).to_string()
}

/// Delivery outcomes as the JSON rows [`update_deliveries`] reads.
fn outcome_rows<'a>(done: impl Iterator<Item = (&'a str, &'a Outcome)>) -> String {
    json!(
        done.map(|(id, o)| json!({"id": id, "status": o.status, "reason": o.reason, "route": o.route, "error": o.error,
            "provider_id": o.provider_id, "conversation_id": o.conversation_id, "message_id": o.message_id,
            "tries": o.tries, "next_at": o.next_at}))
            .collect::<Vec<_>>()
    )
    .to_string()
}

/// Chat deliveries whose messages were just stored, marked sent as
/// [`record`] would mark them (a `sent` outcome of one try with its
/// conversation and message), as a statement of the caller's batch. Three
/// values a row instead of an outcome's ten, as this runs for every chat of
/// a mass send.
pub(crate) fn push_sent_chats<'a>(
    b: &mut crate::db::SqliteBatch,
    sent: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
    now: i64,
) -> Result<()> {
    let rows: Vec<_> = sent.collect();
    if rows.is_empty() {
        return Ok(());
    }
    b.push(
        "UPDATE delivery SET status = 'sent', error = NULL, conversation_id = j.value->>1, message_id = j.value->>2, \
         attempts = attempts + 1, next_at = 0, claimed_at = NULL, updated_at = $2 \
         FROM json_each($1) j WHERE delivery.id = j.value->>0",
        vec![crate::db::json_rows(&rows)?.into(), now.into()],
    );
    Ok(())
}

/// Writes delivery outcomes (JSON rows from [`outcome_rows`]) with one statement.
pub(crate) async fn update_deliveries(c: &mut crate::db::Conn<'_>, rows: &str, now: i64) -> Result<()> {
    let update = if c.is_postgres() {
        "UPDATE delivery d SET status = j.status, reason = COALESCE(j.reason, d.reason), route = COALESCE(j.route, d.route), \
         error = j.error, provider_id = COALESCE(j.provider_id, d.provider_id), conversation_id = COALESCE(j.conversation_id, d.conversation_id), \
         message_id = COALESCE(j.message_id, d.message_id), attempts = d.attempts + j.tries, next_at = j.next_at, claimed_at = NULL, \
         updated_at = $2 FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS j(id TEXT, status TEXT, reason TEXT, route TEXT, error TEXT, \
         provider_id TEXT, conversation_id TEXT, message_id TEXT, tries INTEGER, next_at BIGINT) WHERE d.id = j.id"
    } else {
        "UPDATE delivery SET status = j.value->>'status', reason = COALESCE(j.value->>'reason', reason), \
         route = COALESCE(j.value->>'route', route), error = j.value->>'error', provider_id = COALESCE(j.value->>'provider_id', provider_id), \
         conversation_id = COALESCE(j.value->>'conversation_id', conversation_id), message_id = COALESCE(j.value->>'message_id', message_id), \
         attempts = attempts + (j.value->>'tries'), next_at = j.value->>'next_at', claimed_at = NULL, updated_at = $2 \
         FROM json_each($1) j WHERE delivery.id = j.value->>'id'"
    };
    crate::on_conn!(c, c => {
        sqlx::query(update).bind(rows).bind(now).execute(&mut **c).await?;
    });
    Ok(())
}

/// When the next queued delivery of an outbound is due, if any is left;
/// with none left the outbound is marked sent.
pub async fn next_due(db: &Db, outbound_id: &str) -> Result<Option<i64>> {
    let next: Option<i64> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT MIN(next_at) FROM delivery WHERE outbound_id = $1 AND status = 'queued'")
        .bind(outbound_id).fetch_one(pool).await?);
    if next.is_none() {
        with_tx!(db, tx => {
            sqlx::query("UPDATE outbound SET status = 'sent', finished_at = $1 WHERE id = $2 AND status = 'sending'")
                .bind(now_ms()).bind(outbound_id).execute(&mut *tx).await?;
        });
    }
    Ok(next)
}

/// Outbounds still sending (picked up again after a restart).
pub async fn sending(db: &Db) -> Result<Vec<String>> {
    Ok(with_db!(db, pool => sqlx::query_scalar("SELECT id FROM outbound WHERE status = 'sending'").fetch_all(pool).await?))
}

/// Chat deliveries of an outbound that were sent, after `cursor` (a
/// delivery id): (delivery, conversation, message).
pub async fn chats_after(db: &Db, outbound_id: &str, cursor: &str, limit: i64) -> Result<Vec<(String, String, String)>> {
    Ok(with_db!(db, pool => sqlx::query_as(
        "SELECT id, conversation_id, message_id FROM delivery WHERE outbound_id = $1 AND channel = 'chat' AND id > $2 \
         AND conversation_id IS NOT NULL AND message_id IS NOT NULL ORDER BY id LIMIT $3")
        .bind(outbound_id).bind(cursor).bind(limit).fetch_all(pool).await?))
}

/// The outbound whose shared chat `conversation_id` is, if any (a shared
/// chat has its outbound's id, see `chat::bulk::send_shared`).
pub async fn of_conversation(db: &Db, conversation_id: &str) -> Result<Option<String>> {
    Ok(with_db!(db, pool => sqlx::query_scalar(
        "SELECT o.id FROM outbound o JOIN conversation c ON c.id = o.id WHERE o.id = $1")
        .bind(conversation_id).fetch_optional(pool).await?))
}

/// The chat delivery of a person in an outbound: its conversation, once sent.
pub async fn chat_of(db: &Db, outbound_id: &str, person_id: &str) -> Result<Option<(Option<String>, Option<String>)>> {
    Ok(with_db!(db, pool => sqlx::query_as(
        "SELECT conversation_id, message_id FROM delivery WHERE outbound_id = $1 AND person_id = $2 AND channel = 'chat'")
        .bind(outbound_id).bind(person_id).fetch_optional(pool).await?))
}

/// Tells the workspace's teammates how far an outbound has got
/// (`outbound.progress`, not stored: the counts are in the rows).
pub async fn publish_progress(db: &Db, hub: &crate::hub::Hub, ws: &str, id: &str) -> Result<()> {
    let o = get(db, ws, id).await?;
    let frame = json!({"type": "outbound.progress", "outbound_id": o.id, "status": o.status, "recipients": o.recipients,
                       "counts": o.counts, "by_channel": o.by_channel, "total": o.counts.total(), "ok": o.ok});
    hub.send_ephemeral(&crate::hub::workspace_stream(ws), frame).await;
    Ok(())
}

/// Records a person's "I'm OK" for the check-in message `message_id` they
/// were sent. Returns the outbound it answers, or `None` when the message
/// is no check-in of theirs; answering twice changes nothing.
pub async fn answer_ok(db: &Db, ws: &str, person_id: &str, message_id: &str) -> Result<Option<(String, bool)>> {
    let now = now_ms();
    let found = with_tx!(db, tx => {
        // A company member may answer a check-in in the shared conversation:
        // the answer is counted for the person who was sent it.
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT d.outbound_id FROM delivery d JOIN outbound o ON o.id = d.outbound_id \
             WHERE d.message_id = $1 AND d.person_id = $2 AND d.workspace_id = $3 AND d.channel = 'chat' AND o.archived = FALSE")
            .bind(message_id).bind(person_id).bind(ws).fetch_optional(&mut *tx).await?;
        match row {
            None => None,
            Some((oid,)) => {
                let new = sqlx::query("INSERT INTO checkin_reply (outbound_id, person_id, workspace_id, ok, at) VALUES ($1, $2, $3, TRUE, $4) \
                                       ON CONFLICT (outbound_id, person_id) DO UPDATE SET ok = TRUE, at = $4 WHERE checkin_reply.ok = FALSE")
                    .bind(&oid).bind(person_id).bind(ws).bind(now).execute(&mut *tx).await?.rows_affected() > 0;
                if new {
                    let mut c = crate::db::Conn::from(&mut *tx);
                    crate::events::insert(&mut c, ws, person_id, "checkin.answered",
                        &json!({"outbound_id": oid, "message_id": message_id, "ok": true}).to_string(), now).await?;
                }
                Some((oid, new))
            }
        }
    });
    Ok(found)
}

/// Applies an SMS provider's status report to the delivery it names.
pub async fn sms_status(db: &Db, delivery_id: &str, delivered: bool, error: Option<&str>) -> Result<Option<Option<String>>> {
    let status = if delivered { "delivered" } else { "failed" };
    Ok(with_tx!(db, tx => sqlx::query_scalar::<_, Option<String>>(
        "UPDATE delivery SET status = $1, error = COALESCE($2, error), updated_at = $3 \
         WHERE id = $4 AND channel = 'sms' AND status IN ('sent', 'delivered', 'failed') RETURNING outbound_id")
        .bind(status).bind(error).bind(now_ms()).bind(delivery_id).fetch_optional(&mut *tx).await?))
}

/// The signed token of a recipient's link to their outbound chat
/// (`/c/{token}`): who it is for, signed with the workspace's secret.
pub fn link_token(identity_secret: &str, outbound_id: &str, person_id: &str) -> String {
    format!("{outbound_id}.{person_id}.{}", user_hash(identity_secret, &link_claim(outbound_id, person_id)))
}

/// What a link signs: its purpose too, so no other signed token passes for one.
fn link_claim(outbound_id: &str, person_id: &str) -> String {
    format!("link:{outbound_id}:{person_id}")
}

/// The outbound and person a link token names, if its shape is right; the
/// signature is checked by [`link_valid`] once the workspace is known.
pub fn link_parts(token: &str) -> Option<(&str, &str, &str)> {
    let mut it = token.splitn(3, '.');
    let (o, p, s) = (it.next()?, it.next()?, it.next()?);
    (!o.is_empty() && !p.is_empty() && !s.is_empty()).then_some((o, p, s))
}

pub fn link_valid(identity_secret: &str, outbound_id: &str, person_id: &str, signature: &str) -> bool {
    verify_user_hash(identity_secret, &link_claim(outbound_id, person_id), signature)
}

/// The signed token of an SMS delivery's status callback.
pub fn status_token(identity_secret: &str, delivery_id: &str) -> String {
    format!("{delivery_id}.{}", user_hash(identity_secret, &format!("sms:{delivery_id}")))
}

/// The delivery a status token names, when its signature holds.
pub async fn status_delivery(db: &Db, token: &str) -> Result<Option<String>> {
    let Some((id, signature)) = token.split_once('.') else { return Ok(None) };
    let secret: Option<String> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT w.identity_secret FROM delivery d JOIN workspace w ON w.id = d.workspace_id WHERE d.id = $1")
        .bind(id).fetch_optional(pool).await?);
    let Some(secret) = secret else { return Ok(None) };
    Ok(verify_user_hash(&secret, &format!("sms:{id}"), signature).then(|| id.to_owned()))
}

/// A saved message to start an outbound from.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Template {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub channels: Vec<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    pub options: Options,
    /// Files a chat sent from it carries (left out when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::uploads::Attachment>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    /// `chat` or `one_way`.
    pub kind: String,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub audience: Option<Audience>,
    #[serde(default)]
    pub options: Options,
    /// Upload ids (`POST /uploads`), at most 10; chat templates only.
    #[serde(default)]
    pub attachments: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: String,
    kind: String,
    title: String,
    body: String,
    channels: String,
    audience: Option<String>,
    options: String,
    attachments: String,
    created_at: i64,
    updated_at: i64,
}

fn bad_template(e: serde_json::Error) -> Error {
    Error::Internal(anyhow::anyhow!("stored template: {e}"))
}

impl TemplateRow {
    fn attachment_ids(&self) -> Result<Vec<String>> {
        serde_json::from_str(&self.attachments).map_err(bad_template)
    }

    /// The template, its files taken from `files` (uploads by id).
    fn into_template(self, files: &HashMap<String, crate::uploads::Attachment>) -> Result<Template> {
        let bad = bad_template;
        let attachments = self.attachment_ids()?.iter().filter_map(|id| files.get(id).cloned()).collect();
        Ok(Template {
            attachments,
            channels: serde_json::from_str(&self.channels).map_err(bad)?,
            audience: self.audience.map(|a| serde_json::from_str(&a)).transpose().map_err(bad)?,
            options: serde_json::from_str(&self.options).map_err(bad)?,
            id: self.id,
            kind: self.kind,
            title: self.title,
            body: self.body,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        })
    }
}

fn check_template(t: &TemplateInput) -> Result<()> {
    if t.kind != "chat" && t.kind != "one_way" {
        return Err(Error::invalid("kind", "kind is chat or one_way"));
    }
    if t.title.trim().is_empty() || t.title.len() > MAX_TITLE {
        return Err(Error::invalid("title", format!("a template needs a title of at most {MAX_TITLE} bytes")));
    }
    snippets::check("title", &t.title)?;
    crate::chat::check_body("body", &t.body)?;
    snippets::check("body", &t.body)?;
    if !t.attachments.is_empty() && t.kind != "chat" {
        return Err(Error::invalid("attachments", "only chat templates carry attachments: email and SMS go without files"));
    }
    Ok(())
}

const TEMPLATE_SELECT: &str =
    "SELECT id, kind, title, body, channels, audience, options, attachments, created_at, updated_at FROM template ";

/// Templates with their files, looked up together.
async fn into_templates(db: &Db, ws: &str, rows: Vec<TemplateRow>) -> Result<Vec<Template>> {
    let mut ids = Vec::new();
    for r in &rows {
        ids.extend(r.attachment_ids()?);
    }
    let files = crate::uploads::found(db, ws, &ids).await?;
    rows.into_iter().map(|r| r.into_template(&files)).collect()
}

pub async fn templates(db: &Db, ws: &str, kind: Option<&str>, q: Option<&str>) -> Result<Vec<Template>> {
    let like = q.map(|q| format!("%{}%", crate::util::like_escape(&q.to_lowercase())));
    let rows: Vec<TemplateRow> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TEMPLATE_SELECT} WHERE workspace_id = $1 AND ($2 IS NULL OR kind = $2) \
         AND ($3 IS NULL OR lower(title) LIKE $3 ESCAPE '\\' OR lower(body) LIKE $3 ESCAPE '\\') ORDER BY lower(title), id LIMIT 200")))
        .bind(ws).bind(kind).bind(&like).fetch_all(pool).await?);
    into_templates(db, ws, rows).await
}

pub async fn template(db: &Db, ws: &str, id: &str) -> Result<Template> {
    let row: Option<TemplateRow> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TEMPLATE_SELECT} WHERE id = $1 AND workspace_id = $2"))).bind(id).bind(ws).fetch_optional(pool).await?);
    let row = row.ok_or(Error::NotFound("template"))?;
    into_templates(db, ws, vec![row]).await?.pop().ok_or(Error::NotFound("template"))
}

/// A template's upload ids as stored, inside a transaction changing it.
macro_rules! template_files {
    ($tx:expr, $ws:expr, $id:expr) => {{
        let stored: Option<String> = sqlx::query_scalar("SELECT attachments FROM template WHERE id = $1 AND workspace_id = $2")
            .bind($id)
            .bind($ws)
            .fetch_optional(&mut *$tx)
            .await?;
        match stored {
            None => return Err(Error::NotFound("template")),
            Some(s) => serde_json::from_str::<Vec<String>>(&s).map_err(bad_template)?,
        }
    }};
}

/// Creates (`id` None) or replaces a template. Files a replaced template
/// no longer lists are released.
pub async fn save_template(db: &Db, uploads_dir: &std::path::Path, ws: &str, id: Option<&str>, t: TemplateInput) -> Result<Template> {
    check_template(&t)?;
    let files = crate::uploads::resolve(db, ws, &t.attachments).await?;
    let files = json!(files.iter().map(|a| &a.id).collect::<Vec<_>>()).to_string();
    let now = now_ms();
    let channels = json!(t.channels).to_string();
    let audience = t.audience.as_ref().map(|a| json!(a).to_string());
    let options = json!(t.options).to_string();
    let id = match id {
        None => {
            let id = new_id();
            with_tx!(db, tx => {
                sqlx::query("INSERT INTO template (id, workspace_id, kind, title, body, channels, audience, options, created_at, updated_at, \
                             attachments) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)")
                    .bind(&id).bind(ws).bind(&t.kind).bind(&t.title).bind(&t.body).bind(&channels).bind(&audience).bind(&options).bind(now)
                    .bind(&files).execute(&mut *tx).await?;
            });
            id
        }
        Some(id) => {
            let before = with_tx!(db, tx => {
                let before = template_files!(tx, ws, id);
                sqlx::query("UPDATE template SET kind = $1, title = $2, body = $3, channels = $4, audience = $5, \
                             options = $6, updated_at = $7, attachments = $8 WHERE id = $9 AND workspace_id = $10")
                    .bind(&t.kind).bind(&t.title).bind(&t.body).bind(&channels).bind(&audience).bind(&options).bind(now).bind(&files)
                    .bind(id).bind(ws).execute(&mut *tx).await?;
                before
            });
            let dropped: Vec<String> = before.into_iter().filter(|f| !t.attachments.contains(f)).collect();
            crate::uploads::release(db, uploads_dir, &dropped).await;
            id.to_owned()
        }
    };
    template(db, ws, &id).await
}

/// Deletes a template; its files go too unless something else uses them.
pub async fn delete_template(db: &Db, uploads_dir: &std::path::Path, ws: &str, id: &str) -> Result<()> {
    let files = with_tx!(db, tx => {
        let files = template_files!(tx, ws, id);
        sqlx::query("DELETE FROM template WHERE id = $1 AND workspace_id = $2").bind(id).bind(ws).execute(&mut *tx).await?;
        files
    });
    crate::uploads::release(db, uploads_dir, &files).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: Kind, channels: Vec<Channel>) -> OutboundInput {
        OutboundInput {
            kind,
            title: None,
            body: "Hi {{person.first_name}}".into(),
            channels,
            audience: Audience::default(),
            options: Options::default(),
            from_teammate_id: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn each_kind_takes_the_channels_it_can_use() {
        assert!(check(&input(Kind::Chat, vec![Channel::Chat, Channel::Email])).is_ok());
        assert!(check(&input(Kind::OneWay, vec![Channel::Email, Channel::Sms])).is_ok());
        assert_eq!(check(&input(Kind::OneWay, vec![Channel::Chat])).unwrap_err().field(), Some("channels"));
        assert_eq!(check(&input(Kind::Checkin, vec![Channel::Sms])).unwrap_err().field(), Some("channels"));
        assert_eq!(check(&input(Kind::Chat, vec![])).unwrap_err().field(), Some("channels"));
        assert_eq!(check(&input(Kind::Chat, vec![Channel::Chat, Channel::Chat])).unwrap_err().field(), Some("channels.1"));
    }

    #[test]
    fn only_chats_and_announcements_carry_attachments() {
        for kind in [Kind::Chat, Kind::Announcement] {
            let mut i = input(kind, vec![Channel::Chat]);
            i.attachments = vec!["an-upload".into()];
            assert!(check(&i).is_ok(), "{kind:?}");
        }
        let mut i = input(Kind::Checkin, vec![Channel::Chat]);
        i.attachments = vec!["an-upload".into()];
        assert_eq!(check(&i).unwrap_err().field(), Some("attachments"));
        let mut i = input(Kind::OneWay, vec![Channel::Email]);
        i.attachments = vec!["an-upload".into()];
        assert_eq!(check(&i).unwrap_err().field(), Some("attachments"));
    }

    #[test]
    fn a_bad_snippet_names_its_field() {
        let mut i = input(Kind::Chat, vec![Channel::Chat]);
        i.body = "Hi {{#if person.name}}".into();
        let e = check(&i).unwrap_err();
        assert_eq!(e.field(), Some("body"));
        assert!(e.to_string().contains("line 1"), "{e}");
        let mut i = input(Kind::Chat, vec![Channel::Chat]);
        i.title = Some("{{".into());
        assert_eq!(check(&i).unwrap_err().field(), Some("title"));
    }

    #[test]
    fn a_shared_chat_takes_only_texts_that_are_the_same_for_everyone() {
        for ok in
            ["Hi all", "{{teammate.first_name}} at {{workspace.name}}", "{{default teammate.name \"us\"}}", "personal {{ teammate.name }}"]
        {
            assert!(same_for_everyone("body", ok).is_ok(), "{ok}");
        }
        for bad in [
            "Hi {{person.first_name}}",
            "{{#if person.email}}yes{{/if}}",
            "{{person.attributes.plan}}",
            "{{#with person}}{{name}}{{/with}}",
            "{{lookup this \"person\"}}",
            // Never says "person", but renders the person's values.
            "{{#each this}}{{#each this}}{{this}}{{/each}}{{/each}}",
        ] {
            assert_eq!(same_for_everyone("body", bad).err().as_ref().and_then(Error::field), Some("body"), "{bad}");
        }
        assert!(!names_person("{{persona}} {{salesperson}}"), "only the word person");
        let mut i = input(Kind::Checkin, vec![Channel::Chat]);
        i.body = "Hi all".into();
        i.options.transparent = true;
        assert_eq!(check(&i).unwrap_err().field(), Some("options.transparent"));
        i.kind = Kind::Chat;
        assert!(check(&i).is_ok());
        i.title = Some("For {{person.name}}".into());
        assert_eq!(check(&i).unwrap_err().field(), Some("title"));
    }

    #[test]
    fn link_tokens_are_signed_per_person() {
        let t = link_token("secret", "o1", "p1");
        let (o, p, s) = link_parts(&t).expect("shape");
        assert_eq!((o, p), ("o1", "p1"));
        assert!(link_valid("secret", o, p, s));
        assert!(!link_valid("other", o, p, s));
        assert!(!link_valid("secret", o, "p2", s));
        assert!(link_parts("nonsense").is_none());
    }
}
