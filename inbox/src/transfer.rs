//! `/api/v1/people/import` and `/api/v1/people/export`: people as CSV.

use axum::Json as JsonOut;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use parley_engine::http::parse_json;
use parley_engine::people::transfer::{self, Export, ImportReport, Mapping};
use parley_engine::{Engine, Error, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::extract::Auth;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// A JSON object from header to target: a person field (`email`),
    /// `attributes.<name>` or `skip`. Other headers map by name.
    pub map: Option<String>,
}

/// A JSON query parameter; empty means absent.
fn json_param(name: &str, v: Option<&str>) -> Result<Option<Value>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => parse_json::<Value>(s.as_bytes()).map(Some).map_err(|e| match e {
            Error::BadRequest { code, message, .. } => {
                Error::BadRequest { code, message: format!("{name}: {message}"), field: Some(name.into()) }
            }
            other => other,
        }),
        None => Ok(None),
    }
}

#[utoipa::path(post, path = "/api/v1/people/import", tag = "people", params(ImportQuery),
    request_body(content = String, content_type = "text/csv",
        description = "A header row, then one person a row; found by external_id, else email, and created or updated"),
    responses((status = 200, body = ImportReport, description = "Imported; bad rows are listed by line and skipped"),
        (status = 400, description = "the header row cannot work (no external_id or email column, two columns for one field)"),
        (status = 403, description = "admins only"), (status = 413, description = "larger than the body limit: use `parley import people`"),
        (status = 422, description = "bad map")))]
pub async fn import(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Query(q): Query<ImportQuery>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<JsonOut<ImportReport>> {
    actor.require_admin()?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge("the file is larger than the request limit; import it with `parley import people`".into())
        } else {
            Error::BadRequest { code: "bad_request", message: e.body_text(), field: None }
        }
    })?;
    let mapping = match json_param("map", q.map.as_deref())? {
        Some(v) => Mapping::from_json(&v)?,
        None => Mapping::default(),
    };
    let report = transfer::import_csv(&engine.db, &actor.workspace_id, &body[..], &mapping, |_| {}).await?;
    Ok(JsonOut(report))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// Free text, as in search.
    pub q: Option<String>,
    /// A filter in the filter language, as JSON.
    pub filter: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/people/export", tag = "people", params(ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String,
        description = "Everyone matching, oldest first: fixed columns, then one `attributes.<name>` column per attribute"),
        (status = 422, description = "bad filter")))]
pub async fn export(State(engine): State<Engine>, Auth(actor): Auth, Query(q): Query<ExportQuery>) -> Result<Response> {
    let filter = json_param("filter", q.filter.as_deref())?;
    let text = q.q.as_deref().filter(|s| !s.trim().is_empty());
    let mut export = Export::start(&engine.db, &actor.workspace_id, filter.as_ref(), text).await?;
    // The first page is read before answering, so a failing search is still
    // an error status rather than a cut-off file.
    let first = export.next_chunk(engine.people_index.as_ref()).await?;
    let index = engine.people_index.clone();
    let rest = futures_util::stream::try_unfold((export, index), |(mut export, index)| async move {
        Ok::<_, Error>(export.next_chunk(index.as_ref()).await?.map(|b| (Bytes::from(b), (export, index))))
    })
    .inspect_err(|e| tracing::warn!(error = %e, "an export stopped part way"));
    let body = futures_util::stream::iter(first.map(|b| Ok(Bytes::from(b)))).chain(rest);
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"people.csv\"")],
        Body::from_stream(body),
    )
        .into_response())
}
