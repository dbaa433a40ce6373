//! Snippets: handlebars placeholders in the texts Parley sends for someone
//! (automated chat messages, flow steps, and later outbound messages), such
//! as `Hi {{default person.first_name "there"}}` or `{{person.attributes.plan}}`.
//!
//! A text is checked when it is saved, so a syntax error is a 422 naming the
//! field, line and column, and rendered when it is sent, against the person,
//! the teammate it comes from and the workspace ([`context`]). Rendering
//! escapes nothing: a chat message is text, and whoever builds markup from a
//! rendered text (an email's HTML part) escapes it there. Nothing but the
//! data given is reachable: no partials, files or scripts are registered.

use std::sync::OnceLock;

use handlebars::{Handlebars, handlebars_helper};
use serde_json::{Value, json};

use crate::people::Person;
use crate::{Error, Result};

/// The longest text a snippet may render to, so a template cannot blow a
/// short text up (`{{#each}}` over a large attribute) past what a message holds.
pub const MAX_RENDERED: usize = 64 * 1024;

handlebars_helper!(default: |value: Json, fallback: Json| {
    let blank = match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    };
    if blank { fallback.clone() } else { value.clone() }
});

/// A registry that escapes nothing and knows only `default`.
fn base() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.register_escape_fn(handlebars::no_escape);
    h.register_helper("default", Box::new(default));
    h
}

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(base)
}

/// Whether `text` is a well-formed snippet; the error names `field` and
/// says where the mistake is.
pub fn check(field: &str, text: &str) -> Result<()> {
    handlebars::Template::compile(text).map(|_| ()).map_err(|e| {
        let at = e.pos().map(|(line, column)| format!(" at line {line}, column {column}")).unwrap_or_default();
        Error::invalid(field, format!("the snippet has a syntax error{at}: {}", e.reason()))
    })
}

/// Renders `text` against `data` (see [`context`]). A missing value renders
/// as nothing; `default` gives a fallback for it.
pub fn render(field: &str, text: &str, data: &Value) -> Result<String> {
    // Texts without placeholders are most of them; they need no parsing.
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    check(field, text)?;
    let out =
        registry().render_template(text, data).map_err(|e| Error::invalid(field, format!("the snippet could not be rendered: {e}")))?;
    if out.len() > MAX_RENDERED {
        return Err(Error::invalid(field, format!("the snippet renders to more than {MAX_RENDERED} bytes")));
    }
    Ok(out)
}

/// Texts parsed once and rendered for many people (a mass send), each
/// under its field's name.
pub struct Compiled(Handlebars<'static>);

impl Compiled {
    pub fn new(texts: &[(&str, &str)]) -> Result<Compiled> {
        let mut h = base();
        for (field, text) in texts {
            check(field, text)?;
            h.register_template_string(field, text).map_err(|e| Error::invalid(*field, format!("the snippet has a syntax error: {e}")))?;
        }
        Ok(Compiled(h))
    }

    /// Renders the text of `field` against `data` (as [`render`] does).
    pub fn render(&self, field: &str, data: &Value) -> Result<String> {
        let out = self.0.render(field, data).map_err(|e| Error::invalid(field, format!("the snippet could not be rendered: {e}")))?;
        if out.len() > MAX_RENDERED {
            return Err(Error::invalid(field, format!("the snippet renders to more than {MAX_RENDERED} bytes")));
        }
        Ok(out)
    }
}

/// What a snippet sees: `person` (name, first_name, last_name, email, phone,
/// company, country, city, tags, attributes), `teammate` (name, first_name,
/// email) and `workspace` (name). Absent parts are left out.
pub fn context(person: Option<&Person>, teammate: Option<(&str, &str)>, workspace_name: Option<&str>) -> Value {
    let mut data = json!({});
    if let Some(p) = person {
        let (first, last) = split_name(p.name.as_deref());
        data["person"] = json!({
            "id": p.id,
            "name": p.name,
            "first_name": first,
            "last_name": last,
            "email": p.email,
            "phone": p.phone,
            "company": p.company.as_ref().map(|c| c.name.clone()),
            "country": p.country,
            "city": p.city,
            "tags": p.tags,
            "attributes": p.attributes,
        });
    }
    if let Some((name, email)) = teammate {
        let (first, _) = split_name(Some(name));
        data["teammate"] = json!({"name": name, "first_name": first, "email": email});
    }
    if let Some(name) = workspace_name {
        data["workspace"] = json!({"name": name});
    }
    data
}

/// "Ann Lee" → ("Ann", "Lee"); one word is a first name.
fn split_name(name: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else { return (None, None) };
    match name.split_once(char::is_whitespace) {
        Some((first, last)) => (Some(first.to_owned()), Some(last.trim().to_owned())),
        None => (Some(name.to_owned()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        json!({"person": {"name": "Ann Lee", "first_name": "Ann", "email": null, "attributes": {"plan": "pro", "seats": 12}},
               "teammate": {"name": "Tess", "first_name": "Tess"}, "workspace": {"name": "Acme"}})
    }

    #[test]
    fn placeholders_and_fallbacks_render_as_plain_text() {
        let d = data();
        assert_eq!(
            render("body", "Hi {{person.first_name}}, {{teammate.name}} from {{workspace.name}}", &d).unwrap(),
            "Hi Ann, Tess from Acme"
        );
        assert_eq!(render("body", "{{person.attributes.plan}} × {{person.attributes.seats}}", &d).unwrap(), "pro × 12");
        assert_eq!(render("body", r#"Write to {{default person.email "us"}}"#, &d).unwrap(), "Write to us");
        assert_eq!(render("body", r#"Hi {{default person.first_name "there"}}"#, &json!({})).unwrap(), "Hi there");
        // Text, not markup: nothing is escaped.
        let d = json!({"person": {"name": "<b>Tom & Jerry</b>"}});
        assert_eq!(render("body", "{{person.name}}", &d).unwrap(), "<b>Tom & Jerry</b>");
        assert_eq!(render("body", "no placeholders {", &d).unwrap(), "no placeholders {");
    }

    #[test]
    fn a_syntax_error_names_the_field_line_and_column() {
        let e = check("flow.nodes.hello.text", "Hi\n{{#if person.name}}there").unwrap_err();
        let Error::Unprocessable { field, message, .. } = e else { panic!("{e:?}") };
        assert_eq!(field, "flow.nodes.hello.text");
        assert!(message.contains("line 2"), "{message}");
        let e = render("body", "Hi {{person.name", &data()).unwrap_err();
        assert!(e.to_string().contains("column"), "{e}");
        assert!(check("body", "{{person.name}} {{#if person.email}}yes{{else}}no{{/if}}").is_ok());
    }

    #[test]
    fn compiled_texts_render_like_single_ones() {
        let data = json!({"person": {"first_name": "Ann"}});
        let c = Compiled::new(&[("body", "Hi {{default person.first_name \"there\"}}"), ("title", "For {{person.first_name}}")]).unwrap();
        assert_eq!(c.render("body", &data).unwrap(), render("body", "Hi {{default person.first_name \"there\"}}", &data).unwrap());
        assert_eq!(c.render("body", &json!({})).unwrap(), "Hi there");
        assert_eq!(c.render("title", &data).unwrap(), "For Ann");
        assert_eq!(Compiled::new(&[("body", "{{#if}}")]).err().and_then(|e| e.field().map(str::to_owned)).as_deref(), Some("body"));
    }

    #[test]
    fn names_split_into_first_and_last() {
        assert_eq!(split_name(Some(" Ann  Lee ")), (Some("Ann".into()), Some("Lee".into())));
        assert_eq!(split_name(Some("Cher")), (Some("Cher".into()), None));
        assert_eq!(split_name(Some("  ")), (None, None));
    }
}
