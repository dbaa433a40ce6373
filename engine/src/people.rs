//! People (visitors, leads and users) and their widget sessions.
//!
//! - [`input`]: what callers may say about a person, parsed at the edge.
//! - [`profile`]: read, upsert, patch, delete and merge.
//! - [`transfer`]: CSV import through the upsert path, and CSV export.
//! - [`seed`]: synthetic people, companies and events for benchmarks.
//!
//! An anonymous visitor is a person from the first request on (a lead); when
//! the site identifies them (`user_id`, verified by `user_hash` when the
//! workspace requires it) the session moves to the known person.

pub mod input;
pub mod profile;
pub mod seed;
pub mod transfer;

use serde::Serialize;

pub use self::input::PersonInput;
pub use self::profile::{Person, Upserted};
use crate::auth::verify_user_hash;
use crate::db::Conn;
use crate::util::{hash_token, new_token, now_ms};
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
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

pub struct Session {
    pub token: String,
    pub person_id: String,
}

/// Starts or resumes a visitor session.
///
/// - A valid `token` for this workspace resumes its person (an anonymous lead
///   stays the same person across page loads).
/// - A `user_id` is trusted only with a valid `user_hash`, or when the
///   workspace does not require verification; it then selects (or creates) the
///   known person with that `external_id`. An anonymous visitor who turns out
///   to be a known person is merged into them; one who is new becomes them.
/// - A `user_id` without a valid hash in a workspace that requires one is
///   refused (403).
#[tracing::instrument(skip_all, fields(workspace = %ws.id))]
pub async fn start_session(db: &Db, ws: &Workspace, req: SessionRequest) -> Result<Session> {
    let user_id = input::text("user_id", req.user_id.as_deref(), 255)?;
    let verified = match (&user_id, &req.user_hash) {
        (Some(uid), Some(h)) => verify_user_hash(&ws.identity_secret, uid, h),
        _ => false,
    };
    if user_id.is_some() && !verified && ws.require_identity {
        return Err(Error::forbidden("identity verification is required: user_hash is missing or wrong"));
    }
    let now = now_ms();
    // The person this browser already is, if its token is still valid.
    let current: Option<(String, Option<String>)> = match &req.token {
        Some(t) => with_db!(db, pool => sqlx::query_as(
            "SELECT s.person_id, p.external_id FROM visitor_session s JOIN person p ON p.id = s.person_id \
             WHERE s.token_hash = $1 AND s.workspace_id = $2")
            .bind(hash_token(t)).bind(&ws.id).fetch_optional(pool).await?),
        None => None,
    };
    let told = PersonInput { email: req.email, name: req.name, attributes: req.attributes, ..Default::default() };
    let person_id = with_tx!(db, tx => {
        let mut c = Conn::from(&mut *tx);
        let anonymous = current.as_ref().filter(|(_, ext)| ext.is_none()).map(|(id, _)| id.clone());
        let target = match &user_id {
            Some(uid) => match profile::find_known(&mut c, &ws.id, Some(uid), None).await?.filter(|r| r.external_id.as_deref() == Some(uid.as_str())) {
                Some(known) => {
                    match anonymous.filter(|a| *a != known.id) {
                        Some(anon) => {
                            profile::merge(&mut c, &ws.id, &anon, &known.id, now).await?;
                            // Re-read: the merge changed the row.
                            profile::load(&mut c, &ws.id, &known.id).await?
                        }
                        None => Some(known),
                    }
                }
                // A new user: the anonymous visitor becomes them.
                None => match anonymous {
                    Some(anon) => profile::load(&mut c, &ws.id, &anon).await?,
                    None => None,
                },
            },
            None => match &current {
                Some((id, _)) => profile::load(&mut c, &ws.id, id).await?,
                None => None,
            },
        };
        let mut told = told.clone();
        told.external_id = user_id.clone();
        let id = profile::write(&mut c, &ws.id, target, &told, now).await?;
        sqlx::query("UPDATE person SET last_seen_at = $1 WHERE id = $2").bind(now).bind(&id).execute(&mut *tx).await?;
        id
    });
    // Reuse the token when it still belongs to this person (a merge moves
    // the session too); otherwise issue one.
    let still_mine: Option<(String,)> = match &req.token {
        Some(t) => with_db!(db, pool => sqlx::query_as("SELECT person_id FROM visitor_session WHERE token_hash = $1 AND person_id = $2")
            .bind(hash_token(t)).bind(&person_id).fetch_optional(pool).await?),
        None => None,
    };
    let token = match (still_mine, req.token) {
        (Some(_), Some(t)) => t,
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

/// A new visitor session for a known person (someone who opened their
/// signed link from an email or text).
pub async fn session_for(db: &Db, workspace_id: &str, person_id: &str) -> Result<Session> {
    let t = new_token("pvt_");
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO visitor_session (token_hash, workspace_id, person_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash_token(&t)).bind(workspace_id).bind(person_id).bind(now_ms()).execute(&mut *tx).await?;
    });
    Ok(Session { token: t, person_id: person_id.to_owned() })
}

/// A visitor, resolved from their session token.
#[derive(Clone, Debug)]
pub struct Visitor {
    pub workspace_id: String,
    pub person_id: String,
    /// They write in their company's shared conversation.
    pub shared: bool,
}

pub async fn authenticate_visitor(db: &Db, token: &str) -> Result<Visitor> {
    let row: Option<(String, String, bool)> = with_db!(db, pool => sqlx::query_as(
        "SELECT s.workspace_id, s.person_id, (w.company_conversations AND p.company_id IS NOT NULL) FROM visitor_session s \
         JOIN person p ON p.id = s.person_id JOIN workspace w ON w.id = s.workspace_id WHERE s.token_hash = $1")
        .bind(hash_token(token)).fetch_optional(pool).await?);
    let (workspace_id, person_id, shared) = row.ok_or(Error::Unauthorized)?;
    Ok(Visitor { workspace_id, person_id, shared })
}
