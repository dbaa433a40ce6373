//! Who is calling: a bearer token (session or API key) or the web app's
//! HttpOnly session cookie.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use parley_engine::auth::{self, Actor};
use parley_engine::{Engine, Error};

pub const SESSION_COOKIE: &str = "parley_session";

/// The token of a request: `Authorization: Bearer …` first, then the cookie.
pub fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(t.trim().to_owned());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The authenticated caller; rejects with 401.
pub struct Auth(pub Actor);

impl FromRequestParts<Engine> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, engine: &Engine) -> Result<Self, Error> {
        let token = token(&parts.headers).ok_or(Error::Unauthorized)?;
        Ok(Auth(auth::authenticate(&engine.db, &token).await?))
    }
}
