//! Extractors shared by the HTTP edges (`widget`, `inbox`, `automations`): JSON
//! bodies whose failures answer in the API's error shape, naming the offending
//! field, and the authenticated teammate of a team API request; and
//! [`Asset`], an embedded file served with an ETag.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::{self, Actor};
use crate::{Engine, Error};

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

/// The authenticated caller of the team API (bearer token, API key or the web
/// app's HttpOnly session cookie); rejects with 401.
pub struct Auth(pub Actor);

impl FromRequestParts<Engine> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, engine: &Engine) -> Result<Self, Error> {
        let token = token(&parts.headers).ok_or(Error::Unauthorized)?;
        Ok(Auth(auth::authenticate(&engine.db, &token).await?))
    }
}

/// Like `axum::Json`, but a malformed body is a 400, a body of the wrong shape a
/// 422 whose `field` is the JSON path (`assignee_id`, `items.2.name`), and a
/// body over the router's limit a 413.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge("request body is too large".into())
            } else {
                Error::BadRequest { code: "bad_request", message: e.body_text(), field: None }
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON document: syntax errors are 400 `malformed_json`, shape errors
/// 422 `invalid` naming the path of the bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(shape_error)
}

/// Reads an already parsed JSON value (a WebSocket frame) into `T`, naming
/// the offending field the same way as [`parse_json`].
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(shape_error)
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        Error::BadRequest { code: "malformed_json", message: format!("malformed JSON: {inner}"), field: None }
    } else {
        let message = inner.to_string();
        Error::Unprocessable { code: "invalid", field: field_path(&path, &message), message }
    }
}

/// Turns serde's `items[1].n` into the API's `items.1.n`; a missing field is
/// reported at the object that lacks it, so name the field itself.
fn field_path(path: &str, message: &str) -> String {
    let mut out = if path == "." { String::new() } else { path.replace('[', ".").replace(']', "") };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    }
    out
}

/// A file embedded in the binary, served with its ETag: a browser that
/// asks again with the version it holds gets a 304 and keeps its copy (and
/// the code it compiled from it) instead of the whole file.
pub struct Asset {
    mime: &'static str,
    body: Bytes,
    etag: axum::http::HeaderValue,
}

/// The first `bytes` bytes of the SHA-256 of `parts` (one after another), in
/// hex: a short name for a version of some content.
pub fn digest_hex<'a>(parts: impl IntoIterator<Item = &'a [u8]>, bytes: usize) -> String {
    use sha2::Digest;
    let mut all = sha2::Sha256::new();
    for part in parts {
        all.update(part);
    }
    let digest = all.finalize();
    hex::encode(&digest[..bytes.min(digest.len())])
}

impl Asset {
    /// `body` is a `&'static str` for a file as embedded (no copy), or a
    /// `String` for one put together at start.
    pub fn new(mime: &'static str, body: impl Into<Bytes>) -> Asset {
        let body = body.into();
        // Hex digits in quotes are always a valid header value.
        let etag = axum::http::HeaderValue::from_str(&format!("\"{}\"", digest_hex([&body[..]], 12)))
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("\"0\""));
        Asset { mime, body, etag }
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The file with `cache` as its Cache-Control, or 304 when the request
    /// names the version the browser already holds.
    pub fn answer(&self, request: &HeaderMap, cache: &'static str) -> axum::response::Response {
        use axum::http::{HeaderValue, StatusCode, header};
        use axum::response::IntoResponse;
        let headers = [(header::CACHE_CONTROL, HeaderValue::from_static(cache)), (header::ETAG, self.etag.clone())];
        let held = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let etag = self.etag.to_str().unwrap_or_default();
        if held.split(',').any(|t| t.trim().trim_start_matches("W/") == etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (headers, [(header::CONTENT_TYPE, self.mime)], self.body.clone()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        n: i64,
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        let e = parse_json::<Body>(b"{\"name\": ").unwrap_err();
        assert_eq!(e.code(), "malformed_json");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"name":"a","items":[{"n":1},{"n":"x"}]}"#).unwrap_err();
        assert_eq!(e.status(), 422);
        assert_eq!(e.field(), Some("items.1.n"));
        let e = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert_eq!(e.status(), 422);
        assert_eq!(e.field(), Some("name"));
    }

    #[test]
    fn an_asset_the_browser_holds_answers_not_modified() {
        use axum::http::{HeaderValue, StatusCode, header};
        let asset = Asset::new("text/plain", "hello");
        let mut request = HeaderMap::new();
        assert_eq!(asset.answer(&request, "no-cache").status(), StatusCode::OK);
        request.insert(header::IF_NONE_MATCH, asset.etag.clone());
        let held = asset.answer(&request, "no-cache");
        assert_eq!(held.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(held.headers()[header::ETAG], asset.etag);
        // Weak and listed forms name it too; another version does not.
        let weak = format!("\"x\", W/{}", asset.etag.to_str().unwrap_or_default());
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&weak).unwrap_or_else(|_| HeaderValue::from_static("")));
        assert_eq!(asset.answer(&request, "no-cache").status(), StatusCode::NOT_MODIFIED);
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"an-older-version\""));
        assert_eq!(asset.answer(&request, "no-cache").status(), StatusCode::OK);
        assert_ne!(Asset::new("text/plain", "hello!").etag, asset.etag, "another content, another tag");
    }
}
