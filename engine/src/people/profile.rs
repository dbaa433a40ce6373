//! A person's profile: read, upsert, patch, delete, and merging an anonymous
//! visitor into the known person they turn out to be.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::input::{self, AttrValue, Location, PersonInput};
use crate::db::Conn;
use crate::filter::{AttrKind, Schema};
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result, companies, events, on_conn, with_db, with_tx};

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CompanyRef {
    pub id: String,
    pub name: String,
}

/// A person as the API shows them.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Person {
    pub id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub phone_kind: Option<String>,
    pub name: Option<String>,
    pub company: Option<CompanyRef>,
    pub manager: bool,
    pub country: Option<String>,
    pub city: Option<String>,
    pub location: Option<Location>,
    #[schema(value_type = Object)]
    pub attributes: Value,
    pub tags: Vec<String>,
    pub unsubscribed: bool,
    pub online: bool,
    pub created_at: String,
    pub updated_at: String,
    pub last_seen_at: Option<String>,
    /// Per event name: how often, first and last (on a single person's read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<events::Summary>>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct PersonRow {
    pub id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub phone_kind: Option<String>,
    pub name: Option<String>,
    pub company_id: Option<String>,
    pub company_name: Option<String>,
    pub manager: bool,
    pub country: Option<String>,
    pub city: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub attributes: String,
    pub tags: String,
    pub unsubscribed: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seen_at: Option<i64>,
    pub online: bool,
}

/// The columns of [`PersonRow`], for `FROM person p`.
#[macro_export]
macro_rules! person_select {
    ($rest:literal) => {
        concat!(
            "SELECT p.id, p.external_id, p.email, p.phone, p.phone_kind, p.name, p.company_id, co.name AS company_name, p.manager, \
             p.country, p.city, p.lat, p.lon, p.attributes, p.tags, p.unsubscribed, p.created_at, p.updated_at, p.last_seen_at, \
             EXISTS (SELECT 1 FROM presence pr WHERE pr.person_id = p.id AND pr.connections > 0) AS online \
             FROM person p LEFT JOIN company co ON co.id = p.company_id ",
            $rest
        )
    };
}

impl From<PersonRow> for Person {
    fn from(r: PersonRow) -> Person {
        Person {
            company: match (r.company_id, r.company_name) {
                (Some(id), Some(name)) => Some(CompanyRef { id, name }),
                _ => None,
            },
            location: match (r.lat, r.lon) {
                (Some(lat), Some(lon)) => Some(Location { lat, lon }),
                _ => None,
            },
            attributes: serde_json::from_str(&r.attributes).unwrap_or_else(|_| json!({})),
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            id: r.id,
            external_id: r.external_id,
            email: r.email,
            phone: r.phone,
            phone_kind: r.phone_kind,
            name: r.name,
            manager: r.manager,
            country: r.country,
            city: r.city,
            unsubscribed: r.unsubscribed,
            online: r.online,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            last_seen_at: r.last_seen_at.map(rfc3339),
            events: None,
        }
    }
}

/// One person with their event summaries.
pub async fn get(db: &Db, workspace_id: &str, id: &str) -> Result<Person> {
    let mut p = get_bare(db, workspace_id, id).await?;
    p.events = Some(events::summaries(db, workspace_id, id).await?);
    Ok(p)
}

/// A person without their event summaries (`events` is `None`): one read
/// instead of two, for what needs only who they are, such as an automation
/// run answering a page view.
pub async fn get_bare(db: &Db, workspace_id: &str, id: &str) -> Result<Person> {
    let row: Option<PersonRow> = with_db!(db, pool => sqlx::query_as(person_select!("WHERE p.id = $1 AND p.workspace_id = $2"))
        .bind(id).bind(workspace_id).fetch_optional(pool).await?);
    Ok(Person::from(row.ok_or(Error::NotFound("person"))?))
}

/// People by id, in the order given (unknown ids are left out).
pub async fn many(db: &Db, workspace_id: &str, ids: &[String]) -> Result<Vec<Person>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(ids).map_err(|e| Error::Internal(e.into()))?;
    let rows: Vec<PersonRow> = match db {
        Db::Sqlite { read, .. } => {
            sqlx::query_as(person_select!("WHERE p.workspace_id = $1 AND p.id IN (SELECT value FROM json_each($2))"))
                .bind(workspace_id)
                .bind(&list)
                .fetch_all(read)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(person_select!("WHERE p.workspace_id = $1 AND p.id IN (SELECT jsonb_array_elements_text($2::jsonb))"))
                .bind(workspace_id)
                .bind(&list)
                .fetch_all(pool)
                .await?
        }
    };
    let mut by_id: HashMap<String, Person> = rows.into_iter().map(|r| (r.id.clone(), Person::from(r))).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// The attribute kinds a workspace has seen.
pub async fn schema(db: &Db, workspace_id: &str) -> Result<Schema> {
    let rows: Vec<(String, String)> = with_db!(db, pool => sqlx::query_as("SELECT name, kind FROM attribute_def WHERE workspace_id = $1")
        .bind(workspace_id).fetch_all(pool).await?);
    Ok(to_schema(rows))
}

fn to_schema(rows: Vec<(String, String)>) -> Schema {
    Schema { attributes: rows.into_iter().filter_map(|(n, k)| AttrKind::parse(&k).map(|k| (n, k))).collect() }
}

async fn schema_in(c: &mut Conn<'_>, workspace_id: &str) -> Result<Schema> {
    let rows: Vec<(String, String)> = on_conn!(c, c => sqlx::query_as("SELECT name, kind FROM attribute_def WHERE workspace_id = $1")
        .bind(workspace_id).fetch_all(&mut **c).await?);
    Ok(to_schema(rows))
}

/// The result of an upsert.
pub struct Upserted {
    pub person: Person,
    pub created: bool,
}

/// Creates or updates the person with this `external_id` (or, failing that,
/// this `email`). One of the two is required.
#[tracing::instrument(skip_all, fields(workspace = %workspace_id))]
pub async fn upsert(db: &Db, workspace_id: &str, input: PersonInput) -> Result<Upserted> {
    let external_id = input::text("external_id", input.external_id.as_deref(), 255)?;
    let email = input.email.as_deref().map(|e| input::email("email", e)).transpose()?;
    if external_id.is_none() && email.is_none() {
        return Err(Error::invalid("external_id", "external_id or email is required to find or create a person"));
    }
    let (id, created) = with_tx!(db, tx => {
        let mut c = Conn::from(&mut *tx);
        let found = find_known(&mut c, workspace_id, external_id.as_deref(), email.as_deref()).await?;
        let created = found.is_none();
        let id = write(&mut c, workspace_id, found, &input, now_ms()).await?;
        (id, created)
    });
    Ok(Upserted { person: get(db, workspace_id, &id).await?, created })
}

/// The person with this external_id, else the latest with this email.
pub(crate) async fn find_known(
    c: &mut Conn<'_>,
    workspace_id: &str,
    external_id: Option<&str>,
    email: Option<&str>,
) -> Result<Option<PersonRow>> {
    if let Some(x) = external_id {
        let row: Option<PersonRow> = on_conn!(c, c => sqlx::query_as(person_select!("WHERE p.workspace_id = $1 AND p.external_id = $2"))
            .bind(workspace_id).bind(x).fetch_optional(&mut **c).await?);
        if row.is_some() {
            return Ok(row);
        }
    }
    match email {
        Some(e) => Ok(on_conn!(c, c => sqlx::query_as(person_select!(
            "WHERE p.workspace_id = $1 AND lower(p.email) = $2 ORDER BY (p.external_id IS NULL), p.updated_at DESC LIMIT 1"))
            .bind(workspace_id).bind(e).fetch_optional(&mut **c).await?)),
        None => Ok(None),
    }
}

/// Changes one person; `external_id` may change too (409 if taken).
#[tracing::instrument(skip_all, fields(person = %id))]
pub async fn patch(db: &Db, workspace_id: &str, id: &str, input: PersonInput) -> Result<Person> {
    with_tx!(db, tx => {
        let mut c = Conn::from(&mut *tx);
        let row = load(&mut c, workspace_id, id).await?.ok_or(Error::NotFound("person"))?;
        write(&mut c, workspace_id, Some(row), &input, now_ms()).await?;
    });
    get(db, workspace_id, id).await
}

pub(crate) async fn load(c: &mut Conn<'_>, workspace_id: &str, id: &str) -> Result<Option<PersonRow>> {
    Ok(on_conn!(c, c => sqlx::query_as(person_select!("WHERE p.id = $1 AND p.workspace_id = $2"))
        .bind(id).bind(workspace_id).fetch_optional(&mut **c).await?))
}

/// Records a removed person so an external search index drops them too.
const FORGET: &str = "INSERT INTO person_deleted (id, workspace_id, deleted_at) VALUES ($1, $2, $3) \
     ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at";

/// Deletes a person and everything that is theirs: conversations, messages,
/// timeline, sessions.
#[tracing::instrument(skip_all, fields(person = %id))]
pub async fn delete(db: &Db, uploads_dir: &std::path::Path, workspace_id: &str, id: &str) -> Result<()> {
    let files = with_tx!(db, tx => {
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM person WHERE id = $1 AND workspace_id = $2")
            .bind(id).bind(workspace_id).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Err(Error::NotFound("person"));
        }
        for sql in [
            // A shared chat is not the person's alone: it passes to another
            // of its members and lives on.
            "UPDATE conversation SET person_id = (SELECT MIN(m.person_id) FROM conversation_member m \
               WHERE m.conversation_id = conversation.id AND m.person_id <> $1) \
             WHERE person_id = $1 AND EXISTS (SELECT 1 FROM conversation_member m WHERE m.conversation_id = conversation.id AND m.person_id <> $1)",
            "DELETE FROM conversation_member WHERE person_id = $1",
            // What was sent to them goes with them: the message logs of
            // outbounds no longer list them.
            "DELETE FROM checkin_reply WHERE person_id = $1",
            "DELETE FROM delivery WHERE person_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        // Their files go with their messages (once nothing else uses them).
        let files = crate::uploads::linked_to_messages!(
            tx,
            "SELECT m.id FROM message m JOIN conversation c ON c.id = m.conversation_id WHERE c.person_id = $1",
            id
        );
        for sql in [
            "DELETE FROM message WHERE conversation_id IN (SELECT id FROM conversation WHERE person_id = $1)",
            "DELETE FROM participant WHERE conversation_id IN (SELECT id FROM conversation WHERE person_id = $1)",
            "DELETE FROM teammate_read WHERE conversation_id IN (SELECT id FROM conversation WHERE person_id = $1)",
            "UPDATE company SET conversation_id = NULL WHERE conversation_id IN (SELECT id FROM conversation WHERE person_id = $1)",
            "DELETE FROM conversation WHERE person_id = $1",
            "DELETE FROM event WHERE person_id = $1",
            "DELETE FROM visitor_session WHERE person_id = $1",
            "DELETE FROM presence WHERE person_id = $1",
            events::FORGET_STAGED[0],
            events::FORGET_STAGED[1],
            "DELETE FROM person WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query(events::DELETE_SUMMARIES).bind(workspace_id).bind(id).execute(&mut *tx).await?;
        sqlx::query(FORGET).bind(id).bind(workspace_id).bind(now_ms()).execute(&mut *tx).await?;
        files
    });
    tracing::info!(person = %id, workspace = %workspace_id, "person deleted");
    crate::uploads::release(db, uploads_dir, &files).await;
    Ok(())
}

/// Applies `input` to `current` (or a new person), writing the row, its
/// indexed attributes and tags, and `attribute.changed` events for what
/// changed on a known person. Returns the person's id.
pub(crate) async fn write(
    c: &mut Conn<'_>,
    workspace_id: &str,
    current: Option<PersonRow>,
    input: &PersonInput,
    now: i64,
) -> Result<String> {
    let defs = schema_in(c, workspace_id).await?;
    let mut s = State::from_row(current.as_ref());
    let before = s.clone();
    if let Some(x) = &input.external_id {
        s.external_id = input::text("external_id", Some(x), 255)?;
    }
    if let Some(e) = &input.email {
        s.email = if e.trim().is_empty() { None } else { Some(input::email("email", e)?) };
    }
    if let Some(p) = &input.phone {
        s.phone = if p.trim().is_empty() { None } else { Some(input::phone("phone", p)?) };
    }
    if let Some(k) = &input.phone_kind {
        s.phone_kind = Some(input::phone_kind("phone_kind", k)?);
    }
    if let Some(n) = &input.name {
        s.name = input::text("name", Some(n), 200)?;
    }
    if let Some(m) = input.manager {
        s.manager = m;
    }
    if let Some(v) = &input.country {
        s.country = input::text("country", Some(v), 100)?;
    }
    if let Some(v) = &input.city {
        s.city = input::text("city", Some(v), 100)?;
    }
    if let Some(l) = &input.location {
        s.location = l.map(|l| input::location("location", l)).transpose()?;
    }
    if let Some(u) = input.unsubscribed {
        s.unsubscribed = u;
    }
    if let Some(t) = &input.tags {
        s.tags = input::tags("tags", t)?;
    }
    // Attributes: type each value against the workspace's kinds.
    let mut typed: BTreeMap<String, Option<AttrValue>> = BTreeMap::new();
    if let Some(attrs) = &input.attributes {
        if attrs.len() > 200 {
            return Err(Error::invalid("attributes", "at most 200 attributes at once"));
        }
        for (name, v) in attrs {
            let field = format!("attributes.{name}");
            input::check_attribute_name(&field, name)?;
            if v.is_null() {
                s.attributes.remove(name);
                typed.insert(name.clone(), None);
                continue;
            }
            let a = input::attribute(&field, v, defs.attributes.get(name).copied())?;
            s.attributes.insert(name.clone(), a.shown.clone());
            typed.insert(name.clone(), Some(a));
        }
    }
    if let Some(co) = &input.company {
        let name = input::text("company", Some(co.name()), 200)?.ok_or_else(|| Error::invalid("company", "a company needs a name"))?;
        let ext = input::text("company.external_id", co.external_id(), 255)?;
        let (cid, cname) = companies::find_or_create(c, workspace_id, &name, ext.as_deref(), now).await?;
        s.company = Some((cid, cname));
    }

    let id = current.as_ref().map(|r| r.id.clone()).unwrap_or_else(new_id);
    let attributes = Value::Object(s.attributes.clone()).to_string();
    if attributes.len() > 64 * 1024 {
        return Err(Error::PayloadTooLarge("a person's attributes are larger than 64 KiB".into()));
    }
    let tags = serde_json::to_string(&s.tags).map_err(|e| Error::Internal(e.into()))?;
    let search_text = s.search_text();
    let (lat, lon) = s.location.map(|l| (Some(l.lat), Some(l.lon))).unwrap_or((None, None));
    let company_id = s.company.as_ref().map(|c| c.0.clone());
    let result = on_conn!(c, c => {
        let q = if current.is_some() {
            sqlx::query("UPDATE person SET external_id = $3, email = $4, phone = $5, phone_kind = $6, name = $7, company_id = $8, manager = $9, \
                         country = $10, city = $11, lat = $12, lon = $13, attributes = $14, tags = $15, unsubscribed = $16, search_text = $17, \
                         updated_at = $18 WHERE id = $1 AND workspace_id = $2")
        } else {
            sqlx::query("INSERT INTO person (id, workspace_id, external_id, email, phone, phone_kind, name, company_id, manager, country, city, \
                         lat, lon, attributes, tags, unsubscribed, search_text, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)")
        };
        q.bind(&id).bind(workspace_id).bind(&s.external_id).bind(&s.email).bind(&s.phone).bind(&s.phone_kind).bind(&s.name)
            .bind(&company_id).bind(s.manager).bind(&s.country).bind(&s.city).bind(lat).bind(lon).bind(&attributes).bind(&tags)
            .bind(s.unsubscribed).bind(&search_text).bind(now).execute(&mut **c).await.map(|_| ())
    });
    if let Err(e) = result {
        if let sqlx::Error::Database(d) = &e
            && d.is_unique_violation()
        {
            return Err(Error::Conflict { code: "external_id_taken", message: "another person has this external_id".into() });
        }
        return Err(e.into());
    }
    if let Some((cid, cname)) = &s.company
        && before.company.as_ref().map(|c| &c.0) != Some(cid)
    {
        companies::ensure_conversation(c, workspace_id, cid, cname, &id, now).await?;
    }
    write_attributes(c, workspace_id, &id, &typed, &defs, now).await?;
    if s.tags != before.tags || current.is_none() {
        write_tags(c, workspace_id, &id, &s.tags).await?;
    }
    if current.is_some() {
        for (name, from, to) in before.changes(&s) {
            events::insert(c, workspace_id, &id, "attribute.changed", &json!({"name": name, "from": from, "to": to}).to_string(), now)
                .await?;
        }
    }
    Ok(id)
}

async fn write_attributes(
    c: &mut Conn<'_>,
    workspace_id: &str,
    id: &str,
    typed: &BTreeMap<String, Option<AttrValue>>,
    defs: &Schema,
    now: i64,
) -> Result<()> {
    for (name, v) in typed {
        match v {
            None => {
                on_conn!(c, c => { sqlx::query("DELETE FROM person_attribute WHERE person_id = $1 AND name = $2")
                    .bind(id).bind(name).execute(&mut **c).await?; });
            }
            Some(a) => {
                if !defs.attributes.contains_key(name) {
                    on_conn!(c, c => { sqlx::query("INSERT INTO attribute_def (workspace_id, name, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                        .bind(workspace_id).bind(name).bind(a.kind.as_str()).bind(now).execute(&mut **c).await?; });
                }
                on_conn!(c, c => { sqlx::query(
                    "INSERT INTO person_attribute (person_id, workspace_id, name, str_value, num_value) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (person_id, name) DO UPDATE SET str_value = excluded.str_value, num_value = excluded.num_value")
                    .bind(id).bind(workspace_id).bind(name).bind(&a.str_value).bind(a.num_value).execute(&mut **c).await?; });
            }
        }
    }
    Ok(())
}

async fn write_tags(c: &mut Conn<'_>, workspace_id: &str, id: &str, tags: &[String]) -> Result<()> {
    on_conn!(c, c => { sqlx::query("DELETE FROM person_tag WHERE person_id = $1").bind(id).execute(&mut **c).await?; });
    for t in tags {
        on_conn!(c, c => { sqlx::query("INSERT INTO person_tag (person_id, workspace_id, tag) VALUES ($1, $2, $3)")
            .bind(id).bind(workspace_id).bind(t).execute(&mut **c).await?; });
    }
    Ok(())
}

/// The editable state of a person, to apply input to and diff.
#[derive(Clone, Default)]
struct State {
    external_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    phone_kind: Option<String>,
    name: Option<String>,
    company: Option<(String, String)>,
    manager: bool,
    country: Option<String>,
    city: Option<String>,
    location: Option<Location>,
    attributes: Map<String, Value>,
    tags: Vec<String>,
    unsubscribed: bool,
}

impl State {
    fn from_row(r: Option<&PersonRow>) -> State {
        let Some(r) = r else { return State::default() };
        State {
            external_id: r.external_id.clone(),
            email: r.email.clone(),
            phone: r.phone.clone(),
            phone_kind: r.phone_kind.clone(),
            name: r.name.clone(),
            company: r.company_id.clone().zip(r.company_name.clone()),
            manager: r.manager,
            country: r.country.clone(),
            city: r.city.clone(),
            location: r.lat.zip(r.lon).map(|(lat, lon)| Location { lat, lon }),
            attributes: serde_json::from_str(&r.attributes).unwrap_or_default(),
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            unsubscribed: r.unsubscribed,
        }
    }

    fn search_text(&self) -> String {
        search_text(self.name.as_deref(), self.email.as_deref(), self.phone.as_deref(), self.company.as_ref().map(|c| c.1.as_str()))
    }

    /// What changed from `self` to `after`, as (name, from, to).
    fn changes(&self, after: &State) -> Vec<(String, Value, Value)> {
        let mut out = Vec::new();
        let mut field = |name: &str, a: Value, b: Value| {
            if a != b {
                out.push((name.to_owned(), a, b));
            }
        };
        field("email", json!(self.email), json!(after.email));
        field("phone", json!(self.phone), json!(after.phone));
        field("name", json!(self.name), json!(after.name));
        field("company", json!(self.company.as_ref().map(|c| &c.1)), json!(after.company.as_ref().map(|c| &c.1)));
        field("manager", json!(self.manager), json!(after.manager));
        field("country", json!(self.country), json!(after.country));
        field("city", json!(self.city), json!(after.city));
        field("tags", json!(self.tags), json!(after.tags));
        field("unsubscribed", json!(self.unsubscribed), json!(after.unsubscribed));
        let names: std::collections::BTreeSet<&String> = self.attributes.keys().chain(after.attributes.keys()).collect();
        for n in names {
            let a = self.attributes.get(n).cloned().unwrap_or(Value::Null);
            let b = after.attributes.get(n).cloned().unwrap_or(Value::Null);
            field(&format!("attributes.{n}"), a, b);
        }
        out
    }
}

/// The text full-text search looks in: name, email (whole and in its parts,
/// since PostgreSQL's parser keeps an email as one token), phone (also
/// without its `+`) and company.
pub fn search_text(name: Option<&str>, email: Option<&str>, phone: Option<&str>, company: Option<&str>) -> String {
    let email_parts = email.map(|e| e.replace(|c: char| !c.is_alphanumeric(), " "));
    let phone_digits = phone.map(|p| p.trim_start_matches('+').to_owned());
    [name.map(str::to_owned), email.map(str::to_owned), email_parts, phone.map(str::to_owned), phone_digits, company.map(str::to_owned)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Merges the anonymous person `from` into the known person `into`:
/// conversations, messages, timeline, sessions, attributes and tags move
/// over (what `into` already has wins), `from` is removed, and the merge is
/// recorded on `into`'s timeline.
#[tracing::instrument(skip_all, fields(from = %from, into = %into))]
pub(crate) async fn merge(c: &mut Conn<'_>, workspace_id: &str, from: &str, into: &str, now: i64) -> Result<()> {
    let (Some(a), Some(b)) = (load(c, workspace_id, from).await?, load(c, workspace_id, into).await?) else {
        return Err(Error::NotFound("person"));
    };
    let mut s = State::from_row(Some(&b));
    let old = State::from_row(Some(&a));
    s.email = s.email.or(old.email);
    s.phone = s.phone.or(old.phone);
    s.phone_kind = s.phone_kind.or(old.phone_kind);
    s.name = s.name.or(old.name);
    s.company = s.company.or(old.company);
    s.country = s.country.or(old.country);
    s.city = s.city.or(old.city);
    s.location = s.location.or(old.location);
    for (k, v) in old.attributes {
        s.attributes.entry(k).or_insert(v);
    }
    for t in old.tags {
        if !s.tags.contains(&t) {
            s.tags.push(t);
        }
    }
    s.tags.sort();
    let attributes = Value::Object(s.attributes.clone()).to_string();
    let tags = serde_json::to_string(&s.tags).map_err(|e| Error::Internal(e.into()))?;
    let search_text = s.search_text();
    let (lat, lon) = s.location.map(|l| (Some(l.lat), Some(l.lon))).unwrap_or((None, None));
    let company_id = s.company.as_ref().map(|c| c.0.clone());
    let created_at = a.created_at.min(b.created_at);
    let last_seen = a.last_seen_at.max(b.last_seen_at);
    on_conn!(c, c => {
        sqlx::query("UPDATE person SET email = $2, phone = $3, phone_kind = $4, name = $5, company_id = $6, country = $7, city = $8, \
                     lat = $9, lon = $10, attributes = $11, tags = $12, search_text = $13, created_at = $14, last_seen_at = $15, updated_at = $16 \
                     WHERE id = $1")
            .bind(into).bind(&s.email).bind(&s.phone).bind(&s.phone_kind).bind(&s.name).bind(&company_id).bind(&s.country).bind(&s.city)
            .bind(lat).bind(lon).bind(&attributes).bind(&tags).bind(&search_text).bind(created_at).bind(last_seen).bind(now)
            .execute(&mut **c).await?;
        // Indexed attributes and tags `into` lacks come from `from`.
        sqlx::query("INSERT INTO person_attribute (person_id, workspace_id, name, str_value, num_value) \
                     SELECT $1, workspace_id, name, str_value, num_value FROM person_attribute WHERE person_id = $2 ON CONFLICT DO NOTHING")
            .bind(into).bind(from).execute(&mut **c).await?;
        sqlx::query("INSERT INTO person_tag (person_id, workspace_id, tag) SELECT $1, workspace_id, tag FROM person_tag WHERE person_id = $2 \
                     ON CONFLICT DO NOTHING")
            .bind(into).bind(from).execute(&mut **c).await?;
        sqlx::query(events::MOVE_SUMMARIES).bind(workspace_id).bind(into).bind(from).execute(&mut **c).await?;
        sqlx::query(events::DELETE_SUMMARIES).bind(workspace_id).bind(from).execute(&mut **c).await?;
        for sql in [
            "UPDATE conversation SET person_id = $1 WHERE person_id = $2",
            "UPDATE message SET author_id = $1 WHERE author_type = 'person' AND author_id = $2",
            "UPDATE event SET person_id = $1 WHERE person_id = $2",
            "UPDATE visitor_session SET person_id = $1 WHERE person_id = $2",
            events::MOVE_STAGED[0],
            events::MOVE_STAGED[1],
        ] {
            sqlx::query(sql).bind(into).bind(from).execute(&mut **c).await?;
        }
        for sql in ["DELETE FROM presence WHERE person_id = $1", "DELETE FROM person WHERE id = $1"] {
            sqlx::query(sql).bind(from).execute(&mut **c).await?;
        }
        sqlx::query(FORGET).bind(from).bind(workspace_id).bind(now).execute(&mut **c).await?;
    });
    events::insert(
        c,
        workspace_id,
        into,
        "person.merged",
        &json!({"from": from, "from_created_at": rfc3339(a.created_at)}).to_string(),
        now,
    )
    .await?;
    Ok(())
}
