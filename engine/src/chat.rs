//! Conversations and messages: the one place that writes them.
//!
//! Every change is one transaction that writes the rows and appends the
//! realtime frames (see [`crate::hub`]); frames are delivered after commit. The
//! workspace stream carries everything (notes included); a person's stream gets
//! only what the person may see: no notes, nothing of archived conversations.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{Actor, Role};
use crate::hub::{Appended, Hub, person_stream, workspace_stream};
use crate::people::PersonSummary;
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result, events, with_db, with_tx};

/// SQL: conversation `$c` is one person `$p` may see: theirs, their
/// company's shared one, or a shared chat they are a member of. Written as
/// one `IN` over three indexed lookups (not an `OR` of them), so finding a
/// person's latest conversation never scans the workspace's.
macro_rules! person_sees {
    ($c:literal, $p:literal) => {
        concat!(
            $c,
            ".id IN (SELECT ps.id FROM conversation ps WHERE ps.person_id = ",
            $p,
            " UNION ALL SELECT ps.id FROM conversation ps WHERE ps.company_id = (SELECT pc.company_id FROM person pc WHERE pc.id = ",
            $p,
            ")",
            " UNION ALL SELECT cm.conversation_id FROM conversation_member cm WHERE cm.person_id = ",
            $p,
            ")"
        )
    };
}

/// SQL: the rest of a query for the newest live conversation of person
/// `$p` in workspace `$w`, after its `WHERE` names whose conversations. The
/// workspace is checked on the person, whose conversations all share it,
/// not as `c.workspace_id = …`: an equality there lets SQLite choose
/// `conversation_list` and walk the whole workspace's conversations newest
/// first until one is the person's (it does on a database without
/// statistics, a new one), instead of starting from the person.
macro_rules! newest_live {
    ($p:literal, $w:literal) => {
        concat!(
            " AND c.archived = FALSE AND ",
            $w,
            " = (SELECT pw.workspace_id FROM person pw WHERE pw.id = ",
            $p,
            ") ORDER BY c.updated_at DESC LIMIT 1"
        )
    };
}

/// A person's (`$1`, of workspace `$2`) own newest conversation that is not archived.
const LATEST_OPEN: &str = concat!("SELECT c.id FROM conversation c WHERE c.person_id = $1", newest_live!("$1", "$2"));

/// A person's (`$3`, of workspace `$4`) message without a conversation
/// touches the newest live one they see, or nothing.
const PERSON_WRITES_LATEST: &str = concat!(
    "UPDATE conversation SET updated_at = $1, last_message_id = $2, status = 'open', snoozed_until = NULL \
     WHERE id = (SELECT c.id FROM conversation c WHERE ",
    person_sees!("c", "$3"),
    newest_live!("$3", "$4"),
    ") RETURNING id, person_id, archived, company_id, transparent"
);

/// The people who see conversation `$1` of workspace `$2`: its person, for a
/// company conversation every member of the company, and for a shared chat
/// its members. None when there is no such conversation.
const AUDIENCE: &str = "SELECT person_id FROM conversation WHERE id = $1 AND workspace_id = $2 \
     UNION SELECT p.id FROM person p WHERE p.company_id = (SELECT company_id FROM conversation WHERE id = $1 AND workspace_id = $2) \
     UNION SELECT person_id FROM conversation_member WHERE conversation_id = $1 AND workspace_id = $2";

/// The largest message body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
const PAGE_MAX: i64 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Chat,
    Note,
    Announcement,
    Checkin,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Note => "note",
            Kind::Announcement => "announcement",
            Kind::Checkin => "checkin",
        }
    }
    fn parse(s: &str) -> Kind {
        match s {
            "note" => Kind::Note,
            "announcement" => Kind::Announcement,
            "checkin" => Kind::Checkin,
            _ => Kind::Chat,
        }
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Author {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub author: Author,
    pub body: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub buttons: Option<serde_json::Value>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Files attached (left out when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::uploads::Attachment>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    conversation_id: String,
    author_type: String,
    author_id: Option<String>,
    author_name: Option<String>,
    avatar_url: Option<String>,
    body: String,
    kind: String,
    buttons: Option<String>,
    echo_id: Option<String>,
    created_at: i64,
    deleted_at: Option<i64>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Message {
            id: r.id,
            conversation_id: r.conversation_id,
            author: Author { kind: r.author_type, id: r.author_id, name: r.author_name, avatar_url: r.avatar_url },
            body: r.body,
            kind: Kind::parse(&r.kind),
            buttons: r.buttons.and_then(|b| serde_json::from_str(&b).ok()),
            created_at: rfc3339(r.created_at),
            echo_id: r.echo_id,
            deleted: r.deleted_at.is_some(),
            attachments: Vec::new(),
        }
    }
}

// The author's display name comes from the teammate or person row, so a
// renamed teammate shows their current name everywhere.
macro_rules! message_select {
    ($where:literal) => {
        concat!(
            "SELECT m.id, m.conversation_id, m.author_type, m.author_id, \
             CASE m.author_type WHEN 'teammate' THEN t.name WHEN 'person' THEN p.name ELSE NULL END AS author_name, \
             CASE m.author_type WHEN 'teammate' THEN t.avatar_url ELSE NULL END AS avatar_url, \
             m.body, m.kind, m.buttons, m.echo_id, m.created_at, m.deleted_at \
             FROM message m \
             LEFT JOIN teammate t ON m.author_type = 'teammate' AND t.id = m.author_id \
             LEFT JOIN person p ON m.author_type = 'person' AND p.id = m.author_id ",
            $where
        )
    };
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TeammateRef {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Participant {
    pub teammate: TeammateRef,
    pub role: String,
    pub muted: bool,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: String,
    pub title: Option<String>,
    pub status: String,
    pub snoozed_until: Option<String>,
    pub archived: bool,
    pub transparent: bool,
    pub channel: String,
    pub person: PersonSummary,
    pub assignee: Option<TeammateRef>,
    /// The team it is routed to, if any.
    pub team: Option<crate::teams::TeamRef>,
    pub participants: Vec<Participant>,
    /// A shared (transparent) chat's members: everyone who sees it and
    /// writes in it. Left out for other conversations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Member>>,
    /// Messages from the person this teammate has not read (REST answers only:
    /// frames are shared by all teammates and leave it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<i64>,
    pub last_message: Option<Message>,
    pub created_at: String,
    pub updated_at: String,
}

/// A member of a shared chat.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Member {
    pub id: String,
    pub name: Option<String>,
}

/// The members of shared chat `$1`, in a fixed order.
const MEMBERS: &str = "SELECT cm.person_id AS id, p.name FROM conversation_member cm JOIN person p ON p.id = cm.person_id \
     WHERE cm.conversation_id = $1 ORDER BY p.name, cm.person_id";

/// What a person's widget may know of a conversation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PersonConversation {
    pub id: String,
    pub status: String,
    pub archived: bool,
}

#[derive(Clone, sqlx::FromRow)]
struct ConversationRow {
    id: String,
    person_id: String,
    title: Option<String>,
    status: String,
    snoozed_until: Option<i64>,
    archived: bool,
    transparent: bool,
    channel: String,
    assignee_id: Option<String>,
    assignee_name: Option<String>,
    team_id: Option<String>,
    team_name: Option<String>,
    last_message_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    person_name: Option<String>,
    person_email: Option<String>,
    person_external_id: Option<String>,
    person_online: bool,
}

macro_rules! conversation_select {
    ($where:literal) => {
        conversation_select!("", $where)
    };
    // `$extra` adds columns (starting with a comma).
    ($extra:literal, $where:literal) => {
        concat!(
            "SELECT c.id, c.person_id, c.title, c.status, c.snoozed_until, c.archived, c.transparent, c.channel, \
             c.assignee_id, a.name AS assignee_name, c.team_id, tm.name AS team_name, c.last_message_id, c.created_at, c.updated_at, \
             p.name AS person_name, p.email AS person_email, p.external_id AS person_external_id, \
             EXISTS (SELECT 1 FROM presence pr WHERE pr.person_id = c.person_id AND pr.connections > 0) AS person_online",
            $extra,
            " FROM conversation c JOIN person p ON p.id = c.person_id LEFT JOIN teammate a ON a.id = c.assignee_id \
             LEFT JOIN team tm ON tm.id = c.team_id ",
            $where
        )
    };
}

#[derive(Clone, sqlx::FromRow)]
struct ParticipantRow {
    conversation_id: String,
    teammate_id: String,
    name: String,
    avatar_url: Option<String>,
    role: String,
    muted: bool,
}

/// Loads conversations with their person, assignee, participants, last message
/// and (for `reader`) unread count: a fixed number of queries for a whole page
/// (`$pg` says which database's SQL to use for the list of ids). Asked one
/// conversation at a time, an inbox page of 25 took 78 statements, each a
/// round trip to the database's thread.
macro_rules! hydrate {
    ($conn:expr, $pg:expr, $rows:expr, $reader:expr) => {{
        let rows: Vec<ConversationRow> = $rows;
        let reader: Option<&str> = $reader;
        let mut participants: std::collections::HashMap<String, Vec<ParticipantRow>> = std::collections::HashMap::new();
        let mut last: std::collections::HashMap<String, MessageRow> = std::collections::HashMap::new();
        let mut unread: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        if !rows.is_empty() {
            let list = crate::outbound::list_sql($pg, "$1");
            let ids = json!(rows.iter().map(|r| &r.id).collect::<Vec<_>>()).to_string();
            let found: Vec<ParticipantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT pa.conversation_id, pa.teammate_id, t.name, t.avatar_url, pa.role, pa.muted FROM participant pa \
                 JOIN teammate t ON t.id = pa.teammate_id WHERE pa.conversation_id IN {list} ORDER BY pa.conversation_id, pa.added_at"
            )))
            .bind(&ids)
            .fetch_all(&mut *$conn)
            .await?;
            for p in found {
                participants.entry(p.conversation_id.clone()).or_default().push(p);
            }
            let messages = json!(rows.iter().filter_map(|r| r.last_message_id.as_ref()).collect::<Vec<_>>()).to_string();
            let found: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{}WHERE m.id IN {list}", message_select!(""))))
                .bind(&messages)
                .fetch_all(&mut *$conn)
                .await?;
            last.extend(found.into_iter().map(|m| (m.id.clone(), m)));
            if let Some(tid) = reader {
                let counts: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT m.conversation_id, COUNT(*) FROM message m \
                     LEFT JOIN teammate_read r ON r.conversation_id = m.conversation_id AND r.teammate_id = $2 \
                     WHERE m.conversation_id IN {list} AND m.author_type = 'person' AND m.deleted_at IS NULL \
                     AND m.created_at > COALESCE(r.read_at, 0) GROUP BY m.conversation_id"
                )))
                .bind(&ids)
                .bind(tid)
                .fetch_all(&mut *$conn)
                .await?;
                unread.extend(counts);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let members: Option<Vec<Member>> = match r.transparent {
                true => Some(sqlx::query_as(MEMBERS).bind(&r.id).fetch_all(&mut *$conn).await?),
                false => None,
            };
            let last_message = r.last_message_id.as_ref().and_then(|id| last.remove(id)).map(Message::from);
            let unread = reader.map(|_| unread.get(&r.id).copied().unwrap_or(0));
            let participants = participants.remove(&r.id).unwrap_or_default();
            out.push(build_conversation(r, participants, members, last_message, unread));
        }
        out
    }};
}

fn build_conversation(
    r: ConversationRow,
    participants: Vec<ParticipantRow>,
    members: Option<Vec<Member>>,
    last_message: Option<Message>,
    unread: Option<i64>,
) -> Conversation {
    Conversation {
        person: PersonSummary {
            id: r.person_id,
            name: r.person_name,
            email: r.person_email,
            external_id: r.person_external_id,
            online: r.person_online,
        },
        assignee: match (r.assignee_id, r.assignee_name) {
            (Some(id), Some(name)) => Some(TeammateRef { id, name }),
            _ => None,
        },
        team: match (r.team_id, r.team_name) {
            (Some(id), Some(name)) => Some(crate::teams::TeamRef { id, name }),
            _ => None,
        },
        participants: participants
            .into_iter()
            .map(|p| Participant { teammate: TeammateRef { id: p.teammate_id, name: p.name }, role: p.role, muted: p.muted })
            .collect(),
        members,
        id: r.id,
        title: r.title,
        status: r.status,
        snoozed_until: r.snoozed_until.map(rfc3339),
        archived: r.archived,
        transparent: r.transparent,
        channel: r.channel,
        unread,
        last_message,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

/// One conversation as `reader` sees it; 404 when it is not in the workspace.
pub async fn conversation(db: &Db, workspace_id: &str, id: &str, reader: Option<&str>) -> Result<Conversation> {
    let found = with_db!(db, pool => {
        let mut conn = pool.acquire().await?;
        let rows: Vec<ConversationRow> = sqlx::query_as(conversation_select!("WHERE c.id = $1 AND c.workspace_id = $2"))
            .bind(id).bind(workspace_id).fetch_all(&mut *conn).await?;
        hydrate!(conn, db.is_postgres(), rows, reader)
    });
    let mut found = found.into_iter().next().ok_or(Error::NotFound("conversation"))?;
    crate::uploads::attach(db, found.last_message.as_mut()).await?;
    Ok(found)
}

/// Loads a conversation inside a transaction (to build frames that reflect it).
macro_rules! conversation_in_tx {
    ($tx:expr, $pg:expr, $id:expr) => {{
        let rows: Vec<ConversationRow> = sqlx::query_as(conversation_select!("WHERE c.id = $1")).bind($id).fetch_all(&mut *$tx).await?;
        hydrate!($tx, $pg, rows, None).into_iter().next().ok_or(Error::NotFound("conversation"))?
    }};
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
pub struct ListFilter {
    /// open, snoozed or closed
    pub status: Option<String>,
    /// `me`, `none` or a teammate id
    pub assignee: Option<String>,
    /// A team's id, or `none` for conversations routed to no team
    pub team: Option<String>,
    /// Archived conversations instead of live ones (default false).
    pub archived: Option<bool>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

fn parse_status(field: &str, s: &str) -> Result<&'static str> {
    match s {
        "open" => Ok("open"),
        "snoozed" => Ok("snoozed"),
        "closed" => Ok("closed"),
        _ => Err(Error::invalid(field, "status must be open, snoozed or closed")),
    }
}

/// The inbox list, most recent activity first, with keyset pagination.
#[tracing::instrument(skip_all, fields(workspace = %actor.workspace_id))]
pub async fn list(db: &Db, actor: &Actor, f: ListFilter) -> Result<Page<Conversation>> {
    let status = f.status.as_deref().map(|s| parse_status("status", s)).transpose()?;
    let (assignee, unassigned) = match f.assignee.as_deref() {
        None | Some("") | Some("all") => (None, false),
        Some("none") => (None, true),
        Some("me") => (Some(actor.teammate_id.clone()), false),
        Some(id) => (Some(id.to_owned()), false),
    };
    let (team, teamless) = match f.team.as_deref() {
        None | Some("") | Some("all") => (None, false),
        Some("none") => (None, true),
        Some(id) => (Some(id.to_owned()), false),
    };
    let limit = f.limit.unwrap_or(25).clamp(1, 100);
    // The cursor is "<updated_at>_<id>" of the last row of the previous page.
    let (c_at, c_id) = match f.cursor.as_deref() {
        None | Some("") => (i64::MAX, String::new()),
        Some(c) => {
            let (at, id) = c.split_once('_').ok_or_else(|| Error::invalid("cursor", "malformed cursor"))?;
            (at.parse().map_err(|_| Error::invalid("cursor", "malformed cursor"))?, id.to_owned())
        }
    };
    let mut items = with_db!(db, pool => {
        let mut conn = pool.acquire().await?;
        let rows: Vec<ConversationRow> = sqlx::query_as(conversation_select!(
            "WHERE c.workspace_id = $1 AND c.archived = $2 \
             AND ($3 IS NULL OR c.status = $3) \
             AND ($4 IS NULL OR c.assignee_id = $4) AND ($5 = FALSE OR c.assignee_id IS NULL) \
             AND (c.updated_at < $6 OR (c.updated_at = $6 AND c.id < $7)) \
             AND ($9 IS NULL OR c.team_id = $9) AND ($10 = FALSE OR c.team_id IS NULL) \
             ORDER BY c.updated_at DESC, c.id DESC LIMIT $8"))
            .bind(&actor.workspace_id).bind(f.archived.unwrap_or(false)).bind(status).bind(&assignee).bind(unassigned)
            .bind(c_at).bind(&c_id).bind(limit + 1).bind(&team).bind(teamless)
            .fetch_all(&mut *conn).await?;
        hydrate!(conn, db.is_postgres(), rows, Some(actor.teammate_id.as_str()))
    });
    crate::uploads::attach(db, items.iter_mut().filter_map(|c| c.last_message.as_mut())).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|c| format!("{}_{}", parse_ms(&c.updated_at), c.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

fn parse_ms(rfc: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc).map(|t| t.timestamp_millis()).unwrap_or(0)
}

/// A page of a thread: the `limit` messages before `before` (or the newest),
/// returned oldest first; `next_cursor` is the id to pass as `before` for the
/// page above. `for_person` hides notes.
#[tracing::instrument(skip_all, fields(conversation = %conversation_id))]
pub async fn messages(
    db: &Db,
    workspace_id: &str,
    conversation_id: &str,
    before: Option<&str>,
    limit: Option<i64>,
    for_person: bool,
) -> Result<Page<Message>> {
    let limit = limit.unwrap_or(50).clamp(1, PAGE_MAX);
    let mut rows: Vec<MessageRow> = with_db!(db, pool => sqlx::query_as(message_select!(
        "WHERE m.conversation_id = $1 AND m.workspace_id = $2 AND ($3 IS NULL OR m.id < $3) \
         AND ($4 = FALSE OR m.kind <> 'note') AND m.deleted_at IS NULL ORDER BY m.id DESC LIMIT $5"))
        .bind(conversation_id).bind(workspace_id).bind(before).bind(for_person).bind(limit + 1)
        .fetch_all(pool).await?);
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    let next_cursor = if more { rows.first().map(|m| m.id.clone()) } else { None };
    let mut items: Vec<Message> = rows.into_iter().map(Message::from).collect();
    crate::uploads::attach(db, &mut items).await?;
    Ok(Page { items, next_cursor })
}

/// Who writes a message.
#[derive(Clone, Debug)]
pub enum Sender {
    Person(String),
    Teammate { id: String },
    Bot,
}

impl Sender {
    fn kind(&self) -> &'static str {
        match self {
            Sender::Person(_) => "person",
            Sender::Teammate { .. } => "teammate",
            Sender::Bot => "bot",
        }
    }
    fn id(&self) -> Option<&str> {
        match self {
            Sender::Person(id) | Sender::Teammate { id, .. } => Some(id),
            Sender::Bot => None,
        }
    }
}

pub struct NewMessage {
    pub workspace_id: String,
    /// `None` (people only): the person's current conversation, or a new one.
    pub conversation_id: Option<String>,
    pub sender: Sender,
    pub body: String,
    pub kind: Kind,
    pub echo_id: Option<String>,
    pub buttons: Option<serde_json::Value>,
    /// The sender may write in a company conversation: such messages take
    /// the per-message path, which fans out to every member.
    pub shared: bool,
    /// Who made it happen; an automation's messages do not set off automations.
    pub cause: crate::bus::Cause,
    /// With no `conversation_id` and a teammate or the bot writing: the
    /// person a new conversation is started with (a proactive message).
    pub to_person: Option<String>,
    /// A teammate's or the bot's chat message may be emailed to a person who
    /// misses it; false opts this message out.
    pub email_fallback: bool,
    /// Uploads of the workspace, checked by `uploads::resolve`; with at
    /// least one the body may be empty.
    pub attachments: Vec<crate::uploads::Attachment>,
}

impl NewMessage {
    /// A person's chat message, as most of them are: no echo id or buttons,
    /// not in a shared company conversation, caused by the person.
    pub fn from_person(workspace_id: &str, person_id: &str, conversation_id: Option<String>, body: String) -> NewMessage {
        NewMessage {
            workspace_id: workspace_id.to_owned(),
            conversation_id,
            sender: Sender::Person(person_id.to_owned()),
            body,
            kind: Kind::Chat,
            echo_id: None,
            buttons: None,
            shared: false,
            cause: crate::bus::Cause::Someone,
            to_person: None,
            email_fallback: true,
            attachments: Vec::new(),
        }
    }
}

/// Checks a message body: text, not blank, at most [`MAX_BODY`] bytes.
pub fn check_body(field: &str, body: &str) -> Result<()> {
    if body.len() > MAX_BODY {
        return Err(Error::PayloadTooLarge(format!("{field} is longer than {MAX_BODY} bytes")));
    }
    if body.trim().is_empty() {
        return Err(Error::invalid(field, "message body is empty"));
    }
    Ok(())
}

fn check_echo(echo: &Option<String>) -> Result<()> {
    match echo {
        Some(e) if e.is_empty() || e.len() > 100 => Err(Error::invalid("echo_id", "echo_id must be 1 to 100 characters")),
        _ => Ok(()),
    }
}

fn archived_error() -> Error {
    Error::Conflict { code: "conversation_archived", message: "this conversation is archived".into() }
}

async fn by_echo(db: &Db, m: &NewMessage) -> Result<Option<Message>> {
    let Some(echo) = &m.echo_id else { return Ok(None) };
    let row: Option<MessageRow> = with_db!(db, pool => sqlx::query_as(message_select!(
        "WHERE m.workspace_id = $1 AND m.author_type = $2 AND m.author_id = $3 AND m.echo_id = $4"))
        .bind(&m.workspace_id).bind(m.sender.kind()).bind(m.sender.id()).bind(echo).fetch_optional(pool).await?);
    let mut found: Vec<Message> = row.map(Message::from).into_iter().collect();
    crate::uploads::attach(db, &mut found).await?;
    Ok(found.pop())
}

/// The outcome of [`send`]: the stored message, and whether this call stored it
/// (false when the echo_id had been stored before).
pub struct Sent {
    pub message: Message,
    pub created: bool,
    /// This message started its conversation.
    pub started: bool,
    /// It was planned as missed (the person was offline): when, in ms.
    pub missed_at: Option<i64>,
}

/// Stores a message and publishes it. Idempotent per (author, echo_id).
///
/// This is the hot path of the whole product, so it is kept to a handful of
/// statements: the conversation is touched with `UPDATE … RETURNING` (a check
/// that fails afterwards rolls the transaction back), the message is built in
/// memory rather than read back, and a resent echo_id is detected by the
/// unique index rather than a lookup first.
///
/// A stored message is announced on the hub's bus (after commit) for
/// automations and other in-process readers.
#[tracing::instrument(skip_all, fields(workspace = %m.workspace_id, author = m.sender.kind()))]
pub async fn send(db: &Db, hub: &Hub, m: NewMessage) -> Result<Sent> {
    let (workspace_id, cause) = (m.workspace_id.clone(), m.cause.clone());
    let sent = store(db, hub, m).await?;
    if sent.created {
        hub.bus().publish(crate::bus::Happening::MessageCreated {
            workspace_id,
            message: sent.message.clone(),
            started: sent.started,
            cause,
            missed_at: sent.missed_at,
        });
    }
    Ok(sent)
}

async fn store(db: &Db, hub: &Hub, m: NewMessage) -> Result<Sent> {
    // A file may go without words, but not with too many.
    if m.attachments.is_empty() || m.body.len() > MAX_BODY {
        check_body("body", &m.body)?;
    }
    check_echo(&m.echo_id)?;
    if m.kind == Kind::Note && matches!(m.sender, Sender::Person(_)) {
        return Err(Error::invalid("kind", "people cannot write notes"));
    }
    let id = crate::util::new_id();
    let mut m = m;
    if let Some(writer) = hub.batcher()
        && batch::eligible(&m)
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        writer
            .send(batch::Job { message: m, id: id.clone(), reply })
            .await
            .map_err(|_| Error::Internal(anyhow::anyhow!("the message writer has stopped")))?;
        // A message into a shared chat comes back: it is written below, which
        // reaches every member.
        match answer.await.map_err(|_| Error::Internal(anyhow::anyhow!("the message writer has stopped")))? {
            batch::Answer::Done(result) => return result,
            batch::Answer::Shared(back) => m = back,
        }
    }
    let now = now_ms();
    let from_person = matches!(m.sender, Sender::Person(_));
    let (message, events, started, missed_at) = with_tx!(db, tx => {
        let touched: Option<(String, String, bool, Option<String>, bool)> = match (&m.conversation_id, &m.sender) {
            (Some(cid), _) => sqlx::query_as(
                "UPDATE conversation SET updated_at = $1, last_message_id = $2, \
                 status = CASE WHEN $3 THEN 'open' ELSE status END, snoozed_until = CASE WHEN $3 THEN NULL ELSE snoozed_until END \
                 WHERE id = $4 AND workspace_id = $5 RETURNING id, person_id, archived, company_id, transparent")
                .bind(now).bind(&id).bind(from_person).bind(cid).bind(&m.workspace_id).fetch_optional(&mut *tx).await?,
            // A person's message without a conversation goes to their latest
            // live one, or their company's.
            (None, Sender::Person(pid)) => sqlx::query_as(PERSON_WRITES_LATEST)
                .bind(now).bind(&id).bind(pid).bind(&m.workspace_id).fetch_optional(&mut *tx).await?,
            // A proactive message starts a conversation below.
            (None, _) if m.to_person.is_some() => None,
            (None, _) => return Err(Error::invalid("conversation_id", "conversation_id is required")),
        };
        let mut started = false;
        let mut company: Option<String> = None;
        let mut shared_chat = false;
        let (conversation_id, person_id) = match touched {
            Some((cid, pid, archived, company_id, transparent)) => {
                if let Sender::Person(me) = &m.sender
                    && *me != pid
                {
                    let member: Option<(i64,)> = sqlx::query_as("SELECT seen_at FROM conversation_member WHERE conversation_id = $1 AND person_id = $2")
                        .bind(&cid).bind(me).fetch_optional(&mut *tx).await?;
                    if member.is_none() {
                        let mine: Option<(Option<String>,)> = sqlx::query_as("SELECT company_id FROM person WHERE id = $1")
                            .bind(me).fetch_optional(&mut *tx).await?;
                        if company_id.is_none() || mine.and_then(|r| r.0) != company_id {
                            return Err(Error::NotFound("conversation"));
                        }
                    }
                }
                company = company_id;
                shared_chat = transparent;
                if archived && m.kind != Kind::Note {
                    return Err(archived_error());
                }
                (cid, pid)
            }
            None => {
                // Only a person, or a proactive message, without a
                // conversation_id starts a new one.
                let pid = match (&m.conversation_id, &m.sender, &m.to_person) {
                    (None, Sender::Person(pid), _) => pid,
                    (None, _, Some(pid)) => {
                        let known: Option<(String,)> = sqlx::query_as("SELECT id FROM person WHERE id = $1 AND workspace_id = $2")
                            .bind(pid).bind(&m.workspace_id).fetch_optional(&mut *tx).await?;
                        known.ok_or(Error::NotFound("person"))?;
                        pid
                    }
                    _ => return Err(Error::NotFound("conversation")),
                };
                let cid = new_id();
                sqlx::query("INSERT INTO conversation (id, workspace_id, person_id, status, last_message_id, created_at, updated_at) VALUES ($1, $2, $3, 'open', $4, $5, $5)")
                    .bind(&cid).bind(&m.workspace_id).bind(pid).bind(&id).bind(now).execute(&mut *tx).await?;
                started = true;
                (cid, pid.clone())
            }
        };
        if let Sender::Teammate { id: tid, .. } = &m.sender {
            // A conversation started just now has no participants to ask about.
            let role: Option<(String,)> = match started {
                true => None,
                false => sqlx::query_as("SELECT role FROM participant WHERE conversation_id = $1 AND teammate_id = $2")
                    .bind(&conversation_id).bind(tid).fetch_optional(&mut *tx).await?,
            };
            match role.as_ref().map(|r| r.0.as_str()) {
                Some("read_only") | Some("watcher") => return Err(Error::forbidden("your role in this conversation does not allow writing")),
                Some(_) => {}
                // Replying makes a teammate a participant.
                None => {
                    sqlx::query("INSERT INTO participant (conversation_id, teammate_id, workspace_id, role, muted, added_at) VALUES ($1, $2, $3, 'write', FALSE, $4)")
                        .bind(&conversation_id).bind(tid).bind(&m.workspace_id).bind(now).execute(&mut *tx).await?;
                }
            }
            // A teammate has read what they answer. Unread counts the person's
            // messages, of which a conversation started just now has none.
            if !started {
                sqlx::query("INSERT INTO teammate_read (conversation_id, teammate_id, workspace_id, read_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (conversation_id, teammate_id) DO UPDATE SET read_at = $4")
                    .bind(&conversation_id).bind(tid).bind(&m.workspace_id).bind(now).execute(&mut *tx).await?;
            }
        }
        let buttons = m.buttons.as_ref().map(|b| b.to_string());
        let inserted = sqlx::query(
            "INSERT INTO message (id, workspace_id, conversation_id, author_type, author_id, body, kind, buttons, echo_id, created_at, email_fallback) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING")
            .bind(&id).bind(&m.workspace_id).bind(&conversation_id).bind(m.sender.kind()).bind(m.sender.id())
            .bind(&m.body).bind(m.kind.as_str()).bind(&buttons).bind(&m.echo_id).bind(now).bind(m.email_fallback)
            .execute(&mut *tx).await?;
        if inserted.rows_affected() == 0 {
            // This echo_id was stored before (a resend): answer with that
            // message and undo the touch above.
            drop(tx);
            let message = by_echo(db, &m).await?.ok_or_else(|| Error::Internal(anyhow::anyhow!("echo conflict without a row")))?;
            return Ok(Sent { message, created: false, started: false, missed_at: None });
        }
        crate::uploads::link_attachments!(tx, &id, m.attachments);
        // Who sees it: the person, or every member of the company or shared chat.
        let audience: Vec<String> = match (m.kind, company.is_some() || shared_chat) {
            (Kind::Note, _) => Vec::new(),
            (_, true) => sqlx::query_scalar(AUDIENCE).bind(&conversation_id).bind(&m.workspace_id).fetch_all(&mut *tx).await?,
            (_, false) => vec![person_id.clone()],
        };
        // The person's timeline: what they said, and what reached them (in a
        // shared chat, each member).
        {
            let mut c = crate::db::Conn::from(&mut *tx);
            let data = json!({"conversation_id": conversation_id, "message_id": id}).to_string();
            let ws = m.workspace_id.as_str();
            let start = json!({"conversation_id": conversation_id}).to_string();
            let start = started.then_some((ws, person_id.as_str(), "conversation.started", start.as_str(), now));
            // Who it lands on, and as what: nobody for a note.
            let (name, people): (&str, Vec<&str>) = match (&m.sender, m.kind) {
                (_, Kind::Note) => ("", Vec::new()),
                (Sender::Person(me), _) => ("message.sent", vec![me.as_str()]),
                _ if shared_chat => ("message.received", audience.iter().map(String::as_str).collect()),
                _ => ("message.received", vec![person_id.as_str()]),
            };
            // A new conversation's events too: one set of statements for all.
            events::write_many(&mut c, start.into_iter().chain(people.into_iter().map(|p| (ws, p, name, data.as_str(), now)))).await?;
        }
        let mut missed_at = None;
        if m.email_fallback && !matches!(m.sender, Sender::Person(_)) && m.kind != Kind::Note {
            let planned = sqlx::query(crate::missed::PLAN_SQL)
                .bind(&conversation_id).bind(&m.workspace_id).bind(crate::missed::new_reply_token()).bind(&id).bind(now).bind(&person_id)
                .execute(&mut *tx).await?;
            if planned.rows_affected() > 0 {
                missed_at = Some(now);
            }
        }
        let rows: Vec<ConversationRow> =
            sqlx::query_as(conversation_select!("WHERE c.id = $1")).bind(&conversation_id).fetch_all(&mut *tx).await?;
        let row = rows.into_iter().next().ok_or(Error::NotFound("conversation"))?;
        let participants: Vec<ParticipantRow> = sqlx::query_as(
            "SELECT pa.conversation_id, pa.teammate_id, t.name, t.avatar_url, pa.role, pa.muted FROM participant pa \
             JOIN teammate t ON t.id = pa.teammate_id WHERE pa.conversation_id = $1 ORDER BY pa.added_at")
            .bind(&conversation_id).fetch_all(&mut *tx).await?;
        // The author's display name, from what was just read.
        let (name, avatar_url) = match &m.sender {
            Sender::Person(me) if *me == row.person_id => (row.person_name.clone(), None),
            // Another member of a company or shared chat.
            Sender::Person(me) => {
                let named: Option<(Option<String>,)> = sqlx::query_as("SELECT name FROM person WHERE id = $1").bind(me).fetch_optional(&mut *tx).await?;
                (named.and_then(|n| n.0), None)
            }
            Sender::Teammate { id: tid, .. } => participants
                .iter()
                .find(|p| p.teammate_id == *tid)
                .map(|p| (Some(p.name.clone()), p.avatar_url.clone()))
                .unwrap_or_default(),
            Sender::Bot => (None, None),
        };
        let message = Message {
            id: id.clone(),
            conversation_id: conversation_id.clone(),
            author: Author { kind: m.sender.kind().to_owned(), id: m.sender.id().map(str::to_owned), name, avatar_url },
            body: m.body.clone(),
            kind: m.kind,
            buttons: m.buttons.clone(),
            created_at: rfc3339(now),
            echo_id: m.echo_id.clone(),
            deleted: false,
            attachments: m.attachments.clone(),
        };
        // The conversation's last message is `message` itself: the summary in
        // the frame leaves it out rather than carry it twice.
        let members: Option<Vec<Member>> = match shared_chat {
            true => Some(sqlx::query_as(MEMBERS).bind(&conversation_id).fetch_all(&mut *tx).await?),
            false => None,
        };
        let conversation = build_conversation(row, participants, members, None, None);
        let mut events = vec![
            hub.append(&mut *tx, &workspace_stream(&m.workspace_id), &m.workspace_id,
                json!({"type": "message.created", "message": message, "conversation": conversation})).await?,
        ];
        for p in &audience {
            events.push(hub.append(&mut *tx, &person_stream(p), &m.workspace_id,
                json!({"type": "message.created", "message": message})).await?);
        }
        (message, events, started, missed_at)
    });
    hub.deliver(&events);
    metrics::counter!("parley_messages_total", "author" => m.sender.kind()).increment(1);
    Ok(Sent { message, created: true, started, missed_at })
}

fn person_view(c: &Conversation) -> PersonConversation {
    PersonConversation { id: c.id.clone(), status: c.status.clone(), archived: c.archived }
}

/// Runs a change to one conversation: `change` writes inside the transaction,
/// then `conversation.updated` goes to the teammates and (minus internals) to
/// the person.
macro_rules! change_conversation {
    ($db:expr, $hub:expr, $ws:expr, $id:expr, $tx:ident => $change:block) => {{
        let events: Vec<Appended>;
        let conversation = with_tx!($db, $tx => {
            let exists: Option<(String,)> = sqlx::query_as("SELECT person_id FROM conversation WHERE id = $1 AND workspace_id = $2")
                .bind($id).bind($ws).fetch_optional(&mut *$tx).await?;
            if exists.is_none() {
                return Err(Error::NotFound("conversation"));
            }
            $change
            sqlx::query("UPDATE conversation SET updated_at = $1 WHERE id = $2").bind(now_ms()).bind($id).execute(&mut *$tx).await?;
            let conversation = conversation_in_tx!($tx, $db.is_postgres(), $id);
            let mut appended = vec![
                $hub.append(&mut *$tx, &workspace_stream($ws), $ws, json!({"type": "conversation.updated", "conversation": conversation})).await?,
            ];
            let frame = json!({"type": "conversation.updated", "conversation": person_view(&conversation)});
            let audience: Vec<String> = sqlx::query_scalar(AUDIENCE).bind($id).bind($ws).fetch_all(&mut *$tx).await?;
            for p in audience {
                appended.push($hub.append(&mut *$tx, &person_stream(&p), $ws, frame.clone()).await?);
            }
            events = appended;
            conversation
        });
        $hub.deliver(&events);
        conversation
    }};
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    pub status: Option<String>,
    /// A teammate id, or null to unassign.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub assignee_id: Option<Option<String>>,
    /// A team id, or null to take it off its team.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub team_id: Option<Option<String>>,
    /// RFC 3339; with status `snoozed`.
    pub snoozed_until: Option<String>,
    pub transparent: Option<bool>,
    pub title: Option<String>,
}

/// Tells an absent field (`None`) from an explicit null (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[tracing::instrument(skip_all, fields(conversation = %id))]
pub async fn update(db: &Db, hub: &Hub, actor: &Actor, id: &str, p: ConversationPatch) -> Result<Conversation> {
    let status = p.status.as_deref().map(|s| parse_status("status", s)).transpose()?;
    let snoozed_until = p.snoozed_until.as_deref().map(|s| crate::util::parse_rfc3339("snoozed_until", s)).transpose()?;
    if status == Some("snoozed") && snoozed_until.is_none() {
        return Err(Error::invalid("snoozed_until", "snoozing needs snoozed_until"));
    }
    if p.title.as_ref().is_some_and(|t| t.len() > 300) {
        return Err(Error::invalid("title", "title is longer than 300 bytes"));
    }
    // An unknown or foreign assignee is a bad value in the body, not a missing resource.
    if let Some(Some(aid)) = &p.assignee_id {
        crate::workspace::teammate(db, &actor.workspace_id, aid)
            .await
            .map_err(|_| Error::invalid("assignee_id", "no such teammate in this workspace"))?;
    }
    if let Some(Some(tid)) = &p.team_id {
        crate::teams::get(db, &actor.workspace_id, tid).await.map_err(|_| Error::invalid("team_id", "no such team in this workspace"))?;
    }
    let ws = actor.workspace_id.as_str();
    // Its members already see each other's messages: a shared chat cannot be
    // made private after the fact (they would keep seeing it all).
    if p.transparent == Some(false) {
        let members: i64 = with_db!(db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM conversation_member WHERE conversation_id = $1 AND workspace_id = $2")
            .bind(id).bind(ws).fetch_one(pool).await?);
        if members > 0 {
            return Err(Error::Conflict {
                code: "shared_chat",
                message: "a shared chat stays shared: its members already see each other's messages".into(),
            });
        }
    }
    let now = now_ms();
    Ok(change_conversation!(db, hub, ws, id, tx => {
        if let Some(team) = &p.team_id {
            sqlx::query("UPDATE conversation SET team_id = $1 WHERE id = $2").bind(team).bind(id).execute(&mut *tx).await?;
        }
        if let Some(s) = status {
            sqlx::query("UPDATE conversation SET status = $1, snoozed_until = $2 WHERE id = $3")
                .bind(s).bind(if s == "snoozed" { snoozed_until } else { None }).bind(id).execute(&mut *tx).await?;
        }
        if let Some(assignee) = &p.assignee_id {
            sqlx::query("UPDATE conversation SET assignee_id = $1 WHERE id = $2").bind(assignee).bind(id).execute(&mut *tx).await?;
            if let Some(aid) = assignee {
                sqlx::query("INSERT INTO participant (conversation_id, teammate_id, workspace_id, role, muted, added_at) VALUES ($1, $2, $3, 'write', FALSE, $4) \
                             ON CONFLICT (conversation_id, teammate_id) DO NOTHING")
                    .bind(id).bind(aid).bind(ws).bind(now).execute(&mut *tx).await?;
            }
        }
        if let Some(t) = p.transparent {
            sqlx::query("UPDATE conversation SET transparent = $1 WHERE id = $2").bind(t).bind(id).execute(&mut *tx).await?;
        }
        if let Some(t) = &p.title {
            sqlx::query("UPDATE conversation SET title = $1 WHERE id = $2").bind(Some(t.trim()).filter(|t| !t.is_empty())).bind(id).execute(&mut *tx).await?;
        }
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantInput {
    pub teammate_id: String,
    /// write, read_only or watcher (default write)
    pub role: Option<String>,
    pub muted: Option<bool>,
}

/// Adds a participant, or changes their role or mute.
#[tracing::instrument(skip_all, fields(conversation = %id))]
pub async fn put_participant(db: &Db, hub: &Hub, actor: &Actor, id: &str, p: ParticipantInput) -> Result<Conversation> {
    let role = match p.role.as_deref() {
        None => None,
        Some(r @ ("write" | "read_only" | "watcher")) => Some(r.to_owned()),
        Some(_) => return Err(Error::invalid("role", "role must be write, read_only or watcher")),
    };
    crate::workspace::teammate(db, &actor.workspace_id, &p.teammate_id)
        .await
        .map_err(|_| Error::invalid("teammate_id", "no such teammate in this workspace"))?;
    // Changing someone else's role is an admin's call; anyone may mute themselves.
    if p.teammate_id != actor.teammate_id && actor.role != Role::Admin && role.as_deref().is_some_and(|r| r != "write") {
        return Err(Error::forbidden("only admins may restrict another teammate"));
    }
    let ws = actor.workspace_id.as_str();
    let now = now_ms();
    Ok(change_conversation!(db, hub, ws, id, tx => {
        sqlx::query("INSERT INTO participant (conversation_id, teammate_id, workspace_id, role, muted, added_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (conversation_id, teammate_id) DO UPDATE SET role = COALESCE($7, participant.role), muted = COALESCE($8, participant.muted)")
            .bind(id).bind(&p.teammate_id).bind(ws).bind(role.clone().unwrap_or_else(|| "write".into())).bind(p.muted.unwrap_or(false)).bind(now)
            .bind(&role).bind(p.muted)
            .execute(&mut *tx).await?;
    }))
}

#[tracing::instrument(skip_all, fields(conversation = %id))]
pub async fn remove_participant(db: &Db, hub: &Hub, actor: &Actor, id: &str, teammate_id: &str) -> Result<Conversation> {
    if teammate_id != actor.teammate_id && actor.role != Role::Admin {
        return Err(Error::forbidden("only admins may remove another teammate"));
    }
    let ws = actor.workspace_id.as_str();
    Ok(change_conversation!(db, hub, ws, id, tx => {
        let gone = sqlx::query("DELETE FROM participant WHERE conversation_id = $1 AND teammate_id = $2")
            .bind(id).bind(teammate_id).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Err(Error::NotFound("participant"));
        }
    }))
}

/// Archives or restores a conversation. An archived conversation disappears
/// from the person's widget and refuses their messages.
#[tracing::instrument(skip_all, fields(conversation = %id))]
pub async fn set_archived(db: &Db, hub: &Hub, actor: &Actor, id: &str, archived: bool) -> Result<Conversation> {
    let ws = actor.workspace_id.as_str();
    tracing::info!(conversation = id, teammate = %actor.teammate_id, archived, "conversation archive changed");
    Ok(change_conversation!(db, hub, ws, id, tx => {
        sqlx::query("UPDATE conversation SET archived = $1 WHERE id = $2").bind(archived).bind(id).execute(&mut *tx).await?;
    }))
}

/// Deletes a conversation and its messages for good (admins only; logged).
#[tracing::instrument(skip_all, fields(conversation = %id))]
pub async fn delete_conversation(db: &Db, hub: &Hub, uploads_dir: &std::path::Path, actor: &Actor, id: &str) -> Result<()> {
    actor.require_admin()?;
    let ws = actor.workspace_id.as_str();
    let (events, files) = with_tx!(db, tx => {
        let found: Option<(String,)> = sqlx::query_as("SELECT person_id FROM conversation WHERE id = $1 AND workspace_id = $2")
            .bind(id).bind(ws).fetch_optional(&mut *tx).await?;
        if found.is_none() {
            return Err(Error::NotFound("conversation"));
        }
        let audience: Vec<String> = sqlx::query_scalar(AUDIENCE).bind(id).bind(ws).fetch_all(&mut *tx).await?;
        let files = crate::uploads::linked_to_messages!(tx, "SELECT id FROM message WHERE conversation_id = $1", id);
        for sql in [
            // The company's next message starts a new shared conversation.
            "UPDATE company SET conversation_id = NULL WHERE conversation_id = $1",
            "DELETE FROM message WHERE conversation_id = $1",
            "DELETE FROM participant WHERE conversation_id = $1",
            "DELETE FROM conversation_member WHERE conversation_id = $1",
            "DELETE FROM teammate_read WHERE conversation_id = $1",
            "DELETE FROM conversation WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let frame = json!({"type": "conversation.deleted", "conversation_id": id});
        let mut events = vec![hub.append(&mut *tx, &workspace_stream(ws), ws, frame.clone()).await?];
        for p in audience {
            events.push(hub.append(&mut *tx, &person_stream(&p), ws, frame.clone()).await?);
        }
        (events, files)
    });
    tracing::info!(conversation = id, teammate = %actor.teammate_id, "conversation deleted");
    hub.deliver(&events);
    crate::uploads::release(db, uploads_dir, &files).await;
    Ok(())
}

/// Deletes a message: its text is erased, a tombstone stays so threads and
/// replays keep their order. Admins may delete any message, agents their own.
#[tracing::instrument(skip_all, fields(message = %message_id))]
pub async fn delete_message(db: &Db, hub: &Hub, uploads_dir: &std::path::Path, actor: &Actor, message_id: &str) -> Result<()> {
    let ws = actor.workspace_id.as_str();
    let (events, files) = with_tx!(db, tx => {
        let found: Option<(String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT m.conversation_id, m.author_type, m.author_id, m.kind FROM message m \
             WHERE m.id = $1 AND m.workspace_id = $2 AND m.deleted_at IS NULL")
            .bind(message_id).bind(ws).fetch_optional(&mut *tx).await?;
        let Some((conversation_id, author_type, author_id, kind)) = found else { return Err(Error::NotFound("message")) };
        let own = author_type == "teammate" && author_id.as_deref() == Some(actor.teammate_id.as_str());
        if !own && actor.role != Role::Admin {
            return Err(Error::forbidden("agents may delete only their own messages"));
        }
        sqlx::query("UPDATE message SET body = '', deleted_at = $1, deleted_by = $2 WHERE id = $3")
            .bind(now_ms()).bind(&actor.teammate_id).bind(message_id).execute(&mut *tx).await?;
        // A deleted message shows nothing, its files included.
        let files: Vec<String> = sqlx::query_scalar("SELECT upload_id FROM message_attachment WHERE message_id = $1")
            .bind(message_id).fetch_all(&mut *tx).await?;
        sqlx::query("DELETE FROM message_attachment WHERE message_id = $1").bind(message_id).execute(&mut *tx).await?;
        let frame = json!({"type": "message.deleted", "message_id": message_id, "conversation_id": conversation_id});
        let mut events = vec![hub.append(&mut *tx, &workspace_stream(ws), ws, frame.clone()).await?];
        if kind != "note" {
            let audience: Vec<String> = sqlx::query_scalar(AUDIENCE).bind(&conversation_id).bind(ws).fetch_all(&mut *tx).await?;
            for p in audience {
                events.push(hub.append(&mut *tx, &person_stream(&p), ws, frame.clone()).await?);
            }
        }
        (events, files)
    });
    tracing::info!(message = message_id, teammate = %actor.teammate_id, "message deleted");
    hub.deliver(&events);
    crate::uploads::release(db, uploads_dir, &files).await;
    Ok(())
}

/// A teammate has read a conversation up to `message_id`.
#[tracing::instrument(skip_all, fields(conversation = %conversation_id))]
pub async fn teammate_seen(db: &Db, actor: &Actor, conversation_id: &str, message_id: &str) -> Result<()> {
    let at = message_time(db, &actor.workspace_id, conversation_id, message_id).await?;
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO teammate_read (conversation_id, teammate_id, workspace_id, read_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (conversation_id, teammate_id) DO UPDATE SET read_at = CASE WHEN teammate_read.read_at > $4 THEN teammate_read.read_at ELSE $4 END")
            .bind(conversation_id).bind(&actor.teammate_id).bind(&actor.workspace_id).bind(at).execute(&mut *tx).await?;
    });
    Ok(())
}

/// A person has seen their conversation up to `message_id`: teammates are told
/// (read receipts).
#[tracing::instrument(skip_all, fields(conversation = %conversation_id))]
pub async fn person_seen(db: &Db, hub: &Hub, workspace_id: &str, person_id: &str, conversation_id: &str, message_id: &str) -> Result<()> {
    match person_conversation(db, workspace_id, person_id, conversation_id).await {
        Ok(()) => {}
        Err(Error::Conflict { .. }) => return Err(Error::NotFound("conversation")),
        Err(e) => return Err(e),
    }
    let at = message_time(db, workspace_id, conversation_id, message_id).await?;
    let events = with_tx!(db, tx => {
        // A shared chat's members each have their own mark; the
        // conversation's mark is its own person's (what their widget counts
        // unread from), so another member reading it moves only theirs.
        let member = sqlx::query("UPDATE conversation_member SET seen_at = $1 WHERE conversation_id = $2 AND person_id = $3 AND seen_at < $1")
            .bind(at).bind(conversation_id).bind(person_id).execute(&mut *tx).await?;
        let changed = sqlx::query("UPDATE conversation SET person_seen_at = $1 WHERE id = $2 AND person_seen_at < $1 AND (transparent = FALSE OR person_id = $3)")
            .bind(at).bind(conversation_id).bind(person_id).execute(&mut *tx).await?;
        if changed.rows_affected() + member.rows_affected() == 0 {
            Vec::new()
        } else {
            // An outbound chat the person has now seen was delivered (in a
            // shared chat, to this member).
            sqlx::query("UPDATE delivery SET status = 'delivered', updated_at = $1 WHERE conversation_id = $2 AND channel = 'chat' AND status = 'sent' \
                         AND (person_id = $3 OR NOT EXISTS (SELECT 1 FROM conversation_member cm WHERE cm.conversation_id = $2))")
                .bind(now_ms()).bind(conversation_id).bind(person_id).execute(&mut *tx).await?;
            vec![hub.append(&mut *tx, &workspace_stream(workspace_id), workspace_id, json!({
                "type": "conversation.seen", "conversation_id": conversation_id, "person_id": person_id,
                "message_id": message_id, "seen_at": rfc3339(at)})).await?]
        }
    });
    hub.deliver(&events);
    Ok(())
}

/// The person's latest conversation that is not archived, if any.
pub async fn latest_open(db: &Db, workspace_id: &str, person_id: &str) -> Result<Option<String>> {
    Ok(with_db!(db, pool => sqlx::query_scalar(LATEST_OPEN)
        .bind(person_id).bind(workspace_id).fetch_optional(pool).await?))
}

/// Names a conversation that has no title yet (an outbound's chat).
pub async fn title_if_unset(db: &Db, conversation_id: &str, title: &str) -> Result<()> {
    with_tx!(db, tx => {
        sqlx::query("UPDATE conversation SET title = $1 WHERE id = $2 AND title IS NULL").bind(title).bind(conversation_id).execute(&mut *tx).await?;
    });
    Ok(())
}

/// A person picks one of a message's buttons (`reply.choose`): their pick is
/// posted as their own message in that conversation, so teammates see it and
/// a waiting chatbot flow takes it as the answer. `choice` is a button's label.
#[tracing::instrument(skip_all, fields(message = %message_id))]
pub async fn choose(db: &Db, hub: &Hub, workspace_id: &str, person_id: &str, message_id: &str, choice: &str, shared: bool) -> Result<Sent> {
    let row: Option<(String, Option<String>)> = with_db!(db, pool => sqlx::query_as(
        "SELECT conversation_id, buttons FROM message WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL AND kind <> 'note'")
        .bind(message_id).bind(workspace_id).fetch_optional(pool).await?);
    let (conversation_id, buttons) = row.ok_or(Error::NotFound("message"))?;
    // Another person's message is as unknown as a missing one.
    person_conversation(db, workspace_id, person_id, &conversation_id).await.map_err(|e| match e {
        Error::NotFound(_) => Error::NotFound("message"),
        e => e,
    })?;
    let labels: Vec<String> = buttons
        .and_then(|b| serde_json::from_str::<Vec<serde_json::Value>>(&b).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|b| b.get("label").and_then(|l| l.as_str()).map(str::to_owned))
        .collect();
    if labels.is_empty() {
        return Err(Error::invalid("message_id", "this message has no buttons"));
    }
    let Some(label) = labels.into_iter().find(|l| l == choice) else {
        return Err(Error::invalid("choice", "choice is not one of the message's buttons"));
    };
    send(
        db,
        hub,
        NewMessage {
            workspace_id: workspace_id.to_owned(),
            conversation_id: Some(conversation_id),
            sender: Sender::Person(person_id.to_owned()),
            body: label,
            kind: Kind::Chat,
            echo_id: None,
            buttons: None,
            shared,
            cause: Default::default(),
            to_person: None,
            email_fallback: true,
            attachments: Vec::new(),
        },
    )
    .await
}

async fn message_time(db: &Db, workspace_id: &str, conversation_id: &str, message_id: &str) -> Result<i64> {
    let row: Option<(i64,)> = with_db!(db, pool => sqlx::query_as(
        "SELECT created_at FROM message WHERE id = $1 AND conversation_id = $2 AND workspace_id = $3")
        .bind(message_id).bind(conversation_id).bind(workspace_id).fetch_optional(pool).await?);
    row.map(|r| r.0).ok_or(Error::NotFound("message"))
}

/// SQL: how far person `$1` has seen conversation `c`: a shared chat's member
/// by their own mark.
macro_rules! seen_at_sql {
    () => {
        "COALESCE((SELECT cm.seen_at FROM conversation_member cm WHERE cm.conversation_id = c.id AND cm.person_id = $1), c.person_seen_at)"
    };
}

/// The newest live conversation person `$1` of workspace `$2` sees, and
/// what the widget shows of it.
const WIDGET_LATEST: &str = concat!(
    "SELECT c.id, c.status, c.archived, ",
    seen_at_sql!(),
    " FROM conversation c WHERE ",
    person_sees!("c", "$1"),
    newest_live!("$1", "$2")
);

/// What the widget shows on load: the person's current conversation (never an
/// archived one), its last messages and how many they have not seen.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WidgetState {
    pub conversation: Option<PersonConversation>,
    pub messages: Vec<Message>,
    pub unread: i64,
    /// The person's stream position: frames after it are new.
    pub seq: i64,
}

/// The widget's view on load: the person's latest live conversation, or
/// `conversation_id` (a link from an email or text opens that chat).
pub async fn widget_state(db: &Db, hub: &Hub, workspace_id: &str, person_id: &str, conversation_id: Option<&str>) -> Result<WidgetState> {
    // Read the position first: anything newer than the history below arrives
    // (or is replayed) as frames with a higher seq, and the widget de-duplicates.
    let seq = hub.current_seq(&person_stream(person_id)).await?;
    let conv: Option<(String, String, bool, i64)> = match conversation_id {
        None => with_db!(db, pool => sqlx::query_as(WIDGET_LATEST)
            .bind(person_id).bind(workspace_id).fetch_optional(pool).await?),
        Some(cid) => {
            let found: Option<(String, String, bool, i64)> = with_db!(db, pool => sqlx::query_as(concat!(
                "SELECT c.id, c.status, c.archived, ", seen_at_sql!(), " FROM conversation c WHERE ", person_sees!("c", "$1"),
                " AND c.workspace_id = $2 AND c.id = $3"))
                .bind(person_id).bind(workspace_id).bind(cid).fetch_optional(pool).await?);
            Some(found.ok_or(Error::NotFound("conversation"))?)
        }
    };
    let Some((id, status, archived, seen_at)) = conv else {
        return Ok(WidgetState { conversation: None, messages: Vec::new(), unread: 0, seq });
    };
    let page = messages(db, workspace_id, &id, None, Some(50), true).await?;
    // Unread: what others wrote (in a shared or company chat, other people too).
    let (unread,): (i64,) = with_db!(db, pool => sqlx::query_as(
        "SELECT COUNT(*) FROM message WHERE conversation_id = $1 AND (author_type <> 'person' OR author_id <> $3) \
         AND kind <> 'note' AND deleted_at IS NULL AND created_at > $2")
        .bind(&id).bind(seen_at).bind(person_id).fetch_one(pool).await?);
    Ok(WidgetState { conversation: Some(PersonConversation { id, status, archived }), messages: page.items, unread, seq })
}

/// Checks that the person may see `conversation_id` (theirs, not archived).
pub async fn person_conversation(db: &Db, workspace_id: &str, person_id: &str, conversation_id: &str) -> Result<()> {
    let row: Option<(bool,)> = with_db!(db, pool => sqlx::query_as(concat!(
        "SELECT c.archived FROM conversation c WHERE c.id = $1 AND c.workspace_id = $2 AND ", person_sees!("c", "$3")))
        .bind(conversation_id).bind(workspace_id).bind(person_id).fetch_optional(pool).await?);
    match row {
        Some((false,)) => Ok(()),
        Some((true,)) => Err(archived_error()),
        None => Err(Error::NotFound("conversation")),
    }
}

/// The person of a conversation in the workspace (404 otherwise).
pub async fn conversation_person(db: &Db, workspace_id: &str, conversation_id: &str) -> Result<String> {
    let row: Option<(String,)> = with_db!(db, pool => sqlx::query_as(
        "SELECT person_id FROM conversation WHERE id = $1 AND workspace_id = $2")
        .bind(conversation_id).bind(workspace_id).fetch_optional(pool).await?);
    row.map(|r| r.0).ok_or(Error::NotFound("conversation"))
}

/// Everyone who sees a conversation in the workspace (404 otherwise): its
/// person, or every member of its company.
pub async fn conversation_audience(db: &Db, workspace_id: &str, conversation_id: &str) -> Result<Vec<String>> {
    let people: Vec<String> =
        with_db!(db, pool => sqlx::query_scalar(AUDIENCE).bind(conversation_id).bind(workspace_id).fetch_all(pool).await?);
    // A conversation always has its person: no one means no conversation.
    if people.is_empty() { Err(Error::NotFound("conversation")) } else { Ok(people) }
}

pub(crate) mod batch;
pub mod bulk;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::query_plan as plan;

    /// Two plans that walked a whole table to find someone's latest
    /// conversation. On a new database, without statistics, the planner
    /// judged two equalities on `conversation_list` (workspace, archived)
    /// better than one on the person, and walked the workspace's
    /// conversations newest first until one was theirs. Once analysed, with
    /// most conversations of no company, it judged the lookup by company
    /// worthless and scanned every conversation.
    #[tokio::test]
    async fn a_persons_latest_conversation_is_found_from_the_person_not_the_workspace() {
        let (db, dir) = crate::db::temp_sqlite("latest").await;
        let statements =
            [("latest_open", LATEST_OPEN, 2), ("the widget", WIDGET_LATEST, 2), ("a person's message", PERSON_WRITES_LATEST, 4)];
        let check = |plan: &str, what: &str, when: &str| {
            assert!(!plan.contains("conversation_list"), "{what} walks the workspace's conversations {when}:\n{plan}");
            assert!(!plan.contains("SCAN"), "{what} scans a table {when}:\n{plan}");
            assert!(plan.contains("conversation_person (person_id=?)"), "{what} starts from the person {when}:\n{plan}");
        };
        for (what, sql, params) in statements {
            check(&plan(&db, sql, params).await, what, "on a new database");
        }
        let ws = crate::workspace::create(&db, "Latest").await.expect("a workspace");
        let opts = crate::people::seed::SeedOptions { people: 300, events_per_person: 0, seed: 5, conversations: 200 };
        crate::people::seed::seed(&db, &ws.id, opts, |_| {}).await.expect("seeding");
        let Db::Sqlite { write, .. } = &db else { unreachable!("a SQLite database") };
        sqlx::query("ANALYZE").execute(write).await.expect("analysing");
        for (what, sql, params) in statements {
            let plan = plan(&db, sql, params).await;
            check(&plan, what, "once analysed");
            if sql.contains("company_id") {
                assert!(plan.contains("conversation_company (company_id=?)"), "{what} finds the company's conversation by index:\n{plan}");
            }
        }
        crate::db::remove_temp_sqlite(db, &dir).await;
    }
}
