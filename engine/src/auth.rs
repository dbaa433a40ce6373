//! Credentials: teammate passwords (argon2), session tokens, API keys, visitor
//! sessions and the widget's identity verification (HMAC-SHA256).
//!
//! Every secret handed out is random and stored only as its SHA-256, so the
//! database never holds a usable credential.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::util::{hash_token, new_id, new_token, now_ms};
use crate::{Db, Error, Result, with_db, with_tx};

/// Teammate sessions last 30 days.
const SESSION_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Agent,
}

impl Role {
    pub fn parse(field: &str, s: &str) -> Result<Role> {
        match s {
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            _ => Err(Error::invalid(field, "role must be admin or agent")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
}

/// Who is calling the team API: a logged-in teammate, or an API key acting for
/// the teammate who created it.
#[derive(Clone, Debug)]
pub struct Actor {
    pub workspace_id: String,
    pub teammate_id: String,
    pub name: String,
    pub role: Role,
    pub via_api_key: bool,
}

impl Actor {
    pub fn require_admin(&self) -> Result<()> {
        if self.role == Role::Admin { Ok(()) } else { Err(Error::forbidden("only admins may do this")) }
    }
}

pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(anyhow::anyhow!("hashing password: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: String,
    workspace_id: String,
    password_hash: String,
}

/// Checks an email and password; on success opens a session and returns its
/// token and the teammate id. A wrong email and a wrong password look the same.
#[tracing::instrument(skip_all)]
pub async fn login(db: &Db, email: &str, password: &str) -> Result<(String, String)> {
    let email = email.trim().to_lowercase();
    let row: Option<LoginRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, workspace_id, password_hash FROM teammate WHERE email = $1")
        .bind(&email).fetch_optional(pool).await?);
    let Some(row) = row else {
        // Spend the same time on an unknown email as on a wrong password, so
        // timing does not tell which emails exist.
        hash_password(password.to_owned()).await?;
        return Err(Error::Unauthorized);
    };
    if !verify_password(password.to_owned(), row.password_hash.clone()).await {
        return Err(Error::Unauthorized);
    }
    let token = new_token("pst_");
    let now = now_ms();
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO auth_token (token_hash, workspace_id, teammate_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash_token(&token)).bind(&row.workspace_id).bind(&row.id).bind(now).bind(now + SESSION_MS)
            .execute(&mut *tx).await?;
    });
    Ok((token, row.id))
}

pub async fn logout(db: &Db, token: &str) -> Result<()> {
    with_tx!(db, tx => {
        sqlx::query("DELETE FROM auth_token WHERE token_hash = $1").bind(hash_token(token)).execute(&mut *tx).await?;
    });
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ActorRow {
    workspace_id: String,
    teammate_id: String,
    name: String,
    role: String,
}

/// Resolves a bearer token (a session token or an API key) to its actor.
pub async fn authenticate(db: &Db, token: &str) -> Result<Actor> {
    let hash = hash_token(token);
    let (row, via_api_key): (Option<ActorRow>, bool) = if token.starts_with("pak_") {
        let row = with_db!(db, pool => sqlx::query_as(
            "SELECT k.workspace_id, t.id AS teammate_id, t.name, t.role FROM api_key k JOIN teammate t ON t.id = k.created_by \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL")
            .bind(&hash).fetch_optional(pool).await?);
        (row, true)
    } else {
        let row = with_db!(db, pool => sqlx::query_as(
            "SELECT a.workspace_id, t.id AS teammate_id, t.name, t.role FROM auth_token a JOIN teammate t ON t.id = a.teammate_id \
             WHERE a.token_hash = $1 AND a.expires_at > $2")
            .bind(&hash).bind(now_ms()).fetch_optional(pool).await?);
        (row, false)
    };
    let row = row.ok_or(Error::Unauthorized)?;
    Ok(Actor {
        role: Role::parse("role", &row.role)?,
        workspace_id: row.workspace_id,
        teammate_id: row.teammate_id,
        name: row.name,
        via_api_key,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    /// The key itself: shown once, stored only as a hash.
    pub key: String,
}

pub async fn create_api_key(db: &Db, actor: &Actor, name: &str) -> Result<NewApiKey> {
    actor.require_admin()?;
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::invalid("name", "name must be 1 to 100 characters"));
    }
    let key = new_token("pak_");
    let id = new_id();
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO api_key (id, workspace_id, name, key_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id).bind(&actor.workspace_id).bind(name).bind(hash_token(&key)).bind(&actor.teammate_id).bind(now_ms())
            .execute(&mut *tx).await?;
    });
    Ok(NewApiKey { id, name: name.to_owned(), key })
}

/// Hex HMAC-SHA256 of `user_id` keyed by the workspace's identity secret: what
/// the site's backend computes and passes to the widget as `user_hash`.
pub fn user_hash(identity_secret: &str, user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(identity_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a widget's `user_hash`.
pub fn verify_user_hash(identity_secret: &str, user_id: &str, given: &str) -> bool {
    let Ok(given) = hex::decode(given.trim()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(identity_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(user_id.as_bytes());
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_hash_verifies_only_the_right_user() {
        let h = user_hash("s3cret", "user-42");
        assert_eq!(h.len(), 64);
        assert!(verify_user_hash("s3cret", "user-42", &h));
        assert!(!verify_user_hash("s3cret", "user-43", &h));
        assert!(!verify_user_hash("other", "user-42", &h));
        assert!(!verify_user_hash("s3cret", "user-42", "not hex"));
    }

    #[tokio::test]
    async fn passwords_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(verify_password("correct horse".into(), h.clone()).await);
        assert!(!verify_password("wrong".into(), h).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }
}
