//! Missed chat messages: the bookkeeping behind the email a person gets
//! when a teammate or the bot wrote and they were not there to see it.
//!
//! One row per conversation (`email_fallback`) holds:
//! - the reply token of its reply-to address (`parley+TOKEN@…`), so an
//!   emailed answer finds its conversation ([`by_token`]);
//! - the message whose job is the one to send: each new message moves it on,
//!   so several messages in a row give one email and the earlier jobs find
//!   themselves stale (debounce);
//! - how far emails have covered the thread, so no message is emailed twice.
//!
//! The job that sends (in the automations crate) claims the row before it
//! sends and gives it back if sending fails, so an email goes out once even
//! when the job runs again after a restart.

use crate::util::{new_token, now_ms};
use crate::{Db, Error, Result, with_db, with_tx};

/// The most messages one email carries (the newest are kept).
pub const MAX_MESSAGES: i64 = 50;

/// Base-36 digits of the creation time at the front of a reply token:
/// milliseconds fit in nine of them until the year 5188.
const TIME_DIGITS: usize = 9;

/// A new reply token: short enough for an address's local part (at most 64
/// characters), and matched whatever case a mail system gives it back in.
///
/// The creation time comes first so that tokens made one after another sort
/// together: the UNIQUE index on them then grows at its end, where a mass
/// chat's thousands of new rows share a few pages, instead of each token
/// landing on a page of its own somewhere in the index. The 24 random
/// characters after it (about 124 bits) are what make it unguessable.
pub fn new_reply_token() -> String {
    let mut time = String::with_capacity(TIME_DIGITS);
    let mut ms = u64::try_from(now_ms()).unwrap_or(0);
    for _ in 0..TIME_DIGITS {
        time.insert(0, char::from_digit((ms % 36) as u32, 36).unwrap_or('0'));
        ms /= 36;
    }
    let random: String = new_token("").chars().filter(char::is_ascii_alphanumeric).take(24).collect();
    time + &random.to_lowercase()
}

/// The statement [`crate::chat`] runs in a teammate's or the bot's message
/// transaction: the message becomes its conversation's pending missed
/// message, unless the workspace turned emails off or the person is online
/// (in a shared chat: every member is online).
/// Planned with the message itself, a crash right after cannot lose it.
/// Binds: conversation, workspace, new token, message, now, person.
pub const PLAN_SQL: &str = "INSERT INTO email_fallback (conversation_id, workspace_id, reply_token, pending_message_id, planned_at) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM workspace WHERE id = $2 AND email_fallback = TRUE) \
     AND (NOT EXISTS (SELECT 1 FROM presence WHERE person_id = $6 AND connections > 0) \
          OR EXISTS (SELECT 1 FROM conversation_member cm WHERE cm.conversation_id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM presence pm WHERE pm.person_id = cm.person_id AND pm.connections > 0))) \
     ON CONFLICT (conversation_id) DO UPDATE SET pending_message_id = excluded.pending_message_id, planned_at = excluded.planned_at";

/// A planned missed message: (workspace, conversation, message, planned at ms).
pub type Planned = (String, String, String, i64);

/// Every conversation's pending missed message, for queueing their jobs
/// again at start (a job is queued once per message, so this adds none
/// that exist).
pub async fn pending(db: &Db) -> Result<Vec<Planned>> {
    Ok(with_db!(db, pool => sqlx::query_as::<_, Planned>(
        "SELECT workspace_id, conversation_id, pending_message_id, planned_at FROM email_fallback WHERE pending_message_id IS NOT NULL")
        .fetch_all(pool).await?))
}

/// Where a conversation's missed-message emails stand.
#[derive(Debug, sqlx::FromRow)]
pub struct State {
    pub reply_token: String,
    pub pending_message_id: Option<String>,
    pub sent_through: i64,
    pub person_id: String,
    pub person_seen_at: i64,
}

pub async fn state(db: &Db, workspace_id: &str, conversation_id: &str) -> Result<Option<State>> {
    Ok(with_db!(db, pool => sqlx::query_as::<_, State>(
        "SELECT f.reply_token, f.pending_message_id, f.sent_through, c.person_id, c.person_seen_at \
         FROM email_fallback f JOIN conversation c ON c.id = f.conversation_id \
         WHERE f.conversation_id = $1 AND f.workspace_id = $2")
        .bind(conversation_id).bind(workspace_id).fetch_optional(pool).await?))
}

/// Where one member of a shared chat stands: each is emailed what they have
/// not seen, from their own marks (the conversation's row above keeps the
/// pending message and its debounce for all of them).
#[derive(Debug, sqlx::FromRow)]
pub struct MemberState {
    pub person_id: String,
    pub seen_at: i64,
    pub emailed_through: i64,
}

/// The members of a shared chat (none for any other conversation).
pub async fn members(db: &Db, conversation_id: &str) -> Result<Vec<MemberState>> {
    Ok(with_db!(db, pool => sqlx::query_as::<_, MemberState>(
        "SELECT person_id, seen_at, emailed_through FROM conversation_member WHERE conversation_id = $1 ORDER BY person_id")
        .bind(conversation_id).fetch_all(pool).await?))
}

/// Marks a member's email as covering the thread up to `through`, if no
/// other job moved their mark from `before` meanwhile (so a job run twice
/// emails each member once); [`release_member`] undoes it.
pub async fn claim_member(db: &Db, conversation_id: &str, person_id: &str, before: i64, through: i64) -> Result<bool> {
    let done = with_tx!(db, tx => sqlx::query(
        "UPDATE conversation_member SET emailed_through = $4 WHERE conversation_id = $1 AND person_id = $2 AND emailed_through = $3")
        .bind(conversation_id).bind(person_id).bind(before).bind(through).execute(&mut *tx).await?.rows_affected());
    Ok(done == 1)
}

pub async fn release_member(db: &Db, conversation_id: &str, person_id: &str, before: i64, through: i64) -> Result<()> {
    with_tx!(db, tx => sqlx::query(
        "UPDATE conversation_member SET emailed_through = $3 WHERE conversation_id = $1 AND person_id = $2 AND emailed_through = $4")
        .bind(conversation_id).bind(person_id).bind(before).bind(through).execute(&mut *tx).await?.rows_affected());
    Ok(())
}

/// A message the person has not seen, with who wrote it.
#[derive(Debug, sqlx::FromRow)]
pub struct Unseen {
    pub id: String,
    pub body: String,
    pub author_type: String,
    pub author_name: Option<String>,
    pub created_at: i64,
}

/// The teammates' and the bot's chat messages after `since` (ms) that may be
/// emailed, oldest first.
pub async fn unseen(db: &Db, conversation_id: &str, since: i64) -> Result<Vec<Unseen>> {
    let mut rows: Vec<Unseen> = with_db!(db, pool => sqlx::query_as(
        "SELECT m.id, m.body, m.author_type, t.name AS author_name, m.created_at FROM message m \
         LEFT JOIN teammate t ON t.id = m.author_id AND m.author_type = 'teammate' \
         WHERE m.conversation_id = $1 AND m.author_type IN ('teammate', 'bot') AND m.kind IN ('chat', 'announcement', 'checkin') \
         AND m.deleted_at IS NULL AND m.email_fallback = TRUE AND m.created_at > $2 \
         ORDER BY m.created_at DESC, m.id DESC LIMIT $3")
        .bind(conversation_id).bind(since).bind(MAX_MESSAGES).fetch_all(pool).await?);
    rows.reverse();
    Ok(rows)
}

/// Takes the pending message `message_id` off the row, covering the thread
/// up to `through`; false when another job (or a newer message) got there
/// first.
pub async fn claim(db: &Db, conversation_id: &str, message_id: &str, through: i64) -> Result<bool> {
    let done = with_tx!(db, tx => sqlx::query(
        "UPDATE email_fallback SET pending_message_id = NULL, sent_through = $3, sent_at = $4 \
         WHERE conversation_id = $1 AND pending_message_id = $2")
        .bind(conversation_id).bind(message_id).bind(through).bind(now_ms()).execute(&mut *tx).await?.rows_affected());
    Ok(done == 1)
}

/// Undoes a [`claim`] whose email could not be sent, unless a newer message
/// has been planned since.
pub async fn release(db: &Db, conversation_id: &str, message_id: &str, through_before: i64) -> Result<()> {
    with_tx!(db, tx => sqlx::query(
        "UPDATE email_fallback SET pending_message_id = $2, sent_through = $3 WHERE conversation_id = $1 AND pending_message_id IS NULL")
        .bind(conversation_id).bind(message_id).bind(through_before).execute(&mut *tx).await?.rows_affected());
    Ok(())
}

/// Forgets a pending message that turned out to need no email (seen, no
/// address, unsubscribed).
pub async fn drop_pending(db: &Db, conversation_id: &str, message_id: &str) -> Result<()> {
    with_tx!(db, tx => sqlx::query("UPDATE email_fallback SET pending_message_id = NULL WHERE conversation_id = $1 AND pending_message_id = $2")
        .bind(conversation_id).bind(message_id).execute(&mut *tx).await?.rows_affected());
    Ok(())
}

/// The conversation and person a reply token belongs to, in this workspace:
/// a conversation's own token answers as its person, a shared chat
/// member's as that member.
pub async fn by_token(db: &Db, workspace_id: &str, token: &str) -> Result<Option<(String, String)>> {
    Ok(with_db!(db, pool => sqlx::query_as::<_, (String, String)>(
        "SELECT c.id, c.person_id FROM email_fallback f JOIN conversation c ON c.id = f.conversation_id \
         WHERE f.reply_token = $1 AND f.workspace_id = $2 \
         UNION ALL SELECT conversation_id, person_id FROM conversation_member WHERE reply_token = $1 AND workspace_id = $2 LIMIT 1")
        .bind(token.to_lowercase()).bind(workspace_id).fetch_optional(pool).await?))
}

/// A shared chat member's reply token, made the first time it is asked for.
pub async fn member_token(db: &Db, conversation_id: &str, person_id: &str) -> Result<String> {
    let token: Option<String> = with_tx!(db, tx => sqlx::query_scalar(
        "UPDATE conversation_member SET reply_token = COALESCE(reply_token, $3) WHERE conversation_id = $1 AND person_id = $2 RETURNING reply_token")
        .bind(conversation_id).bind(person_id).bind(new_reply_token()).fetch_optional(&mut *tx).await?);
    token.ok_or(Error::NotFound("member"))
}

/// The reply token in an address such as `parley+TOKEN@example.com`.
pub fn token_in(address: &str) -> Option<&str> {
    let local = address.trim().trim_matches(['<', '>']).rsplit_once('@')?.0;
    let token = local.rsplit_once('+')?.1;
    (!token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(token)
}

/// What a person wrote above the quoted email they answer: mail clients
/// put the earlier message under a line such as "On … wrote:" or in `>`
/// lines.
pub fn reply_text(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let quoted = t.starts_with('>')
            || (t.starts_with("On ") && t.ends_with("wrote:"))
            || t.starts_with("-----Original Message-----")
            || t == "--"
            || t.starts_with("From: ") && !out.is_empty();
        if quoted {
            break;
        }
        out.push(line.trim_end());
    }
    out.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_token_is_found_in_the_address() {
        assert_eq!(token_in("parley+abc123@example.com"), Some("abc123"));
        assert_eq!(token_in("<support+x+tok9@example.com>"), Some("tok9"));
        assert_eq!(token_in("parley@example.com"), None);
        assert_eq!(token_in("parley+@example.com"), None);
        assert_eq!(token_in("parley+a.b@example.com"), None);
    }

    #[test]
    fn reply_tokens_sort_in_the_order_they_were_made() {
        let first = new_reply_token();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_reply_token();
        assert!(first < second, "{first} then {second}");
        for t in [&first, &second] {
            assert_eq!(t.len(), TIME_DIGITS + 24);
            assert!(t.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()), "{t}");
            // The address it goes into gives it back.
            assert_eq!(token_in(&format!("parley+{t}@example.com")), Some(t.as_str()));
        }
        // Made in the same millisecond they still differ.
        assert_ne!(new_reply_token(), new_reply_token());
    }

    #[test]
    fn the_quoted_email_is_cut_from_a_reply() {
        let r = "Yes, Tuesday works.\r\nThanks!\r\n\r\nOn Tue, 1 Dec 2026 at 10:00, Acme <parley@acme.test> wrote:\r\n> Can we call?\r\n";
        assert_eq!(reply_text(r), "Yes, Tuesday works.\nThanks!");
        assert_eq!(reply_text("ok\n> quoted"), "ok");
        assert_eq!(reply_text("fine\n--\nAnn, sent from a phone"), "fine");
        assert_eq!(reply_text("> only a quote"), "");
    }
}
