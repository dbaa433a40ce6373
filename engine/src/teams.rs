//! Teams: named groups of teammates (Billing, Sales…) that conversations are
//! routed to, by a teammate in the inbox or by an automation's
//! `assign("Billing")`. A conversation carries a team beside its assignee;
//! the inbox lists a team's conversations with `?team=ID`.
//!
//! Names are unique in a workspace regardless of case, so a rule can name a
//! team the way people say it.

use serde::{Deserialize, Serialize};

use crate::chat::TeammateRef;
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result, with_db, with_tx};

/// The longest team name.
const MAX_NAME: usize = 100;
/// The most members one team may list.
const MAX_MEMBERS: usize = 1000;

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub members: Vec<TeammateRef>,
    pub created_at: String,
}

/// A team as a conversation shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TeamRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    pub name: Option<String>,
    /// Teammate ids: the whole membership (replaces what was there).
    pub member_ids: Option<Vec<String>>,
}

fn name_of(v: Option<&str>) -> Result<(String, String)> {
    let name = v.map(str::trim).unwrap_or_default();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::invalid("name", format!("a team needs a name of 1 to {MAX_NAME} characters")));
    }
    Ok((name.to_owned(), name.to_lowercase()))
}

/// Checks every member is a teammate of the workspace; the error names the
/// first that is not (`member_ids.2`).
async fn members_of(db: &Db, ws: &str, ids: &[String]) -> Result<Vec<String>> {
    if ids.len() > MAX_MEMBERS {
        return Err(Error::invalid("member_ids", format!("a team has at most {MAX_MEMBERS} members")));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        crate::workspace::teammate(db, ws, id)
            .await
            .map_err(|_| Error::invalid(format!("member_ids.{i}"), "no such teammate in this workspace"))?;
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// Whether another team (than `except`) has the name with this key.
async fn name_taken(db: &Db, ws: &str, key: &str, except: Option<&str>) -> Result<bool> {
    let (n,): (i64,) = with_db!(db, pool => sqlx::query_as(
        "SELECT COUNT(*) FROM team WHERE workspace_id = $1 AND name_key = $2 AND ($3 IS NULL OR id <> $3)")
        .bind(ws).bind(key).bind(except).fetch_one(pool).await?);
    Ok(n > 0)
}

fn taken(name: &str) -> Error {
    Error::Conflict { code: "team_exists", message: format!("there is already a team called {name:?}") }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    team_id: String,
    id: String,
    name: String,
}

async fn hydrate(db: &Db, ws: &str, rows: Vec<Row>) -> Result<Vec<Team>> {
    let members: Vec<MemberRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT m.team_id, t.id, t.name FROM team_member m JOIN teammate t ON t.id = m.teammate_id \
         WHERE m.workspace_id = $1 ORDER BY t.name, t.id")
        .bind(ws).fetch_all(pool).await?);
    Ok(rows
        .into_iter()
        .map(|r| Team {
            members: members.iter().filter(|m| m.team_id == r.id).map(|m| TeammateRef { id: m.id.clone(), name: m.name.clone() }).collect(),
            id: r.id,
            name: r.name,
            created_at: rfc3339(r.created_at),
        })
        .collect())
}

pub async fn list(db: &Db, ws: &str) -> Result<Vec<Team>> {
    let rows: Vec<Row> = with_db!(db, pool => sqlx::query_as("SELECT id, name, created_at FROM team WHERE workspace_id = $1 ORDER BY name_key, id").bind(ws).fetch_all(pool).await?);
    hydrate(db, ws, rows).await
}

pub async fn get(db: &Db, ws: &str, id: &str) -> Result<Team> {
    let row: Option<Row> = with_db!(db, pool => sqlx::query_as("SELECT id, name, created_at FROM team WHERE id = $1 AND workspace_id = $2").bind(id).bind(ws).fetch_optional(pool).await?);
    let row = row.ok_or(Error::NotFound("team"))?;
    hydrate(db, ws, vec![row]).await?.pop().ok_or(Error::NotFound("team"))
}

/// A team by id, or else by name (any case): what `assign(…)` names.
pub async fn find(db: &Db, ws: &str, id_or_name: &str) -> Result<Option<TeamRef>> {
    let key = id_or_name.trim().to_lowercase();
    Ok(with_db!(db, pool => sqlx::query_as::<_, (String, String)>(
        "SELECT id, name FROM team WHERE workspace_id = $1 AND (id = $2 OR name_key = $3) ORDER BY (id = $2) DESC LIMIT 1")
        .bind(ws).bind(id_or_name.trim()).bind(&key).fetch_optional(pool).await?)
    .map(|(id, name)| TeamRef { id, name }))
}

pub async fn create(db: &Db, ws: &str, input: TeamInput) -> Result<Team> {
    let (name, key) = name_of(input.name.as_deref())?;
    let members = members_of(db, ws, input.member_ids.as_deref().unwrap_or_default()).await?;
    if name_taken(db, ws, &key, None).await? {
        return Err(taken(&name));
    }
    let id = new_id();
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO team (id, workspace_id, name, name_key, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id).bind(ws).bind(&name).bind(&key).bind(now_ms()).execute(&mut *tx).await?;
        for m in &members {
            sqlx::query("INSERT INTO team_member (team_id, teammate_id, workspace_id) VALUES ($1, $2, $3)").bind(&id).bind(m).bind(ws).execute(&mut *tx).await?;
        }
    });
    get(db, ws, &id).await
}

pub async fn update(db: &Db, ws: &str, id: &str, input: TeamInput) -> Result<Team> {
    let current = get(db, ws, id).await?;
    let name = input.name.as_deref().map(|n| name_of(Some(n))).transpose()?;
    let members = match &input.member_ids {
        Some(ids) => Some(members_of(db, ws, ids).await?),
        None => None,
    };
    if let Some((n, key)) = &name
        && name_taken(db, ws, key, Some(&current.id)).await?
    {
        return Err(taken(n));
    }
    with_tx!(db, tx => {
        if let Some((n, key)) = &name {
            sqlx::query("UPDATE team SET name = $1, name_key = $2 WHERE id = $3").bind(n).bind(key).bind(id).execute(&mut *tx).await?;
        }
        if let Some(members) = &members {
            sqlx::query("DELETE FROM team_member WHERE team_id = $1").bind(id).execute(&mut *tx).await?;
            for m in members {
                sqlx::query("INSERT INTO team_member (team_id, teammate_id, workspace_id) VALUES ($1, $2, $3)").bind(id).bind(m).bind(ws).execute(&mut *tx).await?;
            }
        }
    });
    get(db, ws, id).await
}

/// Deletes a team; its conversations keep their assignee and lose the team.
pub async fn delete(db: &Db, ws: &str, id: &str) -> Result<()> {
    get(db, ws, id).await?;
    with_tx!(db, tx => {
        sqlx::query("UPDATE conversation SET team_id = NULL WHERE team_id = $1 AND workspace_id = $2").bind(id).bind(ws).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM team_member WHERE team_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM team WHERE id = $1 AND workspace_id = $2").bind(id).bind(ws).execute(&mut *tx).await?;
    });
    Ok(())
}
