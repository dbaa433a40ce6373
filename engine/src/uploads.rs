//! Files teammates attach to messages.
//!
//! An upload is its bytes in the data dir (`uploads/<id>`) and a row naming
//! it. The file is written under a temporary name and renamed into place
//! before the row is stored, so whatever is listed is whole. The id is a
//! random 192-bit token: the download link (`/files/{id}/{name}`) is all a
//! visitor's widget has, so knowing it is what allows the download.
//!
//! Messages point at uploads through `message_attachment`; [`resolve`]
//! checks the ids a request gives against the workspace, [`link`] stores
//! them with a message and [`attach`] loads them for a page of messages.
//! Outbounds and chat templates list theirs as JSON.
//!
//! An upload lives while something uses it. Deleting a message, a
//! conversation, a person or a template [`release`]s the files that were
//! theirs alone at once (a deleted message's file stops downloading); a
//! teammate takes back a file not sent yet with [`delete`]; and the hourly
//! [`sweep`] removes files nothing took up within [`UNUSED_GRACE_MS`], and
//! files left without a row by a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;

use crate::auth::{Actor, Role};
use crate::outbound::list_sql;
use crate::util::now_ms;
use crate::{Db, Error, Result, with_db, with_tx};

/// The largest file taken, in bytes (413 above it).
pub const MAX_SIZE: usize = 10 * 1024 * 1024;
/// The most attachments one message carries.
pub const MAX_PER_MESSAGE: usize = 10;
/// The longest file name, in characters.
const MAX_NAME: usize = 200;
/// The longest content type kept.
const MAX_TYPE: usize = 100;

/// A file attached to a message, as the API and the sockets show it. `url`
/// is a path on this server (the widget puts its server in front of it;
/// emails carry it absolute).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Attachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub url: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    content_type: String,
    size: i64,
}

impl From<Row> for Attachment {
    fn from(r: Row) -> Self {
        Attachment { url: url(&r.id, &r.name), id: r.id, name: r.name, content_type: r.content_type, size: r.size }
    }
}

/// The download path of an upload: `/files/{id}/{name}`, the name
/// percent-encoded so any name is one path segment.
pub fn url(id: &str, name: &str) -> String {
    format!("/files/{id}/{}", percent_encode(name))
}

/// Every byte but RFC 3986's unreserved characters is escaped: safe in a
/// path segment and in a `filename*=UTF-8''…` parameter alike.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

/// How a stored type is served: images browsers show as pictures, PDF and
/// plain text inline with their own type; anything else (HTML, SVG,
/// scripts) as an `application/octet-stream` download, since served from
/// our origin it could run script there. Returns (type, inline).
pub fn served_as(content_type: &str) -> (&'static str, bool) {
    match content_type {
        "image/png" => ("image/png", true),
        "image/jpeg" => ("image/jpeg", true),
        "image/gif" => ("image/gif", true),
        "image/webp" => ("image/webp", true),
        "application/pdf" => ("application/pdf", true),
        // A declared charset keeps browsers from guessing one.
        "text/plain" => ("text/plain; charset=utf-8", true),
        _ => ("application/octet-stream", false),
    }
}

/// The `Content-Disposition` of a download: its name as an ASCII fallback
/// and in full (RFC 6266).
pub fn disposition(name: &str, inline: bool) -> String {
    let ascii: String = name.chars().map(|c| if c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\') { c } else { '_' }).collect();
    let how = if inline { "inline" } else { "attachment" };
    format!("{how}; filename=\"{ascii}\"; filename*=UTF-8''{}", percent_encode(name))
}

/// Checks a file name: 1 to 200 characters, no path separators or control
/// characters (it ends up in a `Content-Disposition` header and in links).
pub fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(Error::invalid("name", format!("name must be 1 to {MAX_NAME} characters")));
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(Error::invalid("name", "name is a file name, without path separators"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "name may not contain control characters"));
    }
    Ok(())
}

/// The media type a request declares (`Content-Type`, parameters dropped,
/// lower case); none is `application/octet-stream`. Anything not shaped
/// `type/subtype` is refused rather than stored and echoed back.
pub fn parse_content_type(declared: Option<&str>) -> Result<String> {
    let Some(declared) = declared.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok("application/octet-stream".to_owned());
    };
    let essence = declared.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) && essence.len() <= MAX_TYPE => Ok(essence),
        _ => Err(Error::invalid("content_type", "Content-Type must be a media type such as image/png")),
    }
}

/// A new upload id: 24 random bytes in hex.
fn new_upload_id() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `id` can be an upload id at all (so it is safe as a file name).
fn well_formed(id: &str) -> bool {
    id.len() == 48 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What [`store`] is given.
pub struct NewUpload<'a> {
    pub workspace_id: &'a str,
    pub teammate_id: &'a str,
    pub name: &'a str,
    pub content_type: String,
    pub bytes: &'a [u8],
}

/// Stores a file: bytes first (temporary name, then renamed), then its row.
#[tracing::instrument(skip_all, fields(workspace = %u.workspace_id, size = u.bytes.len()))]
pub async fn store(db: &Db, dir: &Path, u: NewUpload<'_>) -> Result<Attachment> {
    check_name(u.name)?;
    if u.bytes.is_empty() {
        return Err(Error::invalid("file", "the file is empty"));
    }
    if u.bytes.len() > MAX_SIZE {
        return Err(too_large());
    }
    let id = new_upload_id();
    let io = |what: &str, e: std::io::Error| Error::Internal(anyhow::anyhow!("{what} in {}: {e}", dir.display()));
    tokio::fs::create_dir_all(dir).await.map_err(|e| io("creating the uploads folder", e))?;
    let (part, file) = (dir.join(format!(".{id}.part")), dir.join(&id));
    let written = async {
        tokio::fs::write(&part, u.bytes).await?;
        tokio::fs::rename(&part, &file).await
    };
    if let Err(e) = written.await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(io("writing an upload", e));
    }
    let size = u.bytes.len() as i64;
    if let Err(e) = insert(db, &id, &u, size).await {
        // Without its row the file is unreachable: do not keep it.
        let _ = tokio::fs::remove_file(&file).await;
        return Err(e);
    }
    Ok(Attachment { url: url(&id, u.name), id, name: u.name.to_owned(), content_type: u.content_type, size })
}

async fn insert(db: &Db, id: &str, u: &NewUpload<'_>, size: i64) -> Result<()> {
    with_tx!(db, tx => {
        sqlx::query("INSERT INTO upload (id, workspace_id, name, content_type, size, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id).bind(u.workspace_id).bind(u.name).bind(&u.content_type).bind(size).bind(u.teammate_id).bind(now_ms())
            .execute(&mut *tx).await?;
    });
    Ok(())
}

pub fn too_large() -> Error {
    Error::PayloadTooLarge(format!("a file may be at most {} MiB", MAX_SIZE / (1024 * 1024)))
}

/// An upload found by its link: the row and where its bytes are.
pub struct Found {
    pub attachment: Attachment,
    pub path: PathBuf,
}

/// The upload behind a download link, in any workspace (the link is the
/// permission), if its id and name match.
pub async fn by_link(db: &Db, dir: &Path, id: &str, name: &str) -> Result<Option<Found>> {
    if !well_formed(id) {
        return Ok(None);
    }
    let row: Option<Row> = with_db!(db, pool => sqlx::query_as("SELECT id, name, content_type, size FROM upload WHERE id = $1")
        .bind(id).fetch_optional(pool).await?);
    Ok(row.filter(|r| r.name == name).map(|r| Found { path: dir.join(&r.id), attachment: r.into() }))
}

/// The uploads of a request's `attachments` list, in its order: each one
/// of this workspace, none twice, at most [`MAX_PER_MESSAGE`]. A bad one is
/// a 422 naming its index (`attachments.0`).
pub async fn resolve(db: &Db, workspace_id: &str, ids: &[String]) -> Result<Vec<Attachment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if ids.len() > MAX_PER_MESSAGE {
        return Err(Error::invalid("attachments", format!("at most {MAX_PER_MESSAGE} attachments per message")));
    }
    let list = json!(ids).to_string();
    let text =
        format!("SELECT id, name, content_type, size FROM upload WHERE workspace_id = $1 AND id IN {}", list_sql(db.is_postgres(), "$2"));
    let rows: Vec<Row> =
        with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(text.as_str())).bind(workspace_id).bind(&list).fetch_all(pool).await?);
    let mut found: HashMap<String, Attachment> = rows.into_iter().map(|r| (r.id.clone(), r.into())).collect();
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(Error::invalid(format!("attachments.{i}"), "this upload is listed twice"));
        }
        match found.remove(id) {
            Some(a) => out.push(a),
            None => return Err(Error::invalid(format!("attachments.{i}"), "no such upload in this workspace")),
        }
    }
    Ok(out)
}

/// How long an upload that nothing uses is kept: time to finish the message
/// or template it was picked for.
pub const UNUSED_GRACE_MS: i64 = 24 * 3600 * 1000;

/// True of upload `u` when nothing uses it: no message links it, and no
/// outbound or template of its workspace lists it (their JSON lists hold
/// quoted hex ids, so the pattern matches only that id).
const UNUSED: &str = "NOT EXISTS (SELECT 1 FROM message_attachment ma WHERE ma.upload_id = u.id) \
     AND NOT EXISTS (SELECT 1 FROM outbound o WHERE o.workspace_id = u.workspace_id AND o.attachments <> '[]' \
                     AND o.attachments LIKE '%\"' || u.id || '\"%') \
     AND NOT EXISTS (SELECT 1 FROM template t WHERE t.workspace_id = u.workspace_id AND t.attachments <> '[]' \
                     AND t.attachments LIKE '%\"' || u.id || '\"%')";

/// The most rows one sweep statement deletes, so the writer is not held long.
const SWEEP_BATCH: usize = 500;

/// `DELETE /uploads/{id}`: a file taken back before anything used it (a
/// teammate removed it from the composer). Its uploader or an admin may;
/// a file in use is a 409: deleting what uses it releases it.
#[tracing::instrument(skip_all, fields(upload = %id))]
pub async fn delete(db: &Db, dir: &Path, actor: &Actor, id: &str) -> Result<()> {
    let by: Option<String> = with_db!(db, pool => sqlx::query_scalar("SELECT created_by FROM upload WHERE id = $1 AND workspace_id = $2")
        .bind(id).bind(&actor.workspace_id).fetch_optional(pool).await?);
    let by = by.ok_or(Error::NotFound("upload"))?;
    if by != actor.teammate_id && actor.role != Role::Admin {
        return Err(Error::forbidden("only the teammate who uploaded a file, or an admin, may delete it"));
    }
    if remove_unused(db, dir, &[id.to_owned()]).await?.is_empty() {
        return Err(Error::Conflict {
            code: "upload_in_use",
            message: "this file is attached to a message, an outbound or a template: delete that, and the file goes with it".into(),
        });
    }
    tracing::info!(upload = id, teammate = %actor.teammate_id, "upload deleted");
    Ok(())
}

/// After a message, conversation, person or template was deleted: removes
/// those of its uploads that nothing else uses. A failure is logged, not
/// passed on (what was asked for is done); the sweep retries it.
pub async fn release(db: &Db, dir: &Path, ids: &[String]) {
    match remove_unused(db, dir, ids).await {
        Ok(gone) if !gone.is_empty() => tracing::info!(uploads = gone.len(), "released uploads nothing uses"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "releasing uploads failed; the hourly sweep will remove them"),
    }
}

/// Deletes the rows of those of `ids` nothing uses (the check and the
/// delete are one statement), then their files. Returns the ids deleted.
async fn remove_unused(db: &Db, dir: &Path, ids: &[String]) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = json!(ids).to_string();
    let text = format!(
        "DELETE FROM upload WHERE id IN (SELECT u.id FROM upload u WHERE u.id IN {} AND {UNUSED}) RETURNING id",
        list_sql(db.is_postgres(), "$1")
    );
    let gone: Vec<String> =
        with_tx!(db, tx => sqlx::query_scalar(sqlx::AssertSqlSafe(text.as_str())).bind(&list).fetch_all(&mut *tx).await?);
    remove_files(dir, gone.iter().map(|id| dir.join(id))).await;
    Ok(gone)
}

async fn remove_files(dir: &Path, paths: impl Iterator<Item = PathBuf>) {
    for path in paths {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, dir = %dir.display(), file = %path.display(), "removing an upload's file failed"),
        }
    }
}

/// What a [`sweep`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Uploads (row and file) nothing used.
    pub unused: usize,
    /// Files in the folder with no row: written just before a crash, or
    /// left half-written (`.<id>.part`).
    pub stray: usize,
}

/// Removes uploads created before `before_ms` that nothing uses, and files
/// of the uploads folder older than that which no row names.
#[tracing::instrument(skip_all)]
pub async fn sweep(db: &Db, dir: &Path, before_ms: i64) -> Result<Swept> {
    let mut swept = Swept::default();
    let text = format!(
        "DELETE FROM upload WHERE id IN (SELECT u.id FROM upload u WHERE u.created_at < $1 AND {UNUSED} LIMIT {SWEEP_BATCH}) RETURNING id"
    );
    loop {
        let gone: Vec<String> =
            with_tx!(db, tx => sqlx::query_scalar(sqlx::AssertSqlSafe(text.as_str())).bind(before_ms).fetch_all(&mut *tx).await?);
        remove_files(dir, gone.iter().map(|id| dir.join(id))).await;
        swept.unused += gone.len();
        if gone.len() < SWEEP_BATCH {
            break;
        }
    }
    let mut old = stray_candidates(dir, before_ms).await?;
    while !old.is_empty() {
        let batch: Vec<(String, PathBuf, bool)> = old.drain(..old.len().min(SWEEP_BATCH)).collect();
        let ids: Vec<&str> = batch.iter().filter(|(_, _, part)| !part).map(|(id, _, _)| id.as_str()).collect();
        let list = json!(ids).to_string();
        let text = format!("SELECT id FROM upload WHERE id IN {}", list_sql(db.is_postgres(), "$1"));
        let known: Vec<String> =
            with_db!(db, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(text.as_str())).bind(&list).fetch_all(pool).await?);
        let stray: Vec<PathBuf> = batch.into_iter().filter(|(id, _, part)| *part || !known.contains(id)).map(|(_, p, _)| p).collect();
        swept.stray += stray.len();
        remove_files(dir, stray.into_iter()).await;
    }
    if swept != Swept::default() {
        tracing::info!(unused = swept.unused, stray = swept.stray, "swept uploads");
    }
    Ok(swept)
}

/// Files of the uploads folder last written before `before_ms` that are
/// named like an upload (`<id>`) or its partial write (`.<id>.part`):
/// (id, path, partial). Anything else there is left alone.
async fn stray_candidates(dir: &Path, before_ms: i64) -> Result<Vec<(String, PathBuf, bool)>> {
    let io = |e: std::io::Error| Error::Internal(anyhow::anyhow!("listing {}: {e}", dir.display()));
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let before = std::time::UNIX_EPOCH + std::time::Duration::from_millis(before_ms.max(0) as u64);
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let (id, part) = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")) {
            Some(id) => (id.to_owned(), true),
            None => (name, false),
        };
        if !well_formed(&id) {
            continue;
        }
        let Ok(meta) = entry.metadata().await else { continue };
        if meta.is_file() && meta.modified().is_ok_and(|m| m < before) {
            out.push((id, entry.path(), part));
        }
    }
    Ok(out)
}

/// The uploads linked to the messages `message_sql` selects (one `$1`),
/// read inside the transaction that is about to delete those messages.
macro_rules! linked_to_messages {
    ($tx:expr, $message_sql:expr, $bind:expr) => {{
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT upload_id FROM message_attachment WHERE message_id IN ({})",
            $message_sql
        )))
        .bind($bind)
        .fetch_all(&mut *$tx)
        .await?;
        ids
    }};
}
pub(crate) use linked_to_messages;

/// The uploads of this workspace among `ids`, by id; missing ones are left
/// out (for showing what was stored, where [`resolve`] checks a request).
pub async fn found(db: &Db, workspace_id: &str, ids: &[String]) -> Result<HashMap<String, Attachment>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = json!(ids).to_string();
    let text =
        format!("SELECT id, name, content_type, size FROM upload WHERE workspace_id = $1 AND id IN {}", list_sql(db.is_postgres(), "$2"));
    let rows: Vec<Row> =
        with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(text.as_str())).bind(workspace_id).bind(&list).fetch_all(pool).await?);
    Ok(rows.into_iter().map(|r| (r.id.clone(), r.into())).collect())
}

/// Stores a message's attachments, inside the transaction that stores it.
macro_rules! link_attachments {
    ($tx:expr, $message_id:expr, $attachments:expr) => {{
        for (position, a) in $attachments.iter().enumerate() {
            sqlx::query("INSERT INTO message_attachment (message_id, upload_id, position) VALUES ($1, $2, $3)")
                .bind($message_id)
                .bind(&a.id)
                .bind(position as i32)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use link_attachments;

/// Every attachment of these messages, by message id, in order.
pub async fn of_messages(db: &Db, message_ids: &[&str]) -> Result<HashMap<String, Vec<Attachment>>> {
    if message_ids.is_empty() {
        return Ok(HashMap::new());
    }
    #[derive(sqlx::FromRow)]
    struct Linked {
        message_id: String,
        #[sqlx(flatten)]
        upload: Row,
    }
    let list = json!(message_ids).to_string();
    let text = format!(
        "SELECT ma.message_id, u.id, u.name, u.content_type, u.size FROM message_attachment ma JOIN upload u ON u.id = ma.upload_id \
         WHERE ma.message_id IN {} ORDER BY ma.message_id, ma.position",
        list_sql(db.is_postgres(), "$1")
    );
    let rows: Vec<Linked> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(text.as_str())).bind(&list).fetch_all(pool).await?);
    let mut out: HashMap<String, Vec<Attachment>> = HashMap::new();
    for r in rows {
        out.entry(r.message_id).or_default().push(r.upload.into());
    }
    Ok(out)
}

/// Fills in the attachments of loaded messages.
pub async fn attach<'a>(db: &Db, messages: impl IntoIterator<Item = &'a mut crate::chat::Message>) -> Result<()> {
    let messages: Vec<&mut crate::chat::Message> = messages.into_iter().collect();
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    let mut found = of_messages(db, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    for m in messages {
        m.attachments = found.remove(&m.id).unwrap_or_default();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment_without_controls() {
        for good in ["report.pdf", "Straße plan (v2).png", ".env", &"x".repeat(200)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b.txt", "..\\evil.exe", "..", "line\nbreak", &"x".repeat(201)] {
            assert_eq!(check_name(bad).map_err(|e| e.field().map(str::to_owned)), Err(Some("name".to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn links_percent_encode_the_name() {
        assert_eq!(url("ab", "a b/ü.png"), "/files/ab/a%20b%2F%C3%BC.png");
        assert_eq!(url("ab", "plain-name_1.txt"), "/files/ab/plain-name_1.txt");
    }

    #[test]
    fn only_harmless_types_are_served_inline() {
        assert_eq!(served_as("image/png"), ("image/png", true));
        assert_eq!(served_as("application/pdf"), ("application/pdf", true));
        assert_eq!(served_as("text/plain"), ("text/plain; charset=utf-8", true));
        for risky in ["text/html", "image/svg+xml", "application/javascript", "application/xhtml+xml", "text/xml"] {
            assert_eq!(served_as(risky), ("application/octet-stream", false), "{risky}");
        }
    }

    #[test]
    fn dispositions_carry_the_name_safely() {
        assert_eq!(disposition("a \"b\".txt", false), "attachment; filename=\"a _b_.txt\"; filename*=UTF-8''a%20%22b%22.txt");
        assert_eq!(disposition("ü.png", true), "inline; filename=\"_.png\"; filename*=UTF-8''%C3%BC.png");
    }

    #[test]
    fn content_types_are_media_types() {
        assert_eq!(parse_content_type(Some("Image/PNG")).unwrap(), "image/png");
        assert_eq!(parse_content_type(Some("text/plain; charset=latin1")).unwrap(), "text/plain");
        assert_eq!(parse_content_type(None).unwrap(), "application/octet-stream");
        for bad in ["png", "text/html\r\nX-Evil: 1", "a/b c", "/x"] {
            assert_eq!(parse_content_type(Some(bad)).map_err(|e| e.field().map(str::to_owned)), Err(Some("content_type".to_owned())));
        }
    }

    #[test]
    fn ids_are_long_random_hex() {
        let (a, b) = (new_upload_id(), new_upload_id());
        assert!(well_formed(&a) && well_formed(&b) && a != b);
        assert!(!well_formed("../../etc/passwd"));
    }
}
