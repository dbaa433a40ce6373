//! The filter language (placeholder until the full module lands).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub attributes: HashMap<String, AttrKind>,
}

#[derive(Clone, Debug)]
pub struct Filter(serde_json::Value);

impl Filter {
    pub fn parse(value: &serde_json::Value, _schema: &Schema, _path: &str) -> crate::Result<Filter> {
        Ok(Filter(value.clone()))
    }
    pub fn segment_ids(&self) -> Vec<String> {
        Vec::new()
    }
    pub fn inline_segments(&mut self, _segments: &HashMap<String, Filter>) -> crate::Result<()> {
        Ok(())
    }
    pub fn to_json(&self) -> serde_json::Value {
        self.0.clone()
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub enum Bind {
    Text(String),
    Float(f64),
    Int(i64),
    Bool(bool),
}

pub struct Sql {
    pub sql: String,
    pub binds: Vec<Bind>,
}

pub fn to_sql(_filter: &Filter, _dialect: Dialect, _first_param: usize, _ws_param: usize, _now_ms: i64) -> Sql {
    Sql { sql: "TRUE".into(), binds: Vec::new() }
}

// TEMPORARY: stands in for the filter module's Meilisearch translator so the
// Meilisearch index builds on this branch; drop this at merge.

/// Why a filter cannot be expressed as a Meilisearch filter string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// Placeholder: every filter is reported unsupported, so filtered searches
/// are answered by SQL until the real translator lands.
pub fn to_meili(_: &Filter, _: i64) -> Result<String, Unsupported> {
    Err(Unsupported("placeholder".into()))
}
