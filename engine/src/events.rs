//! The timeline: events a person did (page views, tracked events).

use serde_json::Value;

use crate::util::{new_id, now_ms};
use crate::{Db, Error, Result, with_tx};

const MAX_DATA: usize = 16 * 1024;

/// Checks an event name: short, printable, like `purchased` or `page.view`.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok { Ok(()) } else { Err(Error::invalid(field, "event names are 1 to 100 letters, digits, or _ - . :")) }
}

/// Records an event on a person's timeline.
pub async fn record(db: &Db, workspace_id: &str, person_id: &str, name: &str, data: &Value) -> Result<()> {
    check_name("name", name)?;
    if !(data.is_object() || data.is_null()) {
        return Err(Error::invalid("data", "data must be a JSON object"));
    }
    let data = if data.is_null() { "{}".to_owned() } else { data.to_string() };
    if data.len() > MAX_DATA {
        return Err(Error::PayloadTooLarge(format!("data is larger than {MAX_DATA} bytes")));
    }
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO event (id, workspace_id, person_id, name, data, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(new_id()).bind(workspace_id).bind(person_id).bind(name).bind(&data).bind(now_ms())
            .execute(&mut *tx).await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_checked() {
        assert!(check_name("name", "page.view").is_ok());
        assert!(check_name("name", "signed_up").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "<script>").is_err());
        assert!(check_name("name", &"a".repeat(101)).is_err());
    }
}
