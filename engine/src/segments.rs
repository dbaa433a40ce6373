//! Segments: saved filters, evaluated whenever they are used, so a person who
//! starts matching is in the segment from that moment.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::search::{self, PeopleIndex};
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result, with_db, with_tx};

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub filter: Value,
    /// How many people match now (on reads that ask for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    filter: String,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Segment {
    fn from(r: Row) -> Segment {
        Segment {
            id: r.id,
            name: r.name,
            filter: serde_json::from_str(&r.filter).unwrap_or(Value::Null),
            count: None,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

/// One segment without its count (404 if unknown here).
pub async fn load(db: &Db, workspace_id: &str, id: &str) -> Result<Segment> {
    let row: Option<Row> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, name, filter, created_at, updated_at FROM segment WHERE id = $1 AND workspace_id = $2")
        .bind(id).bind(workspace_id).fetch_optional(pool).await?);
    Ok(row.ok_or(Error::NotFound("segment"))?.into())
}

/// One segment with its live count.
pub async fn get(db: &Db, index: &dyn PeopleIndex, workspace_id: &str, id: &str) -> Result<Segment> {
    let mut s = load(db, workspace_id, id).await?;
    s.count = Some(search::count(db, index, workspace_id, &serde_json::json!({"segment": id})).await?);
    Ok(s)
}

/// All segments, by name, each with its live count.
pub async fn list(db: &Db, index: &dyn PeopleIndex, workspace_id: &str) -> Result<Vec<Segment>> {
    let rows: Vec<Row> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, name, filter, created_at, updated_at FROM segment WHERE workspace_id = $1 ORDER BY lower(name), id")
        .bind(workspace_id).fetch_all(pool).await?);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut s = Segment::from(r);
        s.count = Some(search::count(db, index, workspace_id, &serde_json::json!({"segment": s.id})).await.unwrap_or(0));
        out.push(s);
    }
    Ok(out)
}

/// Segments whose name contains `q`, for quick add (without counts).
pub async fn find(db: &Db, workspace_id: &str, q: &str, limit: i64) -> Result<Vec<Segment>> {
    let pattern = format!("%{}%", crate::util::like_escape(&q.trim().to_lowercase()));
    let rows: Vec<Row> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, name, filter, created_at, updated_at FROM segment WHERE workspace_id = $1 AND lower(name) LIKE $2 ESCAPE '\\' \
         ORDER BY lower(name) LIMIT $3")
        .bind(workspace_id).bind(&pattern).bind(limit).fetch_all(pool).await?);
    Ok(rows.into_iter().map(Segment::from).collect())
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 200 {
        return Err(Error::invalid("name", "a segment name is 1 to 200 characters"));
    }
    Ok(n.to_owned())
}

/// Checks a segment's filter: it parses, and the segments it uses exist and do
/// not lead back to `own_id`. What is stored keeps segments as references, so
/// a change to one reaches every segment built on it.
async fn check_filter(db: &Db, workspace_id: &str, filter: &Value, own_id: Option<&str>) -> Result<String> {
    let r = search::resolve(db, workspace_id, filter, "filter").await?;
    if own_id.is_some_and(|own| r.segments.iter().any(|s| s == own)) {
        return Err(Error::invalid("filter", "a segment cannot include itself"));
    }
    Ok(r.written.to_json().to_string())
}

#[tracing::instrument(skip_all, fields(workspace = %workspace_id))]
pub async fn create(db: &Db, workspace_id: &str, created_by: &str, input: SegmentInput) -> Result<Segment> {
    let name = check_name(input.name.as_deref().unwrap_or(""))?;
    let filter = input.filter.ok_or_else(|| Error::invalid("filter", "a segment needs a filter"))?;
    let filter = check_filter(db, workspace_id, &filter, None).await?;
    let id = new_id();
    let now = now_ms();
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO segment (id, workspace_id, name, filter, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(&id).bind(workspace_id).bind(&name).bind(&filter).bind(created_by).bind(now).execute(&mut *tx).await?;
    });
    load(db, workspace_id, &id).await
}

#[tracing::instrument(skip_all, fields(segment = %id))]
pub async fn update(db: &Db, workspace_id: &str, id: &str, input: SegmentInput) -> Result<Segment> {
    let current = load(db, workspace_id, id).await?;
    let name = match &input.name {
        Some(n) => check_name(n)?,
        None => current.name,
    };
    let filter = match &input.filter {
        Some(f) => check_filter(db, workspace_id, f, Some(id)).await?,
        None => current.filter.to_string(),
    };
    with_tx!(db, tx => {
        sqlx::query("UPDATE segment SET name = $1, filter = $2, updated_at = $3 WHERE id = $4 AND workspace_id = $5")
            .bind(&name).bind(&filter).bind(now_ms()).bind(id).bind(workspace_id).execute(&mut *tx).await?;
    });
    load(db, workspace_id, id).await
}

/// Deletes a segment no other segment uses (409 otherwise).
#[tracing::instrument(skip_all, fields(segment = %id))]
pub async fn delete(db: &Db, workspace_id: &str, id: &str) -> Result<()> {
    load(db, workspace_id, id).await?;
    let others: Vec<(String, String, String)> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, name, filter FROM segment WHERE workspace_id = $1 AND id <> $2")
        .bind(workspace_id).bind(id).fetch_all(pool).await?);
    let schema = crate::people::profile::schema(db, workspace_id).await?;
    for (_, name, filter) in others {
        let uses = serde_json::from_str::<Value>(&filter)
            .ok()
            .and_then(|v| crate::filter::Filter::parse(&v, &schema, "filter").ok())
            .is_some_and(|f| f.segment_ids().iter().any(|s| s == id));
        if uses {
            return Err(Error::Conflict { code: "segment_in_use", message: format!("segment \"{name}\" uses this segment") });
        }
    }
    with_tx!(db, tx => {
        sqlx::query("DELETE FROM segment WHERE id = $1 AND workspace_id = $2").bind(id).bind(workspace_id).execute(&mut *tx).await?;
    });
    Ok(())
}
