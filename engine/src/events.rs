//! The timeline: everything a person does or has done to them, as events
//! (page views, tracked events, conversations, messages, attribute changes,
//! merges), with a per-name summary (count, first, last) kept in step.
//!
//! - `staged`: on SQLite, batches from the site's backend are appended when
//!   they arrive and folded into the timeline shortly after, in person
//!   order; readers that need every event [`settle`] first.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{Conn, SqliteBatch, json_rows};
use crate::people::input::{self as person_input, PersonInput};
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result, on_conn, with_db, with_tx};

mod staged;
pub(crate) use staged::resume as resume_folding;
pub(crate) use staged::{FORGET_PERSON as FORGET_STAGED, MOVE_PERSON as MOVE_STAGED};
pub use staged::{Staging, settle};

const MAX_DATA: usize = 16 * 1024;
/// Events accepted in one batch request.
pub const MAX_BATCH: usize = 1000;

/// Checks an event name: short, printable, like `purchased` or `page.view`.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok { Ok(()) } else { Err(Error::invalid(field, "event names are 1 to 100 letters, digits, or _ - . :")) }
}

fn check_data(field: &str, data: &Value) -> Result<String> {
    if !(data.is_object() || data.is_null()) {
        return Err(Error::invalid(field, "data must be a JSON object"));
    }
    let data = if data.is_null() { "{}".to_owned() } else { data.to_string() };
    if data.len() > MAX_DATA {
        return Err(Error::PayloadTooLarge(format!("{field} is larger than {MAX_DATA} bytes")));
    }
    Ok(data)
}

/// Writes one event and its summary inside the caller's transaction.
pub(crate) async fn insert(c: &mut Conn<'_>, workspace_id: &str, person_id: &str, name: &str, data: &str, at: i64) -> Result<()> {
    on_conn!(c, c => {
        sqlx::query("INSERT INTO event (id, workspace_id, person_id, name, data, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(new_id()).bind(workspace_id).bind(person_id).bind(name).bind(data).bind(at)
            .execute(&mut **c).await?;
        sqlx::query(SUMMARY_UPSERT).bind(person_id).bind(workspace_id).bind(name).bind(1_i64).bind(at).bind(at).execute(&mut **c).await?;
        sqlx::query(TOUCH).bind(now_ms()).bind(person_id).bind(workspace_id).execute(&mut **c).await?;
    });
    Ok(())
}

/// Summaries are part of what people search finds and shows: their people
/// are logged as changed (see `person_touched` in the migrations).
const TOUCH: &str = "INSERT INTO person_touched (at, person_id, workspace_id) VALUES ($1, $2, $3) ON CONFLICT (at, person_id) DO NOTHING";

/// How new summary rows are added to the ones people already have: every
/// statement that writes summaries ends with this.
macro_rules! summary_on_conflict {
    () => {
        " ON CONFLICT (workspace_id, name, person_id) DO UPDATE SET count = event_summary.count + excluded.count, \
         first_at = CASE WHEN excluded.first_at < event_summary.first_at THEN excluded.first_at ELSE event_summary.first_at END, \
         last_at = CASE WHEN excluded.last_at > event_summary.last_at THEN excluded.last_at ELSE event_summary.last_at END"
    };
}

/// Adds `count` events between `first` and `last` to a person's summary.
const SUMMARY_UPSERT: &str = concat!(
    "INSERT INTO event_summary (person_id, workspace_id, name, count, first_at, last_at) VALUES ($1, $2, $3, $4, $5, $6)",
    summary_on_conflict!()
);

/// Adds the summaries of the events in `event_folding` up to seq `$1` (one
/// fold's chunk), counted per person and name.
const FOLD_SUMMARIES: &str = concat!(
    "INSERT INTO event_summary (workspace_id, name, person_id, count, first_at, last_at) \
     SELECT workspace_id, name, person_id, COUNT(*), MIN(at), MAX(at) FROM event_folding WHERE seq <= $1 \
     GROUP BY workspace_id, name, person_id ORDER BY workspace_id, name, person_id",
    summary_on_conflict!()
);

/// Records an event on a person's timeline (the widget's `track` and page views).
pub async fn record(db: &Db, workspace_id: &str, person_id: &str, name: &str, data: &Value) -> Result<i64> {
    check_name("name", name)?;
    let data = check_data("data", data)?;
    let at = now_ms();
    with_tx!(db, tx => {
        insert(&mut Conn::from(&mut *tx), workspace_id, person_id, name, &data, at).await?;
    });
    Ok(at)
}

/// How many pages person `$1` of workspace `$2` viewed after `$3`. The
/// workspace is checked on the person: an equality on `event.workspace_id`
/// beside the name lets SQLite, without statistics, read every page view of
/// the workspace since then through `event_name` instead of the person's own.
const PAGE_VIEWS_SINCE: &str = "SELECT COUNT(*) FROM event WHERE person_id = $1 AND name = 'page.view' AND at > $3 \
     AND $2 = (SELECT pw.workspace_id FROM person pw WHERE pw.id = $1)";

/// Pages the person viewed after `at` (epoch ms).
pub async fn page_views_since(db: &Db, workspace_id: &str, person_id: &str, at: i64) -> Result<i64> {
    settle(db).await?;
    Ok(with_db!(db, pool => sqlx::query_scalar(PAGE_VIEWS_SINCE).bind(person_id).bind(workspace_id).bind(at).fetch_one(pool).await?))
}

/// Who an event from the site's backend is about.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRef {
    pub id: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
}

/// `POST /events` item.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    pub person: PersonRef,
    pub name: String,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// When it happened: RFC 3339 or epoch ms; default now.
    #[schema(value_type = Option<String>)]
    pub at: Option<Value>,
}

/// What [`ingest`] did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ingested {
    pub accepted: usize,
    /// People created because an external_id or email was new.
    pub people_created: usize,
    /// Their ids, for those who react to new people.
    #[serde(skip)]
    pub created_ids: Vec<String>,
}

enum Who {
    Id(String),
    External(String),
    Email(String),
}

/// Stores a batch of events from the site's backend in one transaction: all or
/// nothing. People named by `external_id` or `email` who do not exist yet are
/// created; an unknown `id` is a 422 naming the item.
#[tracing::instrument(skip_all, fields(workspace = %workspace_id, n = items.len()))]
pub async fn ingest(db: &Db, workspace_id: &str, items: Vec<EventInput>, batch: bool) -> Result<Ingested> {
    if items.len() > MAX_BATCH {
        return Err(Error::PayloadTooLarge(format!("at most {MAX_BATCH} events per request")));
    }
    // A batch's errors name the item: `3.name`.
    let path = |i: usize, f: &str| if batch { format!("{i}.{f}") } else { f.to_owned() };
    let now = now_ms();
    let mut rows = Vec::with_capacity(items.len());
    for (i, e) in items.iter().enumerate() {
        check_name(&path(i, "name"), &e.name)?;
        let data = check_data(&path(i, "data"), e.data.as_ref().unwrap_or(&Value::Null))?;
        let at = match &e.at {
            None | Some(Value::Null) => now,
            Some(v) => person_input::date_ms(v).ok_or_else(|| Error::invalid(path(i, "at"), "at is RFC 3339 or epoch milliseconds"))?,
        };
        let who = match (&e.person.id, &e.person.external_id, &e.person.email) {
            (Some(id), _, _) => Who::Id(id.clone()),
            (None, Some(x), _) if !x.trim().is_empty() => Who::External(x.trim().to_owned()),
            (None, _, Some(m)) => Who::Email(person_input::email(&path(i, "person.email"), m)?),
            _ => return Err(Error::invalid(path(i, "person"), "person needs an id, external_id or email")),
        };
        rows.push((who, e.name.as_str(), data, at));
    }
    // The people who exist are looked up on a reader, outside the one write
    // transaction SQLite allows at a time; only new people are made in it.
    let known = with_db!(db, pool => {
        let mut c = pool.acquire().await?;
        known_people(&mut Conn::from(&mut *c), workspace_id, &rows).await?
    });
    let created = match store(db, workspace_id, &rows, Some(known), &path, now).await {
        // Someone looked up was deleted meanwhile: look everyone up again,
        // this time inside the transaction.
        Err(e) if e.is_foreign_key_violation() => store(db, workspace_id, &rows, None, &path, now).await?,
        r => r?,
    };
    metrics::counter!("parley_events_total").increment(rows.len() as u64);
    Ok(Ingested { accepted: rows.len(), people_created: created.len(), created_ids: created })
}

/// Stores checked rows in one transaction, resolving the people `known`
/// does not hold (all of them without it); answers the ids of people it
/// created.
async fn store(
    db: &Db,
    workspace_id: &str,
    rows: &[(Who, &str, String, i64)],
    known: Option<HashMap<(u8, String), String>>,
    path: &(dyn Fn(usize, &str) -> String + Sync),
    now: i64,
) -> Result<Vec<String>> {
    let mut created = Vec::new();
    with_tx!(db, tx => {
        let mut c = Conn::from(&mut *tx);
        let mut resolved = match known {
            Some(k) => k,
            None => known_people(&mut c, workspace_id, rows).await?,
        };
        let mut person_ids = Vec::with_capacity(rows.len());
        for (i, (who, _, _, _)) in rows.iter().enumerate() {
            let key = match who {
                Who::Id(v) => (0, v.clone()),
                Who::External(v) => (1, v.clone()),
                Who::Email(v) => (2, v.clone()),
            };
            if let Some(id) = resolved.get(&key) {
                person_ids.push(id.clone());
                continue;
            }
            let id = match who {
                Who::Id(id) => {
                    let found: Option<(String,)> = on_conn!(&mut c, c => sqlx::query_as("SELECT id FROM person WHERE id = $1 AND workspace_id = $2")
                        .bind(id).bind(workspace_id).fetch_optional(&mut **c).await?);
                    found.ok_or_else(|| Error::invalid(path(i, "person.id"), "no person has this id"))?.0
                }
                Who::External(x) => resolve(&mut c, workspace_id, Some(x), None, now, &mut created).await?,
                Who::Email(m) => resolve(&mut c, workspace_id, None, Some(m), now, &mut created).await?,
            };
            resolved.insert(key, id.clone());
            person_ids.push(id);
        }
        let events = rows.iter().zip(&person_ids).map(|((_, name, data, at), pid)| (workspace_id, pid.as_str(), *name, data.as_str(), *at));
        match &mut c {
            Conn::Sqlite(c) => staged::stage(c, events).await?,
            Conn::Postgres(_) => write_many(&mut c, events).await?,
        }
    });
    staged::staged(db);
    Ok(created)
}

/// The people a batch names who exist, keyed like [`ingest`]'s lookups:
/// (0, id), (1, external_id), (2, email).
async fn known_people(c: &mut Conn<'_>, workspace_id: &str, rows: &[(Who, &str, String, i64)]) -> Result<HashMap<(u8, String), String>> {
    let mut wanted: [Vec<&str>; 3] = Default::default();
    for (who, ..) in rows {
        match who {
            Who::Id(v) => wanted[0].push(v),
            Who::External(v) => wanted[1].push(v),
            Who::Email(v) => wanted[2].push(v),
        }
    }
    // One text for both backends but the list: a JSON array bound once.
    let list = if c.is_postgres() { "SELECT jsonb_array_elements_text(CAST($2 AS jsonb))" } else { "SELECT value FROM json_each($2)" };
    let queries = [
        format!("SELECT id, id FROM person WHERE workspace_id = $1 AND id IN ({list})"),
        format!("SELECT external_id, id FROM person WHERE workspace_id = $1 AND external_id IN ({list})"),
        // As find_known: a person with an external_id first, then the newest.
        format!(
            "SELECT lower(email), id FROM person WHERE workspace_id = $1 AND lower(email) IN ({list}) \
             ORDER BY (external_id IS NULL) DESC, updated_at"
        ),
    ];
    let mut found = HashMap::new();
    for (kind, (values, sql)) in wanted.iter().zip(&queries).enumerate() {
        if values.is_empty() {
            continue;
        }
        let json = serde_json::to_string(values).map_err(|e| Error::Internal(e.into()))?;
        let pairs: Vec<(String, String)> =
            on_conn!(c, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(workspace_id).bind(&json).fetch_all(&mut **c).await?);
        // Later rows win, so the ordering above leaves the preferred person.
        for (key, id) in pairs {
            found.insert((kind as u8, key), id);
        }
    }
    Ok(found)
}

async fn resolve(
    c: &mut Conn<'_>,
    workspace_id: &str,
    external_id: Option<&str>,
    email: Option<&str>,
    now: i64,
    created: &mut Vec<String>,
) -> Result<String> {
    if let Some(row) = crate::people::profile::find_known(c, workspace_id, external_id, email).await? {
        return Ok(row.id);
    }
    let input = PersonInput { external_id: external_id.map(str::to_owned), email: email.map(str::to_owned), ..Default::default() };
    let id = crate::people::profile::write(c, workspace_id, None, &input, now).await?;
    created.push(id.clone());
    Ok(id)
}

/// Writes many events with a few multi-row statements, and their summaries
/// aggregated per (person, name).
pub(crate) async fn write_many<'a>(c: &mut Conn<'_>, rows: impl Iterator<Item = (&'a str, &'a str, &'a str, &'a str, i64)>) -> Result<()> {
    let c = match c {
        Conn::Sqlite(c) => {
            let mut b = SqliteBatch::default();
            push_many(&mut b, rows)?;
            b.run(c).await?;
            return Ok(());
        }
        Conn::Postgres(c) => c,
    };
    let rows: Vec<_> = rows.collect();
    let (sums, people) = summarise(&rows);
    let now = now_ms();
    // 6 binds per row; PostgreSQL allows far more than 200 × 6.
    for chunk in rows.chunks(200) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO event (id, workspace_id, person_id, name, data, at) ");
        q.push_values(chunk, |mut b, (ws, pid, name, data, at)| {
            b.push_bind(new_id()).push_bind(*ws).push_bind(*pid).push_bind(*name).push_bind(*data).push_bind(*at);
        });
        q.build().execute(&mut **c).await?;
    }
    for chunk in sums.chunks(200) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO event_summary (person_id, workspace_id, name, count, first_at, last_at) ");
        q.push_values(chunk, |mut b, ((ws, name, pid), (n, first, last))| {
            b.push_bind(*pid).push_bind(*ws).push_bind(*name).push_bind(*n).push_bind(*first).push_bind(*last);
        });
        q.push(summary_on_conflict!());
        q.build().execute(&mut **c).await?;
    }
    let people: Vec<(&str, &str)> = people.into_iter().collect();
    for chunk in people.chunks(300) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO person_touched (at, person_id, workspace_id) ");
        q.push_values(chunk, |mut b, (pid, ws)| {
            b.push_bind(now).push_bind(*pid).push_bind(*ws);
        });
        q.push(" ON CONFLICT (at, person_id) DO NOTHING");
        q.build().execute(&mut **c).await?;
    }
    Ok(())
}

type Sums<'a> = Vec<((&'a str, &'a str, &'a str), (i64, i64, i64))>;

/// Per person and name, how many of `rows` and when first and last, in the
/// summaries' key order (workspace, name, person), so each is written where
/// the one before it left the tree; and the people whose summaries change.
fn summarise<'a>(rows: &[(&'a str, &'a str, &'a str, &'a str, i64)]) -> (Sums<'a>, std::collections::BTreeSet<(&'a str, &'a str)>) {
    let mut sums: std::collections::BTreeMap<(&str, &str, &str), (i64, i64, i64)> = Default::default();
    for (ws, pid, name, _, at) in rows {
        let s = sums.entry((ws, name, pid)).or_insert((0, *at, *at));
        s.0 += 1;
        s.1 = s.1.min(*at);
        s.2 = s.2.max(*at);
    }
    // Summaries are part of what people search finds and shows: log their
    // people as changed, in one run of appended rows.
    let people = sums.keys().map(|(ws, _, pid)| (*pid, *ws)).collect();
    (sums.into_iter().collect(), people)
}

/// [`write_many`] on SQLite, as three statements of a batch (run in the
/// caller's transaction with whatever else it holds): each table's rows
/// travel as one JSON parameter unpacked by `json_each`, whatever the count.
/// As multi-row `VALUES` of 200 a mass send's chunk of 1,500 events took
/// sixteen statements, half of whose time was spent between them.
pub(crate) fn push_many<'a>(b: &mut SqliteBatch, rows: impl Iterator<Item = (&'a str, &'a str, &'a str, &'a str, i64)>) -> Result<()> {
    let rows: Vec<_> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    let (sums, people) = summarise(&rows);
    let events: Vec<_> = rows.iter().map(|(ws, pid, name, data, at)| (new_id(), ws, pid, name, data, at)).collect();
    b.push(
        "INSERT INTO event (id, workspace_id, person_id, name, data, at) \
         SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, j.value->>5 FROM json_each($1) j",
        vec![json_rows(&events)?.into()],
    );
    let sums: Vec<_> = sums.iter().map(|((ws, name, pid), (n, first, last))| (pid, ws, name, n, first, last)).collect();
    b.push(
        concat!(
            "INSERT INTO event_summary (person_id, workspace_id, name, count, first_at, last_at) \
             SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, j.value->>5 FROM json_each($1) j WHERE true",
            summary_on_conflict!()
        ),
        vec![json_rows(&sums)?.into()],
    );
    b.push(
        "INSERT INTO person_touched (at, person_id, workspace_id) \
         SELECT $2, j.value->>0, j.value->>1 FROM json_each($1) j WHERE true ON CONFLICT (at, person_id) DO NOTHING",
        vec![json_rows(&people)?.into(), now_ms().into()],
    );
    Ok(())
}

/// How often a person did something, and when first and last.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub name: String,
    pub count: i64,
    pub first_at: String,
    pub last_at: String,
}

/// The event names of the workspace bound at `$ws` (a placeholder such as
/// `"$1"`) as a table `names(name)`: summaries are keyed by name before
/// person, so a person's own are found by one lookup per name. Each step
/// seeks the next name in that key, a handful of lookups where a workspace
/// has a handful of names, instead of reading every row.
macro_rules! names_of_workspace {
    ($ws:literal) => {
        concat!(
            "WITH RECURSIVE names(name) AS (SELECT MIN(name) FROM event_summary WHERE workspace_id = ",
            $ws,
            " UNION ALL SELECT (SELECT MIN(s.name) FROM event_summary s WHERE s.workspace_id = ",
            $ws,
            " AND s.name > names.name) FROM names WHERE names.name IS NOT NULL) "
        )
    };
}
pub(crate) use names_of_workspace;

/// Person `$2`'s summaries in workspace `$1`.
const PERSONS_SUMMARIES: &str = concat!(
    names_of_workspace!("$1"),
    "SELECT s.name, s.count, s.first_at, s.last_at FROM names \
     JOIN event_summary s ON s.workspace_id = $1 AND s.name = names.name AND s.person_id = $2 ORDER BY s.last_at DESC"
);

/// Deletes person `$2`'s summaries in workspace `$1` (with the person, or
/// when they were merged into another).
pub(crate) const DELETE_SUMMARIES: &str = concat!(
    names_of_workspace!("$1"),
    "DELETE FROM event_summary WHERE workspace_id = $1 AND person_id = $2 AND name IN (SELECT name FROM names)"
);

/// Adds person `$3`'s summaries in workspace `$1` to person `$2`'s (a merge).
pub(crate) const MOVE_SUMMARIES: &str = concat!(
    names_of_workspace!("$1"),
    "INSERT INTO event_summary (workspace_id, name, person_id, count, first_at, last_at) \
     SELECT s.workspace_id, s.name, $2, s.count, s.first_at, s.last_at FROM names \
     JOIN event_summary s ON s.workspace_id = $1 AND s.name = names.name AND s.person_id = $3 WHERE true",
    summary_on_conflict!()
);

pub async fn summaries(db: &Db, workspace_id: &str, person_id: &str) -> Result<Vec<Summary>> {
    settle(db).await?;
    let rows: Vec<(String, i64, i64, i64)> =
        with_db!(db, pool => sqlx::query_as(PERSONS_SUMMARIES).bind(workspace_id).bind(person_id).fetch_all(pool).await?);
    Ok(rows.into_iter().map(|(name, count, f, l)| Summary { name, count, first_at: rfc3339(f), last_at: rfc3339(l) }).collect())
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub items: Vec<Event>,
    pub next_cursor: Option<String>,
}

/// A page of a person's timeline, newest first; `before` is a cursor from an
/// earlier page, `name` keeps one event name.
pub async fn timeline(
    db: &Db,
    workspace_id: &str,
    person_id: &str,
    before: Option<&str>,
    name: Option<&str>,
    limit: i64,
) -> Result<Timeline> {
    crate::people::summary(db, workspace_id, person_id).await?;
    settle(db).await?;
    if let Some(n) = name {
        check_name("name", n)?;
    }
    let limit = limit.clamp(1, 200);
    // The cursor is `at:id` of the last item shown.
    let (at, id) = match before {
        Some(c) => {
            let (a, i) = c.split_once(':').ok_or_else(|| Error::invalid("before", "not a cursor from this endpoint"))?;
            (a.parse::<i64>().map_err(|_| Error::invalid("before", "not a cursor from this endpoint"))?, i.to_owned())
        }
        None => (i64::MAX, String::new()),
    };
    let rows: Vec<(String, String, String, i64)> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, name, data, at FROM event WHERE person_id = $1 AND workspace_id = $2 AND ($3 = '' OR name = $3) \
         AND (at < $4 OR (at = $4 AND ($5 = '' OR id < $5))) ORDER BY at DESC, id DESC LIMIT $6")
        .bind(person_id).bind(workspace_id).bind(name.unwrap_or("")).bind(at).bind(&id).bind(limit + 1).fetch_all(pool).await?);
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more { rows.last().map(|(id, _, _, at)| format!("{at}:{id}")) } else { None };
    let items = rows
        .into_iter()
        .map(|(id, name, data, at)| Event { id, name, data: serde_json::from_str(&data).unwrap_or(Value::Null), at: rfc3339(at) })
        .collect();
    Ok(Timeline { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page-view greeting delayed by some seconds asks whether the person
    /// viewed another page meanwhile: from their own events, not the
    /// workspace's page views of that time.
    #[tokio::test]
    async fn later_page_views_are_counted_from_the_persons_events() {
        let (db, dir) = crate::db::temp_sqlite("views").await;
        let plan = crate::db::query_plan(&db, PAGE_VIEWS_SINCE, 3).await;
        assert!(plan.contains("event_person (person_id=? AND at>?)") && !plan.contains("event_name"), "{plan}");
        let ws = crate::workspace::create(&db, "Views").await.expect("a workspace");
        let other = crate::workspace::create(&db, "Other").await.expect("a workspace");
        let input = PersonInput { external_id: Some("v1".into()), ..Default::default() };
        let ann = crate::people::profile::upsert(&db, &ws.id, input).await.expect("a person").person.id;
        let first = record(&db, &ws.id, &ann, "page.view", &serde_json::json!({"url": "/a"})).await.expect("a view");
        record(&db, &ws.id, &ann, "page.view", &serde_json::json!({"url": "/b"})).await.expect("a view");
        record(&db, &ws.id, &ann, "signed_in", &Value::Null).await.expect("an event");
        assert_eq!(page_views_since(&db, &ws.id, &ann, first - 1).await.expect("counting"), 2);
        assert_eq!(page_views_since(&db, &other.id, &ann, first - 1).await.expect("counting"), 0, "not from another workspace");
        crate::db::remove_temp_sqlite(db, &dir).await;
    }

    /// Summaries are one tree keyed by name before person: a person's own are
    /// found by a lookup per name of their workspace, never by reading the
    /// summaries of everyone, and they are exactly theirs.
    #[tokio::test]
    async fn a_persons_summaries_are_looked_up_name_by_name() {
        let (db, dir) = crate::db::temp_sqlite("summaries").await;
        let plan = crate::db::query_plan(&db, PERSONS_SUMMARIES, 2).await;
        assert!(plan.contains("USING PRIMARY KEY (workspace_id=? AND name=? AND person_id=?)"), "{plan}");
        assert!(!plan.contains("SCAN s"), "{plan}");
        let indexes: Vec<String> = with_db!(&db, pool => sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'event_summary' AND sql IS NOT NULL")
            .fetch_all(pool).await.expect("the schema"));
        assert!(indexes.is_empty(), "a tracked event writes one summary tree, not {indexes:?} as well");

        let ws = crate::workspace::create(&db, "Sums").await.expect("a workspace");
        let other = crate::workspace::create(&db, "Other").await.expect("a workspace");
        let person = |ws: String, x: &'static str| {
            let db = db.clone();
            async move {
                let input = PersonInput { external_id: Some(x.into()), ..Default::default() };
                crate::people::profile::upsert(&db, &ws, input).await.expect("a person").person.id
            }
        };
        let (ann, bob, eve) =
            (person(ws.id.clone(), "ann").await, person(ws.id.clone(), "bob").await, person(other.id.clone(), "eve").await);
        for (who, ws, name) in [
            (&ann, &ws.id, "a.first"),
            (&ann, &ws.id, "m.middle"),
            (&ann, &ws.id, "m.middle"),
            (&bob, &ws.id, "z.last"),
            (&eve, &other.id, "a.first"),
        ] {
            record(&db, ws, who, name, &Value::Null).await.expect("an event");
        }
        let names = |s: Vec<Summary>| {
            let mut n: Vec<(String, i64)> = s.into_iter().map(|s| (s.name, s.count)).collect();
            n.sort();
            n
        };
        let of = |ws: String, who: String| {
            let db = db.clone();
            async move { names(summaries(&db, &ws, &who).await.expect("summaries")) }
        };
        assert_eq!(of(ws.id.clone(), ann.clone()).await, [("a.first".to_owned(), 1), ("m.middle".to_owned(), 2)]);
        assert_eq!(of(ws.id.clone(), bob.clone()).await, [("z.last".to_owned(), 1)]);
        assert_eq!(of(other.id.clone(), eve.clone()).await, [("a.first".to_owned(), 1)]);
        assert!(of(other.id.clone(), ann.clone()).await.is_empty(), "not through another workspace");

        let crate::db::Db::Sqlite { write, .. } = &db else { unreachable!("a SQLite database") };
        sqlx::query(DELETE_SUMMARIES).bind(&ws.id).bind(&ann).execute(write).await.expect("deleting");
        assert!(of(ws.id.clone(), ann.clone()).await.is_empty());
        assert_eq!(of(ws.id.clone(), bob.clone()).await, [("z.last".to_owned(), 1)], "only theirs are deleted");
        assert_eq!(of(other.id.clone(), eve.clone()).await, [("a.first".to_owned(), 1)]);
        crate::db::remove_temp_sqlite(db, &dir).await;
    }

    #[test]
    fn event_names_are_checked() {
        assert!(check_name("name", "page.view").is_ok());
        assert!(check_name("name", "signed_up").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "<script>").is_err());
        assert!(check_name("name", &"a".repeat(101)).is_err());
    }
}
