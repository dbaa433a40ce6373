//! Workspaces (tenants) and their teammates, including the first-start bootstrap.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::auth::{Actor, Role, hash_password};
use crate::util::{PerWorkspace, new_id, new_token, now_ms};
use crate::{Db, Error, Result, with_db, with_tx};

#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub app_id: String,
    #[serde(skip)]
    pub identity_secret: String,
    pub require_identity: bool,
    /// Each person's conversation is shared with their whole company.
    pub company_conversations: bool,
    /// Email a person the chat messages they missed.
    pub email_fallback: bool,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Teammate {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub avatar_url: Option<String>,
}

pub async fn get(db: &Db, id: &str) -> Result<Workspace> {
    with_db!(db, pool => sqlx::query_as::<_, Workspace>(
        "SELECT id, name, app_id, identity_secret, require_identity, company_conversations, email_fallback FROM workspace WHERE id = $1")
        .bind(id).fetch_optional(pool).await?)
    .ok_or(Error::NotFound("workspace"))
}

/// Workspaces and their teammates kept for a second: every automated message
/// asks for its sender and for the workspace its snippets name, and both
/// rarely change. Changes made on this node are seen at once.
fn kept_workspaces() -> &'static PerWorkspace<Workspace> {
    static KEPT: OnceLock<PerWorkspace<Workspace>> = OnceLock::new();
    KEPT.get_or_init(|| PerWorkspace::new(Duration::from_secs(1), 10_000))
}

fn kept_teammates() -> &'static PerWorkspace<Vec<Teammate>> {
    static KEPT: OnceLock<PerWorkspace<Vec<Teammate>>> = OnceLock::new();
    KEPT.get_or_init(|| PerWorkspace::new(Duration::from_secs(1), 10_000))
}

/// [`get`], from memory when it was read within the last second.
pub async fn kept(db: &Db, id: &str) -> Result<Arc<Workspace>> {
    kept_workspaces().get_or_load(id, || get(db, id)).await
}

/// [`teammate`], from memory when the workspace's teammates were read within
/// the last second. One added since is looked up.
pub async fn kept_teammate(db: &Db, workspace_id: &str, id: &str) -> Result<Teammate> {
    let all = kept_teammates().get_or_load(workspace_id, || teammates(db, workspace_id)).await?;
    match all.iter().find(|t| t.id == id) {
        Some(t) => Ok(t.clone()),
        None => teammate(db, workspace_id, id).await,
    }
}

/// Forgets the kept teammates of a workspace after one of them changed.
pub fn teammates_changed(workspace_id: &str) {
    kept_teammates().forget(workspace_id);
}

pub async fn by_app_id(db: &Db, app_id: &str) -> Result<Workspace> {
    with_db!(db, pool => sqlx::query_as::<_, Workspace>(
        "SELECT id, name, app_id, identity_secret, require_identity, company_conversations, email_fallback FROM workspace WHERE app_id = $1")
        .bind(app_id).fetch_optional(pool).await?)
    .ok_or(Error::NotFound("workspace"))
}

pub async fn by_name(db: &Db, name: &str) -> Result<Option<Workspace>> {
    Ok(with_db!(db, pool => sqlx::query_as::<_, Workspace>(
        "SELECT id, name, app_id, identity_secret, require_identity, company_conversations, email_fallback FROM workspace WHERE name = $1 ORDER BY created_at LIMIT 1")
        .bind(name).fetch_optional(pool).await?))
}

pub async fn create(db: &Db, name: &str) -> Result<Workspace> {
    let ws = Workspace {
        id: new_id(),
        name: name.to_owned(),
        // The app id is public (it is in every page that embeds the widget):
        // short and random, not the internal id.
        app_id: new_token("").chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect::<String>().to_lowercase(),
        identity_secret: new_token(""),
        require_identity: false,
        company_conversations: false,
        email_fallback: true,
    };
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO workspace (id, name, app_id, identity_secret, require_identity, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&ws.id).bind(&ws.name).bind(&ws.app_id).bind(&ws.identity_secret).bind(ws.require_identity).bind(now_ms())
            .execute(&mut *tx).await?;
    });
    Ok(ws)
}

/// A change to a workspace's settings; what is `None` stays as it is.
#[derive(Debug, Default)]
pub struct SettingsPatch {
    pub name: Option<String>,
    pub require_identity: Option<bool>,
    pub company_conversations: Option<bool>,
    pub email_fallback: Option<bool>,
    /// `Some(None)` clears them (always open).
    pub business_hours: Option<Option<crate::hours::BusinessHours>>,
}

/// The longest workspace name, in characters.
const MAX_NAME: usize = 100;

/// Applies a settings change, all of it or nothing. Admins only.
pub async fn update_settings(db: &Db, actor: &Actor, p: SettingsPatch) -> Result<()> {
    actor.require_admin()?;
    let hours = match &p.business_hours {
        None => None,
        Some(None) => Some(None),
        Some(Some(h)) => Some(Some(serde_json::to_string(h).map_err(|e| Error::Internal(e.into()))?)),
    };
    let name = match p.name.as_deref().map(str::trim) {
        None => None,
        Some(n) if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) => {
            return Err(Error::invalid("name", format!("a workspace name is 1 to {MAX_NAME} characters on one line")));
        }
        Some(n) => Some(n.to_owned()),
    };
    let ws = &actor.workspace_id;
    with_tx!(db, tx => {
        if let Some(n) = &name {
            sqlx::query("UPDATE workspace SET name = $1 WHERE id = $2").bind(n).bind(ws).execute(&mut *tx).await?;
        }
        if let Some(on) = p.require_identity {
            sqlx::query("UPDATE workspace SET require_identity = $1 WHERE id = $2").bind(on).bind(ws).execute(&mut *tx).await?;
        }
        if let Some(on) = p.company_conversations {
            sqlx::query("UPDATE workspace SET company_conversations = $1 WHERE id = $2").bind(on).bind(ws).execute(&mut *tx).await?;
        }
        if let Some(on) = p.email_fallback {
            sqlx::query("UPDATE workspace SET email_fallback = $1 WHERE id = $2").bind(on).bind(ws).execute(&mut *tx).await?;
        }
        if let Some(text) = &hours {
            sqlx::query("UPDATE workspace SET business_hours = $1 WHERE id = $2").bind(text).bind(ws).execute(&mut *tx).await?;
        }
    });
    kept_workspaces().forget(ws);
    Ok(())
}

pub struct NewTeammate<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub role: Role,
}

/// Checks a new teammate's fields; the first failing field is named.
fn check_new_teammate(t: &NewTeammate<'_>) -> Result<String> {
    let email = t.email.trim().to_lowercase();
    let at = email.find('@');
    if !matches!(at, Some(i) if i > 0 && i + 1 < email.len()) || email.len() > 254 || email.contains(char::is_whitespace) {
        return Err(Error::invalid("email", "a valid email address is required"));
    }
    if t.name.trim().is_empty() || t.name.len() > 200 {
        return Err(Error::invalid("name", "name must be 1 to 200 characters"));
    }
    if t.password.chars().count() < 8 || t.password.len() > 1024 {
        return Err(Error::invalid("password", "password must be at least 8 characters"));
    }
    Ok(email)
}

pub async fn create_teammate(db: &Db, workspace_id: &str, t: NewTeammate<'_>) -> Result<Teammate> {
    let email = check_new_teammate(&t)?;
    let hash = hash_password(t.password.to_owned()).await?;
    let mate = Teammate { id: new_id(), name: t.name.trim().to_owned(), email, role: t.role.as_str().to_owned(), avatar_url: None };
    let taken: Option<(String,)> = with_db!(db, pool => sqlx::query_as("SELECT id FROM teammate WHERE email = $1")
        .bind(&mate.email).fetch_optional(pool).await?);
    if taken.is_some() {
        return Err(Error::Conflict { code: "email_taken", message: "a teammate with this email exists".into() });
    }
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO teammate (id, workspace_id, email, name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&mate.id).bind(workspace_id).bind(&mate.email).bind(&mate.name).bind(&hash).bind(&mate.role).bind(now_ms())
            .execute(&mut *tx).await?;
    });
    teammates_changed(workspace_id);
    Ok(mate)
}

pub async fn teammate(db: &Db, workspace_id: &str, id: &str) -> Result<Teammate> {
    with_db!(db, pool => sqlx::query_as::<_, Teammate>(
        "SELECT id, name, email, role, avatar_url FROM teammate WHERE id = $1 AND workspace_id = $2")
        .bind(id).bind(workspace_id).fetch_optional(pool).await?)
    .ok_or(Error::NotFound("teammate"))
}

pub async fn teammates(db: &Db, workspace_id: &str) -> Result<Vec<Teammate>> {
    Ok(with_db!(db, pool => sqlx::query_as::<_, Teammate>(
        "SELECT id, name, email, role, avatar_url FROM teammate WHERE workspace_id = $1 ORDER BY name, id")
        .bind(workspace_id).fetch_all(pool).await?))
}

pub async fn teammate_count(db: &Db) -> Result<i64> {
    let (n,): (i64,) = with_db!(db, pool => sqlx::query_as("SELECT COUNT(*) FROM teammate").fetch_one(pool).await?);
    Ok(n)
}

/// What the first start did, for the CLI to print.
pub enum Bootstrap {
    AlreadySetUp,
    Created { workspace: Workspace, email: String, generated_password: Option<String> },
}

/// On a first start with no teammates: create workspace "Default" and its
/// admin, with the given password or a generated one (printed once by the caller).
pub async fn bootstrap(db: &Db, admin_email: Option<&str>, admin_password: Option<&str>) -> Result<Bootstrap> {
    if teammate_count(db).await? > 0 {
        return Ok(Bootstrap::AlreadySetUp);
    }
    let workspace = match by_name(db, "Default").await? {
        Some(ws) => ws,
        None => create(db, "Default").await?,
    };
    let email = admin_email.unwrap_or("admin@localhost").to_owned();
    let generated = match admin_password {
        Some(_) => None,
        None => Some(new_token("").chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>()),
    };
    let password = admin_password.or(generated.as_deref()).unwrap_or_default().to_owned();
    create_teammate(db, &workspace.id, NewTeammate { email: &email, name: "Admin", password: &password, role: Role::Admin }).await?;
    Ok(Bootstrap::Created { workspace, email, generated_password: generated })
}

/// The oldest workspace (the one the demo page shows).
pub async fn first(db: &Db) -> Result<Workspace> {
    with_db!(db, pool => sqlx::query_as::<_, Workspace>(
        "SELECT id, name, app_id, identity_secret, require_identity, company_conversations, email_fallback FROM workspace ORDER BY created_at, id LIMIT 1")
        .fetch_optional(pool).await?)
    .ok_or(Error::NotFound("workspace"))
}
