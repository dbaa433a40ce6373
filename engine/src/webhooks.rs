//! Webhook subscriptions: the site's backend names a URL and the events it
//! wants (`message.created`, `conversation.created`, `person.created`,
//! `person.updated`, `event.tracked`, or `*`), and every one is POSTed to it
//! as JSON, signed with the subscription's own secret. Each delivery is a row
//! (queued, delivered or failed, tries, the receiver's answer), so an admin
//! can see what reached the backend; the automations crate's jobs do the
//! posting and the retries. A workspace's subscriptions are kept in memory
//! for a second (see [`subscribed`]).

use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::util::{PerWorkspace, new_id, new_token, now_ms, rfc3339};
use crate::{Db, Error, Result, with_db, with_tx};

/// What a subscription can ask for.
pub const EVENTS: &[&str] = &["message.created", "conversation.created", "person.created", "person.updated", "event.tracked"];
/// Subscriptions a workspace may have.
const MAX_WEBHOOKS: i64 = 100;

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// Signs every delivery (`X-Parley-Signature`); admins see it.
    pub secret: String,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    pub url: Option<String>,
    /// Event names, or `["*"]` for all.
    pub events: Option<Vec<String>>,
    /// At least 16 characters; made up when left out.
    pub secret: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    url: String,
    events: String,
    secret: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Webhook {
    fn from(r: Row) -> Self {
        Webhook {
            id: r.id,
            url: r.url,
            events: serde_json::from_str(&r.events).unwrap_or_default(),
            secret: r.secret,
            enabled: r.enabled,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// An absolute http(s) URL with a host.
pub fn check_url(field: &str, s: &str) -> Result<String> {
    let s = s.trim();
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default()).unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || s.len() > 2048 {
        return Err(Error::invalid(field, "url must be an http:// or https:// URL with a host"));
    }
    Ok(s.to_owned())
}

fn check_events(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() {
        return Err(Error::invalid("events", format!("name at least one event: {}, or \"*\"", EVENTS.join(", "))));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e != "*" && !EVENTS.contains(&e.as_str()) {
            return Err(Error::invalid(format!("events.{i}"), format!("{e:?} is not an event: {}, or \"*\"", EVENTS.join(", "))));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

fn check_secret(s: &str) -> Result<String> {
    if s.len() < 16 || s.len() > 200 {
        return Err(Error::invalid("secret", "secret must be 16 to 200 characters"));
    }
    Ok(s.to_owned())
}

const SELECT: &str = "SELECT id, url, events, secret, enabled, created_at, updated_at FROM webhook ";

pub async fn list(db: &Db, ws: &str) -> Result<Vec<Webhook>> {
    let sql = format!("{SELECT}WHERE workspace_id = $1 ORDER BY created_at, id");
    let rows: Vec<Row> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(ws).fetch_all(pool).await?);
    Ok(rows.into_iter().map(Webhook::from).collect())
}

pub async fn get(db: &Db, ws: &str, id: &str) -> Result<Webhook> {
    let sql = format!("{SELECT}WHERE id = $1 AND workspace_id = $2");
    let row: Option<Row> =
        with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(ws).fetch_optional(pool).await?);
    row.map(Webhook::from).ok_or(Error::NotFound("webhook"))
}

/// A workspace's enabled subscriptions: every happening asks for them, and
/// most workspaces have none.
fn enabled() -> &'static PerWorkspace<Vec<Webhook>> {
    static ENABLED: OnceLock<PerWorkspace<Vec<Webhook>>> = OnceLock::new();
    ENABLED.get_or_init(|| PerWorkspace::new(Duration::from_secs(1), 10_000))
}

fn forget(ws: &str) {
    enabled().forget(ws);
}

/// The enabled subscriptions of a workspace that want `event`.
pub async fn subscribed(db: &Db, ws: &str, event: &str) -> Result<Vec<Webhook>> {
    let all = enabled()
        .get_or_load(ws, || async {
            let sql = format!("{SELECT}WHERE workspace_id = $1 AND enabled = TRUE");
            let rows: Vec<Row> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(ws).fetch_all(pool).await?);
            Ok(rows.into_iter().map(Webhook::from).collect::<Vec<_>>())
        })
        .await?;
    Ok(all.iter().filter(|w| w.events.iter().any(|e| e == "*" || e == event)).cloned().collect())
}

pub async fn create(db: &Db, ws: &str, input: WebhookInput) -> Result<Webhook> {
    let url = check_url("url", input.url.as_deref().ok_or_else(|| Error::invalid("url", "url is required"))?)?;
    let events = check_events(input.events.as_deref().ok_or_else(|| Error::invalid("events", "events are required"))?)?;
    let secret = match &input.secret {
        Some(s) => check_secret(s)?,
        None => new_token("whsec_"),
    };
    let (n,): (i64,) =
        with_db!(db, pool => sqlx::query_as("SELECT COUNT(*) FROM webhook WHERE workspace_id = $1").bind(ws).fetch_one(pool).await?);
    if n >= MAX_WEBHOOKS {
        return Err(Error::Conflict { code: "too_many_webhooks", message: format!("a workspace has at most {MAX_WEBHOOKS} webhooks") });
    }
    let id = new_id();
    let now = now_ms();
    let events = serde_json::to_string(&events).map_err(|e| Error::Internal(e.into()))?;
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO webhook (id, workspace_id, url, events, secret, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
            .bind(&id).bind(ws).bind(&url).bind(&events).bind(&secret).bind(input.enabled.unwrap_or(true)).bind(now)
            .execute(&mut *tx).await?;
    });
    forget(ws);
    get(db, ws, &id).await
}

pub async fn update(db: &Db, ws: &str, id: &str, input: WebhookInput) -> Result<Webhook> {
    let current = get(db, ws, id).await?;
    let url = match &input.url {
        Some(u) => check_url("url", u)?,
        None => current.url,
    };
    let events = match &input.events {
        Some(e) => check_events(e)?,
        None => current.events,
    };
    let secret = match &input.secret {
        Some(s) => check_secret(s)?,
        None => current.secret,
    };
    let events = serde_json::to_string(&events).map_err(|e| Error::Internal(e.into()))?;
    with_tx!(db, tx => {
        sqlx::query("UPDATE webhook SET url = $1, events = $2, secret = $3, enabled = $4, updated_at = $5 WHERE id = $6 AND workspace_id = $7")
            .bind(&url).bind(&events).bind(&secret).bind(input.enabled.unwrap_or(current.enabled)).bind(now_ms()).bind(id).bind(ws)
            .execute(&mut *tx).await?;
    });
    forget(ws);
    get(db, ws, id).await
}

pub async fn delete(db: &Db, ws: &str, id: &str) -> Result<()> {
    get(db, ws, id).await?;
    with_tx!(db, tx => {
        sqlx::query("DELETE FROM webhook_delivery WHERE webhook_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM webhook WHERE id = $1 AND workspace_id = $2").bind(id).bind(ws).execute(&mut *tx).await?;
    });
    forget(ws);
    Ok(())
}

/// One try (or more) of posting one event to one subscription.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    pub id: String,
    #[serde(skip)]
    pub webhook_id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub event: String,
    /// What was posted (JSON text).
    pub body: String,
    /// queued, delivered or failed
    pub status: String,
    pub attempts: i32,
    /// The receiver's last HTTP status, if it answered.
    pub response_status: Option<i32>,
    /// What went wrong on the last failed try.
    pub error: Option<String>,
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String)]
    pub created_at: i64,
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: i64,
}

fn ms_as_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// Stores a queued delivery of `event` with its body: `{id, event,
/// workspace_id, created_at, data}`.
pub async fn enqueue(db: &Db, ws: &str, webhook_id: &str, event: &str, data: &Value) -> Result<String> {
    let id = new_id();
    let now = now_ms();
    let body = serde_json::json!({"id": id, "event": event, "workspace_id": ws, "created_at": rfc3339(now), "data": data}).to_string();
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO webhook_delivery (id, webhook_id, workspace_id, event, body, status, attempts, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6)")
            .bind(&id).bind(webhook_id).bind(ws).bind(event).bind(&body).bind(now).execute(&mut *tx).await?;
    });
    Ok(id)
}

const DELIVERY: &str = "SELECT id, webhook_id, workspace_id, event, body, status, attempts, response_status, error, created_at, updated_at FROM webhook_delivery ";

pub async fn delivery(db: &Db, id: &str) -> Result<Option<Delivery>> {
    let sql = format!("{DELIVERY}WHERE id = $1");
    Ok(with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await?))
}

/// Records a try: its outcome and the receiver's answer. A delivered row
/// keeps the error of the try before it, which says why it took more.
pub async fn record_try(db: &Db, id: &str, status: &str, response_status: Option<u16>, error: Option<&str>) -> Result<()> {
    with_tx!(db, tx => {
        sqlx::query("UPDATE webhook_delivery SET status = $1, attempts = attempts + 1, response_status = $2, error = COALESCE($3, error), updated_at = $4 WHERE id = $5")
            .bind(status).bind(response_status.map(i32::from)).bind(error).bind(now_ms()).bind(id).execute(&mut *tx).await?;
    });
    Ok(())
}

/// A page of a subscription's delivery log, newest first.
pub async fn deliveries(
    db: &Db,
    ws: &str,
    webhook_id: &str,
    status: Option<&str>,
    before: Option<&str>,
) -> Result<(Vec<Delivery>, Option<String>)> {
    get(db, ws, webhook_id).await?;
    if let Some(s) = status
        && !matches!(s, "queued" | "delivered" | "failed")
    {
        return Err(Error::invalid("status", "status must be queued, delivered or failed"));
    }
    const PAGE: i64 = 50;
    let sql =
        format!("{DELIVERY}WHERE webhook_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4");
    let mut rows: Vec<Delivery> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(webhook_id).bind(status).bind(before).bind(PAGE + 1).fetch_all(pool).await?);
    let next = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|d| d.id.clone())
    } else {
        None
    };
    Ok((rows, next))
}
