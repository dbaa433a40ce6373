//! People (visitors, leads and users) and their widget sessions.
//!
//! An anonymous visitor is a person from the first request on (a lead); when
//! the site identifies them (`user_id`, verified by `user_hash` when the
//! workspace requires it) the session moves to the known person.

use serde::Serialize;

use crate::auth::verify_user_hash;
use crate::util::{hash_token, new_id, new_token, now_ms};
use crate::workspace::Workspace;
use crate::{Db, Error, Result, with_db, with_tx};

#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PersonSummary {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub online: bool,
}

pub async fn summary(db: &Db, workspace_id: &str, id: &str) -> Result<PersonSummary> {
    with_db!(db, pool => sqlx::query_as::<_, PersonSummary>(
        "SELECT p.id, p.name, p.email, p.external_id, \
         EXISTS (SELECT 1 FROM presence pr WHERE pr.person_id = p.id AND pr.connections > 0) AS online \
         FROM person p WHERE p.id = $1 AND p.workspace_id = $2")
        .bind(id).bind(workspace_id).fetch_optional(pool).await?)
    .ok_or(Error::NotFound("person"))
}

/// What the widget sends to start (or resume) a visitor session.
#[derive(Default)]
pub struct SessionRequest {
    pub token: Option<String>,
    pub user_id: Option<String>,
    pub user_hash: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

pub struct Session {
    pub token: String,
    pub person_id: String,
}

fn clean(field: &str, v: Option<String>, max: usize) -> Result<Option<String>> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.len() > max => Err(Error::invalid(field, format!("{field} is longer than {max} bytes"))),
        other => Ok(other),
    }
}

/// Starts or resumes a visitor session.
///
/// - A valid `token` for this workspace resumes its person (an anonymous lead
///   stays the same person across page loads).
/// - A `user_id` is trusted only with a valid `user_hash`, or when the
///   workspace does not require verification; it then selects (or creates) the
///   known person with that `external_id`.
/// - A `user_id` without a valid hash in a workspace that requires one is
///   refused (403).
#[tracing::instrument(skip_all, fields(workspace = %ws.id))]
pub async fn start_session(db: &Db, ws: &Workspace, req: SessionRequest) -> Result<Session> {
    let user_id = clean("user_id", req.user_id, 255)?;
    let email = clean("email", req.email, 254)?;
    let name = clean("name", req.name, 200)?;
    let verified = match (&user_id, &req.user_hash) {
        (Some(uid), Some(h)) => verify_user_hash(&ws.identity_secret, uid, h),
        _ => false,
    };
    if user_id.is_some() && !verified && ws.require_identity {
        return Err(Error::forbidden("identity verification is required: user_hash is missing or wrong"));
    }
    let now = now_ms();
    // The person this browser already is, if its token is still valid.
    let current: Option<(String,)> = match &req.token {
        Some(t) => with_db!(db, pool => sqlx::query_as(
            "SELECT person_id FROM visitor_session WHERE token_hash = $1 AND workspace_id = $2")
            .bind(hash_token(t)).bind(&ws.id).fetch_optional(pool).await?),
        None => None,
    };
    let person_id = with_tx!(db, tx => {
        let person_id = match &user_id {
            Some(uid) => {
                let known: Option<(String,)> = sqlx::query_as("SELECT id FROM person WHERE workspace_id = $1 AND external_id = $2")
                    .bind(&ws.id).bind(uid).fetch_optional(&mut *tx).await?;
                match known {
                    Some((id,)) => id,
                    None => {
                        let id = new_id();
                        sqlx::query("INSERT INTO person (id, workspace_id, external_id, email, name, created_at, updated_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6)")
                            .bind(&id).bind(&ws.id).bind(uid).bind(&email).bind(&name).bind(now).execute(&mut *tx).await?;
                        id
                    }
                }
            }
            None => match &current {
                Some((id,)) => id.clone(),
                None => {
                    let id = new_id();
                    sqlx::query("INSERT INTO person (id, workspace_id, email, name, created_at, updated_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $5, $5)")
                        .bind(&id).bind(&ws.id).bind(&email).bind(&name).bind(now).execute(&mut *tx).await?;
                    id
                }
            },
        };
        // Fill in what the site told us about the visitor, without erasing
        // what we knew.
        sqlx::query("UPDATE person SET email = COALESCE($1, email), name = COALESCE($2, name), last_seen_at = $3, updated_at = $3 WHERE id = $4")
            .bind(&email).bind(&name).bind(now).bind(&person_id).execute(&mut *tx).await?;
        person_id
    });
    // Reuse the token when it already belongs to this person; otherwise issue one.
    let token = match (&current, req.token) {
        (Some((id,)), Some(t)) if *id == person_id => t,
        _ => {
            let t = new_token("pvt_");
            with_tx!(db, tx => {
                sqlx::query("INSERT INTO visitor_session (token_hash, workspace_id, person_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(hash_token(&t)).bind(&ws.id).bind(&person_id).bind(now).execute(&mut *tx).await?;
            });
            t
        }
    };
    Ok(Session { token, person_id })
}

/// A visitor, resolved from their session token.
#[derive(Clone, Debug)]
pub struct Visitor {
    pub workspace_id: String,
    pub person_id: String,
}

pub async fn authenticate_visitor(db: &Db, token: &str) -> Result<Visitor> {
    let row: Option<(String, String)> = with_db!(db, pool => sqlx::query_as(
        "SELECT workspace_id, person_id FROM visitor_session WHERE token_hash = $1")
        .bind(hash_token(token)).fetch_optional(pool).await?);
    let (workspace_id, person_id) = row.ok_or(Error::Unauthorized)?;
    Ok(Visitor { workspace_id, person_id })
}
