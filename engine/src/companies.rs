//! Companies: people belong to one, and some of them manage it.

use serde::Serialize;

use crate::db::Conn;
use crate::util::new_id;
use crate::{Db, Error, Result, on_conn, with_db};

#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Company {
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub members: i64,
}

/// The company with this external id, else this name (case-insensitive),
/// created if there is none. Returns its id and name.
pub(crate) async fn find_or_create(
    c: &mut Conn<'_>,
    workspace_id: &str,
    name: &str,
    external_id: Option<&str>,
    now: i64,
) -> Result<(String, String)> {
    let found: Option<(String, String)> = match external_id {
        Some(x) => on_conn!(c, c => sqlx::query_as("SELECT id, name FROM company WHERE workspace_id = $1 AND external_id = $2")
            .bind(workspace_id).bind(x).fetch_optional(&mut **c).await?),
        None => None,
    };
    if let Some(f) = found {
        return Ok(f);
    }
    let by_name: Option<(String, String)> = on_conn!(c, c => sqlx::query_as("SELECT id, name FROM company WHERE workspace_id = $1 AND lower(name) = lower($2)")
        .bind(workspace_id).bind(name).fetch_optional(&mut **c).await?);
    if let Some(f) = by_name {
        return Ok(f);
    }
    let id = new_id();
    on_conn!(c, c => { sqlx::query("INSERT INTO company (id, workspace_id, external_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
        .bind(&id).bind(workspace_id).bind(external_id).bind(name).bind(now).execute(&mut **c).await?; });
    Ok((id, name.to_owned()))
}

/// Creates the company's shared conversation when the workspace uses company
/// conversations and it has none yet; `person_id` (a member) is its person.
pub(crate) async fn ensure_conversation(
    c: &mut Conn<'_>,
    workspace_id: &str,
    company_id: &str,
    name: &str,
    person_id: &str,
    now: i64,
) -> Result<()> {
    let row: Option<(bool, Option<String>)> = on_conn!(c, c => sqlx::query_as(
        "SELECT w.company_conversations, co.conversation_id FROM company co JOIN workspace w ON w.id = co.workspace_id WHERE co.id = $1")
        .bind(company_id).fetch_optional(&mut **c).await?);
    let Some((true, None)) = row else { return Ok(()) };
    let cid = new_id();
    on_conn!(c, c => {
        sqlx::query("INSERT INTO conversation (id, workspace_id, person_id, company_id, title, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'open', $6, $6)")
            .bind(&cid).bind(workspace_id).bind(person_id).bind(company_id).bind(name).bind(now).execute(&mut **c).await?;
        sqlx::query("UPDATE company SET conversation_id = $1 WHERE id = $2").bind(&cid).bind(company_id).execute(&mut **c).await?;
    });
    Ok(())
}

/// Companies whose name starts with any word of `q` (for quick add), with
/// member counts.
pub async fn search(db: &Db, workspace_id: &str, q: &str, limit: i64) -> Result<Vec<Company>> {
    let pattern = format!("{}%", crate::util::like_escape(&q.trim().to_lowercase()));
    Ok(with_db!(db, pool => sqlx::query_as(
        "SELECT c.id, c.name, c.external_id, (SELECT COUNT(*) FROM person p WHERE p.company_id = c.id) AS members \
         FROM company c WHERE c.workspace_id = $1 AND lower(c.name) LIKE $2 ESCAPE '\\' ORDER BY lower(c.name) LIMIT $3")
        .bind(workspace_id).bind(&pattern).bind(limit).fetch_all(pool).await?))
}

pub async fn get(db: &Db, workspace_id: &str, id: &str) -> Result<Company> {
    with_db!(db, pool => sqlx::query_as(
        "SELECT c.id, c.name, c.external_id, (SELECT COUNT(*) FROM person p WHERE p.company_id = c.id) AS members \
         FROM company c WHERE c.workspace_id = $1 AND c.id = $2")
        .bind(workspace_id).bind(id).fetch_optional(pool).await?)
    .ok_or(Error::NotFound("company"))
}
