//! Filters as SQL: one boolean expression over `person p`, for SQLite and
//! PostgreSQL.
//!
//! Every expression produced here is two-valued (never NULL), so `NOT` of it
//! is exactly "everyone else": people with no email are in `email neq x` and
//! in `not email eq x` alike. Nullable columns are guarded with `IS NOT NULL`.
//!
//! Values are always bound; the only literals in the SQL text are numbers this
//! module computed itself (polygon edges, radius boxes, `in` lists of numbers),
//! which keeps large polygons and lists from using thousands of placeholders.
//!
//! What is stored how (the writers must keep to it for matches to be right):
//! - `person.{name,email,country,city}` and `company.name` as given; matching
//!   folds case with the database's `lower()` on both sides. SQLite's `lower()`
//!   folds ASCII only, so there "É" and "é" differ.
//! - `person.phone` as given, and matched as given: phones have no letters,
//!   and the `(workspace_id, phone)` index is on the raw column.
//! - `person_attribute.str_value` and `person_tag.tag` already lower-cased with
//!   Rust's `str::to_lowercase` (tags also trimmed); values are folded the
//!   same way here, so those comparisons need no function and use the indexes.

use crate::util::like_escape;
use std::fmt::Write as _;

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

use super::{
    BoolField, BoolTest, Cmp, Cond, DAY_MS, DateField, DateTest, EventPred, Expr, Filter, Folded, GeoTest, NumberTest, TagTest, TextField,
    TextMatch, TextShape, TextTest, fold,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value for one placeholder, typed the way PostgreSQL needs it: `Int` for
/// BIGINT columns (times, counts), `Float` for DOUBLE PRECISION ones.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Float(f64),
    Int(i64),
    Bool(bool),
}

/// A compiled filter: `sql` uses placeholders `$first_param`, `$first_param + 1`,
/// … for `binds`, in order, besides the caller's `$ws_param`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    /// Binds `binds` onto `query`, which must already have its own binds for
    /// `$1 … $first_param - 1` (including the workspace id).
    ///
    /// ```ignore
    /// let f = filter::to_sql(&filter, Dialect::Sqlite, 2, 1, now_ms());
    /// let text = format!("SELECT p.id FROM person p WHERE p.workspace_id = $1 AND {}", f.sql);
    /// let rows = f.bind_to(sqlx::query(sqlx::AssertSqlSafe(text)).bind(ws)).fetch_all(pool).await?;
    /// ```
    pub fn bind_to<'q, DB>(&self, mut query: Query<'q, DB, <DB as Database>::Arguments>) -> Query<'q, DB, <DB as Database>::Arguments>
    where
        DB: Database,
        String: for<'e> Encode<'e, DB> + Type<DB>,
        f64: for<'e> Encode<'e, DB> + Type<DB>,
        i64: for<'e> Encode<'e, DB> + Type<DB>,
        bool: for<'e> Encode<'e, DB> + Type<DB>,
    {
        for bind in &self.binds {
            query = match bind {
                Bind::Text(s) => query.bind(s.clone()),
                Bind::Float(x) => query.bind(*x),
                Bind::Int(n) => query.bind(*n),
                Bind::Bool(b) => query.bind(*b),
            };
        }
        query
    }
}

/// Compiles `filter` to a boolean SQL expression over the person table
/// aliased `p`. Placeholders are numbered from `first_param`; `$ws_param` must
/// already hold the workspace id, which every subquery uses for tenant
/// isolation and to reach its `(workspace_id, …)` index. The caller's own
/// query should also test `p.workspace_id`. `now_ms` anchors `within_days`.
pub fn to_sql(filter: &Filter, dialect: Dialect, first_param: usize, ws_param: usize, now_ms: i64) -> Sql {
    compile(filter, dialect, first_param, ws_param, now_ms, false)
}

/// [`to_sql`] for testing people one at a time, as when walking them in a
/// sort index's order until a page is full: a tag, attribute or event count
/// is looked up among the person's own rows (`EXISTS … person_id = p.id`),
/// where [`to_sql`] lists everyone who has it first (`p.id IN (…)`), which a
/// walk would wait for before its first row (tens of milliseconds for a tag
/// on 140,000 people at a million). Same meaning, same placeholders.
pub fn to_sql_probing(filter: &Filter, dialect: Dialect, first_param: usize, ws_param: usize, now_ms: i64) -> Sql {
    compile(filter, dialect, first_param, ws_param, now_ms, true)
}

/// `SELECT COUNT(*)` of the people matching `filter` from one index, without
/// reading any person, where the filter is a single tag: `person_tag` holds
/// one row per person and tag, deleted with its person, so counting the
/// tag's rows counts its people. Through `person`, each tagged person was
/// looked up in the person index (at a million people, 140,000 lookups and
/// about half a second against 20 ms). `None`: count through `person`.
pub fn count_sql(filter: &Filter, dialect: Dialect, first_param: usize, ws_param: usize) -> Option<Sql> {
    let Folded::Expr(Expr::Cond(Cond::Tags(TagTest::Eq(tag) | TagTest::Contains(tag)))) = fold(&filter.root) else { return None };
    let mut c = Compiler { dialect, next: first_param, ws: format!("${ws_param}"), now_ms: 0, binds: Vec::new(), probe: false };
    let p = c.text(normal_tag(tag));
    Some(Sql { sql: format!("SELECT COUNT(*) FROM person_tag WHERE workspace_id = ${ws_param} AND tag = {p}"), binds: c.binds })
}

fn compile(filter: &Filter, dialect: Dialect, first_param: usize, ws_param: usize, now_ms: i64, probe: bool) -> Sql {
    let mut c = Compiler { dialect, next: first_param, ws: format!("${ws_param}"), now_ms, binds: Vec::new(), probe };
    let sql = match fold(&filter.root) {
        Folded::Const(b) => constant(b).to_owned(),
        Folded::Expr(e) => c.expr(&e),
    };
    Sql { sql, binds: c.binds }
}

fn constant(b: bool) -> &'static str {
    if b { "TRUE" } else { "FALSE" }
}

/// How a text column and its values are brought to one case.
#[derive(Clone, Copy)]
enum Fold {
    /// `lower()` on both sides, in the database.
    Database,
    /// The column holds `to_lowercase()` text; the value is folded in Rust.
    Stored,
    /// Compared as given.
    Exact,
}

struct Compiler {
    dialect: Dialect,
    next: usize,
    ws: String,
    now_ms: i64,
    binds: Vec<Bind>,
    /// Sets are tested per person (see [`to_sql_probing`]).
    probe: bool,
}

impl Compiler {
    /// `p` has a row in `table` (keyed by person first) meeting `cond`.
    fn member(&self, table: &str, cond: Option<&str>) -> String {
        let ws = &self.ws;
        let and = cond.map(|c| format!(" AND {c}")).unwrap_or_default();
        if self.probe {
            format!("EXISTS (SELECT 1 FROM {table} WHERE person_id = p.id AND workspace_id = {ws}{and})")
        } else {
            format!("p.id IN (SELECT person_id FROM {table} WHERE workspace_id = {ws}{and})")
        }
    }

    fn bind(&mut self, value: Bind) -> String {
        let placeholder = format!("${}", self.next);
        self.next += 1;
        self.binds.push(value);
        placeholder
    }

    fn text(&mut self, s: String) -> String {
        self.bind(Bind::Text(s))
    }

    fn int(&mut self, n: i64) -> String {
        self.bind(Bind::Int(n))
    }

    fn float(&mut self, x: f64) -> String {
        self.bind(Bind::Float(x))
    }

    fn since(&self, days: i64) -> i64 {
        self.now_ms.saturating_sub(days.saturating_mul(DAY_MS))
    }

    fn expr(&mut self, e: &Expr) -> String {
        match e {
            Expr::And(items) => self.group(items, " AND "),
            Expr::Or(items) => self.group(items, " OR "),
            Expr::Not(inner) => format!("(NOT {})", self.expr(inner)),
            Expr::Cond(cond) => self.cond(cond),
            Expr::Event(event) => self.event(event),
        }
    }

    fn group(&mut self, items: &[Expr], sep: &str) -> String {
        let parts: Vec<String> = items.iter().map(|e| self.expr(e)).collect();
        balanced(parts, sep)
    }

    fn cond(&mut self, cond: &Cond) -> String {
        match cond {
            Cond::Text(field, test) => match field {
                TextField::Name => self.person_text("p.name", Fold::Database, test),
                TextField::Email => self.person_text("p.email", Fold::Database, test),
                TextField::Phone => self.person_text("p.phone", Fold::Exact, test),
                TextField::Country => self.person_text("p.country", Fold::Database, test),
                TextField::City => self.person_text("p.city", Fold::Database, test),
                TextField::Company => self.company(test),
                TextField::Attr(name) => self.attr_text(name, test),
            },
            Cond::Tags(test) => self.tags(test),
            Cond::Number(name, test) => self.attr_number(name, test),
            Cond::Bool(field, test) => match field {
                BoolField::Online => self.online(test),
                BoolField::Manager => self.manager(test),
                BoolField::Attr(name) => self.attr_bool(name, test),
            },
            Cond::Date(field, test) => match field {
                DateField::CreatedAt => self.person_date("p.created_at", test),
                DateField::LastSeenAt => self.person_date("p.last_seen_at", test),
                DateField::Attr(name) => self.attr_date(name, test),
            },
            Cond::Location(test) => self.location(test),
        }
    }

    fn person_text(&mut self, col: &str, fold: Fold, test: &TextTest) -> String {
        // Tested through the folded column when matching folds: `lower(x)` is
        // NULL exactly when x is, and empty exactly when x is, and the
        // `(workspace_id, lower(col))` index holds it where it does not hold
        // the column, so the index answers alone. Testing the column read
        // every match's row (10,000 scattered reads for a country at a
        // million people).
        let guard = match fold {
            Fold::Database => format!("lower({col})"),
            Fold::Stored | Fold::Exact => col.to_owned(),
        };
        match test.shape() {
            TextShape::Exists => format!("({guard} IS NOT NULL AND {guard} <> '')"),
            TextShape::Is(m) => format!("({guard} IS NOT NULL AND {})", self.text_match(col, fold, &m)),
            TextShape::IsNot(m) => format!("(NOT ({guard} IS NOT NULL AND {}))", self.text_match(col, fold, &m)),
        }
    }

    /// `col` matches, assuming it is not NULL.
    fn text_match(&mut self, col: &str, fold: Fold, m: &TextMatch) -> String {
        let lhs = match fold {
            Fold::Database => format!("lower({col})"),
            Fold::Stored | Fold::Exact => col.to_owned(),
        };
        let value = |s: &str| match fold {
            Fold::Stored => s.to_lowercase(),
            Fold::Database | Fold::Exact => s.to_owned(),
        };
        let rhs = |placeholder: String| match fold {
            Fold::Database => format!("lower({placeholder})"),
            Fold::Stored | Fold::Exact => placeholder,
        };
        match m {
            TextMatch::Eq(v) => {
                let p = self.text(value(v));
                format!("{lhs} = {}", rhs(p))
            }
            TextMatch::Contains(v) => {
                let p = self.text(format!("%{}%", like_escape(&value(v))));
                format!("{lhs} LIKE {} ESCAPE '\\'", rhs(p))
            }
            TextMatch::StartsWith(v) => match self.dialect {
                // A range on the folded column uses the (workspace_id, lower(col))
                // indexes, which a LIKE on an expression never does in SQLite.
                // SQLite's lower() folds exactly ASCII, hence the bounds.
                Dialect::Sqlite => {
                    let low = match fold {
                        Fold::Database => v.to_ascii_lowercase(),
                        Fold::Stored => v.to_lowercase(),
                        Fold::Exact => (*v).to_owned(),
                    };
                    let high = prefix_end(&low);
                    let low = self.text(low);
                    match high {
                        Some(high) => {
                            let high = self.text(high);
                            format!("{lhs} >= {low} AND {lhs} < {high}")
                        }
                        None => format!("{lhs} >= {low}"),
                    }
                }
                // PostgreSQL orders text by collation, not bytes, so a range
                // would be wrong there; LIKE is exact.
                Dialect::Postgres => {
                    let p = self.text(format!("{}%", like_escape(&value(v))));
                    format!("{lhs} LIKE {} ESCAPE '\\'", rhs(p))
                }
            },
            TextMatch::In(values) => {
                let list = self.text_list(values.iter().map(|v| value(v)).collect());
                format!("{lhs} IN (SELECT {} FROM {list})", rhs("value".to_owned()))
            }
        }
    }

    /// A table of the given strings with one column, `value`, bound as one
    /// JSON array: an `in` of 1,000 values costs one placeholder, not 1,000.
    fn text_list(&mut self, values: Vec<String>) -> String {
        let p = self.text(serde_json::Value::from(values).to_string());
        match self.dialect {
            Dialect::Sqlite => format!("json_each({p})"),
            Dialect::Postgres => format!("jsonb_array_elements_text(CAST({p} AS jsonb))"),
        }
    }

    fn company(&mut self, test: &TextTest) -> String {
        let ws = self.ws.clone();
        let has = |c: &mut Self, m: &TextMatch| {
            let name = c.text_match("name", Fold::Database, m);
            format!("p.company_id IS NOT NULL AND p.company_id IN (SELECT id FROM company WHERE workspace_id = {ws} AND {name})")
        };
        match test.shape() {
            TextShape::Exists => "(p.company_id IS NOT NULL)".to_owned(),
            TextShape::Is(m) => format!("({})", has(self, &m)),
            TextShape::IsNot(m) => format!("(NOT ({}))", has(self, &m)),
        }
    }

    fn tags(&mut self, test: &TagTest) -> String {
        match test {
            TagTest::Exists => format!("({})", self.member("person_tag", None)),
            TagTest::Eq(tag) | TagTest::Contains(tag) => {
                let p = self.text(normal_tag(tag));
                format!("({})", self.member("person_tag", Some(&format!("tag = {p}"))))
            }
            TagTest::Neq(tag) => {
                let p = self.text(normal_tag(tag));
                format!("(NOT ({}))", self.member("person_tag", Some(&format!("tag = {p}"))))
            }
            TagTest::In(tags) => {
                let list = self.text_list(tags.iter().map(|t| normal_tag(t)).collect());
                format!("({})", self.member("person_tag", Some(&format!("tag IN (SELECT value FROM {list})"))))
            }
        }
    }

    /// `p` is among the people whose attribute (named by the bound `name`)
    /// satisfies `pred` over `str_value` / `num_value`.
    fn attr(&self, name: &str, pred: &str) -> String {
        self.member("person_attribute", Some(&format!("name = {name} AND {pred}")))
    }

    fn attr_text(&mut self, name: &str, test: &TextTest) -> String {
        let n = self.text(name.to_owned());
        match test.shape() {
            TextShape::Exists => format!("({})", self.attr(&n, "str_value IS NOT NULL AND str_value <> ''")),
            TextShape::Is(m) => {
                let pred = self.text_match("str_value", Fold::Stored, &m);
                format!("({})", self.attr(&n, &pred))
            }
            TextShape::IsNot(m) => {
                let pred = self.text_match("str_value", Fold::Stored, &m);
                format!("(NOT ({}))", self.attr(&n, &pred))
            }
        }
    }

    fn attr_number(&mut self, name: &str, test: &NumberTest) -> String {
        let n = self.text(name.to_owned());
        let (pred, negate) = match test {
            NumberTest::Eq(x) => (format!("num_value = {}", self.float(*x)), false),
            NumberTest::Neq(x) => (format!("num_value = {}", self.float(*x)), true),
            NumberTest::Cmp(cmp, x) => (format!("num_value {} {}", cmp.symbol(), self.float(*x)), false),
            NumberTest::Between(a, b) => {
                let (a, b) = (self.float(*a), self.float(*b));
                (format!("num_value >= {a} AND num_value <= {b}"), false)
            }
            NumberTest::In(xs) => {
                let list: Vec<String> = xs.iter().map(|x| number(*x)).collect();
                (format!("num_value IN ({})", list.join(", ")), false)
            }
            NumberTest::Exists => ("num_value IS NOT NULL".to_owned(), false),
        };
        let sub = self.attr(&n, &pred);
        if negate { format!("(NOT ({sub}))") } else { format!("({sub})") }
    }

    fn attr_bool(&mut self, name: &str, test: &BoolTest) -> String {
        let n = self.text(name.to_owned());
        let as_number = |b: bool| if b { 1.0 } else { 0.0 };
        match test {
            BoolTest::Eq(b) => {
                let pred = format!("num_value = {}", self.float(as_number(*b)));
                format!("({})", self.attr(&n, &pred))
            }
            BoolTest::Neq(b) => {
                let pred = format!("num_value = {}", self.float(as_number(*b)));
                format!("(NOT ({}))", self.attr(&n, &pred))
            }
            BoolTest::Exists => format!("({})", self.attr(&n, "num_value IS NOT NULL")),
        }
    }

    fn attr_date(&mut self, name: &str, test: &DateTest) -> String {
        let n = self.text(name.to_owned());
        // Dates sit in the DOUBLE num_value column, so they are bound as floats.
        let ms = |c: &mut Self, ms: i64| c.float(ms as f64);
        let pred = match test {
            DateTest::Cmp(cmp, t) => format!("num_value {} {}", cmp.symbol(), ms(self, *t)),
            DateTest::Between(a, b) => {
                let (a, b) = (ms(self, *a), ms(self, *b));
                format!("num_value >= {a} AND num_value <= {b}")
            }
            DateTest::WithinDays(d) => {
                let t = self.since(*d);
                format!("num_value >= {}", ms(self, t))
            }
            DateTest::Exists => "num_value IS NOT NULL".to_owned(),
        };
        format!("({})", self.attr(&n, &pred))
    }

    /// `last_seen_at` is compared through `COALESCE(…, 0)`, the expression its
    /// index is built on; the `IS NOT NULL` guard keeps never-seen people out
    /// of `lt`. `created_at` is never NULL, and the guard costs nothing there.
    fn person_date(&mut self, col: &str, test: &DateTest) -> String {
        let seen = col == "p.last_seen_at";
        let lhs = if seen { format!("COALESCE({col}, 0)") } else { col.to_owned() };
        // A lower bound above zero already leaves out the never seen, whose
        // key is 0; without the column's own test, `person_seen` (which holds
        // the COALESCE, not the column) answers alone, where the test read
        // every match's row (76,000 of them at a million people for "seen
        // in 30 days" and a plan).
        let above_zero = match test {
            DateTest::Cmp(Cmp::Gt, t) => *t >= 0,
            DateTest::Cmp(Cmp::Gte, t) | DateTest::Between(t, _) => *t > 0,
            DateTest::WithinDays(d) => self.since(*d) > 0,
            DateTest::Cmp(Cmp::Lt | Cmp::Lte, _) | DateTest::Exists => false,
        };
        let pred = match test {
            DateTest::Exists => return format!("({col} IS NOT NULL)"),
            DateTest::Cmp(cmp, t) => format!("{lhs} {} {}", cmp.symbol(), self.int(*t)),
            DateTest::Between(a, b) => {
                let (a, b) = (self.int(*a), self.int(*b));
                format!("{lhs} >= {a} AND {lhs} <= {b}")
            }
            DateTest::WithinDays(d) => {
                let t = self.since(*d);
                format!("{lhs} >= {}", self.int(t))
            }
        };
        if seen && above_zero { format!("({pred})") } else { format!("({col} IS NOT NULL AND {pred})") }
    }

    fn online(&mut self, test: &BoolTest) -> String {
        let online = format!("p.id IN (SELECT person_id FROM presence WHERE workspace_id = {} AND connections > 0)", self.ws);
        match test {
            BoolTest::Eq(true) | BoolTest::Neq(false) => format!("({online})"),
            BoolTest::Eq(false) | BoolTest::Neq(true) => format!("(NOT ({online}))"),
            // Everyone is either online or not.
            BoolTest::Exists => constant(true).to_owned(),
        }
    }

    fn manager(&mut self, test: &BoolTest) -> String {
        match test {
            BoolTest::Eq(b) => format!("(p.manager = {})", self.bind(Bind::Bool(*b))),
            BoolTest::Neq(b) => format!("(p.manager <> {})", self.bind(Bind::Bool(*b))),
            // The column is NOT NULL.
            BoolTest::Exists => constant(true).to_owned(),
        }
    }

    fn location(&mut self, test: &GeoTest) -> String {
        match test {
            GeoTest::Exists => "(p.lat IS NOT NULL AND p.lon IS NOT NULL)".to_owned(),
            GeoTest::Polygon(points) => polygon(points),
            GeoTest::Radius { lat, lon, km } => radius(*lat, *lon, *km),
        }
    }

    /// Without a window, `event_summary` already holds each person's count.
    /// With one, the events are counted; the `(workspace_id, name, at,
    /// person_id)` index covers that scan; probing, a person's own events
    /// are counted through `(person_id, at)`. "At most N" includes people who
    /// never did it, so it is written as "not more than N".
    fn event(&mut self, e: &EventPred) -> String {
        let ws = self.ws.clone();
        let name = self.text(e.name.clone());
        let since = e.within_days.map(|days| self.int(self.since(days)));
        // The count's bounds, and whether the people are those outside them.
        let (bounds, outside) = if e.min >= 1 {
            let mut b = vec![(">=", self.int(e.min))];
            b.extend(e.max.map(|max| ("<=", self.int(max))));
            (b, false)
        } else if let Some(max) = e.max {
            (vec![(">", self.int(max))], true)
        } else {
            // At least zero times: everyone (folded away before getting here).
            return constant(true).to_owned();
        };
        let within = |count: &str| bounds.iter().map(|(op, n)| format!("{count} {op} {n}")).collect::<Vec<_>>().join(" AND ");
        let people = match (since, self.probe) {
            (None, _) => self.member("event_summary", Some(&format!("name = {name} AND {}", within("count")))),
            (Some(since), false) => format!(
                "p.id IN (SELECT person_id FROM event WHERE workspace_id = {ws} AND name = {name} AND at >= {since} \
                 GROUP BY person_id HAVING {})",
                within("COUNT(*)")
            ),
            (Some(since), true) => within(&format!(
                "(SELECT COUNT(*) FROM event WHERE person_id = p.id AND workspace_id = {ws} AND name = {name} AND at >= {since})"
            )),
        };
        if outside { format!("(NOT ({people}))") } else { format!("({people})") }
    }
}

/// Ray casting: a point is inside when a ray from it crosses the polygon's
/// edges an odd number of times. The ray runs towards lower longitudes; an
/// edge from (lat_i, lon_i) to (lat_j, lon_j) is crossed when the point's
/// latitude is in [min, max) of the edge's and the point lies east of the
/// edge there. Everything edge-specific is worked out here, so the SQL is
/// plain arithmetic on p.lat and p.lon, valid on both backends. The bounding
/// box in front lets the (workspace_id, lat, lon) index narrow the rows first.
///
/// Longitudes are treated as a plane: a polygon across the antimeridian is
/// not supported.
fn polygon(points: &[[f64; 2]]) -> String {
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for [lat, lon] in points {
        min_lat = min_lat.min(*lat);
        max_lat = max_lat.max(*lat);
        min_lon = min_lon.min(*lon);
        max_lon = max_lon.max(*lon);
    }
    let mut crossings = Vec::with_capacity(points.len());
    for (i, [lat_i, lon_i]) in points.iter().enumerate() {
        let [lat_j, lon_j] = points[(i + 1) % points.len()];
        // Horizontal edges are never crossed by a horizontal ray; a cut-off
        // well above zero also keeps the slope finite.
        if (lat_j - lat_i).abs() < 1e-12 {
            continue;
        }
        let slope = (lon_j - lon_i) / (lat_j - lat_i);
        crossings.push(format!(
            "CASE WHEN p.lat >= {} AND p.lat < {} AND p.lon < {} * (p.lat - {}) + {} THEN 1 ELSE 0 END",
            number(lat_i.min(lat_j)),
            number(lat_i.max(lat_j)),
            number(slope),
            number(*lat_i),
            number(*lon_i),
        ));
    }
    if crossings.is_empty() {
        // All points on one latitude: no area, nobody inside.
        return constant(false).to_owned();
    }
    format!(
        "(p.lat IS NOT NULL AND p.lon IS NOT NULL AND p.lat BETWEEN {} AND {} AND p.lon BETWEEN {} AND {} AND {} % 2 = 1)",
        number(min_lat),
        number(max_lat),
        number(min_lon),
        number(max_lon),
        balanced(crossings, " + "),
    )
}

/// `parts` joined by `sep` in parentheses, nested in chunks: SQLite parses
/// `a AND b AND c …` into a tree as deep as the list is long and refuses
/// trees deeper than 1000, which an inlined segment or a long polygon sum
/// could otherwise reach.
fn balanced(parts: Vec<String>, sep: &str) -> String {
    const CHUNK: usize = 16;
    if parts.len() <= CHUNK {
        return format!("({})", parts.join(sep));
    }
    let chunks = parts.chunks(CHUNK).map(|chunk| balanced(chunk.to_vec(), sep)).collect();
    balanced(chunks, sep)
}

/// Kilometres per degree of latitude (and of longitude at the equator).
const KM_PER_DEGREE: f64 = 111.32;

/// Within `km` of (lat, lon), on a local flat projection: degrees of longitude
/// are shrunk by cos(lat) of the centre, computed here since SQLite may lack
/// trigonometry. Close to exact for the radii people use (tens to hundreds of
/// km), looser near the poles. A box around the centre comes first for the
/// index; where it crosses the antimeridian it wraps, and the distance test
/// also tries the centre shifted by ±360°.
fn radius(lat: f64, lon: f64, km: f64) -> String {
    let r = km / KM_PER_DEGREE;
    let cos = lat.to_radians().cos();
    let lon_span = if cos > 1e-9 { r / cos } else { f64::INFINITY };
    let lat_box = format!("p.lat BETWEEN {} AND {}", number(lat - r), number(lat + r));
    let (lon_box, wraps) = if lon_span >= 180.0 {
        (None, true)
    } else if lon - lon_span < -180.0 {
        (Some(format!("(p.lon >= {} OR p.lon <= {})", number(lon - lon_span + 360.0), number(lon + lon_span))), true)
    } else if lon + lon_span > 180.0 {
        (Some(format!("(p.lon >= {} OR p.lon <= {})", number(lon - lon_span), number(lon + lon_span - 360.0))), true)
    } else {
        (Some(format!("p.lon BETWEEN {} AND {}", number(lon - lon_span), number(lon + lon_span))), false)
    };
    let distance = |centre: f64| {
        format!(
            "(p.lat - {lat}) * (p.lat - {lat}) + (p.lon - {lon}) * (p.lon - {lon}) * {cos2} <= {r2}",
            lat = number(lat),
            lon = number(centre),
            cos2 = number(cos * cos),
            r2 = number(r * r),
        )
    };
    let distance =
        if wraps { format!("({} OR {} OR {})", distance(lon), distance(lon - 360.0), distance(lon + 360.0)) } else { distance(lon) };
    let mut sql = format!("(p.lat IS NOT NULL AND p.lon IS NOT NULL AND {lat_box}");
    if let Some(lon_box) = lon_box {
        let _ = write!(sql, " AND {lon_box}");
    }
    let _ = write!(sql, " AND {distance})");
    sql
}

/// A number as a SQL literal. Negative ones are parenthesised so that
/// `x - -1` can never become the comment `x --1`.
fn number(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if x < 0.0 {
        format!("({x})")
    } else {
        format!("{x}")
    }
}

fn normal_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

/// The least string greater than every string starting with `prefix`, in
/// code point (= UTF-8 byte) order; `None` when there is none (all U+10FFFF).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};
    use sqlx::postgres::PgPoolOptions;
    use sqlx::{AssertSqlSafe, Connection, Postgres, Row, SqliteConnection, Transaction};

    use super::*;
    use crate::filter::parse_date;
    use crate::filter::tests::schema;

    const NOW: i64 = 1_750_000_000_000;
    const DAY: i64 = 86_400_000;

    fn ms(date: &str) -> i64 {
        parse_date(date).unwrap()
    }

    enum Attr {
        S(&'static str),
        N(f64),
        B(bool),
        D(i64),
    }

    #[derive(Default)]
    struct Person {
        id: &'static str,
        ws: &'static str,
        name: Option<&'static str>,
        email: Option<&'static str>,
        phone: Option<&'static str>,
        company: Option<&'static str>,
        manager: bool,
        country: Option<&'static str>,
        city: Option<&'static str>,
        geo: Option<(f64, f64)>,
        tags: &'static [&'static str],
        created: i64,
        seen: Option<i64>,
        attrs: Vec<(&'static str, Attr)>,
        events: Vec<(&'static str, Vec<i64>)>,
        connections: Option<i64>,
    }

    /// Workspace w1 holds a to h; z is a near copy of a in w2 that must never match.
    fn people() -> Vec<Person> {
        vec![
            Person {
                id: "a",
                ws: "w1",
                name: Some("Alice Martin"),
                email: Some("Alice@Example.com"),
                phone: Some("+3361234"),
                company: Some("c1"),
                manager: true,
                country: Some("France"),
                city: Some("Paris"),
                geo: Some((48.8566, 2.3522)),
                tags: &["vip", "beta"],
                created: ms("2024-01-01"),
                seen: Some(NOW - DAY),
                attrs: vec![
                    ("plan", Attr::S("Pro")),
                    ("code", Attr::S("a_b")),
                    ("score", Attr::N(10.0)),
                    ("vip", Attr::B(true)),
                    ("renewal", Attr::D(ms("2024-06-01"))),
                ],
                events: vec![("purchase", vec![NOW - DAY, NOW - 5 * DAY, NOW - 40 * DAY])],
                connections: Some(2),
            },
            Person {
                id: "b",
                ws: "w1",
                name: Some("Bob"),
                email: Some("bob_smith@example.org"),
                country: Some("Germany"),
                city: Some("Berlin"),
                geo: Some((52.52, 13.405)),
                tags: &["beta"],
                created: ms("2024-02-01"),
                attrs: vec![
                    ("plan", Attr::S("free")),
                    ("code", Attr::S("axb")),
                    ("score", Attr::N(3.5)),
                    ("vip", Attr::B(false)),
                    ("renewal", Attr::D(ms("2025-01-01"))),
                ],
                events: vec![("purchase", vec![NOW - 100 * DAY]), ("page:view", vec![NOW - 3 * DAY])],
                connections: Some(0),
                ..Person::default()
            },
            Person {
                id: "c",
                ws: "w1",
                name: Some("Carla 100% Real"),
                city: Some(""),
                created: ms("2024-03-01"),
                seen: Some(NOW - 10 * DAY),
                attrs: vec![("code", Attr::S("50%off")), ("score", Attr::N(-2.0))],
                ..Person::default()
            },
            Person {
                id: "d",
                ws: "w1",
                name: Some("dave"),
                email: Some("DAVE@acme.io"),
                phone: Some("+4930"),
                company: Some("c1"),
                country: Some("france"),
                city: Some("Lyon"),
                geo: Some((45.764, 4.8357)),
                tags: &["vip"],
                created: ms("2023-06-01"),
                seen: Some(NOW - 40 * DAY),
                attrs: vec![
                    ("plan", Attr::S("Enterprise")),
                    ("code", Attr::S("50 off")),
                    ("vip", Attr::B(true)),
                    ("renewal", Attr::D(NOW - 2 * DAY)),
                ],
                events: vec![("purchase", (1..=5).map(|d| NOW - d * DAY).collect())],
                ..Person::default()
            },
            Person {
                id: "e",
                ws: "w1",
                name: Some("Émile Zola"),
                email: Some("emile@example.com"),
                company: Some("c2"),
                country: Some("FRANCE"),
                city: Some("Marseille"),
                created: ms("2022-01-01"),
                ..Person::default()
            },
            // In the notch of the U-shaped polygon below, in its right arm, and
            // just east of the antimeridian.
            Person { id: "f", ws: "w1", geo: Some((48.0, 4.0)), created: ms("2025-01-01"), ..Person::default() },
            Person { id: "g", ws: "w1", geo: Some((47.0, 7.0)), created: ms("2025-02-01"), ..Person::default() },
            Person { id: "h", ws: "w1", geo: Some((0.0, 179.9)), created: ms("2025-03-01"), ..Person::default() },
            Person {
                id: "z",
                ws: "w2",
                name: Some("Alice Martin"),
                email: Some("alice@example.com"),
                phone: Some("+3361234"),
                company: Some("c3"),
                manager: true,
                country: Some("France"),
                city: Some("Paris"),
                geo: Some((48.8566, 2.3522)),
                tags: &["vip", "beta"],
                created: ms("2024-01-01"),
                seen: Some(NOW - DAY),
                attrs: vec![("plan", Attr::S("pro")), ("score", Attr::N(10.0)), ("vip", Attr::B(true))],
                events: vec![("purchase", vec![NOW - DAY; 3]), ("page:view", vec![NOW - DAY])],
                connections: Some(1),
            },
        ]
    }

    fn literal(s: Option<&str>) -> String {
        s.map_or("NULL".to_owned(), |s| format!("'{}'", s.replace('\'', "''")))
    }

    /// The tables the filter reads, shaped as in the migrations, with the
    /// indexes the SQL is meant to use, and the people above.
    fn fixture(temp: bool) -> Vec<String> {
        let t = if temp { "TEMP " } else { "" };
        let mut sql = vec![
            format!("CREATE {t}TABLE company (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL)"),
            format!(
                "CREATE {t}TABLE person (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, external_id TEXT, email TEXT, name TEXT, \
                 phone TEXT, phone_kind TEXT, company_id TEXT, manager BOOLEAN NOT NULL DEFAULT FALSE, country TEXT, city TEXT, \
                 lat DOUBLE PRECISION, lon DOUBLE PRECISION, tags TEXT NOT NULL DEFAULT '[]', unsubscribed BOOLEAN NOT NULL DEFAULT FALSE, \
                 created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL DEFAULT 0, last_seen_at BIGINT, attributes TEXT NOT NULL DEFAULT '{{}}')"
            ),
            format!(
                "CREATE {t}TABLE person_attribute (person_id TEXT NOT NULL, workspace_id TEXT NOT NULL, name TEXT NOT NULL, \
                 str_value TEXT, num_value DOUBLE PRECISION, PRIMARY KEY (person_id, name))"
            ),
            format!(
                "CREATE {t}TABLE person_tag (person_id TEXT NOT NULL, workspace_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (person_id, tag))"
            ),
            format!(
                "CREATE {t}TABLE event (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, person_id TEXT NOT NULL, name TEXT NOT NULL, \
                 data TEXT NOT NULL DEFAULT '{{}}', at BIGINT NOT NULL)"
            ),
            format!(
                "CREATE {t}TABLE event_summary (person_id TEXT NOT NULL, workspace_id TEXT NOT NULL, name TEXT NOT NULL, count BIGINT NOT NULL, \
                 first_at BIGINT NOT NULL, last_at BIGINT NOT NULL, PRIMARY KEY (workspace_id, name, person_id)){}",
                if t.is_empty() { " WITHOUT ROWID" } else { "" }
            ),
            format!(
                "CREATE {t}TABLE presence (node_id TEXT NOT NULL, person_id TEXT NOT NULL, workspace_id TEXT NOT NULL, connections BIGINT NOT NULL, \
                 PRIMARY KEY (node_id, person_id))"
            ),
            "CREATE UNIQUE INDEX company_name ON company (workspace_id, lower(name))".into(),
            "CREATE INDEX person_company ON person (company_id)".into(),
            "CREATE INDEX person_country ON person (workspace_id, lower(country))".into(),
            "CREATE INDEX person_city ON person (workspace_id, lower(city))".into(),
            "CREATE INDEX person_email_ci ON person (workspace_id, lower(email))".into(),
            "CREATE INDEX person_phone ON person (workspace_id, phone)".into(),
            "CREATE INDEX person_created ON person (workspace_id, created_at, id)".into(),
            "CREATE INDEX person_seen ON person (workspace_id, COALESCE(last_seen_at, 0), id)".into(),
            "CREATE INDEX person_geo ON person (workspace_id, lat, lon)".into(),
            "CREATE INDEX person_attribute_str ON person_attribute (workspace_id, name, str_value, person_id)".into(),
            "CREATE INDEX person_attribute_num ON person_attribute (workspace_id, name, num_value, person_id)".into(),
            "CREATE INDEX person_tag_tag ON person_tag (workspace_id, tag, person_id)".into(),
            "CREATE INDEX person_workspace_id ON person (workspace_id, id)".into(),
            "CREATE INDEX event_name ON event (workspace_id, name, at, person_id)".into(),
            "INSERT INTO company (id, workspace_id, name) VALUES ('c1', 'w1', 'Acme'), ('c2', 'w1', 'Globex'), ('c3', 'w2', 'Acme')".into(),
        ];
        for p in people() {
            let (lat, lon) = p.geo.map_or(("NULL".to_owned(), "NULL".to_owned()), |(lat, lon)| (lat.to_string(), lon.to_string()));
            sql.push(format!(
                "INSERT INTO person (id, workspace_id, name, email, phone, company_id, manager, country, city, lat, lon, created_at, last_seen_at) \
                 VALUES ('{}', '{}', {}, {}, {}, {}, {}, {}, {}, {lat}, {lon}, {}, {})",
                p.id,
                p.ws,
                literal(p.name),
                literal(p.email),
                literal(p.phone),
                literal(p.company),
                if p.manager { "TRUE" } else { "FALSE" },
                literal(p.country),
                literal(p.city),
                p.created,
                p.seen.map_or("NULL".to_owned(), |t| t.to_string()),
            ));
            for tag in p.tags {
                sql.push(format!("INSERT INTO person_tag VALUES ('{}', '{}', '{}')", p.id, p.ws, tag));
            }
            for (name, value) in &p.attrs {
                let (s, n) = match value {
                    Attr::S(s) => (literal(Some(&s.to_lowercase())), "NULL".to_owned()),
                    Attr::N(x) => ("NULL".to_owned(), x.to_string()),
                    Attr::B(b) => ("NULL".to_owned(), if *b { "1" } else { "0" }.to_owned()),
                    Attr::D(t) => ("NULL".to_owned(), t.to_string()),
                };
                sql.push(format!("INSERT INTO person_attribute VALUES ('{}', '{}', '{name}', {s}, {n})", p.id, p.ws));
            }
            for (name, ats) in &p.events {
                for (i, at) in ats.iter().enumerate() {
                    sql.push(format!(
                        "INSERT INTO event (id, workspace_id, person_id, name, at) VALUES ('{}-{name}-{i}', '{}', '{}', '{name}', {at})",
                        p.id, p.ws, p.id
                    ));
                }
                let (first, last) = (ats.iter().min().copied().unwrap_or(0), ats.iter().max().copied().unwrap_or(0));
                sql.push(format!("INSERT INTO event_summary VALUES ('{}', '{}', '{name}', {}, {first}, {last})", p.id, p.ws, ats.len()));
            }
            if let Some(n) = p.connections {
                sql.push(format!("INSERT INTO presence VALUES ('node-1', '{}', '{}', {n})", p.id, p.ws));
            }
        }
        sql
    }

    enum Conn {
        Sqlite(SqliteConnection),
        Postgres(Transaction<'static, Postgres>),
    }

    impl Conn {
        async fn sqlite() -> Conn {
            let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
            for statement in fixture(false) {
                sqlx::query(AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
            }
            Conn::Sqlite(conn)
        }

        /// The fixture as TEMP tables inside a transaction that is never
        /// committed; `None` when no server answers, unless running in CI.
        async fn postgres() -> Option<Conn> {
            let url = "postgres://postgres@127.0.0.1:5432/test";
            let pool = match PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(3)).connect(url).await {
                Ok(pool) => pool,
                Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                    eprintln!("skipping the PostgreSQL run: {e}");
                    return None;
                }
                Err(e) => panic!("PostgreSQL at {url}: {e}"),
            };
            let mut tx = pool.begin().await.unwrap();
            for statement in fixture(true) {
                sqlx::query(AssertSqlSafe(statement)).execute(&mut *tx).await.unwrap();
            }
            Some(Conn::Postgres(tx))
        }

        fn dialect(&self) -> Dialect {
            match self {
                Conn::Sqlite(_) => Dialect::Sqlite,
                Conn::Postgres(_) => Dialect::Postgres,
            }
        }

        async fn strings(&mut self, sql: String, binds: Vec<Bind>, column: usize) -> Result<Vec<String>, String> {
            let binder = Sql { sql: String::new(), binds };
            let rows = match self {
                Conn::Sqlite(conn) => {
                    column_of(binder.bind_to(sqlx::query(AssertSqlSafe(sql.clone()))).fetch_all(&mut *conn).await, column)
                }
                Conn::Postgres(tx) => column_of(binder.bind_to(sqlx::query(AssertSqlSafe(sql.clone()))).fetch_all(&mut **tx).await, column),
            };
            rows.map_err(|e| format!("{e}\n  in {sql}"))
        }

        /// Ids of the w1 people `filter` matches.
        async fn matching(&mut self, filter: &Value) -> Result<Vec<String>, String> {
            let f = Filter::parse(filter, &schema(), "filter").map_err(|e| format!("refused: {e}"))?;
            // Listing each set or probing it per person, the same people.
            let mut found = Vec::new();
            for compiled in [to_sql(&f, self.dialect(), 2, 1, NOW), to_sql_probing(&f, self.dialect(), 2, 1, NOW)] {
                let sql = format!("SELECT p.id FROM person p WHERE p.workspace_id = $1 AND {} ORDER BY p.id", compiled.sql);
                let mut binds = vec![Bind::Text("w1".into())];
                binds.extend(compiled.binds);
                found.push(self.strings(sql, binds, 0).await?);
            }
            if found[0] != found[1] {
                return Err(format!("listing sets matched {:?}, probing them {:?}", found[0], found[1]));
            }
            // Where one index counts them, the same number.
            if let Some(count) = count_sql(&f, self.dialect(), 2, 1) {
                let mut binds = vec![Bind::Text("w1".into())];
                binds.extend(count.binds);
                let counted = self.strings(format!("SELECT CAST(({}) AS TEXT)", count.sql), binds, 0).await?;
                if counted != [found[0].len().to_string()] {
                    return Err(format!("counted {counted:?} from the index, matched {:?}", found[0]));
                }
            }
            Ok(found.swap_remove(0))
        }
    }

    fn column_of<R: Row>(rows: Result<Vec<R>, sqlx::Error>, column: usize) -> Result<Vec<String>, sqlx::Error>
    where
        usize: sqlx::ColumnIndex<R>,
        String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        rows?.iter().map(|row| row.try_get::<String, _>(column)).collect()
    }

    fn cond(field: &str, op: &str, value: Value) -> Value {
        json!({ "field": field, "op": op, "value": value })
    }

    fn exists(field: &str) -> Value {
        json!({ "field": field, "op": "exists" })
    }

    /// A U open to the north: arms at lon 0–3 and 5–8 rising to lat 50 from
    /// a base at lat 44–46; the notch between them (lat 46–50, lon 3–5) is
    /// outside.
    fn u_shape() -> Value {
        json!([[44, 0], [44, 8], [50, 8], [50, 5], [46, 5], [46, 3], [50, 3], [50, 0]])
    }

    /// Each filter and the w1 ids it must match.
    fn cases() -> Vec<(Value, &'static str)> {
        vec![
            // Built-in strings: case, NULLs, LIKE escaping, prefixes.
            (cond("email", "eq", json!("alice@example.COM")), "a"),
            (cond("email", "neq", json!("alice@example.com")), "bcdefgh"),
            (json!({"not": cond("email", "eq", json!("alice@example.com"))}), "bcdefgh"),
            (cond("email", "contains", json!("EXAMPLE")), "abe"),
            (cond("email", "contains", json!("_")), "b"),
            (cond("name", "contains", json!("100%")), "c"),
            (cond("name", "contains", json!("%")), "c"),
            (cond("name", "contains", json!("0% R")), "c"),
            (cond("name", "contains", json!("\\")), ""),
            (cond("email", "starts_with", json!("BOB_")), "b"),
            (cond("email", "starts_with", json!("b_")), ""),
            (cond("name", "starts_with", json!("d")), "d"),
            (cond("name", "starts_with", json!("ÉMILE")), "e"),
            (cond("name", "starts_with", json!("")), "abcde"),
            (cond("name", "eq", json!("ÉMILE ZOLA")), "e"),
            (cond("name", "in", json!(["bob", "DAVE"])), "bd"),
            (cond("country", "eq", json!("france")), "ade"),
            (cond("country", "in", json!(["germany", "FRANCE"])), "abde"),
            (exists("country"), "abde"),
            (exists("city"), "abde"),
            (cond("city", "neq", json!("paris")), "bcdefgh"),
            (cond("phone", "eq", json!("+4930")), "d"),
            (exists("phone"), "ad"),
            (cond("phone", "starts_with", json!("+33")), "a"),
            (cond("phone", "contains", json!("12")), "a"),
            (cond("company", "eq", json!("ACME")), "ad"),
            (cond("company", "neq", json!("acme")), "bcefgh"),
            (cond("company", "contains", json!("LOB")), "e"),
            (cond("company", "starts_with", json!("glo")), "e"),
            (cond("company", "in", json!(["globex", "nope"])), "e"),
            (exists("company"), "ade"),
            // Tags.
            (cond("tags", "contains", json!(" VIP ")), "ad"),
            (cond("tags", "eq", json!("beta")), "ab"),
            (cond("tags", "neq", json!("vip")), "bcefgh"),
            (cond("tags", "in", json!(["beta", "nope"])), "ab"),
            (exists("tags"), "abd"),
            // Built-in dates.
            (cond("created_at", "gt", json!("2024-01-01")), "bcfgh"),
            (cond("created_at", "gte", json!("2024-01-01T00:00:00Z")), "abcfgh"),
            (cond("created_at", "lt", json!(1_704_067_200_000_i64)), "de"),
            (cond("created_at", "lte", json!("2023-06-01")), "de"),
            (cond("created_at", "between", json!(["2024-01-01", "2024-03-01"])), "abc"),
            (cond("created_at", "within_days", json!(400)), "fgh"),
            (exists("created_at"), "abcdefgh"),
            (cond("last_seen_at", "within_days", json!(7)), "a"),
            (cond("last_seen_at", "within_days", json!(30)), "ac"),
            (json!({"not": cond("last_seen_at", "within_days", json!(7))}), "bcdefgh"),
            (cond("last_seen_at", "lt", json!(NOW - 5 * DAY)), "cd"),
            (cond("last_seen_at", "lte", json!(NOW - 40 * DAY)), "d"),
            (cond("last_seen_at", "gt", json!("1970-01-01")), "acd"),
            (cond("last_seen_at", "between", json!([NOW - 11 * DAY, NOW - DAY])), "ac"),
            (exists("last_seen_at"), "acd"),
            // Built-in bools.
            (cond("manager", "eq", json!(true)), "a"),
            (cond("manager", "neq", json!(true)), "bcdefgh"),
            (cond("manager", "eq", json!(false)), "bcdefgh"),
            (cond("online", "eq", json!(true)), "a"),
            (cond("online", "eq", json!(false)), "bcdefgh"),
            (cond("online", "neq", json!(false)), "a"),
            // String attributes.
            (cond("attributes.plan", "eq", json!("PRO")), "a"),
            (cond("attributes.plan", "neq", json!("pro")), "bcdefgh"),
            (cond("attributes.plan", "contains", json!("PR")), "ad"),
            (cond("attributes.plan", "starts_with", json!("ENT")), "d"),
            (cond("attributes.plan", "in", json!(["free", "Pro"])), "ab"),
            (exists("attributes.plan"), "abd"),
            (cond("attributes.code", "contains", json!("_")), "a"),
            (cond("attributes.code", "contains", json!("%")), "c"),
            (cond("attributes.code", "starts_with", json!("50%")), "c"),
            (cond("attributes.code", "starts_with", json!("a_")), "a"),
            (cond("attributes.code", "starts_with", json!("50")), "cd"),
            // Number attributes.
            (cond("attributes.score", "gt", json!(3.5)), "a"),
            (cond("attributes.score", "gte", json!(3.5)), "ab"),
            (cond("attributes.score", "lt", json!(0)), "c"),
            (cond("attributes.score", "lte", json!(10)), "abc"),
            (cond("attributes.score", "eq", json!(10)), "a"),
            (cond("attributes.score", "neq", json!(10)), "bcdefgh"),
            (cond("attributes.score", "between", json!([-5, 5])), "bc"),
            (cond("attributes.score", "in", json!([10, -2])), "ac"),
            (exists("attributes.score"), "abc"),
            // Bool attributes.
            (cond("attributes.vip", "eq", json!(true)), "ad"),
            (cond("attributes.vip", "eq", json!(false)), "b"),
            (cond("attributes.vip", "neq", json!(true)), "bcefgh"),
            (exists("attributes.vip"), "abd"),
            // Date attributes.
            (cond("attributes.renewal", "gt", json!("2024-12-31")), "bd"),
            (cond("attributes.renewal", "within_days", json!(7)), "d"),
            (cond("attributes.renewal", "between", json!(["2024-01-01", "2024-12-31"])), "a"),
            (cond("attributes.renewal", "lte", json!("2024-06-01")), "a"),
            (exists("attributes.renewal"), "abd"),
            // Events, from the summary.
            (json!({"event": "purchase"}), "abd"),
            (json!({"event": "purchase", "min_count": 3}), "ad"),
            (json!({"event": "purchase", "max_count": 3}), "abcefgh"),
            (json!({"event": "purchase", "min_count": 2, "max_count": 4}), "a"),
            (json!({"event": "purchase", "max_count": 0}), "cefgh"),
            (json!({"event": "purchase", "min_count": 0}), "abcdefgh"),
            (json!({"event": "page:view"}), "b"),
            // Events, counted in a window.
            (json!({"event": "purchase", "within_days": 7}), "ad"),
            (json!({"event": "purchase", "min_count": 3, "within_days": 7}), "d"),
            (json!({"event": "purchase", "max_count": 2, "within_days": 7}), "abcefgh"),
            (json!({"event": "purchase", "min_count": 1, "max_count": 2, "within_days": 7}), "a"),
            (json!({"event": "purchase", "max_count": 0, "within_days": 7}), "bcefgh"),
            (json!({"event": "purchase", "min_count": 3, "within_days": 30}), "d"),
            (json!({"event": "purchase", "min_count": 3, "within_days": 60}), "ad"),
            (json!({"event": "page:view", "within_days": 2}), ""),
            // Geo.
            (cond("location", "in_polygon", u_shape()), "adg"),
            (json!({"not": cond("location", "in_polygon", u_shape())}), "bcefh"),
            (cond("location", "in_polygon", json!(u_shape().as_array().unwrap().iter().rev().collect::<Vec<_>>())), "adg"),
            (cond("location", "in_polygon", json!([[40, 0], [40, 10], [40, 5]])), ""),
            (cond("location", "within_radius", json!({"lat": 46, "lon": 4, "km": 250})), "df"),
            (cond("location", "within_radius", json!({"lat": 48.8566, "lon": 2.3522, "km": 1})), "a"),
            (cond("location", "within_radius", json!({"lat": 0, "lon": -179.9, "km": 50})), "h"),
            (cond("location", "within_radius", json!({"lat": 89.9, "lon": 0, "km": 100})), ""),
            (exists("location"), "abdfgh"),
            // Groups and constants.
            (json!({"and": []}), "abcdefgh"),
            (json!({"or": []}), ""),
            (json!({"not": {"and": []}}), ""),
            (json!({"and": [cond("country", "eq", json!("france")), cond("tags", "contains", json!("vip"))]}), "ad"),
            (json!({"or": [exists("phone"), cond("city", "eq", json!("berlin"))]}), "abd"),
            (json!({"not": {"or": [cond("country", "eq", json!("france")), cond("online", "eq", json!(true))]}}), "bcfgh"),
            (json!({"segment": "s"}), ""),
            (json!({"not": {"segment": "s"}}), "abcdefgh"),
            (json!({"or": [{"segment": "s"}, {"event": "purchase", "min_count": 0}]}), "abcdefgh"),
        ]
    }

    async fn check_cases(conn: &mut Conn) {
        let mut failures = Vec::new();
        for (filter, expected) in cases() {
            let expected: Vec<String> = expected.chars().map(String::from).collect();
            match conn.matching(&filter).await {
                Ok(got) if got == expected => {}
                Ok(got) => failures.push(format!("{filter}\n  expected {expected:?}, got {got:?}")),
                Err(e) => failures.push(format!("{filter}\n  failed: {e}")),
            }
        }
        assert!(failures.is_empty(), "{} of {} filters went wrong:\n{}", failures.len(), cases().len(), failures.join("\n"));
    }

    #[tokio::test]
    async fn sqlite_matches_the_right_people() {
        check_cases(&mut Conn::sqlite().await).await;
    }

    #[tokio::test]
    async fn postgres_matches_the_right_people() {
        if let Some(mut conn) = Conn::postgres().await {
            check_cases(&mut conn).await;
        }
    }

    #[tokio::test]
    async fn inlined_segments_run() {
        let mut conn = Conn::sqlite().await;
        let mut f = Filter::parse(&json!({"or": [{"segment": "french"}, {"segment": "gone"}]}), &schema(), "filter").unwrap();
        let mut segments = std::collections::HashMap::new();
        segments.insert("french".to_owned(), Filter::parse(&cond("country", "eq", json!("France")), &schema(), "filter").unwrap());
        f.inline_segments(&segments).unwrap();
        assert_eq!(conn.matching(&f.to_json()).await.unwrap(), ["a", "d", "e"]);
    }

    /// A single tag is counted from its index alone (the cases above check
    /// the number); anything else is counted through the people.
    #[test]
    fn only_a_single_tag_is_counted_from_its_index() {
        let counted = |filter: Value| count_sql(&Filter::parse(&filter, &schema(), "filter").unwrap(), Dialect::Sqlite, 2, 1);
        let vip = counted(cond("tags", "contains", json!(" VIP "))).expect("a tag is counted from its index");
        assert_eq!(vip.sql, "SELECT COUNT(*) FROM person_tag WHERE workspace_id = $1 AND tag = $2");
        assert_eq!(vip.binds, [Bind::Text("vip".into())], "the tag as stored");
        assert!(counted(json!({"and": [cond("tags", "contains", json!("vip"))]})).is_some(), "a group of one is the tag");
        for other in [
            cond("tags", "neq", json!("vip")),
            cond("tags", "in", json!(["vip", "beta"])),
            cond("country", "eq", json!("France")),
            json!({"and": [cond("tags", "contains", json!("vip")), cond("country", "eq", json!("France"))]}),
            json!({"not": cond("tags", "contains", json!("vip"))}),
        ] {
            assert!(counted(other.clone()).is_none(), "{other}");
        }
    }

    /// SQLite's plan for `SELECT {what}` of the w1 people `filter` matches.
    async fn plan_of(conn: &mut Conn, filter: &Value, what: &str) -> String {
        let f = Filter::parse(filter, &schema(), "filter").unwrap();
        let compiled = to_sql(&f, Dialect::Sqlite, 2, 1, NOW);
        let sql = format!("EXPLAIN QUERY PLAN SELECT {what} FROM person p WHERE p.workspace_id = $1 AND {}", compiled.sql);
        let mut binds = vec![Bind::Text("w1".into())];
        binds.extend(compiled.binds);
        conn.strings(sql, binds, 3).await.unwrap().join("\n")
    }

    /// The parts of the plan that keep a filter fast at a million people.
    #[tokio::test]
    async fn sqlite_uses_the_indexes() {
        let mut conn = Conn::sqlite().await;
        let cases = [
            (cond("email", "eq", json!("a@b.c")), "person_email_ci"),
            (cond("email", "in", json!(["a@b.c", "d@e.f"])), "person_email_ci"),
            (cond("country", "starts_with", json!("fr")), "person_country"),
            (cond("phone", "eq", json!("+33")), "person_phone"),
            (cond("company", "eq", json!("acme")), "company_name"),
            (cond("created_at", "gt", json!("2024-01-01")), "person_created"),
            (cond("last_seen_at", "gt", json!("2024-01-01")), "person_seen"),
            (cond("last_seen_at", "within_days", json!(3)), "person_seen"),
            (cond("location", "within_radius", json!({"lat": 46, "lon": 4, "km": 10})), "person_geo"),
            (cond("location", "in_polygon", u_shape()), "person_geo"),
            (cond("attributes.plan", "eq", json!("pro")), "person_attribute_str"),
            (cond("attributes.plan", "starts_with", json!("pro")), "person_attribute_str"),
            (cond("attributes.score", "gt", json!(3)), "person_attribute_num"),
            (cond("tags", "contains", json!("vip")), "person_tag_tag"),
            (json!({"event": "purchase", "min_count": 2}), "event_summary USING PRIMARY KEY"),
            (json!({"event": "purchase", "within_days": 7}), "event_name"),
        ];
        for (filter, index) in cases {
            let plan = plan_of(&mut conn, &filter, "p.id").await;
            assert!(plan.contains(index), "{filter} does not use {index}:\n{plan}");
        }
    }

    /// A filter on a person column with an index lists its matches' rowids
    /// from that index alone, reading no person: what a count, or the first
    /// step of a search, needs (at a million people a row read each is tens
    /// of milliseconds for a country).
    #[tokio::test]
    async fn sqlite_lists_matches_from_the_index_alone() {
        let mut conn = Conn::sqlite().await;
        let cases = [
            (cond("email", "eq", json!("a@b.c")), "person_email_ci"),
            (cond("email", "in", json!(["a@b.c", "d@e.f"])), "person_email_ci"),
            (cond("country", "eq", json!("France")), "person_country"),
            (cond("country", "in", json!(["France", "Spain"])), "person_country"),
            (cond("country", "starts_with", json!("fr")), "person_country"),
            (exists("country"), "person_country"),
            (cond("city", "eq", json!("Paris")), "person_city"),
            (cond("phone", "eq", json!("+33")), "person_phone"),
            (cond("created_at", "gt", json!("2024-01-01")), "person_created"),
            (cond("last_seen_at", "gt", json!("2024-01-01")), "person_seen"),
            (cond("last_seen_at", "within_days", json!(30)), "person_seen"),
            (cond("last_seen_at", "between", json!([NOW - 11 * DAY, NOW - DAY])), "person_seen"),
        ];
        for (filter, index) in cases {
            let plan = plan_of(&mut conn, &filter, "p.rowid").await;
            assert!(plan.contains(&format!("USING COVERING INDEX {index} ")), "{filter} reads rows besides {index}:\n{plan}");
        }
    }

    /// With the statistics of a workspace of a million people, a selective
    /// semijoin is driven from its own index into the person primary key
    /// instead of walking the whole workspace.
    #[tokio::test]
    async fn sqlite_drives_semijoins_from_the_subquery() {
        let mut conn = Conn::sqlite().await;
        let Conn::Sqlite(c) = &mut conn else { unreachable!() };
        sqlx::query("ANALYZE").execute(&mut *c).await.unwrap();
        // Samples of the tiny fixture would outweigh the figures below.
        let stat_tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE name LIKE 'sqlite_stat%'").fetch_all(&mut *c).await.unwrap();
        for table in stat_tables {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}"))).execute(&mut *c).await.unwrap();
        }
        for (table, index, stat) in [
            ("person", "sqlite_autoindex_person_1", "1000000 1"),
            ("person", "person_company", "1000000 50"),
            ("person", "person_email_ci", "1000000 1000000 1"),
            ("person", "person_country", "1000000 1000000 5000"),
            ("person", "person_city", "1000000 1000000 500"),
            ("person", "person_phone", "1000000 1000000 1"),
            ("person", "person_created", "1000000 1000000 1 1"),
            ("person", "person_seen", "1000000 1000000 2 1"),
            ("person", "person_geo", "1000000 1000000 2 1"),
            ("person_tag", "person_tag_tag", "2000000 2000000 20000 1"),
            ("person_tag", "sqlite_autoindex_person_tag_1", "2000000 2 1"),
            ("person_attribute", "person_attribute_str", "5000000 5000000 500000 1000 1"),
            ("person_attribute", "person_attribute_num", "5000000 5000000 500000 1000 1"),
            ("person_attribute", "sqlite_autoindex_person_attribute_1", "5000000 5 1"),
            ("event_summary", "sqlite_autoindex_event_summary_1", "3000000 3000000 100000 1"),
            ("person", "person_workspace_id", "1000000 1000000 1"),
            ("event", "event_name", "50000000 50000000 1000000 10 1"),
        ] {
            sqlx::query("INSERT INTO sqlite_stat1 VALUES ($1, $2, $3)").bind(table).bind(index).bind(stat).execute(&mut *c).await.unwrap();
        }
        sqlx::query("ANALYZE sqlite_schema").execute(&mut *c).await.unwrap();
        let by_id = "SEARCH p USING COVERING INDEX person_workspace_id (workspace_id=? AND id=?)";
        let cases = [
            (cond("tags", "contains", json!("vip")), by_id),
            (cond("attributes.plan", "eq", json!("pro")), by_id),
            (json!({"event": "purchase", "min_count": 2}), by_id),
            (json!({"event": "purchase", "within_days": 7}), by_id),
            (cond("company", "eq", json!("acme")), "SEARCH p USING INDEX person_company (company_id=?)"),
        ];
        for (filter, step) in cases {
            let plan = plan_of(&mut conn, &filter, "p.id").await;
            assert!(plan.contains(step), "{filter} is not driven by its subquery:\n{plan}");
        }
    }

    fn compile(filter: Value, dialect: Dialect) -> Sql {
        to_sql(&Filter::parse(&filter, &schema(), "filter").unwrap(), dialect, 2, 1, NOW)
    }

    #[test]
    fn dialects_differ_only_where_needed() {
        let list = cond("email", "in", json!(["a", "b"]));
        assert_eq!(
            compile(list.clone(), Dialect::Sqlite).sql,
            "(lower(p.email) IS NOT NULL AND lower(p.email) IN (SELECT lower(value) FROM json_each($2)))"
        );
        assert_eq!(
            compile(list, Dialect::Postgres).sql,
            "(lower(p.email) IS NOT NULL AND lower(p.email) IN (SELECT lower(value) FROM jsonb_array_elements_text(CAST($2 AS jsonb))))"
        );
        let prefix = cond("email", "starts_with", json!("Ann_"));
        let sqlite = compile(prefix.clone(), Dialect::Sqlite);
        assert_eq!(sqlite.sql, "(lower(p.email) IS NOT NULL AND lower(p.email) >= $2 AND lower(p.email) < $3)");
        assert_eq!(sqlite.binds, [Bind::Text("ann_".into()), Bind::Text("ann`".into())]);
        let pg = compile(prefix, Dialect::Postgres);
        assert_eq!(pg.sql, "(lower(p.email) IS NOT NULL AND lower(p.email) LIKE lower($2) ESCAPE '\\')");
        assert_eq!(pg.binds, [Bind::Text("Ann\\_%".into())]);
        // Everything else is one text.
        for filter in cases().into_iter().map(|(f, _)| f) {
            let text = |d| compile(filter.clone(), d).sql;
            let (sqlite, pg) = (text(Dialect::Sqlite), text(Dialect::Postgres));
            if !(sqlite.contains("json_each") || filter.to_string().contains("starts_with")) {
                assert_eq!(sqlite, pg, "{filter}");
            }
        }
    }

    #[test]
    fn placeholders_and_bind_types() {
        let f = Filter::parse(
            &json!({"and": [
                cond("created_at", "gt", json!(5)),
                cond("attributes.renewal", "gt", json!(5)),
                cond("attributes.score", "eq", json!(2)),
                cond("manager", "eq", json!(true)),
                cond("tags", "contains", json!("X ")),
                {"event": "e", "min_count": 2, "within_days": 1},
            ]}),
            &schema(),
            "filter",
        )
        .unwrap();
        let sql = to_sql(&f, Dialect::Postgres, 7, 3, NOW);
        assert_eq!(
            sql.binds,
            [
                Bind::Int(5),
                Bind::Text("renewal".into()),
                Bind::Float(5.0),
                Bind::Text("score".into()),
                Bind::Float(2.0),
                Bind::Bool(true),
                Bind::Text("x".into()),
                Bind::Text("e".into()),
                Bind::Int(NOW - DAY),
                Bind::Int(2),
            ]
        );
        for n in 7..7 + sql.binds.len() {
            assert!(sql.sql.contains(&format!("${n}")), "${n} unused in {}", sql.sql);
        }
        assert!(!sql.sql.contains(&format!("${}", 7 + sql.binds.len())));
        // Every subquery is confined to the workspace.
        assert_eq!(sql.sql.matches("workspace_id = $3").count(), 4, "{}", sql.sql);
    }

    #[test]
    fn constants() {
        assert_eq!(compile(json!({"and": []}), Dialect::Sqlite), Sql { sql: "TRUE".into(), binds: vec![] });
        assert_eq!(compile(json!({"or": []}), Dialect::Postgres), Sql { sql: "FALSE".into(), binds: vec![] });
        // Folded parts bind nothing.
        let s = compile(json!({"or": [cond("email", "eq", json!("x")), {"and": []}]}), Dialect::Sqlite);
        assert_eq!(s, Sql { sql: "TRUE".into(), binds: vec![] });
    }

    #[tokio::test]
    async fn long_lists_stay_shallow() {
        // Inlined segments can give an `or` of thousands of parts; joined
        // flat, that is a tree SQLite refuses to parse.
        let parts = (0..2000).map(|i| Filter::parse(&cond("email", "eq", json!(format!("{i}@x"))), &schema(), "filter").unwrap().root);
        let f = Filter { root: crate::filter::Node::Or(parts.collect()) };
        let compiled = to_sql(&f, Dialect::Sqlite, 2, 1, NOW);
        let sql = format!("SELECT p.id FROM person p WHERE p.workspace_id = $1 AND {}", compiled.sql);
        let mut binds = vec![Bind::Text("w1".into())];
        binds.extend(compiled.binds);
        assert_eq!(Conn::sqlite().await.strings(sql, binds, 0).await.unwrap(), Vec::<String>::new());
    }

    #[test]
    fn literals_and_escapes() {
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(-2.0), "(-2)");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(1e-7), "0.0000001");
        assert_eq!(like_escape(r"50%_\x"), r"50\%\_\\x");
        assert_eq!(prefix_end("ab"), Some("ac".into()));
        assert_eq!(prefix_end("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_end("\u{D7FF}"), Some("\u{E000}".into()));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        assert_eq!(normal_tag("  VIP "), "vip");
    }
}
