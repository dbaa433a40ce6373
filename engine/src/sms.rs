//! Text messages out, through the workspace's SMS routes.
//!
//! A route is a way to reach phones: an HTTP provider in the style of the
//! common SMS APIs (a form POST with `To`, `From`, `Body` and
//! `StatusCallback`, answered with the provider's message id), or the log
//! route, which only writes the message to the server log (a laptop, a
//! demo). A workspace lists its routes in order: a standard send uses the
//! first one once; a high-quality send fails over to the next route, round
//! after round, with growing pauses.
//!
//! The provider reports later whether a text arrived by posting to the
//! signed status callback (`/sms/v1/status/{token}`), and texts people send
//! to the workspace's number come in at its signed inbound address.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::{Db, Error, Result, with_db, with_tx};

/// How long a provider may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Routes a workspace may list.
const MAX_ROUTES: usize = 10;

/// A workspace's SMS set-up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// The sender number or name texts come from, and where people answer.
    pub from: String,
    /// Tried in order.
    pub routes: Vec<RouteConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Shown in the delivery log.
    pub name: String,
    pub kind: RouteKind,
    /// The provider's send endpoint (`http` routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Basic-auth user and password for the provider (an account id and token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    Http,
    Log,
}

impl SmsSettings {
    /// Checks a set-up from an admin: a sender, one to ten named routes,
    /// and a usable URL for each HTTP one.
    pub fn check(&self) -> Result<()> {
        if self.from.trim().is_empty() || self.from.len() > 32 {
            return Err(Error::invalid("from", "the sender must be 1 to 32 characters"));
        }
        if self.routes.is_empty() || self.routes.len() > MAX_ROUTES {
            return Err(Error::invalid("routes", format!("list 1 to {MAX_ROUTES} routes")));
        }
        for (i, r) in self.routes.iter().enumerate() {
            if r.name.trim().is_empty() || r.name.len() > 60 {
                return Err(Error::invalid(format!("routes.{i}.name"), "a route needs a name of at most 60 characters"));
            }
            match (r.kind, &r.url) {
                (RouteKind::Http, None) => return Err(Error::invalid(format!("routes.{i}.url"), "an http route needs a url")),
                (RouteKind::Http, Some(u)) => {
                    crate::webhooks::check_url(&format!("routes.{i}.url"), u)?;
                }
                (RouteKind::Log, _) => {}
            }
        }
        Ok(())
    }

    /// As shown to admins: passwords are never sent back.
    pub fn redacted(mut self) -> SmsSettings {
        for r in &mut self.routes {
            if r.password.is_some() {
                r.password = Some("********".into());
            }
        }
        self
    }
}

/// The workspace's SMS set-up, if it has one.
pub async fn settings(db: &Db, workspace_id: &str) -> Result<Option<SmsSettings>> {
    let text: Option<(Option<String>,)> =
        with_db!(db, pool => sqlx::query_as("SELECT sms FROM workspace WHERE id = $1").bind(workspace_id).fetch_optional(pool).await?);
    match text.and_then(|t| t.0) {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t).map(Some).map_err(|e| Error::Internal(anyhow::anyhow!("stored SMS settings: {e}"))),
    }
}

/// Saves a checked set-up; a route's password left as the redacted mask
/// keeps the stored one, so an admin can edit without retyping it.
pub async fn save(db: &Db, workspace_id: &str, mut s: SmsSettings) -> Result<()> {
    s.check()?;
    let old = settings(db, workspace_id).await?.unwrap_or_default();
    for r in &mut s.routes {
        if r.password.as_deref() == Some("********") {
            r.password = old.routes.iter().find(|o| o.name == r.name).and_then(|o| o.password.clone());
        }
    }
    let text = serde_json::to_string(&s).map_err(|e| Error::Internal(e.into()))?;
    with_tx!(db, tx => {
        sqlx::query("UPDATE workspace SET sms = $1 WHERE id = $2").bind(&text).bind(workspace_id).execute(&mut *tx).await?;
    });
    Ok(())
}

/// One text to send.
pub struct Text<'a> {
    pub to: &'a str,
    pub from: &'a str,
    pub body: &'a str,
    /// Where the provider reports the text's fate.
    pub status_callback: &'a str,
}

/// A provider that took a text, with its id for the status callback.
#[derive(Debug)]
pub struct Accepted {
    pub provider_id: String,
}

/// A way to reach phones.
pub trait Route: Send + Sync {
    fn send<'a>(&'a self, text: &'a Text<'a>) -> BoxFuture<'a, std::result::Result<Accepted, String>>;
}

/// Builds the route an entry of the settings describes; `client` is shared,
/// so connections to a provider are pooled.
pub fn route(config: &RouteConfig, client: &reqwest::Client) -> Box<dyn Route> {
    match config.kind {
        RouteKind::Log => Box::new(LogRoute { name: config.name.clone() }),
        RouteKind::Http => Box::new(HttpRoute { config: config.clone(), client: client.clone() }),
    }
}

struct LogRoute {
    name: String,
}

impl Route for LogRoute {
    fn send<'a>(&'a self, text: &'a Text<'a>) -> BoxFuture<'a, std::result::Result<Accepted, String>> {
        Box::pin(async move {
            tracing::info!(route = %self.name, to = text.to, from = text.from, body = text.body, "SMS (log route, not sent)");
            Ok(Accepted { provider_id: format!("log-{}", crate::util::new_id()) })
        })
    }
}

struct HttpRoute {
    config: RouteConfig,
    client: reqwest::Client,
}

impl Route for HttpRoute {
    fn send<'a>(&'a self, text: &'a Text<'a>) -> BoxFuture<'a, std::result::Result<Accepted, String>> {
        Box::pin(async move {
            let url = self.config.url.as_deref().ok_or("the route has no url")?;
            let form = [("To", text.to), ("From", text.from), ("Body", text.body), ("StatusCallback", text.status_callback)];
            // A provider that hangs must not hold the send up for good.
            let mut req = self.client.post(url).form(&form).timeout(TIMEOUT);
            if let Some(user) = &self.config.username {
                req = req.basic_auth(user, self.config.password.as_deref());
            }
            let res = req.send().await.map_err(|e| format!("provider unreachable: {e}"))?;
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            if !status.is_success() {
                let detail: String = body.chars().take(200).collect();
                return Err(format!("provider answered {}: {detail}", status.as_u16()));
            }
            // Providers name their message id differently (`sid`, `id`,
            // `message_id`); without one the status callback still finds the
            // text by its signed token.
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let id = ["sid", "id", "message_id"].iter().find_map(|k| v.get(k).and_then(|x| x.as_str()).map(str::to_owned));
            Ok(Accepted { provider_id: id.unwrap_or_else(crate::util::new_id) })
        })
    }
}

/// Sends one text through the routes in order, as a high-quality send tries
/// them, until one takes it (a test of the set-up): each route tried, with
/// what it answered.
pub async fn try_routes(settings: &SmsSettings, to: &str, body: &str) -> Vec<(String, std::result::Result<Accepted, String>)> {
    let client = match reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(e) => return vec![(String::new(), Err(format!("no HTTP client: {e}")))],
    };
    let mut tried = Vec::new();
    for config in &settings.routes {
        let sent = route(config, &client).send(&Text { to, from: &settings.from, body, status_callback: "" }).await;
        let ok = sent.is_ok();
        tried.push((config.name.clone(), sent));
        if ok {
            break;
        }
    }
    tried
}

/// The secret part of the workspace's inbound SMS address.
pub fn inbound_token(identity_secret: &str, workspace_id: &str) -> String {
    format!("{workspace_id}.{}", crate::auth::user_hash(identity_secret, &format!("sms-inbound:{workspace_id}")))
}

/// The workspace an inbound SMS address belongs to, when its token holds.
pub async fn inbound_workspace(db: &Db, token: &str) -> Result<Option<crate::workspace::Workspace>> {
    let Some((ws, signature)) = token.split_once('.') else { return Ok(None) };
    let w = match crate::workspace::get(db, ws).await {
        Ok(w) => w,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(crate::auth::verify_user_hash(&w.identity_secret, &format!("sms-inbound:{}", w.id), signature).then_some(w))
}

/// The person with this phone number: as the provider wrote it (the
/// index answers), else any number with the same last nine digits, which
/// decide between national and international forms of one number
/// (`+44 7700 900123`, `07700 900123`) however people typed it.
pub async fn person_by_phone(db: &Db, ws: &str, from: &str) -> Result<Option<String>> {
    let exact: Option<String> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT id FROM person WHERE workspace_id = $1 AND phone = $2 ORDER BY last_seen_at DESC LIMIT 1")
        .bind(ws).bind(from).fetch_optional(pool).await?);
    if exact.is_some() {
        return Ok(exact);
    }
    let number = digits(from);
    let tail = &number[number.len().saturating_sub(9)..];
    let last = &tail[tail.len().saturating_sub(3)..];
    let rows: Vec<(String, String)> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, phone FROM person WHERE workspace_id = $1 AND phone LIKE $2 ORDER BY last_seen_at DESC")
        .bind(ws).bind(format!("%{last}")).fetch_all(pool).await?);
    Ok(rows.into_iter().find(|(_, phone)| digits(phone).ends_with(tail)).map(|(id, _)| id))
}

/// A provider's word for a text's fate, as Parley's delivery status:
/// `Some(true)` delivered, `Some(false)` failed, `None` still on its way.
pub fn provider_status(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "delivered" | "read" => Some(true),
        "failed" | "undelivered" | "rejected" | "expired" => Some(false),
        _ => None,
    }
}

/// The last digits of a phone number, for matching a texted answer to a
/// person whatever the formatting (`+44 7700 900123`, `07700900123`).
pub fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(name: &str, url: Option<&str>) -> RouteConfig {
        RouteConfig { name: name.into(), kind: RouteKind::Http, url: url.map(Into::into), username: None, password: None }
    }

    #[test]
    fn settings_name_the_field_that_is_wrong() {
        let ok = SmsSettings { from: "+15550001".into(), routes: vec![http("a", Some("http://127.0.0.1:9/sms"))] };
        assert!(ok.check().is_ok());
        let none = SmsSettings { from: "+1".into(), routes: vec![] };
        assert_eq!(none.check().unwrap_err().field(), Some("routes"));
        let no_url = SmsSettings { from: "+1".into(), routes: vec![http("a", Some("http://x/")), http("b", None)] };
        assert_eq!(no_url.check().unwrap_err().field(), Some("routes.1.url"));
        let bad_url = SmsSettings { from: "+1".into(), routes: vec![http("a", Some("ftp://x"))] };
        assert_eq!(bad_url.check().unwrap_err().field(), Some("routes.0.url"));
        let blank = SmsSettings { from: " ".into(), routes: vec![http("a", Some("http://x/"))] };
        assert_eq!(blank.check().unwrap_err().field(), Some("from"));
    }

    #[test]
    fn provider_words_map_to_delivered_or_failed() {
        assert_eq!(provider_status("delivered"), Some(true));
        assert_eq!(provider_status("UNDELIVERED"), Some(false));
        assert_eq!(provider_status("failed"), Some(false));
        assert_eq!(provider_status("sent"), None);
        assert_eq!(provider_status("queued"), None);
    }

    #[test]
    fn phone_digits_ignore_formatting() {
        assert_eq!(digits("+44 (0)7700-900 123"), "4407700900123");
    }
}
