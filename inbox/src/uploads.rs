//! `POST /api/v1/uploads` (a teammate or API key stores a file to attach to
//! messages), `DELETE /api/v1/uploads/{id}` (a file taken back before it
//! was sent) and `GET /files/{id}/{name}` (anyone holding the link
//! downloads it: visitors' widgets have no teammate session).
//!
//! Downloads are served from our own origin, so what a file may do there is
//! decided here, not by whoever uploaded it: `nosniff` always, images, PDF
//! and plain text inline, everything else (HTML and SVG above all) as an
//! `application/octet-stream` attachment (`uploads::served_as`).

use axum::Json as JsonOut;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_engine::uploads::{self, Attachment, NewUpload};
use parley_engine::{Engine, Error, Result};
use serde::Deserialize;

use crate::extract::Auth;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// The file's name: 1 to 200 characters, no path separators.
    pub name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes; `Content-Type` is the file's type"),
    responses((status = 201, body = Attachment, description = "stored; attach it by id, download it at url"),
        (status = 401, description = "no teammate session or API key"), (status = 413, description = "larger than 10 MiB"),
        (status = 422, description = "a bad `name` or `content_type`, or an empty `file`")))]
pub async fn create(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, JsonOut<Attachment>)> {
    let name = query.ok().and_then(|Query(q)| q.name).ok_or_else(|| Error::invalid("name", "name (the file's name) is required"))?;
    uploads::check_name(&name)?;
    let declared =
        headers.get(header::CONTENT_TYPE).map(|v| v.to_str().map_err(|_| Error::invalid("content_type", "Content-Type is not text")));
    let content_type = uploads::parse_content_type(declared.transpose()?)?;
    // Refused on its declared length before any of it is read.
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|n| n > uploads::MAX_SIZE) {
        return Err(uploads::too_large());
    }
    // This route's own limit: the router's default is for JSON bodies.
    let bytes: Bytes = axum::body::to_bytes(body, uploads::MAX_SIZE).await.map_err(|_| uploads::too_large())?;
    let stored = uploads::store(
        &engine.db,
        &engine.uploads_dir,
        NewUpload { workspace_id: &actor.workspace_id, teammate_id: &actor.teammate_id, name: &name, content_type, bytes: &bytes },
    )
    .await?;
    Ok((StatusCode::CREATED, JsonOut(stored)))
}

#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "uploads", params(("id" = String, Path, description = "the upload's id")),
    responses((status = 204, description = "the file and its link are gone"),
        (status = 403, description = "an agent deleting another teammate's file"),
        (status = 404, description = "no such upload in this workspace"),
        (status = 409, description = "`upload_in_use`: a message, outbound or template carries it")))]
pub async fn delete(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    uploads::delete(&engine.db, &engine.uploads_dir, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/files/{id}/{name}", tag = "uploads", security(()),
    params(("id" = String, Path, description = "the upload's id"), ("name" = String, Path, description = "its file name")),
    responses((status = 200, description = "the file: images, PDF and plain text inline, anything else as an attachment"),
        (status = 404, description = "no such file, or another name")))]
pub async fn download(State(engine): State<Engine>, Path((id, name)): Path<(String, String)>) -> Result<Response> {
    let found = uploads::by_link(&engine.db, &engine.uploads_dir, &id, &name).await?.ok_or(Error::NotFound("file"))?;
    let bytes = match tokio::fs::read(&found.path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(upload = %id, "an upload's file is missing from the data dir");
            return Err(Error::NotFound("file"));
        }
        Err(e) => return Err(Error::Internal(anyhow::anyhow!("reading upload {}: {e}", found.path.display()))),
    };
    let a = &found.attachment;
    let (served, inline) = uploads::served_as(&a.content_type);
    let disposition = HeaderValue::from_str(&uploads::disposition(&a.name, inline))
        .map_err(|e| Error::Internal(anyhow::anyhow!("a stored file name makes no header: {e}")))?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(served)),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        // The bytes behind an id never change.
        (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400, immutable")),
    ];
    Ok((headers, Body::from(bytes)).into_response())
}
