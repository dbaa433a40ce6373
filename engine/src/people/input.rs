//! What callers may say about a person, parsed and normalised at the edge.
//!
//! Emails are lower-cased, phones reduced to `+` and digits, tags trimmed and
//! lower-cased, and each attribute value gets a kind (string, number, bool,
//! date) so filters can check operators against it.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::filter::AttrKind;
use crate::{Error, Result};

/// Upsert or patch body for a person. Absent fields are left as they are; for
/// `location` and each attribute an explicit null removes the value.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `mobile`, `home` or `work`.
    pub phone_kind: Option<String>,
    pub name: Option<String>,
    /// A company name, or `{name, external_id?}`.
    #[schema(value_type = Option<Object>)]
    pub company: Option<CompanyInput>,
    /// Whether the person is a manager of their company.
    pub manager: Option<bool>,
    pub country: Option<String>,
    pub city: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Location>)]
    pub location: Option<Option<Location>>,
    /// Custom attributes: strings, numbers, booleans or dates (RFC 3339 or
    /// `YYYY-MM-DD`); null removes one.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    /// Replaces the person's tags.
    pub tags: Option<Vec<String>>,
    pub unsubscribed: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum CompanyInput {
    Name(String),
    Full { name: String, external_id: Option<String> },
}

impl CompanyInput {
    pub fn name(&self) -> &str {
        match self {
            CompanyInput::Name(n) | CompanyInput::Full { name: n, .. } => n,
        }
    }
    pub fn external_id(&self) -> Option<&str> {
        match self {
            CompanyInput::Name(_) => None,
            CompanyInput::Full { external_id, .. } => external_id.as_deref(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

fn double_option<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Trims; empty means absent; longer than `max` bytes is a 422 on `field`.
pub fn text(field: &str, v: Option<&str>, max: usize) -> Result<Option<String>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.len() > max => Err(Error::invalid(field, format!("{field} is longer than {max} bytes"))),
        Some(s) if s.chars().any(char::is_control) => Err(Error::invalid(field, format!("{field} contains control characters"))),
        other => Ok(other.map(str::to_owned)),
    }
}

/// A plausible email address, lower-cased.
pub fn email(field: &str, v: &str) -> Result<String> {
    let e = v.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(e) } else { Err(Error::invalid(field, "not a valid email address")) }
}

/// A phone number as `+` and digits (spaces, dashes, dots and parentheses
/// dropped), 5 to 20 digits.
pub fn phone(field: &str, v: &str) -> Result<String> {
    let v = v.trim();
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        match c {
            '+' if i == 0 => out.push('+'),
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(Error::invalid(field, "a phone number has only digits, spaces, dashes, parentheses and a leading +")),
        }
    }
    let digits = out.trim_start_matches('+').len();
    if !(5..=20).contains(&digits) {
        return Err(Error::invalid(field, "a phone number has 5 to 20 digits"));
    }
    Ok(out)
}

pub fn phone_kind(field: &str, v: &str) -> Result<String> {
    match v.trim() {
        k @ ("mobile" | "home" | "work") => Ok(k.to_owned()),
        _ => Err(Error::invalid(field, "phone_kind is mobile, home or work")),
    }
}

pub fn location(field: &str, l: Location) -> Result<Location> {
    if !(-90.0..=90.0).contains(&l.lat) {
        return Err(Error::invalid(format!("{field}.lat"), "lat is between -90 and 90"));
    }
    if !(-180.0..=180.0).contains(&l.lon) {
        return Err(Error::invalid(format!("{field}.lon"), "lon is between -180 and 180"));
    }
    Ok(l)
}

/// Tags are trimmed and lower-cased; duplicates collapse.
pub fn tags(field: &str, v: &[String]) -> Result<Vec<String>> {
    if v.len() > 100 {
        return Err(Error::invalid(field, "at most 100 tags"));
    }
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for (i, t) in v.iter().enumerate() {
        let t = t.trim().to_lowercase();
        if t.is_empty() || t.len() > 100 || t.chars().any(char::is_control) {
            return Err(Error::invalid(format!("{field}.{i}"), "a tag is 1 to 100 characters"));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

pub fn check_attribute_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok { Ok(()) } else { Err(Error::invalid(field, "attribute names are 1 to 100 letters, digits, _ or -")) }
}

/// Parses a date given as RFC 3339, `YYYY-MM-DD` (midnight UTC) or epoch ms.
pub fn date_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_millis());
            }
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

/// An attribute value ready to store: its kind, and the indexed forms.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrValue {
    pub kind: AttrKind,
    /// What `person.attributes` shows (dates as RFC 3339).
    pub shown: Value,
    /// Lower-cased, for string matching.
    pub str_value: Option<String>,
    /// Numbers, bools (0/1) and dates (ms), for comparisons.
    pub num_value: Option<f64>,
}

/// Types an attribute value. `known` is the attribute's kind if it has one; a
/// first value decides it (a string that reads as a date makes a date).
pub fn attribute(field: &str, v: &Value, known: Option<AttrKind>) -> Result<AttrValue> {
    let kind = match (known, v) {
        (Some(k), _) => k,
        (None, Value::Bool(_)) => AttrKind::Bool,
        (None, Value::Number(_)) => AttrKind::Number,
        (None, Value::String(s)) if date_ms(&Value::String(s.clone())).is_some() && s.len() >= 10 => AttrKind::Date,
        (None, Value::String(_)) => AttrKind::String,
        (None, _) => return Err(Error::invalid(field, "an attribute is a string, number, boolean or date")),
    };
    let wrong = || Error::invalid(field, format!("this attribute holds {} values", kind.as_str()));
    Ok(match kind {
        AttrKind::String => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(wrong()),
            };
            if s.len() > 1000 {
                return Err(Error::invalid(field, "attribute strings are at most 1000 bytes"));
            }
            AttrValue { kind, str_value: Some(s.to_lowercase()), num_value: None, shown: Value::String(s) }
        }
        AttrKind::Number => {
            let n = v.as_f64().filter(|n| n.is_finite()).ok_or_else(wrong)?;
            AttrValue { kind, shown: v.clone(), str_value: None, num_value: Some(n) }
        }
        AttrKind::Bool => {
            let b = v.as_bool().ok_or_else(wrong)?;
            AttrValue { kind, shown: Value::Bool(b), str_value: None, num_value: Some(if b { 1.0 } else { 0.0 }) }
        }
        AttrKind::Date => {
            let ms = date_ms(v).ok_or_else(|| Error::invalid(field, "this attribute holds dates: RFC 3339, YYYY-MM-DD or epoch ms"))?;
            AttrValue { kind, shown: Value::String(crate::util::rfc3339(ms)), str_value: None, num_value: Some(ms as f64) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(email("email", " Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in ["ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@.com", "ann@example.com."] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_keep_a_plus_and_digits() {
        assert_eq!(phone("phone", "+49 (170) 123-45.67").unwrap(), "+491701234567");
        assert_eq!(phone("phone", "0170 1234567").unwrap(), "01701234567");
        assert!(phone("phone", "12").is_err());
        assert!(phone("phone", "call me").is_err());
        assert!(phone("phone", "1+2345678").is_err());
        assert!(phone_kind("phone_kind", "mobile").is_ok());
        assert!(phone_kind("phone_kind", "fax").is_err());
    }

    #[test]
    fn tags_are_normalised() {
        assert_eq!(tags("tags", &["VIP".into(), " vip ".into(), "beta".into()]).unwrap(), vec!["beta", "vip"]);
        let e = tags("tags", &["ok".into(), "  ".into()]).unwrap_err();
        assert!(matches!(e, Error::Unprocessable { ref field, .. } if field == "tags.1"));
    }

    #[test]
    fn attribute_kinds_come_from_the_first_value() {
        assert_eq!(attribute("a", &json!(3), None).unwrap().kind, AttrKind::Number);
        assert_eq!(attribute("a", &json!(true), None).unwrap().num_value, Some(1.0));
        let d = attribute("a", &json!("2024-03-01"), None).unwrap();
        assert_eq!(d.kind, AttrKind::Date);
        assert_eq!(d.num_value, Some(1_709_251_200_000.0));
        let s = attribute("a", &json!("Pro Plan"), None).unwrap();
        assert_eq!((s.kind, s.str_value.as_deref()), (AttrKind::String, Some("pro plan")));
        // Once typed, other values must fit.
        assert!(attribute("a", &json!("many"), Some(AttrKind::Number)).is_err());
        assert!(attribute("a", &json!("soon"), Some(AttrKind::Date)).is_err());
        assert_eq!(attribute("a", &json!(42), Some(AttrKind::String)).unwrap().shown, json!("42"));
        assert!(attribute("a", &json!({"x": 1}), None).is_err());
        assert!(attribute("a", &json!([1]), None).is_err());
    }

    #[test]
    fn locations_are_in_range() {
        assert!(location("location", Location { lat: 52.5, lon: 13.4 }).is_ok());
        let e = location("location", Location { lat: 91.0, lon: 0.0 }).unwrap_err();
        assert!(matches!(e, Error::Unprocessable { ref field, .. } if field == "location.lat"));
    }
}
