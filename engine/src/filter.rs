//! The one filter language behind people search, segments, automation
//! conditions and mass-send audiences.
//!
//! A filter arrives as JSON and is parsed once, at the edge, into a [`Filter`]:
//! every field, operator and value is checked against the workspace's
//! attribute types there, so a bad filter is a 422 whose `field` points at the
//! offending node (`filter.and.1.op`). From then on it cannot be wrong, and it
//! compiles to a SQL predicate ([`to_sql`]) or a Meilisearch filter string
//! ([`to_meili`]).
//!
//! ```json
//! {"and": [
//!   {"field": "country", "op": "eq", "value": "France"},
//!   {"field": "attributes.plan", "op": "in", "value": ["pro", "team"]},
//!   {"not": {"event": "purchased", "within_days": 30}},
//!   {"segment": "seg_123"}
//! ]}
//! ```
//!
//! `{"and": []}` matches everyone and `{"or": []}` nobody.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Error, Result};

mod meili;
mod sql;

pub use meili::{Unsupported, to_meili};
pub use sql::{Bind, Dialect, Sql, count_sql, to_sql, to_sql_probing};

/// Groups nest at most this deep (the root is level 1).
pub const MAX_DEPTH: usize = 16;
/// Conditions, events, segments and groups in one filter.
pub const MAX_NODES: usize = 500;
/// Values in one `in` list.
pub const MAX_LIST: usize = 1000;
/// Points in one polygon.
pub const MAX_POLYGON: usize = 200;
/// Bytes in any one string.
pub const MAX_STRING: usize = 1000;
/// Largest `within_days`: far enough back for any real question, small enough
/// that `days × 86 400 000` stays far from overflowing.
pub const MAX_DAYS: i64 = 100_000;
/// Largest radius: half the Earth's circumference already covers all of it.
pub const MAX_KM: f64 = 20_040.0;
/// Nodes a filter may grow to once its segments are inlined: segments may use
/// segments, and a chain of them doubling at each step must not exhaust memory.
pub const MAX_INLINED_NODES: usize = 10 * MAX_NODES;

const DAY_MS: i64 = 86_400_000;

/// The type of a custom attribute, fixed by its first value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrKind {
    String,
    Number,
    Bool,
    Date,
}

impl AttrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrKind::String => "string",
            AttrKind::Number => "number",
            AttrKind::Bool => "bool",
            AttrKind::Date => "date",
        }
    }

    pub fn parse(s: &str) -> Option<AttrKind> {
        match s {
            "string" => Some(AttrKind::String),
            "number" => Some(AttrKind::Number),
            "bool" => Some(AttrKind::Bool),
            "date" => Some(AttrKind::Date),
            _ => None,
        }
    }
}

/// What a workspace's filters are checked against.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub attributes: HashMap<String, AttrKind>,
}

/// A parsed, validated filter. Build one with [`Filter::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Cond(Cond),
    Event(EventPred),
    Segment(String),
}

/// One field test. Each field kind carries only the tests valid for it, so
/// the compilers never meet a combination the parser would have refused.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Text(TextField, TextTest),
    Tags(TagTest),
    Number(String, NumberTest),
    Bool(BoolField, BoolTest),
    Date(DateField, DateTest),
    Location(GeoTest),
}

#[derive(Debug, Clone, PartialEq)]
enum TextField {
    Name,
    Email,
    Phone,
    Company,
    Country,
    City,
    Attr(String),
}

#[derive(Debug, Clone, PartialEq)]
enum BoolField {
    Online,
    Manager,
    Attr(String),
}

#[derive(Debug, Clone, PartialEq)]
enum DateField {
    CreatedAt,
    LastSeenAt,
    Attr(String),
}

/// Values are kept as the user wrote them (for `to_json`); each compiler folds
/// case the way its backend stores the data.
#[derive(Debug, Clone, PartialEq)]
enum TextTest {
    Eq(String),
    Neq(String),
    Contains(String),
    StartsWith(String),
    In(Vec<String>),
    Exists,
}

/// The positive tests a negated `neq` is built from.
enum TextMatch<'a> {
    Eq(&'a str),
    Contains(&'a str),
    StartsWith(&'a str),
    In(&'a [String]),
}

enum TextShape<'a> {
    Is(TextMatch<'a>),
    IsNot(TextMatch<'a>),
    Exists,
}

impl TextTest {
    fn shape(&self) -> TextShape<'_> {
        match self {
            TextTest::Eq(v) => TextShape::Is(TextMatch::Eq(v)),
            TextTest::Neq(v) => TextShape::IsNot(TextMatch::Eq(v)),
            TextTest::Contains(v) => TextShape::Is(TextMatch::Contains(v)),
            TextTest::StartsWith(v) => TextShape::Is(TextMatch::StartsWith(v)),
            TextTest::In(v) => TextShape::Is(TextMatch::In(v)),
            TextTest::Exists => TextShape::Exists,
        }
    }
}

/// `eq` and `contains` both mean "has this tag"; both are kept so that
/// `to_json` gives back what was written.
#[derive(Debug, Clone, PartialEq)]
enum TagTest {
    Eq(String),
    Contains(String),
    Neq(String),
    In(Vec<String>),
    Exists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }

    fn op(self) -> Op {
        match self {
            Cmp::Gt => Op::Gt,
            Cmp::Gte => Op::Gte,
            Cmp::Lt => Op::Lt,
            Cmp::Lte => Op::Lte,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum NumberTest {
    Eq(f64),
    Neq(f64),
    Cmp(Cmp, f64),
    Between(f64, f64),
    In(Vec<f64>),
    Exists,
}

#[derive(Debug, Clone, PartialEq)]
enum BoolTest {
    Eq(bool),
    Neq(bool),
    Exists,
}

/// Dates are epoch milliseconds, UTC.
#[derive(Debug, Clone, PartialEq)]
enum DateTest {
    Cmp(Cmp, i64),
    Between(i64, i64),
    WithinDays(i64),
    Exists,
}

#[derive(Debug, Clone, PartialEq)]
enum GeoTest {
    /// `[lat, lon]` vertices; the last one joins back to the first.
    Polygon(Vec<[f64; 2]>),
    Radius {
        lat: f64,
        lon: f64,
        km: f64,
    },
    Exists,
}

/// "Did `name` between `min` and `max` times (in the last `within_days` days)."
#[derive(Debug, Clone, PartialEq)]
struct EventPred {
    name: String,
    min: i64,
    max: Option<i64>,
    within_days: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Contains,
    StartsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    In,
    Exists,
    WithinDays,
    InPolygon,
    WithinRadius,
}

const ALL_OPS: &[Op] = &[
    Op::Eq,
    Op::Neq,
    Op::Contains,
    Op::StartsWith,
    Op::Gt,
    Op::Gte,
    Op::Lt,
    Op::Lte,
    Op::Between,
    Op::In,
    Op::Exists,
    Op::WithinDays,
    Op::InPolygon,
    Op::WithinRadius,
];

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Between => "between",
            Op::In => "in",
            Op::Exists => "exists",
            Op::WithinDays => "within_days",
            Op::InPolygon => "in_polygon",
            Op::WithinRadius => "within_radius",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        ALL_OPS.iter().copied().find(|op| op.as_str() == s)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field as named in a condition, before its operator is known.
enum FieldSpec {
    Text(TextField),
    Tags,
    Number(String),
    Bool(BoolField),
    Date(DateField),
    Location,
}

impl FieldSpec {
    fn ops(&self) -> &'static [Op] {
        match self {
            FieldSpec::Text(_) => &[Op::Eq, Op::Neq, Op::Contains, Op::StartsWith, Op::In, Op::Exists],
            FieldSpec::Tags => &[Op::Eq, Op::Neq, Op::Contains, Op::In, Op::Exists],
            FieldSpec::Number(_) => &[Op::Eq, Op::Neq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::Between, Op::In, Op::Exists],
            FieldSpec::Bool(BoolField::Attr(_)) => &[Op::Eq, Op::Neq, Op::Exists],
            FieldSpec::Bool(_) => &[Op::Eq, Op::Neq],
            FieldSpec::Date(_) => &[Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::Between, Op::WithinDays, Op::Exists],
            FieldSpec::Location => &[Op::InPolygon, Op::WithinRadius, Op::Exists],
        }
    }

    fn noun(&self) -> &'static str {
        match self {
            FieldSpec::Text(_) => "string",
            FieldSpec::Tags => "tags",
            FieldSpec::Number(_) => "number",
            FieldSpec::Bool(_) => "bool",
            FieldSpec::Date(_) => "date",
            FieldSpec::Location => "location",
        }
    }
}

const BUILT_IN_FIELDS: &str = "name, email, phone, company, country, city, tags, created_at, last_seen_at, online, manager, location";

const NODE_SHAPE: &str = "each part of a filter is an object: a condition {\"field\", \"op\", \"value\"}, \
     an event {\"event\", …}, a segment {\"segment\"}, or a group {\"and\": […]}, {\"or\": […]}, {\"not\": …}";

const DATE_HINT: &str = "dates are RFC 3339 (2024-05-01T12:00:00Z), YYYY-MM-DD (midnight UTC), or epoch milliseconds";

impl Filter {
    /// Parses and checks `value`. `path` prefixes the `field` of any error
    /// (usually `"filter"`, giving `filter.and.1.op`).
    pub fn parse(value: &Value, schema: &Schema, path: &str) -> Result<Filter> {
        let mut parser = Parser { schema, nodes: 0 };
        Ok(Filter { root: parser.node(value, path, 1)? })
    }

    /// Ids of the segments used anywhere in the filter, each once, in order.
    pub fn segment_ids(&self) -> Vec<String> {
        fn walk(node: &Node, out: &mut Vec<String>) {
            match node {
                Node::And(items) | Node::Or(items) => items.iter().for_each(|n| walk(n, out)),
                Node::Not(inner) => walk(inner, out),
                Node::Segment(id) if !out.contains(id) => out.push(id.clone()),
                Node::Segment(_) | Node::Cond(_) | Node::Event(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Whether the filter tests what people did (an event predicate),
    /// which needs every tracked event in the timeline first.
    pub fn reads_events(&self) -> bool {
        fn walk(node: &Node) -> bool {
            match node {
                Node::And(items) | Node::Or(items) => items.iter().any(walk),
                Node::Not(inner) => walk(inner),
                Node::Event(_) => true,
                Node::Segment(_) | Node::Cond(_) => false,
            }
        }
        walk(&self.root)
    }

    /// Replaces each `{"segment": id}` with that segment's filter, and the
    /// segments those use in turn, so pass every segment reachable from this
    /// one. An id missing from `segments` becomes a node that matches nobody
    /// (`{"or": []}`; note that under a `not` that means everybody).
    ///
    /// Fails with a 422 at `filter` when a segment uses itself, directly or
    /// through others, or when the result would exceed [`MAX_INLINED_NODES`].
    pub fn inline_segments(&mut self, segments: &HashMap<String, Filter>) -> Result<()> {
        let mut inliner = Inliner { segments, stack: Vec::new(), nodes: 0 };
        inliner.node(&mut self.root)
    }

    /// The canonical JSON form: what [`Filter::parse`] reads back to an equal
    /// filter. Dates come out as RFC 3339 with milliseconds, event predicates
    /// with their `min_count` spelled out.
    pub fn to_json(&self) -> Value {
        node_json(&self.root)
    }
}

struct Inliner<'a> {
    segments: &'a HashMap<String, Filter>,
    stack: Vec<String>,
    nodes: usize,
}

impl Inliner<'_> {
    fn node(&mut self, node: &mut Node) -> Result<()> {
        self.nodes += 1;
        if self.nodes > MAX_INLINED_NODES {
            return Err(Error::invalid("filter", format!("with its segments inlined this filter exceeds {MAX_INLINED_NODES} conditions")));
        }
        match node {
            Node::And(items) | Node::Or(items) => items.iter_mut().try_for_each(|n| self.node(n)),
            Node::Not(inner) => self.node(inner),
            Node::Cond(_) | Node::Event(_) => Ok(()),
            Node::Segment(id) => {
                let Some(segment) = self.segments.get(id.as_str()) else {
                    *node = Node::Or(Vec::new());
                    return Ok(());
                };
                if self.stack.contains(id) {
                    return Err(Error::invalid("filter", format!("segment {} uses itself", shown(id))));
                }
                let mut root = segment.root.clone();
                self.stack.push(id.clone());
                // The segment node itself was counted; its replacement is counted as it is walked.
                self.nodes -= 1;
                self.node(&mut root)?;
                self.stack.pop();
                *node = root;
                Ok(())
            }
        }
    }
}

struct Parser<'a> {
    schema: &'a Schema,
    nodes: usize,
}

#[derive(Clone, Copy)]
enum NodeKind {
    Field,
    Event,
    Segment,
    And,
    Or,
    Not,
}

/// The key that tells what a node is, in the order they are looked for.
const NODE_KEYS: &[(&str, NodeKind)] = &[
    ("field", NodeKind::Field),
    ("event", NodeKind::Event),
    ("segment", NodeKind::Segment),
    ("and", NodeKind::And),
    ("or", NodeKind::Or),
    ("not", NodeKind::Not),
];

impl Parser<'_> {
    fn node(&mut self, value: &Value, path: &str, depth: usize) -> Result<Node> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Error::invalid(path, format!("a filter holds at most {MAX_NODES} conditions and groups")));
        }
        if depth > MAX_DEPTH {
            return Err(Error::invalid(path, format!("filters nest at most {MAX_DEPTH} levels deep")));
        }
        let Value::Object(obj) = value else {
            return Err(Error::invalid(path, NODE_SHAPE));
        };
        let Some(&(key, kind)) = NODE_KEYS.iter().find(|(key, _)| obj.contains_key(*key)) else {
            return Err(Error::invalid(path, NODE_SHAPE));
        };
        match kind {
            NodeKind::Field => self.condition(obj, path).map(Node::Cond),
            NodeKind::Event => event(obj, path).map(Node::Event),
            NodeKind::Segment => segment(obj, path).map(Node::Segment),
            NodeKind::And | NodeKind::Or => {
                only(obj, path, &[key])?;
                let list_path = join(path, key);
                let Some(items) = obj.get(key).and_then(Value::as_array) else {
                    return Err(Error::invalid(list_path, format!("{key} takes a list of filters")));
                };
                let mut children = Vec::with_capacity(items.len().min(MAX_NODES));
                for (i, item) in items.iter().enumerate() {
                    children.push(self.node(item, &join(&list_path, i), depth + 1)?);
                }
                Ok(if matches!(kind, NodeKind::And) { Node::And(children) } else { Node::Or(children) })
            }
            NodeKind::Not => {
                only(obj, path, &["not"])?;
                let inner = obj.get("not").unwrap_or(&Value::Null);
                Ok(Node::Not(Box::new(self.node(inner, &join(path, "not"), depth + 1)?)))
            }
        }
    }

    fn condition(&self, obj: &Map<String, Value>, path: &str) -> Result<Cond> {
        only(obj, path, &["field", "op", "value"])?;
        let field_path = join(path, "field");
        let spec = match obj.get("field") {
            Some(Value::String(name)) => self.field(name, &field_path)?,
            _ => return Err(Error::invalid(field_path, "field is a name such as \"email\" or \"attributes.plan\"")),
        };
        let op_path = join(path, "op");
        let op = match obj.get("op") {
            Some(Value::String(s)) => Op::parse(s).ok_or_else(|| {
                let all: Vec<&str> = ALL_OPS.iter().map(|op| op.as_str()).collect();
                Error::invalid(&op_path, format!("unknown operator {}; operators are {}", shown(s), all.join(", ")))
            })?,
            Some(_) => return Err(Error::invalid(op_path, "op is an operator name such as \"eq\"")),
            None => return Err(Error::invalid(op_path, "op is required")),
        };
        let refuse = || {
            let allowed: Vec<&str> = spec.ops().iter().map(|op| op.as_str()).collect();
            Error::invalid(&op_path, format!("{op} does not apply to {} fields; use one of {}", spec.noun(), allowed.join(", ")))
        };
        if !spec.ops().contains(&op) {
            return Err(refuse());
        }
        let value_path = join(path, "value");
        let v = || obj.get("value").ok_or_else(|| Error::invalid(&value_path, "value is required"));
        let vp = value_path.as_str();
        let cond = match spec {
            FieldSpec::Text(ref field) => Cond::Text(
                field.clone(),
                match op {
                    Op::Eq => TextTest::Eq(string(v()?, vp)?),
                    Op::Neq => TextTest::Neq(string(v()?, vp)?),
                    Op::Contains => TextTest::Contains(string(v()?, vp)?),
                    Op::StartsWith => TextTest::StartsWith(string(v()?, vp)?),
                    Op::In => TextTest::In(in_list(v()?, vp, string)?),
                    Op::Exists => TextTest::Exists,
                    _ => return Err(refuse()),
                },
            ),
            FieldSpec::Tags => Cond::Tags(match op {
                Op::Eq => TagTest::Eq(tag(v()?, vp)?),
                Op::Contains => TagTest::Contains(tag(v()?, vp)?),
                Op::Neq => TagTest::Neq(tag(v()?, vp)?),
                Op::In => TagTest::In(in_list(v()?, vp, tag)?),
                Op::Exists => TagTest::Exists,
                _ => return Err(refuse()),
            }),
            FieldSpec::Number(ref name) => Cond::Number(
                name.clone(),
                match op {
                    Op::Eq => NumberTest::Eq(number(v()?, vp)?),
                    Op::Neq => NumberTest::Neq(number(v()?, vp)?),
                    Op::Gt => NumberTest::Cmp(Cmp::Gt, number(v()?, vp)?),
                    Op::Gte => NumberTest::Cmp(Cmp::Gte, number(v()?, vp)?),
                    Op::Lt => NumberTest::Cmp(Cmp::Lt, number(v()?, vp)?),
                    Op::Lte => NumberTest::Cmp(Cmp::Lte, number(v()?, vp)?),
                    Op::Between => {
                        let (a, b) = between(v()?, vp, number)?;
                        NumberTest::Between(a, b)
                    }
                    Op::In => NumberTest::In(in_list(v()?, vp, number)?),
                    Op::Exists => NumberTest::Exists,
                    _ => return Err(refuse()),
                },
            ),
            FieldSpec::Bool(ref field) => Cond::Bool(
                field.clone(),
                match op {
                    Op::Eq => BoolTest::Eq(boolean(v()?, vp)?),
                    Op::Neq => BoolTest::Neq(boolean(v()?, vp)?),
                    Op::Exists => BoolTest::Exists,
                    _ => return Err(refuse()),
                },
            ),
            FieldSpec::Date(ref field) => Cond::Date(
                field.clone(),
                match op {
                    Op::Gt => DateTest::Cmp(Cmp::Gt, date(v()?, vp)?),
                    Op::Gte => DateTest::Cmp(Cmp::Gte, date(v()?, vp)?),
                    Op::Lt => DateTest::Cmp(Cmp::Lt, date(v()?, vp)?),
                    Op::Lte => DateTest::Cmp(Cmp::Lte, date(v()?, vp)?),
                    Op::Between => {
                        let (a, b) = between(v()?, vp, date)?;
                        DateTest::Between(a, b)
                    }
                    Op::WithinDays => DateTest::WithinDays(days(v()?, vp)?),
                    Op::Exists => DateTest::Exists,
                    _ => return Err(refuse()),
                },
            ),
            FieldSpec::Location => Cond::Location(match op {
                Op::InPolygon => GeoTest::Polygon(polygon(v()?, vp)?),
                Op::WithinRadius => circle(v()?, vp)?,
                Op::Exists => GeoTest::Exists,
                _ => return Err(refuse()),
            }),
        };
        Ok(cond)
    }

    fn field(&self, name: &str, path: &str) -> Result<FieldSpec> {
        if let Some(attr) = name.strip_prefix("attributes.") {
            if !is_attribute_name(attr) {
                return Err(Error::invalid(path, "attribute names are 1 to 100 letters, digits, _ or -"));
            }
            let Some(kind) = self.schema.attributes.get(attr) else {
                return Err(Error::invalid(path, format!("unknown attribute {}", shown(attr))));
            };
            let attr = attr.to_owned();
            return Ok(match kind {
                AttrKind::String => FieldSpec::Text(TextField::Attr(attr)),
                AttrKind::Number => FieldSpec::Number(attr),
                AttrKind::Bool => FieldSpec::Bool(BoolField::Attr(attr)),
                AttrKind::Date => FieldSpec::Date(DateField::Attr(attr)),
            });
        }
        Ok(match name {
            "name" => FieldSpec::Text(TextField::Name),
            "email" => FieldSpec::Text(TextField::Email),
            "phone" => FieldSpec::Text(TextField::Phone),
            "company" => FieldSpec::Text(TextField::Company),
            "country" => FieldSpec::Text(TextField::Country),
            "city" => FieldSpec::Text(TextField::City),
            "tags" => FieldSpec::Tags,
            "created_at" => FieldSpec::Date(DateField::CreatedAt),
            "last_seen_at" => FieldSpec::Date(DateField::LastSeenAt),
            "online" => FieldSpec::Bool(BoolField::Online),
            "manager" => FieldSpec::Bool(BoolField::Manager),
            "location" => FieldSpec::Location,
            _ => {
                return Err(Error::invalid(
                    path,
                    format!("unknown field {}; fields are {BUILT_IN_FIELDS}, or attributes.<name>", shown(name)),
                ));
            }
        })
    }
}

fn event(obj: &Map<String, Value>, path: &str) -> Result<EventPred> {
    only(obj, path, &["event", "min_count", "max_count", "within_days"])?;
    let name_path = join(path, "event");
    let Some(Value::String(name)) = obj.get("event") else {
        return Err(Error::invalid(name_path, "event is an event name such as \"purchased\""));
    };
    crate::events::check_name(&name_path, name)?;
    let min = optional(obj, "min_count").map(|v| count(v, &join(path, "min_count"))).transpose()?;
    let max = optional(obj, "max_count").map(|v| count(v, &join(path, "max_count"))).transpose()?;
    let within_days = optional(obj, "within_days").map(|v| days(v, &join(path, "within_days"))).transpose()?;
    let min = match (min, max) {
        (Some(min), _) => min,
        (None, None) => 1,
        (None, Some(_)) => 0,
    };
    if let Some(max) = max
        && max < min
    {
        return Err(Error::invalid(join(path, "max_count"), "max_count must be at least min_count"));
    }
    Ok(EventPred { name: name.clone(), min, max, within_days })
}

fn segment(obj: &Map<String, Value>, path: &str) -> Result<String> {
    only(obj, path, &["segment"])?;
    let id_path = join(path, "segment");
    match obj.get("segment") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_STRING => Ok(id.clone()),
        _ => Err(Error::invalid(id_path, "segment is the id of a saved segment")),
    }
}

/// A key given as `null` counts as absent, as clients often send it so.
fn optional<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn only(obj: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(Error::invalid(join(path, key), format!("unknown key {}", shown(key)))),
        None => Ok(()),
    }
}

fn join(path: &str, key: impl fmt::Display) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// User text quoted into an error message, cut short so a huge key cannot
/// make a huge message.
fn shown(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("\"{s}\"")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("\"{head}…\"")
    }
}

fn is_attribute_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

fn string(v: &Value, path: &str) -> Result<String> {
    let Value::String(s) = v else {
        return Err(Error::invalid(path, "expected a string"));
    };
    if s.len() > MAX_STRING {
        return Err(Error::invalid(path, format!("strings are at most {MAX_STRING} bytes")));
    }
    // PostgreSQL text cannot hold NUL; refusing it here keeps it from becoming a 500 there.
    if s.contains('\0') {
        return Err(Error::invalid(path, "strings cannot contain NUL characters"));
    }
    Ok(s.clone())
}

fn tag(v: &Value, path: &str) -> Result<String> {
    let s = string(v, path)?;
    if s.trim().is_empty() {
        return Err(Error::invalid(path, "a tag is not blank"));
    }
    Ok(s)
}

fn number(v: &Value, path: &str) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| Error::invalid(path, "expected a number")),
        _ => Err(Error::invalid(path, "expected a number")),
    }
}

fn boolean(v: &Value, path: &str) -> Result<bool> {
    v.as_bool().ok_or_else(|| Error::invalid(path, "expected true or false"))
}

fn date(v: &Value, path: &str) -> Result<i64> {
    let ms = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_date(s),
        _ => None,
    };
    ms.ok_or_else(|| Error::invalid(path, DATE_HINT))
}

fn parse_date(s: &str) -> Option<i64> {
    if s.len() == 10 {
        let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        return Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp_millis())
}

fn days(v: &Value, path: &str) -> Result<i64> {
    match v.as_i64() {
        Some(d) if (1..=MAX_DAYS).contains(&d) => Ok(d),
        _ => Err(Error::invalid(path, format!("within_days is a whole number of days from 1 to {MAX_DAYS}"))),
    }
}

fn count(v: &Value, path: &str) -> Result<i64> {
    match v.as_i64() {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(Error::invalid(path, "counts are whole numbers, 0 or more")),
    }
}

fn in_list<T>(v: &Value, path: &str, item: fn(&Value, &str) -> Result<T>) -> Result<Vec<T>> {
    match v.as_array() {
        Some(items) if !items.is_empty() && items.len() <= MAX_LIST => {
            items.iter().enumerate().map(|(i, v)| item(v, &join(path, i))).collect()
        }
        _ => Err(Error::invalid(path, format!("in takes a list of 1 to {MAX_LIST} values"))),
    }
}

fn between<T: PartialOrd>(v: &Value, path: &str, item: fn(&Value, &str) -> Result<T>) -> Result<(T, T)> {
    let Some([from, to]) = v.as_array().map(Vec::as_slice).and_then(|s| <&[Value; 2]>::try_from(s).ok()) else {
        return Err(Error::invalid(path, "between takes two values: [from, to]"));
    };
    let from = item(from, &join(path, 0))?;
    let to = item(to, &join(path, 1))?;
    if to < from {
        return Err(Error::invalid(join(path, 1), "the second value of a between must not be below the first"));
    }
    Ok((from, to))
}

fn coordinate(v: Option<&Value>, path: &str, what: &str, limit: f64) -> Result<f64> {
    match v.and_then(Value::as_f64) {
        Some(x) if (-limit..=limit).contains(&x) => Ok(x),
        _ => Err(Error::invalid(path, format!("{what} is a number from -{limit} to {limit}"))),
    }
}

fn polygon(v: &Value, path: &str) -> Result<Vec<[f64; 2]>> {
    let points = match v.as_array() {
        Some(points) if (3..=MAX_POLYGON).contains(&points.len()) => points,
        _ => return Err(Error::invalid(path, format!("in_polygon takes 3 to {MAX_POLYGON} points: [[lat, lon], …]"))),
    };
    let mut out = Vec::with_capacity(points.len());
    for (i, point) in points.iter().enumerate() {
        let point_path = join(path, i);
        let Some([lat, lon]) = point.as_array().map(Vec::as_slice).and_then(|s| <&[Value; 2]>::try_from(s).ok()) else {
            return Err(Error::invalid(point_path, "a point is [lat, lon]"));
        };
        let lat = coordinate(Some(lat), &join(&point_path, 0), "latitude", 90.0)?;
        let lon = coordinate(Some(lon), &join(&point_path, 1), "longitude", 180.0)?;
        out.push([lat, lon]);
    }
    Ok(out)
}

fn circle(v: &Value, path: &str) -> Result<GeoTest> {
    let Some(obj) = v.as_object() else {
        return Err(Error::invalid(path, "within_radius takes {\"lat\", \"lon\", \"km\"}"));
    };
    only(obj, path, &["lat", "lon", "km"])?;
    let lat = coordinate(obj.get("lat"), &join(path, "lat"), "lat", 90.0)?;
    let lon = coordinate(obj.get("lon"), &join(path, "lon"), "lon", 180.0)?;
    let km = match obj.get("km").and_then(Value::as_f64) {
        Some(km) if km > 0.0 && km <= MAX_KM => km,
        _ => return Err(Error::invalid(join(path, "km"), format!("km is a distance above 0 and at most {MAX_KM}"))),
    };
    Ok(GeoTest::Radius { lat, lon, km })
}

fn node_json(node: &Node) -> Value {
    match node {
        Node::And(items) => json!({ "and": items.iter().map(node_json).collect::<Vec<_>>() }),
        Node::Or(items) => json!({ "or": items.iter().map(node_json).collect::<Vec<_>>() }),
        Node::Not(inner) => json!({ "not": node_json(inner) }),
        Node::Segment(id) => json!({ "segment": id }),
        Node::Event(e) => {
            let mut obj = Map::new();
            obj.insert("event".into(), json!(e.name));
            obj.insert("min_count".into(), json!(e.min));
            if let Some(max) = e.max {
                obj.insert("max_count".into(), json!(max));
            }
            if let Some(days) = e.within_days {
                obj.insert("within_days".into(), json!(days));
            }
            Value::Object(obj)
        }
        Node::Cond(cond) => {
            let (field, op, value) = cond_json(cond);
            let mut obj = Map::new();
            obj.insert("field".into(), json!(field));
            obj.insert("op".into(), json!(op.as_str()));
            if let Some(value) = value {
                obj.insert("value".into(), value);
            }
            Value::Object(obj)
        }
    }
}

fn cond_json(cond: &Cond) -> (String, Op, Option<Value>) {
    match cond {
        Cond::Text(field, test) => {
            let (op, value) = match test {
                TextTest::Eq(v) => (Op::Eq, Some(json!(v))),
                TextTest::Neq(v) => (Op::Neq, Some(json!(v))),
                TextTest::Contains(v) => (Op::Contains, Some(json!(v))),
                TextTest::StartsWith(v) => (Op::StartsWith, Some(json!(v))),
                TextTest::In(v) => (Op::In, Some(json!(v))),
                TextTest::Exists => (Op::Exists, None),
            };
            (field.path(), op, value)
        }
        Cond::Tags(test) => {
            let (op, value) = match test {
                TagTest::Eq(v) => (Op::Eq, Some(json!(v))),
                TagTest::Contains(v) => (Op::Contains, Some(json!(v))),
                TagTest::Neq(v) => (Op::Neq, Some(json!(v))),
                TagTest::In(v) => (Op::In, Some(json!(v))),
                TagTest::Exists => (Op::Exists, None),
            };
            ("tags".into(), op, value)
        }
        Cond::Number(name, test) => {
            let (op, value) = match test {
                NumberTest::Eq(x) => (Op::Eq, Some(json!(x))),
                NumberTest::Neq(x) => (Op::Neq, Some(json!(x))),
                NumberTest::Cmp(cmp, x) => (cmp.op(), Some(json!(x))),
                NumberTest::Between(a, b) => (Op::Between, Some(json!([a, b]))),
                NumberTest::In(xs) => (Op::In, Some(json!(xs))),
                NumberTest::Exists => (Op::Exists, None),
            };
            (format!("attributes.{name}"), op, value)
        }
        Cond::Bool(field, test) => {
            let (op, value) = match test {
                BoolTest::Eq(b) => (Op::Eq, Some(json!(b))),
                BoolTest::Neq(b) => (Op::Neq, Some(json!(b))),
                BoolTest::Exists => (Op::Exists, None),
            };
            (field.path(), op, value)
        }
        Cond::Date(field, test) => {
            let (op, value) = match test {
                DateTest::Cmp(cmp, ms) => (cmp.op(), Some(date_json(*ms))),
                DateTest::Between(a, b) => (Op::Between, Some(json!([date_json(*a), date_json(*b)]))),
                DateTest::WithinDays(d) => (Op::WithinDays, Some(json!(d))),
                DateTest::Exists => (Op::Exists, None),
            };
            (field.path(), op, value)
        }
        Cond::Location(test) => {
            let (op, value) = match test {
                GeoTest::Polygon(points) => (Op::InPolygon, Some(json!(points))),
                GeoTest::Radius { lat, lon, km } => (Op::WithinRadius, Some(json!({ "lat": lat, "lon": lon, "km": km }))),
                GeoTest::Exists => (Op::Exists, None),
            };
            ("location".into(), op, value)
        }
    }
}

/// RFC 3339 where it reads back exactly (years 0 to 9999), else the number.
fn date_json(ms: i64) -> Value {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(d) if (0..=9999).contains(&chrono::Datelike::year(&d)) => json!(d.to_rfc3339_opts(SecondsFormat::Millis, true)),
        _ => json!(ms),
    }
}

impl TextField {
    pub(crate) fn path(&self) -> String {
        match self {
            TextField::Name => "name".into(),
            TextField::Email => "email".into(),
            TextField::Phone => "phone".into(),
            TextField::Company => "company".into(),
            TextField::Country => "country".into(),
            TextField::City => "city".into(),
            TextField::Attr(name) => format!("attributes.{name}"),
        }
    }
}

impl BoolField {
    fn path(&self) -> String {
        match self {
            BoolField::Online => "online".into(),
            BoolField::Manager => "manager".into(),
            BoolField::Attr(name) => format!("attributes.{name}"),
        }
    }
}

impl DateField {
    fn path(&self) -> String {
        match self {
            DateField::CreatedAt => "created_at".into(),
            DateField::LastSeenAt => "last_seen_at".into(),
            DateField::Attr(name) => format!("attributes.{name}"),
        }
    }
}

/// A filter with its constant parts worked out, shared by both compilers so
/// they agree on what is constant: an empty `and` is true, an empty `or`
/// false, an un-inlined segment matches nobody, and "did X at least 0 times"
/// everybody.
enum Folded<'a> {
    Const(bool),
    Expr(Expr<'a>),
}

enum Expr<'a> {
    And(Vec<Expr<'a>>),
    Or(Vec<Expr<'a>>),
    Not(Box<Expr<'a>>),
    Cond(&'a Cond),
    Event(&'a EventPred),
}

fn fold(node: &Node) -> Folded<'_> {
    match node {
        Node::And(items) => fold_group(items, true),
        Node::Or(items) => fold_group(items, false),
        Node::Not(inner) => match fold(inner) {
            Folded::Const(b) => Folded::Const(!b),
            Folded::Expr(Expr::Not(e)) => Folded::Expr(*e),
            Folded::Expr(e) => Folded::Expr(Expr::Not(Box::new(e))),
        },
        Node::Cond(cond) => Folded::Expr(Expr::Cond(cond)),
        Node::Event(e) if e.min == 0 && e.max.is_none() => Folded::Const(true),
        Node::Event(e) => Folded::Expr(Expr::Event(e)),
        Node::Segment(_) => Folded::Const(false),
    }
}

/// `is_and`: true is the identity of `and` and false absorbs it; `or` is the mirror.
fn fold_group(items: &[Node], is_and: bool) -> Folded<'_> {
    let mut kept = Vec::new();
    for item in items {
        match fold(item) {
            Folded::Const(b) if b == is_and => {}
            Folded::Const(b) => return Folded::Const(b),
            Folded::Expr(e) => kept.push(e),
        }
    }
    if kept.len() > 1 {
        return Folded::Expr(if is_and { Expr::And(kept) } else { Expr::Or(kept) });
    }
    match kept.pop() {
        Some(e) => Folded::Expr(e),
        None => Folded::Const(is_and),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn schema() -> Schema {
        let mut attributes = HashMap::new();
        attributes.insert("plan".to_owned(), AttrKind::String);
        attributes.insert("code".to_owned(), AttrKind::String);
        attributes.insert("score".to_owned(), AttrKind::Number);
        attributes.insert("vip".to_owned(), AttrKind::Bool);
        attributes.insert("renewal".to_owned(), AttrKind::Date);
        Schema { attributes }
    }

    fn parse(v: Value) -> Result<Filter> {
        Filter::parse(&v, &schema(), "filter")
    }

    fn ok(v: Value) -> Filter {
        match parse(v.clone()) {
            Ok(f) => f,
            Err(e) => panic!("{v} was refused: {e} at {:?}", e.field()),
        }
    }

    /// The `field` of the 422 the filter is refused with.
    fn refused(v: Value) -> String {
        match parse(v.clone()) {
            Ok(f) => panic!("{v} was accepted as {f:?}"),
            Err(Error::Unprocessable { field, .. }) => field,
            Err(e) => panic!("{v} failed with a non-422: {e:?}"),
        }
    }

    fn cond(field: &str, op: &str, value: Value) -> Value {
        json!({ "field": field, "op": op, "value": value })
    }

    #[test]
    fn attr_kinds_round_trip_their_names() {
        for kind in [AttrKind::String, AttrKind::Number, AttrKind::Bool, AttrKind::Date] {
            assert_eq!(AttrKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(json!(kind.as_str())));
        }
        assert_eq!(AttrKind::parse("text"), None);
    }

    /// For every field kind, each operator is either accepted with a good
    /// value or refused at `.op`.
    #[test]
    fn operators_per_field_kind() {
        let text = ["name", "email", "phone", "company", "country", "city", "attributes.plan"];
        let good: &[(&str, Value)] = &[
            ("eq", json!("x")),
            ("neq", json!("x")),
            ("contains", json!("x")),
            ("starts_with", json!("x")),
            ("gt", json!(1)),
            ("gte", json!(1)),
            ("lt", json!(1)),
            ("lte", json!(1)),
            ("between", json!([1, 2])),
            ("in", json!(["x"])),
            ("exists", Value::Null),
            ("within_days", json!(3)),
            ("in_polygon", json!([[0, 0], [0, 1], [1, 1]])),
            ("within_radius", json!({"lat": 0, "lon": 0, "km": 1})),
        ];
        let numbers_good: &[(&str, Value)] = &[
            ("eq", json!(1)),
            ("neq", json!(1.5)),
            ("gt", json!(1)),
            ("gte", json!(1)),
            ("lt", json!(-1)),
            ("lte", json!(1)),
            ("between", json!([1, 2])),
            ("in", json!([1, 2.5])),
            ("exists", Value::Null),
        ];
        let dates_good: &[(&str, Value)] = &[
            ("gt", json!("2024-01-01")),
            ("gte", json!("2024-01-01T10:00:00+02:00")),
            ("lt", json!(1_700_000_000_000_i64)),
            ("lte", json!("2024-01-01T00:00:00.123Z")),
            ("between", json!(["2024-01-01", "2024-02-01"])),
            ("within_days", json!(7)),
            ("exists", Value::Null),
        ];
        let allowed = |field: &str| -> Vec<&str> {
            match field {
                "tags" => vec!["eq", "neq", "contains", "in", "exists"],
                "attributes.score" => vec!["eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "exists"],
                "online" | "manager" => vec!["eq", "neq"],
                "attributes.vip" => vec!["eq", "neq", "exists"],
                "created_at" | "last_seen_at" | "attributes.renewal" => {
                    vec!["gt", "gte", "lt", "lte", "between", "within_days", "exists"]
                }
                "location" => vec!["in_polygon", "within_radius", "exists"],
                _ => vec!["eq", "neq", "contains", "starts_with", "in", "exists"],
            }
        };
        let fields = text.iter().copied().chain([
            "tags",
            "attributes.score",
            "online",
            "manager",
            "attributes.vip",
            "created_at",
            "last_seen_at",
            "attributes.renewal",
            "location",
        ]);
        for field in fields {
            for (op, _) in good {
                let value = match field {
                    "attributes.score" => numbers_good.iter().find(|(o, _)| o == op).map(|(_, v)| v.clone()),
                    "created_at" | "last_seen_at" | "attributes.renewal" => {
                        dates_good.iter().find(|(o, _)| o == op).map(|(_, v)| v.clone())
                    }
                    "online" | "manager" | "attributes.vip" => Some(json!(true)),
                    _ => None,
                }
                .or_else(|| good.iter().find(|(o, _)| o == op).map(|(_, v)| v.clone()))
                .unwrap_or(Value::Null);
                let filter = cond(field, op, value);
                if allowed(field).contains(op) {
                    let f = ok(filter.clone());
                    assert_eq!(ok(f.to_json()), f, "{filter} does not round-trip");
                } else {
                    assert_eq!(refused(filter), "filter.op", "{field} {op}");
                }
            }
        }
    }

    #[test]
    fn op_errors_name_the_type_and_the_allowed_operators() {
        let Err(e) = parse(cond("created_at", "contains", json!("x"))) else { panic!("accepted") };
        assert_eq!(e.field(), Some("filter.op"));
        let message = e.to_string();
        assert!(message.contains("date"), "{message}");
        assert!(message.contains("gt, gte, lt, lte, between, within_days, exists"), "{message}");
        let Err(e) = parse(cond("attributes.plan", "gt", json!(1))) else { panic!("accepted") };
        assert!(e.to_string().contains("string"), "{e}");
    }

    #[test]
    fn error_paths_point_at_the_bad_node() {
        let good = || cond("email", "eq", json!("a@b.c"));
        assert_eq!(refused(json!({"and": [good(), {"field": "email", "op": "between", "value": 1}]})), "filter.and.1.op");
        assert_eq!(refused(json!({"or": [cond("attributes.score", "eq", json!("x"))]})), "filter.or.0.value");
        assert_eq!(refused(json!({"not": {"field": "nope", "op": "eq", "value": 1}})), "filter.not.field");
        assert_eq!(refused(json!({"or": [{"not": cond("email", "eq", json!(3))}]})), "filter.or.0.not.value");
        assert_eq!(refused(json!({"and": [good(), good(), cond("attributes.score", "between", json!([1, "x"]))]})), "filter.and.2.value.1");
        assert_eq!(refused(json!({"and": [{"event": "no spaces"}]})), "filter.and.0.event");
        assert_eq!(refused(json!({"and": [{"event": "x", "min_count": 3, "max_count": 2}]})), "filter.and.0.max_count");
        assert_eq!(refused(json!({"event": "x", "min_count": -1})), "filter.min_count");
        assert_eq!(refused(json!({"event": "x", "within_days": 0})), "filter.within_days");
        assert_eq!(refused(json!({"event": "x", "when": 1})), "filter.when");
        assert_eq!(refused(json!({"segment": ""})), "filter.segment");
        assert_eq!(refused(json!({"segment": 5})), "filter.segment");
        assert_eq!(refused(json!({"segment": "s", "and": []})), "filter.and");
        // A different prefix, and none at all.
        let Err(e) = Filter::parse(&json!({"or": [{"field": "x"}]}), &schema(), "audience.filter") else { panic!() };
        assert_eq!(e.field(), Some("audience.filter.or.0.field"));
        let Err(e) = Filter::parse(&json!({"not": 1}), &schema(), "") else { panic!() };
        assert_eq!(e.field(), Some("not"));
    }

    #[test]
    fn unknown_keys_are_refused_at_their_path() {
        assert_eq!(refused(json!({"field": "email", "op": "eq", "value": "x", "case": "i"})), "filter.case");
        assert_eq!(refused(json!({"and": [], "extra": 1})), "filter.extra");
        assert_eq!(refused(json!({"not": {"and": []}, "x": 1})), "filter.x");
        assert_eq!(
            refused(json!({"and": [{"field": "location", "op": "within_radius", "value": {"lat": 1, "lon": 1, "km": 1, "m": 2}}]})),
            "filter.and.0.value.m"
        );
        assert_eq!(refused(json!({"nothing": []})), "filter");
        assert_eq!(refused(json!([])), "filter");
        assert_eq!(refused(json!({"and": [1]})), "filter.and.0");
        assert_eq!(refused(json!({"and": {}})), "filter.and");
    }

    #[test]
    fn conditions_need_field_op_and_value() {
        assert_eq!(refused(json!({"field": 1, "op": "eq", "value": 1})), "filter.field");
        assert_eq!(refused(json!({"field": "email", "value": 1})), "filter.op");
        assert_eq!(refused(json!({"field": "email", "op": "like", "value": 1})), "filter.op");
        assert_eq!(refused(json!({"field": "email", "op": "eq"})), "filter.value");
        // exists needs no value, and ignores one.
        ok(json!({"field": "email", "op": "exists"}));
        ok(json!({"field": "email", "op": "exists", "value": 12}));
    }

    #[test]
    fn attributes_are_checked_against_the_schema() {
        assert_eq!(refused(cond("attributes.missing", "eq", json!("x"))), "filter.field");
        let Err(e) = parse(cond("attributes.missing", "eq", json!("x"))) else { panic!() };
        assert!(e.to_string().contains("unknown attribute"), "{e}");
        assert_eq!(refused(cond("attributes.", "eq", json!("x"))), "filter.field");
        assert_eq!(refused(cond("attributes.a b", "eq", json!("x"))), "filter.field");
        assert_eq!(refused(cond("attributes.score", "contains", json!("1"))), "filter.op");
        assert_eq!(refused(cond("attributes.vip", "gt", json!(true))), "filter.op");
        assert_eq!(refused(cond("attributes.renewal", "eq", json!("2024-01-01"))), "filter.op");
        assert_eq!(refused(cond("attributes.plan", "within_days", json!(3))), "filter.op");
        assert_eq!(refused(cond("attributes.vip", "eq", json!("true"))), "filter.value");
        assert_eq!(refused(cond("attributes.score", "eq", json!("3"))), "filter.value");
    }

    #[test]
    fn values_are_checked() {
        // Dates.
        assert_eq!(refused(cond("created_at", "gt", json!("yesterday"))), "filter.value");
        assert_eq!(refused(cond("created_at", "gt", json!("2024-13-01"))), "filter.value");
        assert_eq!(refused(cond("created_at", "gt", json!("2024-01-01 10:00"))), "filter.value");
        assert_eq!(refused(cond("created_at", "gt", json!(1.5))), "filter.value");
        assert_eq!(refused(cond("created_at", "gt", json!(true))), "filter.value");
        assert_eq!(refused(cond("created_at", "between", json!(["2024-02-01", "2024-01-01"]))), "filter.value.1");
        assert_eq!(refused(cond("created_at", "between", json!(["2024-02-01", "x"]))), "filter.value.1");
        assert_eq!(refused(cond("created_at", "between", json!(["x", "2024-02-01"]))), "filter.value.0");
        assert_eq!(refused(cond("created_at", "within_days", json!(0))), "filter.value");
        assert_eq!(refused(cond("created_at", "within_days", json!(-3))), "filter.value");
        assert_eq!(refused(cond("created_at", "within_days", json!(2.5))), "filter.value");
        assert_eq!(refused(cond("created_at", "within_days", json!(MAX_DAYS + 1))), "filter.value");
        // Between.
        assert_eq!(refused(cond("attributes.score", "between", json!([5, 1]))), "filter.value.1");
        assert_eq!(refused(cond("attributes.score", "between", json!([1]))), "filter.value");
        assert_eq!(refused(cond("attributes.score", "between", json!([1, 2, 3]))), "filter.value");
        assert_eq!(refused(cond("attributes.score", "between", json!(1))), "filter.value");
        ok(cond("attributes.score", "between", json!([2, 2])));
        // In.
        assert_eq!(refused(cond("email", "in", json!([]))), "filter.value");
        assert_eq!(refused(cond("email", "in", json!("a"))), "filter.value");
        assert_eq!(refused(cond("email", "in", json!(["a", 2]))), "filter.value.1");
        assert_eq!(refused(cond("attributes.score", "in", json!([1, "2"]))), "filter.value.1");
        assert_eq!(refused(cond("email", "in", json!(vec!["a"; MAX_LIST + 1]))), "filter.value");
        ok(cond("email", "in", json!(vec!["a"; MAX_LIST])));
        // Strings and tags.
        assert_eq!(refused(cond("name", "eq", json!(1))), "filter.value");
        assert_eq!(refused(cond("name", "eq", json!("x".repeat(MAX_STRING + 1)))), "filter.value");
        ok(cond("name", "eq", json!("x".repeat(MAX_STRING))));
        assert_eq!(refused(cond("name", "eq", json!("a\u{0}b"))), "filter.value");
        assert_eq!(refused(cond("tags", "contains", json!("  "))), "filter.value");
        assert_eq!(refused(cond("tags", "in", json!(["ok", ""]))), "filter.value.1");
        // Bools.
        assert_eq!(refused(cond("online", "eq", json!(1))), "filter.value");
        assert_eq!(refused(cond("online", "exists", Value::Null)), "filter.op");
        assert_eq!(refused(cond("manager", "exists", Value::Null)), "filter.op");
    }

    #[test]
    fn dates_are_read_as_utc_milliseconds() {
        let ms = |v: Value| match ok(cond("created_at", "gt", v)).root {
            Node::Cond(Cond::Date(_, DateTest::Cmp(_, ms))) => ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(ms(json!("2024-01-01")), 1_704_067_200_000);
        assert_eq!(ms(json!("2024-01-01T00:00:00Z")), 1_704_067_200_000);
        assert_eq!(ms(json!("2024-01-01T02:00:00.250+02:00")), 1_704_067_200_250);
        assert_eq!(ms(json!(1_704_067_200_000_i64)), 1_704_067_200_000);
        assert_eq!(ms(json!(-86_400_000)), -86_400_000);
    }

    #[test]
    fn geo_values_are_checked() {
        let square = json!([[0, 0], [0, 1], [1, 1], [1, 0]]);
        ok(cond("location", "in_polygon", square));
        assert_eq!(refused(cond("location", "in_polygon", json!([[0, 0], [0, 1]]))), "filter.value");
        assert_eq!(refused(cond("location", "in_polygon", json!([[0, 0], [0, 1], [91, 1]]))), "filter.value.2.0");
        assert_eq!(refused(cond("location", "in_polygon", json!([[0, 0], [0, 181], [1, 1]]))), "filter.value.1.1");
        assert_eq!(refused(cond("location", "in_polygon", json!([[0, 0], [0, 1], [1]]))), "filter.value.2");
        assert_eq!(refused(cond("location", "in_polygon", json!([[0, 0], [0, 1], "x"]))), "filter.value.2");
        let too_many: Vec<Value> = (0..=MAX_POLYGON).map(|i| json!([0, i as f64 / 1000.0])).collect();
        assert_eq!(refused(cond("location", "in_polygon", json!(too_many))), "filter.value");
        ok(cond("location", "within_radius", json!({"lat": -90, "lon": 180, "km": 0.5})));
        assert_eq!(refused(cond("location", "within_radius", json!({"lat": 91, "lon": 0, "km": 1}))), "filter.value.lat");
        assert_eq!(refused(cond("location", "within_radius", json!({"lat": 0, "lon": -181, "km": 1}))), "filter.value.lon");
        assert_eq!(refused(cond("location", "within_radius", json!({"lat": 0, "lon": 0, "km": 0}))), "filter.value.km");
        assert_eq!(refused(cond("location", "within_radius", json!({"lat": 0, "lon": 0}))), "filter.value.km");
        assert_eq!(refused(cond("location", "within_radius", json!([0, 0, 1]))), "filter.value");
        assert_eq!(refused(cond("location", "eq", json!("x"))), "filter.op");
    }

    #[test]
    fn events_default_and_check_their_counts() {
        let event = |v: Value| match ok(v).root {
            Node::Event(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(event(json!({"event": "page.view"})), EventPred { name: "page.view".into(), min: 1, max: None, within_days: None });
        assert_eq!(event(json!({"event": "a:b", "max_count": 2})).min, 0);
        assert_eq!(event(json!({"event": "x", "min_count": 0, "max_count": 0})).max, Some(0));
        assert_eq!(event(json!({"event": "x", "min_count": 2, "max_count": 2, "within_days": 3})).within_days, Some(3));
        assert_eq!(event(json!({"event": "x", "max_count": null})).min, 1);
        assert_eq!(refused(json!({"event": "x", "min_count": 1.5})), "filter.min_count");
        assert_eq!(refused(json!({"event": "x", "max_count": "3"})), "filter.max_count");
        assert_eq!(refused(json!({"event": ""})), "filter.event");
        assert_eq!(refused(json!({"event": "x".repeat(101)})), "filter.event");
        assert_eq!(refused(json!({"event": 3})), "filter.event");
    }

    fn nested_nots(levels: usize) -> Value {
        let mut v = cond("email", "exists", Value::Null);
        for _ in 1..levels {
            v = json!({ "not": v });
        }
        v
    }

    #[test]
    fn depth_and_size_are_limited() {
        ok(nested_nots(MAX_DEPTH));
        let deep_path = format!("filter{}", ".not".repeat(MAX_DEPTH));
        assert_eq!(refused(nested_nots(MAX_DEPTH + 1)), deep_path);

        // The group itself counts, so 499 conditions fill it.
        let many = |n: usize| json!({ "or": vec![cond("email", "exists", Value::Null); n] });
        ok(many(MAX_NODES - 1));
        assert_eq!(refused(many(MAX_NODES)), format!("filter.or.{}", MAX_NODES - 1));
    }

    #[test]
    fn empty_groups_are_valid() {
        ok(json!({"and": []}));
        ok(json!({"or": []}));
        ok(json!({"not": {"and": []}}));
    }

    #[test]
    fn to_json_is_canonical_and_round_trips() {
        let input = json!({"and": [
            {"field": "email", "op": "eq", "value": "Ann@Example.com"},
            {"field": "tags", "op": "in", "value": ["VIP", "beta "]},
            {"field": "created_at", "op": "between", "value": ["2024-01-01", 1_706_745_600_000_i64]},
            {"field": "last_seen_at", "op": "within_days", "value": 7},
            {"field": "attributes.score", "op": "between", "value": [1, 2.5]},
            {"field": "attributes.vip", "op": "exists", "value": "ignored"},
            {"field": "location", "op": "in_polygon", "value": [[1, 2], [3, 4.5], [-5, 6]]},
            {"field": "location", "op": "within_radius", "value": {"km": 10, "lat": 1, "lon": 2}},
            {"or": [{"event": "signed_up"}, {"event": "bought", "max_count": 3, "within_days": 30}]},
            {"not": {"segment": "seg_1"}},
        ]});
        let f = ok(input);
        let out = f.to_json();
        assert_eq!(
            out,
            json!({"and": [
                {"field": "email", "op": "eq", "value": "Ann@Example.com"},
                {"field": "tags", "op": "in", "value": ["VIP", "beta "]},
                {"field": "created_at", "op": "between", "value": ["2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z"]},
                {"field": "last_seen_at", "op": "within_days", "value": 7},
                {"field": "attributes.score", "op": "between", "value": [1.0, 2.5]},
                {"field": "attributes.vip", "op": "exists"},
                {"field": "location", "op": "in_polygon", "value": [[1.0, 2.0], [3.0, 4.5], [-5.0, 6.0]]},
                {"field": "location", "op": "within_radius", "value": {"lat": 1.0, "lon": 2.0, "km": 10.0}},
                {"or": [
                    {"event": "signed_up", "min_count": 1},
                    {"event": "bought", "min_count": 0, "max_count": 3, "within_days": 30},
                ]},
                {"not": {"segment": "seg_1"}},
            ]})
        );
        assert_eq!(ok(out.clone()), f);
        assert_eq!(ok(out.clone()).to_json(), out);
        // Dates outside what RFC 3339 can write stay numbers.
        let far = ok(cond("created_at", "gt", json!(400_000_000_000_000_i64)));
        assert_eq!(far.to_json()["value"], json!(400_000_000_000_000_i64));
        assert_eq!(ok(far.to_json()), far);
    }

    #[test]
    fn segments_are_listed_and_inlined() {
        let mut f = ok(json!({"or": [{"segment": "a"}, {"not": {"segment": "b"}}, {"segment": "a"}, {"segment": "gone"}]}));
        assert_eq!(f.segment_ids(), vec!["a", "b", "gone"]);
        let mut segments = HashMap::new();
        segments.insert("a".to_owned(), ok(cond("country", "eq", json!("fr"))));
        segments.insert("b".to_owned(), ok(json!({"and": [{"segment": "c"}, cond("manager", "eq", json!(true))]})));
        segments.insert("c".to_owned(), ok(cond("tags", "contains", json!("vip"))));
        f.inline_segments(&segments).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.segment_ids().is_empty());
        assert_eq!(
            f.to_json(),
            json!({"or": [
                cond("country", "eq", json!("fr")),
                {"not": {"and": [cond("tags", "contains", json!("vip")), cond("manager", "eq", json!(true))]}},
                cond("country", "eq", json!("fr")),
                {"or": []},
            ]})
        );
    }

    #[test]
    fn segments_that_use_themselves_are_refused() {
        let mut segments = HashMap::new();
        segments.insert("a".to_owned(), ok(json!({"not": {"segment": "b"}})));
        segments.insert("b".to_owned(), ok(json!({"and": [{"segment": "a"}]})));
        let mut f = ok(json!({"segment": "a"}));
        let Err(e) = f.inline_segments(&segments) else { panic!("a cycle was inlined") };
        assert_eq!(e.field(), Some("filter"));
        // Used twice but not in a cycle is fine.
        segments.insert("b".to_owned(), ok(cond("email", "exists", Value::Null)));
        let mut f = ok(json!({"and": [{"segment": "a"}, {"segment": "b"}, {"segment": "b"}]}));
        assert!(f.inline_segments(&segments).is_ok());
    }

    #[test]
    fn inlining_cannot_blow_up() {
        // Each segment uses the previous one twice: 2^20 leaves if unchecked.
        let mut segments = HashMap::new();
        segments.insert("s0".to_owned(), ok(cond("email", "exists", Value::Null)));
        for i in 1..=20 {
            let prev = format!("s{}", i - 1);
            segments.insert(format!("s{i}"), ok(json!({"or": [{"segment": prev}, {"segment": prev}]})));
        }
        let mut f = ok(json!({"segment": "s20"}));
        let Err(e) = f.inline_segments(&segments) else { panic!("expanded") };
        assert_eq!(e.field(), Some("filter"));
        let mut f = ok(json!({"segment": "s8"}));
        assert!(f.inline_segments(&segments).is_ok());
    }

    #[test]
    fn folding_works_out_constants() {
        let folded = |v: Value| match fold(&ok(v).root) {
            Folded::Const(b) => Some(b),
            Folded::Expr(_) => None,
        };
        assert_eq!(folded(json!({"and": []})), Some(true));
        assert_eq!(folded(json!({"or": []})), Some(false));
        assert_eq!(folded(json!({"not": {"or": []}})), Some(true));
        assert_eq!(folded(json!({"segment": "s"})), Some(false));
        assert_eq!(folded(json!({"not": {"segment": "s"}})), Some(true));
        assert_eq!(folded(json!({"event": "x", "min_count": 0})), Some(true));
        assert_eq!(folded(json!({"event": "x", "min_count": 0, "within_days": 3})), Some(true));
        assert_eq!(folded(json!({"event": "x", "max_count": 0})), None);
        let email = || cond("email", "exists", Value::Null);
        assert_eq!(folded(json!({"and": [email(), {"or": []}]})), Some(false));
        assert_eq!(folded(json!({"or": [email(), {"and": []}]})), Some(true));
        assert_eq!(folded(json!({"and": [email(), {"and": []}]})), None);
        assert!(matches!(fold(&ok(json!({"not": {"not": email()}})).root), Folded::Expr(Expr::Cond(_))));
        assert!(matches!(fold(&ok(json!({"and": [email(), {"and": []}]})).root), Folded::Expr(Expr::Cond(_))));
    }
}
