//! People search: free text plus a filter, sorted, in cursor pages with an
//! exact total.
//!
//! [`PeopleIndex`] is the seam between the embedded SQL implementation
//! ([`SqlIndex`]: FTS5 on SQLite, `tsvector` on PostgreSQL, the filter compiled
//! to WHERE) and Meilisearch. Either answers with ids; profiles are
//! always read from the database, so both show the same people the same way.
//!
//! - [`cache`]: results kept while the people they came from are unchanged.
//! - [`meili`]: the Meilisearch index, its documents and the loop that keeps
//!   it in step with the database.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::filter::{self, Bind, Dialect, Filter, Schema};
use crate::people::{Person, profile};
use crate::util::now_ms;
use crate::{Db, Error, Result, with_db};

pub mod cache;
pub mod meili;

pub const PAGE_MAX: i64 = 200;

/// The sortable fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    #[default]
    LastSeenAt,
    CreatedAt,
    Name,
    Email,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sort {
    #[serde(default)]
    pub field: SortField,
    #[serde(default)]
    pub order: Order,
}

/// `POST /people/search` body.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Words matched (as prefixes) against name, email, phone and company.
    pub q: Option<String>,
    /// A filter in the filter language.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    pub sort: Option<Sort>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    /// How many people match in all.
    pub total: i64,
    pub items: Vec<Person>,
    pub next_cursor: Option<String>,
}

/// A search ready to run: text split into words, filter parsed with its
/// segments inlined, cursor decoded.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub workspace_id: String,
    pub words: Vec<String>,
    pub filter: Option<Filter>,
    pub sort: Sort,
    pub limit: i64,
    pub cursor: Option<Value>,
    pub now_ms: i64,
    /// Only `total` is wanted: an index may skip reading a page.
    pub count_only: bool,
    /// The version of people the search runs under and when it was read
    /// (epoch ms), when the caller read it.
    pub version: Option<(cache::Version, i64)>,
}

/// Ids of one page, in order, with the exact total.
#[derive(Debug, Default)]
pub struct IdPage {
    pub total: i64,
    pub ids: Vec<String>,
    pub next_cursor: Option<Value>,
}

/// Where people are searched: SQL or Meilisearch.
pub trait PeopleIndex: Send + Sync {
    fn name(&self) -> &'static str;
    /// Pages as sent, kept while people are unchanged, when this index's
    /// results follow the database's [`cache::Version`] alone.
    fn pages(&self) -> Option<&cache::Cache<bytes::Bytes>> {
        None
    }
    fn search<'a>(&'a self, q: &'a Prepared) -> BoxFuture<'a, Result<IdPage>>;
}

/// Words of a free-text query: letters and digits, lower-cased, at most 8.
pub fn words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(8).map(str::to_lowercase).collect()
}

/// A filter checked against the workspace: as written, with its segments
/// inlined, and the ids of every segment it reaches.
pub struct Resolved {
    pub written: Filter,
    pub inlined: Filter,
    pub segments: Vec<String>,
}

/// Parses a filter against the workspace's attributes and inlines the
/// segments it uses (and those they use).
pub async fn resolve_filter(db: &Db, workspace_id: &str, value: &Value, path: &str) -> Result<Filter> {
    Ok(resolve(db, workspace_id, value, path).await?.inlined)
}

/// [`resolve_filter`], keeping the filter as written and the segments reached.
pub async fn resolve(db: &Db, workspace_id: &str, value: &Value, path: &str) -> Result<Resolved> {
    let schema = profile::schema(db, workspace_id).await?;
    let written = Filter::parse(value, &schema, path)?;
    let mut segments: HashMap<String, Filter> = HashMap::new();
    let mut todo = written.segment_ids();
    while let Some(id) = todo.pop() {
        if segments.contains_key(&id) {
            continue;
        }
        let s = crate::segments::load(db, workspace_id, &id).await.map_err(|e| match e {
            Error::NotFound(_) => Error::invalid(path, format!("there is no segment {id}")),
            e => e,
        })?;
        let f = parse_saved(&s.filter, &schema)?;
        todo.extend(f.segment_ids());
        segments.insert(id, f);
        if segments.len() > 50 {
            return Err(Error::invalid(path, "this filter uses more than 50 segments"));
        }
    }
    let mut inlined = written.clone();
    if !segments.is_empty() {
        inlined.inline_segments(&segments)?;
    }
    if inlined.reads_events() {
        crate::events::settle(db).await?;
    }
    Ok(Resolved { written, inlined, segments: segments.into_keys().collect() })
}

/// A stored filter, parsed; one that no longer fits the schema matches nobody
/// rather than failing every search that uses it.
fn parse_saved(value: &Value, schema: &Schema) -> Result<Filter> {
    match Filter::parse(value, schema, "segment") {
        Ok(f) => Ok(f),
        Err(e) => {
            tracing::warn!(error = %e, "a saved segment's filter no longer parses; it matches nobody");
            Filter::parse(&serde_json::json!({"or": []}), schema, "segment")
        }
    }
}

pub fn encode_cursor(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

pub fn decode_cursor(field: &str, s: &str) -> Result<Value> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Error::invalid(field, "not a cursor from this search"))
}

/// Checks and prepares a request.
pub async fn prepare(db: &Db, workspace_id: &str, req: &SearchRequest) -> Result<Prepared> {
    let words = match &req.q {
        Some(q) if q.len() > 200 => return Err(Error::invalid("q", "q is at most 200 characters")),
        Some(q) => words(q),
        None => Vec::new(),
    };
    let filter = match &req.filter {
        Some(v) if !v.is_null() => Some(resolve_filter(db, workspace_id, v, "filter").await?),
        _ => None,
    };
    let limit = req.limit.unwrap_or(50);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(Error::invalid("limit", format!("limit is 1 to {PAGE_MAX}")));
    }
    let cursor = req.cursor.as_deref().map(|c| decode_cursor("cursor", c)).transpose()?;
    Ok(Prepared {
        workspace_id: workspace_id.to_owned(),
        words,
        filter,
        sort: req.sort.unwrap_or_default(),
        limit,
        cursor,
        now_ms: now_ms(),
        count_only: false,
        version: None,
    })
}

/// Runs a search on `index` and reads the page's people.
pub async fn search(db: &Db, index: &dyn PeopleIndex, workspace_id: &str, req: &SearchRequest) -> Result<SearchPage> {
    let p = prepare(db, workspace_id, req).await?;
    page_of(db, index, &p).await
}

async fn page_of(db: &Db, index: &dyn PeopleIndex, p: &Prepared) -> Result<SearchPage> {
    let started = std::time::Instant::now();
    let page = index.search(p).await?;
    metrics::histogram!("parley_people_search_seconds", "index" => index.name()).record(started.elapsed().as_secs_f64());
    let items = profile::many(db, &p.workspace_id, &page.ids).await?;
    Ok(SearchPage { total: page.total, items, next_cursor: page.next_cursor.as_ref().map(encode_cursor) })
}

/// [`search`], answered as the JSON sent to the client. Where the index
/// allows it, a page is kept as sent while people are unchanged: asking
/// again for a page someone just saw (the first page of a segment, a list
/// being refreshed) then costs a version read instead of reading and
/// serialising its people again.
pub async fn search_json(db: &Db, index: &dyn PeopleIndex, workspace_id: &str, req: &SearchRequest) -> Result<bytes::Bytes> {
    let mut p = prepare(db, workspace_id, req).await?;
    let to_json = |page: &SearchPage| serde_json::to_vec(page).map(bytes::Bytes::from).map_err(|e| Error::Internal(e.into()));
    let Some(pages) = index.pages() else { return to_json(&page_of(db, index, &p).await?) };
    // Read before the search runs: a change committed meanwhile moves it.
    let started_ms = now_ms();
    let version = cache::Version::read(db).await?;
    p.version = Some((version, started_ms));
    let key = format!("{}\u{1}{:?}\u{1}{:?}\u{1}{:?}\u{1}{}\u{1}{:?}", p.workspace_id, p.words, p.filter, p.sort, p.limit, p.cursor);
    let p = &p;
    let json =
        pages.get_or_compute(&key, version, version.settled(started_ms), || async move { to_json(&page_of(db, index, p).await?) }).await?;
    Ok(json.as_ref().clone())
}

/// People per page on the web app's People section (`PAGE` in
/// `web/assets/app/people.js`): its first request is what [`warm`] computes.
pub const PEOPLE_PAGE: i64 = 25;

/// Runs each workspace's first People page once, so that its exact total
/// (every person counted: at a million, a second or more on pages not yet
/// read since the start) is computed before a teammate asks for it, and
/// kept while nobody changes (see [`cache`]).
pub async fn warm(db: &Db, index: &dyn PeopleIndex) -> Result<usize> {
    if index.pages().is_none() {
        return Ok(0);
    }
    let workspaces: Vec<String> =
        with_db!(db, pool => sqlx::query_scalar("SELECT id FROM workspace ORDER BY created_at, id").fetch_all(pool).await?);
    let first = SearchRequest { limit: Some(PEOPLE_PAGE), ..Default::default() };
    for ws in &workspaces {
        search_json(db, index, ws, &first).await?;
    }
    Ok(workspaces.len())
}

/// How many people match a filter.
pub async fn count(db: &Db, index: &dyn PeopleIndex, workspace_id: &str, filter: &Value) -> Result<i64> {
    let req = SearchRequest { filter: Some(filter.clone()), limit: Some(1), ..Default::default() };
    let p = Prepared { count_only: true, ..prepare(db, workspace_id, &req).await? };
    Ok(index.search(&p).await?.total)
}

/// The embedded index: SQL on whichever database Parley runs on.
#[derive(Clone)]
pub struct SqlIndex {
    pub db: Db,
    cache: Arc<cache::Cache<cache::Found>>,
    pages: Arc<cache::Cache<bytes::Bytes>>,
    /// Each filter's matches as rowids, for text typed within it (SQLite).
    sets: Arc<cache::Cache<cache::Rowids>>,
    /// Text matches up to which text within a filter is read through SQL.
    few_text: usize,
}

/// Pages kept as sent: at most this many, and this many bytes in all.
const PAGES_KEPT: usize = 2_000;
const PAGE_BYTES_KEPT: usize = 64 << 20;

/// Up to this many matches, a search keeps every matching id in order, so its
/// later pages are read from memory. Past it, a page is found by walking the
/// sort index, testing each person, until a page is full. Reading every
/// match to sort it costs one scattered row read per match (at a million
/// people, 0.7 s for a tag on 140,000 of them, while the other searches
/// wait), where the walk reads about a page divided by the share of people
/// who match: at a million people and more matches than this, under 5,000
/// rows for a page of 50.
const KEEP_ORDERED: i64 = 10_000;

/// Text within a filter on SQLite: up to this many text matches, each is
/// read and tested against the filter (a row read each, about 1.6 µs warm
/// at a million people); past it, the text's matches are intersected with
/// the filter's, listed once from its index and kept (a country of 94,000
/// people: 10 ms to list, then 1–2 ms a text, against 14–28 ms a text).
/// Typing into the search box of a filtered People list is this: one
/// filter, a new text at every key.
const FEW_TEXT_MATCHES: usize = 2_000;
/// A filter's matches are kept as rowids up to this many (8 bytes each).
const KEEP_SET: usize = 250_000;
/// Filters kept at most, and rowids over all of them.
const SETS_KEPT: usize = 200;
const SET_ROWIDS_KEPT: usize = 4_000_000;

impl SqlIndex {
    pub fn shared(db: Db) -> Arc<dyn PeopleIndex> {
        Arc::new(SqlIndex::new(db))
    }

    fn new(db: Db) -> SqlIndex {
        SqlIndex {
            db,
            cache: Arc::default(),
            pages: Arc::new(cache::Cache::new(PAGES_KEPT, PAGE_BYTES_KEPT)),
            sets: Arc::new(cache::Cache::new(SETS_KEPT, SET_ROWIDS_KEPT)),
            few_text: FEW_TEXT_MATCHES,
        }
    }
}

/// Applies `binds` to a query in order.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Float(f) => q.bind(*f),
                Bind::Int(i) => q.bind(*i),
                Bind::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

impl SqlIndex {
    /// A search's WHERE clause over `person p` and its binds; `probing`
    /// writes the filter for testing people one at a time, as a walk of the
    /// sort index does (see [`filter::to_sql_probing`]).
    fn where_clause(&self, p: &Prepared, probing: bool) -> (String, Vec<Bind>) {
        let dialect = self.db.dialect();
        let mut binds = vec![Bind::Text(p.workspace_id.clone())];
        let mut wh = String::from("p.workspace_id = $1");
        if !p.words.is_empty() {
            binds.push(Bind::Text(text_query(&p.words, dialect)));
            wh.push_str(match dialect {
                Dialect::Sqlite => " AND p.rowid IN (SELECT rowid FROM person_fts WHERE person_fts MATCH $2)",
                Dialect::Postgres => " AND to_tsvector('simple', p.search_text) @@ to_tsquery('simple', $2)",
            });
        }
        if let Some(f) = &p.filter {
            let compile = if probing { filter::to_sql_probing } else { filter::to_sql };
            let sql = compile(f, dialect, binds.len() + 1, 1, p.now_ms);
            wh.push_str(" AND (");
            wh.push_str(&sql.sql);
            wh.push(')');
            binds.extend(sql.binds);
        }
        (wh, binds)
    }

    async fn run(&self, p: &Prepared) -> Result<IdPage> {
        let (wh, binds) = self.where_clause(p, false);
        // Read before the search runs: a change committed meanwhile moves it.
        let (version, started_ms) = match p.version {
            Some(v) => v,
            None => {
                let started_ms = now_ms();
                (cache::Version::read(&self.db).await?, started_ms)
            }
        };
        let keep = version.settled(started_ms);
        let key = format!("{}\u{1}{:?}\u{1}{:?}\u{1}{:?}", p.workspace_id, p.words, p.filter, p.sort);
        let found = self
            .cache
            .get_or_compute(&key, version, keep, || async {
                if let Some(rowids) = self.text_within_filter(p, version, keep).await? {
                    let total = rowids.len() as i64;
                    if p.count_only || total > KEEP_ORDERED {
                        return Ok(cache::Found { total, ordered: None });
                    }
                    let all = self.keys_of(p, &rowids).await?;
                    return Ok(cache::Found { total: all.len() as i64, ordered: Some(cache::Ordered::pack(all)) });
                }
                let direct = self.direct_count(p).await?;
                let count = || async {
                    let (sql, count_binds) = match &direct {
                        Some((sql, direct_binds)) => (sql.clone(), direct_binds.as_slice()),
                        None => (format!("SELECT COUNT(*) FROM person p WHERE {wh}"), binds.as_slice()),
                    };
                    let total: i64 = with_db!(&self.db, pool => {
                        let q = bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str())), count_binds);
                        q.fetch_one(pool).await?
                    });
                    Ok::<i64, Error>(total)
                };
                // Where an index counts the matches alone (and with neither
                // text nor filter, where every person matches), counting
                // first is cheap, and when they are more than are kept it
                // saves reading the first of them in order only to learn so.
                if !p.count_only && (direct.is_some() || (p.words.is_empty() && p.filter.is_none())) {
                    let total = count().await?;
                    if total > KEEP_ORDERED {
                        return Ok(cache::Found { total, ordered: None });
                    }
                }
                // Reading the matches in order first also counts them when
                // they are few enough to keep.
                if !p.count_only
                    && let Some(all) = self.all_matches(p, &wh, &binds).await?
                {
                    return Ok(cache::Found { total: all.len() as i64, ordered: Some(cache::Ordered::pack(all)) });
                }
                Ok(cache::Found { total: count().await?, ordered: None })
            })
            .await?;
        let total = found.total;
        if p.count_only {
            return Ok(IdPage { total, ..Default::default() });
        }
        let limit = p.limit as usize;
        let after = match &p.cursor {
            Some(c) => Some(cursor_parts(c)?),
            None => None,
        };
        if let Some(all) = &found.ordered {
            let start = match &after {
                None => Some(0),
                Some((id, k)) => all.after(id, k),
            };
            // A cursor not in the kept result (its person changed, or it is from
            // another sort): SQL finds where to go on, or says what is wrong.
            if let Some(start) = start {
                let page = all.rows(start, limit);
                let more = all.len() > start + limit;
                let next_cursor = if more { page.last().map(|(id, k)| serde_json::json!({"k": k, "id": id})) } else { None };
                return Ok(IdPage { total, ids: page.into_iter().map(|(id, _)| id).collect(), next_cursor });
            }
        }
        let how = if total > KEEP_ORDERED { How::WalkSortIndex } else { How::Sorted };
        let (wh, binds) = if how == How::WalkSortIndex && !self.db.is_postgres() { self.where_clause(p, true) } else { (wh, binds) };
        let rows = self.ordered(p, &wh, &binds, after, Some(p.limit + 1), how).await?;
        let more = rows.len() > limit;
        let rows: Vec<_> = rows.into_iter().take(limit).collect();
        let next_cursor = if more { rows.last().map(|(id, k)| serde_json::json!({"k": k, "id": id})) } else { None };
        Ok(IdPage { total, ids: rows.into_iter().map(|(id, _)| id).collect(), next_cursor })
    }

    /// A `SELECT COUNT(*)` of the matches, with its binds, that reads one
    /// index and no person, where there is one.
    async fn direct_count(&self, p: &Prepared) -> Result<Option<(String, Vec<Bind>)>> {
        let dialect = self.db.dialect();
        Ok(match (&p.filter, p.words.is_empty()) {
            (Some(f), true) => filter::count_sql(f, dialect, 2, 1)
                .map(|sql| (sql.sql, [Bind::Text(p.workspace_id.clone())].into_iter().chain(sql.binds).collect())),
            // Text alone, where every person is this workspace's: the
            // full-text index counts its matches, where the workspace test
            // read each one's row (16,810 for three letters at a million
            // people: 16 ms against 0.7).
            (None, false) if dialect == Dialect::Sqlite && self.alone(&p.workspace_id).await? => Some((
                "SELECT COUNT(*) FROM person_fts WHERE person_fts MATCH $1".to_owned(),
                vec![Bind::Text(text_query(&p.words, dialect))],
            )),
            _ => None,
        })
    }

    /// Whether no other workspace has people (SQLite): two seeks in
    /// `person_workspace_id`.
    async fn alone(&self, workspace_id: &str) -> Result<bool> {
        let elsewhere: bool = with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM person WHERE workspace_id < $1) OR EXISTS (SELECT 1 FROM person WHERE workspace_id > $1)")
            .bind(workspace_id).fetch_one(pool).await?);
        Ok(!elsewhere)
    }

    /// Every match in order when there are at most [`KEEP_ORDERED`]; `None`
    /// when there are more.
    async fn all_matches(&self, p: &Prepared, wh: &str, binds: &[Bind]) -> Result<Option<Vec<(String, Value)>>> {
        let kept = |all: Vec<(String, Value)>| (all.len() as i64 <= KEEP_ORDERED).then_some(all);
        if self.db.is_postgres() {
            return Ok(kept(self.ordered(p, wh, binds, None, Some(KEEP_ORDERED + 1), How::Sorted).await?));
        }
        // SQLite, given ORDER BY with a large LIMIT, tends to walk the sort
        // index through every person instead of reading the matches through
        // the filter's index. So the matches are read unordered and sorted
        // here: its keys compare as bytes (BINARY), as Rust's strings do.
        //
        // First only their rowids, which a filter on an index answers from
        // the index alone: when there are more than are kept, no row is read
        // (reading each one's sort key cost 10,000 scattered row reads, most
        // of a first search for a country at a million people). Then the
        // keys of the few.
        let ids_sql = format!("SELECT p.rowid FROM person p WHERE {wh} LIMIT {}", KEEP_ORDERED + 1);
        let rowids: Vec<i64> = with_db!(&self.db, pool => {
            let q = bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(ids_sql.as_str())), binds);
            q.fetch_all(pool).await?
        });
        if rowids.len() as i64 > KEEP_ORDERED {
            return Ok(None);
        }
        Ok(Some(self.keys_of(p, &rowids).await?))
    }

    /// The people with these rowids (SQLite) as (id, sort key), in order.
    async fn keys_of(&self, p: &Prepared, rowids: &[i64]) -> Result<Vec<(String, Value)>> {
        // A person deleted since the rowids were read is left out; any change
        // meanwhile also moves the cache's version, so the next search reads
        // again (see `run`).
        let (key, numeric) = sort_key(p.sort.field);
        let keys_sql = format!("SELECT p.id, {key} FROM person p WHERE p.rowid IN (SELECT value FROM json_each($1))");
        let rowids = Bind::Text(serde_json::to_string(rowids).map_err(|e| Error::Internal(e.into()))?);
        let mut all = self.keyed(&keys_sql, std::slice::from_ref(&rowids), numeric).await?;
        all.sort_unstable_by(|(a, ak), (b, bk)| {
            ak.as_i64().cmp(&bk.as_i64()).then_with(|| ak.as_str().cmp(&bk.as_str())).then_with(|| a.cmp(b))
        });
        if p.sort.order == Order::Desc {
            all.reverse();
        }
        Ok(all)
    }

    /// Text within a filter on SQLite, when the text matches more than a
    /// few people: the rowids of this workspace's people matching both,
    /// from the text's matches in the full-text index and the filter's,
    /// which are listed from SQL once and kept while people are unchanged
    /// (see [`FEW_TEXT_MATCHES`]). `None`: search through SQL.
    async fn text_within_filter(&self, p: &Prepared, version: cache::Version, keep: bool) -> Result<Option<Vec<i64>>> {
        let Some(f) = &p.filter else { return Ok(None) };
        if p.words.is_empty() || self.db.is_postgres() {
            return Ok(None);
        }
        // Any workspace's: the filter's are this workspace's alone.
        let text = self
            .rowid_list(
                "SELECT json_group_array(rowid) FROM person_fts WHERE person_fts MATCH $1",
                &[Bind::Text(text_query(&p.words, Dialect::Sqlite))],
            )
            .await?;
        if text.len() <= self.few_text {
            return Ok(None);
        }
        let key = format!("{}\u{1}{:?}", p.workspace_id, f);
        let set = self
            .sets
            .get_or_compute(&key, version, keep, || async {
                let compiled = filter::to_sql(f, Dialect::Sqlite, 2, 1, p.now_ms);
                let sql = format!(
                    "SELECT json_group_array(r) FROM (SELECT p.rowid AS r FROM person p WHERE p.workspace_id = $1 AND ({}) LIMIT {})",
                    compiled.sql,
                    KEEP_SET + 1
                );
                let binds: Vec<Bind> = [Bind::Text(p.workspace_id.clone())].into_iter().chain(compiled.binds).collect();
                let mut rowids = self.rowid_list(&sql, &binds).await?;
                if rowids.len() > KEEP_SET {
                    return Ok(cache::Rowids(None));
                }
                rowids.sort_unstable();
                Ok(cache::Rowids(Some(rowids)))
            })
            .await?;
        let Some(set) = &set.0 else { return Ok(None) };
        Ok(Some(text.into_iter().filter(|r| set.binary_search(r).is_ok()).collect()))
    }

    /// Rowids that `sql` gives as one JSON array: one row to move from
    /// SQLite instead of one per rowid.
    async fn rowid_list(&self, sql: &str, binds: &[Bind]) -> Result<Vec<i64>> {
        let json: String = with_db!(&self.db, pool => {
            let q = bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), binds);
            q.fetch_one(pool).await?
        });
        serde_json::from_str(&json).map_err(|e| Error::Internal(e.into()))
    }

    /// Rows of (id, sort key) that `sql` reads.
    async fn keyed(&self, sql: &str, binds: &[Bind], numeric: bool) -> Result<Vec<(String, Value)>> {
        Ok(if numeric {
            let r: Vec<(String, i64)> = with_db!(&self.db, pool => {
                let q = bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), binds);
                q.fetch_all(pool).await?
            });
            r.into_iter().map(|(id, k)| (id, Value::from(k))).collect()
        } else {
            let r: Vec<(String, String)> = with_db!(&self.db, pool => {
                let q = bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), binds);
                q.fetch_all(pool).await?
            });
            r.into_iter().map(|(id, k)| (id, Value::from(k))).collect()
        })
    }

    /// Matching ids with their sort keys, in order: after `after` (a cursor's
    /// id and key) and at most `limit` when given.
    async fn ordered(
        &self,
        p: &Prepared,
        wh: &str,
        binds: &[Bind],
        after: Option<(String, Value)>,
        limit: Option<i64>,
        how: How,
    ) -> Result<Vec<(String, Value)>> {
        // Keyset paging on (sort key, id).
        let (key, numeric) = sort_key(p.sort.field);
        let (cmp, dir) = match p.sort.order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let mut page_binds = binds.to_vec();
        let mut page_wh = wh.to_owned();
        if let Some((id, k)) = after {
            let kb = match (numeric, k) {
                (true, Value::Number(n)) => Bind::Int(n.as_i64().unwrap_or(0)),
                (false, Value::String(s)) => Bind::Text(s),
                _ => return Err(Error::invalid("cursor", "this cursor is from a search with another sort")),
            };
            let (a, b) = (page_binds.len() + 1, page_binds.len() + 2);
            page_wh.push_str(&format!(" AND ({key} {cmp} ${a} OR ({key} = ${a} AND p.id {cmp} ${b}))"));
            page_binds.push(kb);
            page_binds.push(Bind::Text(id));
        }
        // When matches are many, walking the sort index and testing each
        // person finds a page after a few hundred rows, where SQLite's planner
        // would rather read every match through the filter's index and sort
        // them all.
        let walk = match p.sort.field {
            _ if how != How::WalkSortIndex || self.db.is_postgres() => "",
            SortField::LastSeenAt => " INDEXED BY person_seen",
            SortField::CreatedAt => " INDEXED BY person_created",
            SortField::Name => " INDEXED BY person_name_sort",
            SortField::Email => " INDEXED BY person_email_sort",
        };
        let mut page_sql = format!("SELECT p.id, {key} AS k FROM person p{walk} WHERE {page_wh} ORDER BY {key} {dir}, p.id {dir}");
        if let Some(limit) = limit {
            page_binds.push(Bind::Int(limit));
            page_sql.push_str(&format!(" LIMIT ${}", page_binds.len()));
        }
        self.keyed(&page_sql, &page_binds, numeric).await
    }
}

/// The full-text query for `words`: each one a prefix, all of them wanted.
fn text_query(words: &[String], dialect: Dialect) -> String {
    match dialect {
        // Each word a quoted prefix; FTS5 ANDs them.
        Dialect::Sqlite => words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" "),
        Dialect::Postgres => words.iter().map(|w| format!("{w}:*")).collect::<Vec<_>>().join(" & "),
    }
}

/// A sort's key over `person p`, and whether it is a number.
fn sort_key(field: SortField) -> (&'static str, bool) {
    match field {
        SortField::LastSeenAt => ("COALESCE(p.last_seen_at, 0)", true),
        SortField::CreatedAt => ("p.created_at", true),
        SortField::Name => ("lower(COALESCE(p.name, ''))", false),
        SortField::Email => ("lower(COALESCE(p.email, ''))", false),
    }
}

/// How [`SqlIndex::ordered`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Sorted,
    /// Sorted, walking the sort index: for matches too many to keep.
    WalkSortIndex,
}

/// A cursor's id and sort key.
fn cursor_parts(c: &Value) -> Result<(String, Value)> {
    let id = c.get("id").and_then(Value::as_str).ok_or_else(|| Error::invalid("cursor", "not a cursor from this search"))?;
    let k = c.get("k").ok_or_else(|| Error::invalid("cursor", "not a cursor from this search"))?;
    Ok((id.to_owned(), k.clone()))
}

impl PeopleIndex for SqlIndex {
    fn name(&self) -> &'static str {
        "sql"
    }
    fn pages(&self) -> Option<&cache::Cache<bytes::Bytes>> {
        Some(&self.pages)
    }
    fn search<'a>(&'a self, q: &'a Prepared) -> BoxFuture<'a, Result<IdPage>> {
        Box::pin(self.run(q))
    }
}

/// Quick add: people, companies and segments matching what was typed, for
/// picking recipients.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuickAdd {
    pub people: Vec<Person>,
    pub companies: Vec<crate::companies::Company>,
    pub segments: Vec<crate::segments::Segment>,
}

pub async fn quick_add(db: &Db, index: &dyn PeopleIndex, workspace_id: &str, q: &str, limit: i64) -> Result<QuickAdd> {
    let limit = limit.clamp(1, 20);
    if q.trim().is_empty() {
        return Ok(QuickAdd { people: Vec::new(), companies: Vec::new(), segments: Vec::new() });
    }
    let req = SearchRequest { q: Some(q.to_owned()), limit: Some(limit), ..Default::default() };
    let people = search(db, index, workspace_id, &req).await?.items;
    let companies = crate::companies::search(db, workspace_id, q, limit).await?;
    let segments = crate::segments::find(db, workspace_id, q, limit).await?;
    Ok(QuickAdd { people, companies, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the warm-up the first People page after a start counts every
    /// person while a teammate waits; with it the page is there already.
    #[tokio::test]
    async fn warming_up_keeps_each_workspaces_first_people_page() {
        let (db, dir) = crate::db::temp_sqlite("warm").await;
        let a = crate::workspace::create(&db, "Warm A").await.unwrap();
        crate::workspace::create(&db, "Warm B").await.unwrap();
        // Seeded people changed long ago, so what is computed from them is kept.
        let opts = crate::people::seed::SeedOptions { people: 30, events_per_person: 1, seed: 3, conversations: 0 };
        crate::people::seed::seed(&db, &a.id, opts, |_| {}).await.unwrap();
        let index = SqlIndex::new(db.clone());
        assert_eq!(index.pages.len(), 0);

        assert_eq!(warm(&db, &index).await.unwrap(), 2);
        assert_eq!(index.pages.len(), 2, "one first page for each workspace");
        // The People page's first request is answered from it.
        let first = SearchRequest { limit: Some(PEOPLE_PAGE), ..Default::default() };
        let page: Value = serde_json::from_slice(&search_json(&db, &index, &a.id, &first).await.unwrap()).unwrap();
        assert_eq!((page["total"].as_i64(), page["items"].as_array().map(Vec::len)), (Some(30), Some(25)));
        assert_eq!(index.pages.len(), 2, "nothing new was computed");
        crate::db::remove_temp_sqlite(db, &dir).await;
    }

    /// A text's matches are counted from the full-text index alone only
    /// while no other workspace has people: its matches there are not this
    /// workspace's.
    #[tokio::test]
    async fn text_counts_only_this_workspaces_people() {
        let (db, dir) = crate::db::temp_sqlite("text-count").await;
        let a = crate::workspace::create(&db, "Text A").await.unwrap();
        let opts = crate::people::seed::SeedOptions { people: 40, events_per_person: 0, seed: 5, conversations: 0 };
        crate::people::seed::seed(&db, &a.id, opts, |_| {}).await.unwrap();
        let first: String = with_db!(&db, pool => sqlx::query_scalar("SELECT name FROM person WHERE workspace_id = $1 ORDER BY rowid LIMIT 1")
            .bind(&a.id).fetch_one(pool).await.unwrap());
        let word = words(&first).swap_remove(0);
        let truth = |db: Db, ws: String| {
            let word = word.clone();
            async move {
                let n: i64 = with_db!(&db, pool => sqlx::query_scalar(
                    "SELECT COUNT(*) FROM person p WHERE p.workspace_id = $1 AND p.rowid IN \
                     (SELECT rowid FROM person_fts WHERE person_fts MATCH $2)")
                    .bind(ws).bind(format!("\"{word}\"*")).fetch_one(pool).await.unwrap());
                n
            }
        };
        let counted = |ws: String| {
            let (db, word) = (db.clone(), word.clone());
            async move {
                // A new index each time: nothing kept from the count before.
                let index = SqlIndex::shared(db.clone());
                let req = SearchRequest { q: Some(word), limit: Some(1), ..Default::default() };
                let p = Prepared { count_only: true, ..prepare(&db, &ws, &req).await.unwrap() };
                index.search(&p).await.unwrap().total
            }
        };
        let alone = truth(db.clone(), a.id.clone()).await;
        assert!(alone > 0);
        assert_eq!(counted(a.id.clone()).await, alone);

        // The same people in a second workspace: A's count is unchanged.
        let b = crate::workspace::create(&db, "Text B").await.unwrap();
        crate::people::seed::seed(&db, &b.id, opts, |_| {}).await.unwrap();
        assert_eq!(truth(db.clone(), a.id.clone()).await, alone);
        assert_eq!(counted(a.id.clone()).await, alone);
        assert_eq!(counted(b.id.clone()).await, truth(db.clone(), b.id.clone()).await);
        crate::db::remove_temp_sqlite(db, &dir).await;
    }

    /// Every page of a search, through `index`: its totals and ids.
    async fn all_pages(db: &Db, index: &SqlIndex, ws: &str, q: &str, filter: &Value) -> (Vec<i64>, Vec<String>) {
        let mut req = SearchRequest { q: Some(q.to_owned()), filter: Some(filter.clone()), limit: Some(4), ..Default::default() };
        let (mut totals, mut ids) = (Vec::new(), Vec::new());
        loop {
            let p = prepare(db, ws, &req).await.unwrap();
            let page = index.search(&p).await.unwrap();
            totals.push(page.total);
            ids.extend(page.ids);
            match page.next_cursor {
                Some(c) => req.cursor = Some(encode_cursor(&c)),
                None => return (totals, ids),
            }
        }
    }

    /// Text within a filter finds the same people in the same order whether
    /// each text match is tested against the filter or the filter's matches
    /// are kept and intersected, in each workspace, and a person who starts
    /// matching is found at once.
    #[tokio::test]
    async fn text_within_a_kept_filter_finds_the_same_people() {
        let (db, dir) = crate::db::temp_sqlite("text-filter").await;
        let a = crate::workspace::create(&db, "Filter A").await.unwrap();
        let b = crate::workspace::create(&db, "Filter B").await.unwrap();
        let opts = crate::people::seed::SeedOptions { people: 120, events_per_person: 0, seed: 9, conversations: 0 };
        crate::people::seed::seed(&db, &a.id, opts, |_| {}).await.unwrap();
        crate::people::seed::seed(&db, &b.id, opts, |_| {}).await.unwrap();
        // Kept sets for every text, and never.
        let kept = SqlIndex { few_text: 0, ..SqlIndex::new(db.clone()) };
        let tested = SqlIndex { few_text: usize::MAX, ..SqlIndex::new(db.clone()) };
        let (name, country): (String, String) = with_db!(&db, pool => sqlx::query_as(
            "SELECT name, country FROM person WHERE workspace_id = $1 AND country IS NOT NULL ORDER BY rowid LIMIT 1")
            .bind(&a.id).fetch_one(pool).await.unwrap());
        let word = words(&name).swap_remove(0);
        let filters = [
            serde_json::json!({"field": "country", "op": "eq", "value": country}),
            serde_json::json!({"field": "last_seen_at", "op": "within_days", "value": 60}),
            serde_json::json!({"or": [{"field": "country", "op": "eq", "value": country}, {"field": "tags", "op": "exists"}]}),
        ];
        let mut found_some = false;
        for ws in [&a.id, &b.id] {
            for f in &filters {
                let initial: String = word.chars().take(1).collect();
                for q in [word.as_str(), initial.as_str()] {
                    let want = all_pages(&db, &tested, ws, q, f).await;
                    assert_eq!(all_pages(&db, &kept, ws, q, f).await, want, "{q:?} within {f}");
                    found_some |= want.1.len() > 1;
                }
            }
        }
        assert!(found_some, "the cases match nobody");

        // Someone in A with the name, elsewhere, moves to the country.
        let by_country = &filters[0];
        let before = all_pages(&db, &kept, &a.id, &word, by_country).await;
        let mover: String = with_db!(&db, pool => sqlx::query_scalar(
            "SELECT p.id FROM person p WHERE p.workspace_id = $1 AND p.rowid IN (SELECT rowid FROM person_fts WHERE person_fts MATCH $2) \
             AND COALESCE(p.country, '') <> $3 LIMIT 1")
            .bind(&a.id).bind(format!("\"{word}\"*")).bind(&country).fetch_one(pool).await.unwrap());
        async {
            crate::with_tx!(&db, tx => sqlx::query("UPDATE person SET country = $1, updated_at = $2 WHERE id = $3")
                .bind(&country).bind(now_ms()).bind(&mover).execute(&mut *tx).await?.rows_affected());
            Ok::<(), Error>(())
        }
        .await
        .unwrap();
        let after = all_pages(&db, &kept, &a.id, &word, by_country).await;
        assert_eq!(after.0[0], before.0[0] + 1);
        assert!(after.1.contains(&mover) && !before.1.contains(&mover));
        assert_eq!(after, all_pages(&db, &tested, &a.id, &word, by_country).await);
        crate::db::remove_temp_sqlite(db, &dir).await;
    }

    #[test]
    fn free_text_is_split_into_words() {
        assert_eq!(words("Ann  O'Neil"), vec!["ann", "o", "neil"]);
        assert_eq!(words("ann@example.com"), vec!["ann", "example", "com"]);
        assert_eq!(words("\"*) OR 1=1 --"), vec!["or", "1", "1"]);
        assert!(words("  ").is_empty());
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = serde_json::json!({"k": 5, "id": "x"});
        assert_eq!(decode_cursor("cursor", &encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("cursor", "!!").is_err());
    }
}
