//! Filters as Meilisearch filter expressions, for people search served from
//! the search index.
//!
//! The index holds one document per person:
//!
//! ```json
//! {"id", "workspace_id", "name", "email", "phone", "company", "country", "city",
//!  "tags": ["lower-cased", "trimmed"], "created_at": ms, "last_seen_at": ms | null,
//!  "manager": bool, "_geo": {"lat", "lng"} (absent without a location),
//!  "attributes": {"<name>": value, dates as ms, bools as true/false},
//!  "events": {"<name>": {"count", "first", "last"}}}
//! ```
//!
//! Attribute strings are stored as given, with no lower-cased copy: Meilisearch
//! normalises string facets itself, so `=`, `IN`, `CONTAINS` and `STARTS WITH`
//! ignore case already (values are lower-cased here too, which costs nothing).
//! `workspace_id` must be filterable, as tenant isolation needs it anyway:
//! a filter that is always true or always false is written with it.
//!
//! `contains` and `starts_with` use the `CONTAINS` and `STARTS WITH`
//! operators, which need the `containsFilter` experimental feature enabled on
//! the instance.
//!
//! What the index cannot answer is an [`Unsupported`], and the caller answers
//! from SQL instead: `online` (presence is not indexed), `in_polygon` (the
//! `_geoPolygon` filter works on `_geojson` documents, not on `_geo` points),
//! and event counts inside a time window other than "at least once".

use super::{
    BoolField, BoolTest, Cond, DAY_MS, DateField, DateTest, EventPred, Expr, Filter, Folded, GeoTest, NumberTest, TagTest, TextField,
    TextTest, fold,
};

/// Why a filter cannot be written for Meilisearch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// Matches every document of any workspace (the caller adds the workspace).
const EVERYONE: &str = "workspace_id EXISTS";
const NOBODY: &str = "NOT workspace_id EXISTS";

/// The Meilisearch filter for `filter`, or why there is none. `now_ms`
/// anchors `within_days`.
pub fn to_meili(filter: &Filter, now_ms: i64) -> Result<String, Unsupported> {
    match fold(&filter.root) {
        Folded::Const(true) => Ok(EVERYONE.to_owned()),
        Folded::Const(false) => Ok(NOBODY.to_owned()),
        Folded::Expr(e) if depth(&e) > MAX_NESTING => Err(Unsupported("the filter nests too deeply for Meilisearch".into())),
        Folded::Expr(e) => expr(&e, now_ms),
    }
}

/// Meilisearch's parser stops at 200 levels of recursion, and each nested
/// group costs it about four; only filters grown by inlined segments get near.
const MAX_NESTING: usize = 40;

fn depth(e: &Expr) -> usize {
    match e {
        Expr::And(items) | Expr::Or(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Expr::Not(inner) => 1 + depth(inner),
        Expr::Cond(_) | Expr::Event(_) => 1,
    }
}

fn expr(e: &Expr, now_ms: i64) -> Result<String, Unsupported> {
    match e {
        Expr::And(items) => group(items, " AND ", now_ms),
        Expr::Or(items) => group(items, " OR ", now_ms),
        Expr::Not(inner) => Ok(format!("NOT {}", expr(inner, now_ms)?)),
        Expr::Cond(cond) => condition(cond, now_ms),
        Expr::Event(event) => self::event(event, now_ms),
    }
}

fn group(items: &[Expr], sep: &str, now_ms: i64) -> Result<String, Unsupported> {
    let parts = items.iter().map(|e| expr(e, now_ms)).collect::<Result<Vec<_>, _>>()?;
    Ok(format!("({})", parts.join(sep)))
}

fn condition(cond: &Cond, now_ms: i64) -> Result<String, Unsupported> {
    Ok(match cond {
        Cond::Text(field, test) => text(&TextField::path(field), test),
        Cond::Tags(test) => tags(test),
        Cond::Number(name, test) => number_test(&format!("attributes.{name}"), test),
        Cond::Bool(BoolField::Online, _) => return Err(Unsupported("online status is not in the search index".into())),
        Cond::Bool(BoolField::Manager, test) => boolean("manager", test),
        Cond::Bool(BoolField::Attr(name), test) => boolean(&format!("attributes.{name}"), test),
        Cond::Date(field, test) => {
            let field = match field {
                DateField::CreatedAt => "created_at".to_owned(),
                DateField::LastSeenAt => "last_seen_at".to_owned(),
                DateField::Attr(name) => format!("attributes.{name}"),
            };
            date(&field, test, now_ms)
        }
        Cond::Location(test) => match test {
            // A box over the whole globe holds exactly the documents with a _geo
            // point; `_geo` itself is reserved and cannot be tested with EXISTS.
            GeoTest::Exists => "_geoBoundingBox([90, 180], [-90, -180])".to_owned(),
            GeoTest::Radius { lat, lon, km } => format!("_geoRadius({}, {}, {})", lat, lon, km * 1000.0),
            GeoTest::Polygon(_) => {
                return Err(Unsupported("in_polygon needs _geojson documents; the index holds _geo points".into()));
            }
        },
    })
}

fn text(field: &str, test: &TextTest) -> String {
    let v = |s: &str| quote(&s.to_lowercase());
    match test {
        TextTest::Eq(s) => format!("{field} = {}", v(s)),
        TextTest::Neq(s) => format!("{field} != {}", v(s)),
        TextTest::Contains(s) => format!("{field} CONTAINS {}", v(s)),
        TextTest::StartsWith(s) => format!("{field} STARTS WITH {}", v(s)),
        TextTest::In(values) => format!("{field} IN [{}]", values.iter().map(|s| v(s)).collect::<Vec<_>>().join(", ")),
        TextTest::Exists => exists(field),
    }
}

/// Tags are indexed trimmed and lower-cased; `=` on an array field means "has".
fn tags(test: &TagTest) -> String {
    let v = |s: &str| quote(&s.trim().to_lowercase());
    match test {
        TagTest::Eq(t) | TagTest::Contains(t) => format!("tags = {}", v(t)),
        TagTest::Neq(t) => format!("tags != {}", v(t)),
        TagTest::In(ts) => format!("tags IN [{}]", ts.iter().map(|t| v(t)).collect::<Vec<_>>().join(", ")),
        TagTest::Exists => exists("tags"),
    }
}

fn number_test(field: &str, test: &NumberTest) -> String {
    match test {
        NumberTest::Eq(x) => format!("{field} = {x}"),
        NumberTest::Neq(x) => format!("{field} != {x}"),
        NumberTest::Cmp(cmp, x) => format!("{field} {} {x}", cmp.symbol()),
        NumberTest::Between(a, b) => format!("{field} {a} TO {b}"),
        NumberTest::In(xs) => format!("{field} IN [{}]", xs.iter().map(f64::to_string).collect::<Vec<_>>().join(", ")),
        NumberTest::Exists => exists(field),
    }
}

fn boolean(field: &str, test: &BoolTest) -> String {
    match test {
        BoolTest::Eq(b) => format!("{field} = {b}"),
        BoolTest::Neq(b) => format!("{field} != {b}"),
        BoolTest::Exists => exists(field),
    }
}

fn date(field: &str, test: &DateTest, now_ms: i64) -> String {
    match test {
        DateTest::Cmp(cmp, ms) => format!("{field} {} {ms}", cmp.symbol()),
        DateTest::Between(a, b) => format!("{field} {a} TO {b}"),
        DateTest::WithinDays(days) => format!("{field} >= {}", since(now_ms, *days)),
        DateTest::Exists => exists(field),
    }
}

/// Present with a value: `EXISTS` alone also holds for null and empty values.
fn exists(field: &str) -> String {
    format!("({field} EXISTS AND {field} IS NOT NULL AND {field} IS NOT EMPTY)")
}

/// People without the event have no `events.<name>` at all, so "at most N"
/// is "not more than N", which also holds where the field is missing.
fn event(e: &EventPred, now_ms: i64) -> Result<String, Unsupported> {
    let field = |leaf: &str| field_name(&format!("events.{}.{leaf}", e.name));
    match (e.within_days, e.min, e.max) {
        (_, 0, None) => Ok(EVERYONE.to_owned()),
        (None, min, None) => Ok(format!("{} >= {min}", field("count"))),
        (None, 0, Some(max)) => Ok(format!("NOT {} > {max}", field("count"))),
        (None, min, Some(max)) => Ok(format!("{} {min} TO {max}", field("count"))),
        // At least once lately is the same as "last done lately".
        (Some(days), 1, None) => Ok(format!("{} >= {}", field("last"), since(now_ms, days))),
        (Some(_), _, _) => Err(Unsupported(format!("counting {} events within a time window needs the event table", e.name))),
    }
}

fn since(now_ms: i64, days: i64) -> i64 {
    now_ms.saturating_sub(days.saturating_mul(DAY_MS))
}

/// A string value in double quotes, with `\` and `"` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Attribute and event names are checked at parse time, but event names may
/// hold `:`, which Meilisearch reads as syntax unless the name is quoted.
fn field_name(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) { name.to_owned() } else { quote(name) }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::filter::tests::schema;

    const NOW: i64 = 1_750_000_000_000;
    const DAY: i64 = 86_400_000;

    fn meili(v: Value) -> Result<String, Unsupported> {
        to_meili(&Filter::parse(&v, &schema(), "filter").unwrap(), NOW)
    }

    fn ok(v: Value) -> String {
        meili(v).unwrap()
    }

    fn cond(field: &str, op: &str, value: Value) -> Value {
        json!({ "field": field, "op": op, "value": value })
    }

    #[test]
    fn text_fields() {
        assert_eq!(ok(cond("email", "eq", json!("Ann@Example.com"))), r#"email = "ann@example.com""#);
        assert_eq!(ok(cond("country", "neq", json!("FR"))), r#"country != "fr""#);
        assert_eq!(ok(cond("name", "contains", json!("ann"))), r#"name CONTAINS "ann""#);
        assert_eq!(ok(cond("company", "starts_with", json!("Ac"))), r#"company STARTS WITH "ac""#);
        assert_eq!(ok(cond("city", "in", json!(["Paris", "Lyon"]))), r#"city IN ["paris", "lyon"]"#);
        assert_eq!(ok(cond("phone", "exists", Value::Null)), "(phone EXISTS AND phone IS NOT NULL AND phone IS NOT EMPTY)");
        assert_eq!(ok(cond("attributes.plan", "eq", json!("Pro"))), r#"attributes.plan = "pro""#);
    }

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(ok(cond("name", "eq", json!(r#"say "hi" \o/"#))), r#"name = "say \"hi\" \\o/""#);
        assert_eq!(ok(cond("name", "eq", json!("x AND y = 1 OR (z)"))), r#"name = "x and y = 1 or (z)""#);
        assert_eq!(ok(cond("name", "eq", json!("it's"))), r#"name = "it's""#);
        assert_eq!(ok(cond("name", "eq", json!("ends with \\"))), r#"name = "ends with \\""#);
    }

    #[test]
    fn tags() {
        assert_eq!(ok(cond("tags", "contains", json!(" VIP "))), r#"tags = "vip""#);
        assert_eq!(ok(cond("tags", "eq", json!("vip"))), r#"tags = "vip""#);
        assert_eq!(ok(cond("tags", "neq", json!("vip"))), r#"tags != "vip""#);
        assert_eq!(ok(cond("tags", "in", json!(["a", "B"]))), r#"tags IN ["a", "b"]"#);
        assert_eq!(ok(cond("tags", "exists", Value::Null)), "(tags EXISTS AND tags IS NOT NULL AND tags IS NOT EMPTY)");
    }

    #[test]
    fn numbers_bools_and_dates() {
        assert_eq!(ok(cond("attributes.score", "gte", json!(3.5))), "attributes.score >= 3.5");
        assert_eq!(ok(cond("attributes.score", "neq", json!(10))), "attributes.score != 10");
        assert_eq!(ok(cond("attributes.score", "between", json!([-5, 5]))), "attributes.score -5 TO 5");
        assert_eq!(ok(cond("attributes.score", "in", json!([1, 2.25]))), "attributes.score IN [1, 2.25]");
        assert_eq!(ok(cond("manager", "eq", json!(true))), "manager = true");
        assert_eq!(ok(cond("attributes.vip", "neq", json!(false))), "attributes.vip != false");
        assert_eq!(ok(cond("created_at", "lt", json!("2024-01-01"))), "created_at < 1704067200000");
        assert_eq!(
            ok(cond("attributes.renewal", "between", json!(["2024-01-01", "2024-01-02"]))),
            "attributes.renewal 1704067200000 TO 1704153600000"
        );
        assert_eq!(ok(cond("last_seen_at", "within_days", json!(7))), format!("last_seen_at >= {}", NOW - 7 * DAY));
        assert_eq!(
            ok(cond("last_seen_at", "exists", Value::Null)),
            "(last_seen_at EXISTS AND last_seen_at IS NOT NULL AND last_seen_at IS NOT EMPTY)"
        );
    }

    #[test]
    fn geo() {
        assert_eq!(ok(cond("location", "within_radius", json!({"lat": 48.85, "lon": -2.5, "km": 1.5}))), "_geoRadius(48.85, -2.5, 1500)");
        assert_eq!(ok(cond("location", "exists", Value::Null)), "_geoBoundingBox([90, 180], [-90, -180])");
        let polygon = cond("location", "in_polygon", json!([[0, 0], [0, 1], [1, 1]]));
        assert!(meili(polygon).is_err());
    }

    #[test]
    fn events() {
        assert_eq!(ok(json!({"event": "purchase"})), "events.purchase.count >= 1");
        assert_eq!(ok(json!({"event": "purchase", "min_count": 3})), "events.purchase.count >= 3");
        assert_eq!(ok(json!({"event": "purchase", "min_count": 2, "max_count": 4})), "events.purchase.count 2 TO 4");
        assert_eq!(ok(json!({"event": "purchase", "max_count": 3})), "NOT events.purchase.count > 3");
        assert_eq!(ok(json!({"event": "purchase", "max_count": 0})), "NOT events.purchase.count > 0");
        assert_eq!(ok(json!({"event": "page:view"})), r#""events.page:view.count" >= 1"#);
        assert_eq!(ok(json!({"event": "page.view", "within_days": 7})), format!("events.page.view.last >= {}", NOW - 7 * DAY));
        assert_eq!(ok(json!({"event": "x", "min_count": 0})), EVERYONE);
        assert!(meili(json!({"event": "x", "min_count": 2, "within_days": 7})).is_err());
        assert!(meili(json!({"event": "x", "max_count": 2, "within_days": 7})).is_err());
    }

    #[test]
    fn groups_and_constants() {
        let email = || cond("email", "eq", json!("a@b.c"));
        let vip = || cond("tags", "contains", json!("vip"));
        assert_eq!(
            ok(json!({"and": [email(), {"or": [vip(), {"not": email()}]}]})),
            r#"(email = "a@b.c" AND (tags = "vip" OR NOT email = "a@b.c"))"#
        );
        assert_eq!(ok(json!({"not": {"and": [email(), vip()]}})), r#"NOT (email = "a@b.c" AND tags = "vip")"#);
        assert_eq!(ok(json!({"and": []})), EVERYONE);
        assert_eq!(ok(json!({"or": []})), NOBODY);
        assert_eq!(ok(json!({"segment": "s"})), NOBODY);
        assert_eq!(ok(json!({"and": [email(), {"and": []}]})), r#"email = "a@b.c""#);
        // A part Meilisearch cannot answer stops mattering once folded away.
        assert_eq!(ok(json!({"or": [cond("online", "eq", json!(true)), {"and": []}]})), EVERYONE);
        let Err(why) = meili(json!({"and": [email(), cond("online", "eq", json!(true))]})) else { panic!("online was written") };
        assert!(why.to_string().contains("online"), "{why}");
    }

    #[test]
    fn deep_nesting_is_left_to_sql() {
        let nested = |levels: usize| {
            let mut node = crate::filter::Node::Cond(crate::filter::Cond::Tags(crate::filter::TagTest::Exists));
            for i in 0..levels {
                let other = crate::filter::Node::Cond(crate::filter::Cond::Tags(crate::filter::TagTest::Eq(format!("t{i}"))));
                node = if i % 2 == 0 { crate::filter::Node::And(vec![node, other]) } else { crate::filter::Node::Or(vec![node, other]) };
            }
            Filter { root: node }
        };
        assert!(to_meili(&nested(MAX_NESTING - 1), NOW).is_ok());
        assert!(to_meili(&nested(MAX_NESTING), NOW).is_err());
    }
}
