//! People in and out as CSV.
//!
//! Import reads a file with a header row and sends every row through the same
//! find-then-write path as `POST /people`, so a file can never create a
//! duplicate or store what the API would refuse. Rows are written in chunked
//! transactions; a chunk that fails is redone row by row, so one bad row costs
//! only itself. Export pages through search and writes one row per person.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

use serde::Serialize;
use serde_json::{Map, Value};

use super::input::{self, CompanyInput, Location, PersonInput};
use super::profile::{self, Person};
use crate::db::Conn;
use crate::filter::AttrKind;
use crate::search::{self, Order, PeopleIndex, Prepared, SearchRequest, Sort, SortField};
use crate::util::now_ms;
use crate::{Db, Error, Result, with_db, with_tx};

/// Rows per write transaction: large enough that commits do not dominate,
/// small enough that redoing a failed chunk row by row stays cheap.
const CHUNK: usize = 500;
/// Bad rows kept in a report; the count goes on past it.
pub const MAX_ERRORS: usize = 1000;
/// People per page of an export.
pub const EXPORT_PAGE: i64 = 500;

/// Where each column of a file goes, by header: a person field (`email`),
/// `attributes.<name>`, or `skip`. Headers not named here map by default.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    pub columns: HashMap<String, String>,
}

impl Mapping {
    /// From `header=target` pairs, as the command line takes them.
    pub fn from_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<Mapping> {
        let mut columns = HashMap::new();
        for p in pairs {
            let (h, t) =
                p.as_ref().split_once('=').ok_or_else(|| Error::invalid("map", format!("{:?} is not header=target", p.as_ref())))?;
            columns.insert(h.trim().to_owned(), t.trim().to_owned());
        }
        Ok(Mapping { columns })
    }

    /// From a JSON object of header → target.
    pub fn from_json(v: &Value) -> Result<Mapping> {
        let obj = v.as_object().ok_or_else(|| Error::invalid("map", "map is a JSON object of header to target"))?;
        let mut columns = HashMap::new();
        for (h, t) in obj {
            let t =
                t.as_str().ok_or_else(|| Error::invalid(format!("map.{h}"), "a target is a string such as email or attributes.plan"))?;
            columns.insert(h.trim().to_owned(), t.trim().to_owned());
        }
        Ok(Mapping { columns })
    }
}

/// How far an import has got: data rows read, and bytes of the file read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub rows: u64,
    pub bytes: u64,
}

/// A row that was not imported, or a column that was skipped (line 1).
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based line in the file; the header is line 1.
    pub line: u64,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
    /// Rows not imported (all of them, even past the errors listed).
    pub failed: u64,
    /// The first 1000 problems, by line.
    pub errors: Vec<RowError>,
}

impl ImportReport {
    fn fail(&mut self, line: u64, e: &Error) {
        self.failed += 1;
        self.note(line, e);
    }

    fn note(&mut self, line: u64, e: &Error) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(RowError { line, reason: e.public_message(), field: e.field().map(str::to_owned) });
        }
    }
}

/// Where one column goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Column {
    ExternalId,
    Email,
    Phone,
    PhoneKind,
    Name,
    Company,
    Manager,
    Country,
    City,
    Lat,
    Lon,
    Tags,
    Unsubscribed,
    Attribute(String),
    Skip,
}

impl Column {
    fn field(name: &str) -> Option<Column> {
        Some(match name {
            "external_id" => Column::ExternalId,
            "email" => Column::Email,
            "phone" => Column::Phone,
            "phone_kind" => Column::PhoneKind,
            "name" => Column::Name,
            "company" => Column::Company,
            "manager" => Column::Manager,
            "country" => Column::Country,
            "city" => Column::City,
            "lat" => Column::Lat,
            "lon" => Column::Lon,
            "tags" => Column::Tags,
            "unsubscribed" => Column::Unsubscribed,
            _ => return None,
        })
    }

    /// An explicit target from a mapping.
    fn target(header: &str, target: &str) -> Result<Column> {
        let field = format!("map.{header}");
        if target == "skip" {
            return Ok(Column::Skip);
        }
        if let Some(name) = target.strip_prefix("attributes.") {
            input::check_attribute_name(&field, name)?;
            return Ok(Column::Attribute(name.to_owned()));
        }
        Column::field(target).ok_or_else(|| Error::invalid(field, format!("{target:?} is not a person field, attributes.<name> or skip")))
    }
}

/// Header text as a name: trimmed, runs of whitespace as `_`.
fn normalise_header(h: &str) -> String {
    h.trim_start_matches('\u{feff}').split_whitespace().collect::<Vec<_>>().join("_")
}

/// Decides where every column goes. Problems with single columns are noted
/// (the column is skipped); a header that cannot work is an error.
fn plan(headers: &csv::StringRecord, mapping: &Mapping, report: &mut ImportReport) -> Result<Vec<Column>> {
    let bad_file = |message: String| Error::BadRequest { code: "bad_csv", message, field: None };
    let mut used: HashSet<&str> = HashSet::new();
    let mut columns = Vec::with_capacity(headers.len());
    for raw in headers {
        let raw = raw.trim_start_matches('\u{feff}').trim();
        let norm = normalise_header(raw);
        let explicit = mapping.columns.get_key_value(raw).or_else(|| mapping.columns.get_key_value(norm.as_str()));
        let col = match explicit {
            Some((key, target)) => {
                used.insert(key.as_str());
                Column::target(key, target)?
            }
            None => match Column::field(&norm.to_lowercase()) {
                Some(c) => c,
                // What an export adds about a person is not something to set.
                None if matches!(norm.as_str(), "id" | "created_at" | "updated_at" | "last_seen_at" | "online") => Column::Skip,
                None => {
                    let name = norm.strip_prefix("attributes.").unwrap_or(&norm);
                    match input::check_attribute_name(&format!("attributes.{name}"), name) {
                        Ok(()) => Column::Attribute(name.to_owned()),
                        Err(e) => {
                            report.note(1, &Error::invalid(raw, format!("column {raw:?} is skipped: {}", e.public_message())));
                            Column::Skip
                        }
                    }
                }
            },
        };
        columns.push(col);
    }
    if let Some(missing) = mapping.columns.keys().find(|k| !used.contains(k.as_str())) {
        return Err(Error::invalid(format!("map.{missing}"), format!("the file has no column {missing:?}")));
    }
    let mut seen = HashSet::new();
    for c in columns.iter().filter(|c| **c != Column::Skip) {
        if !seen.insert(c) {
            return Err(bad_file(format!("two columns go to the same place ({c:?}); map one of them elsewhere or to skip")));
        }
    }
    if seen.contains(&Column::Lat) != seen.contains(&Column::Lon) {
        return Err(bad_file("lat and lon come together: the file has only one of them".into()));
    }
    if !seen.contains(&Column::ExternalId) && !seen.contains(&Column::Email) {
        return Err(bad_file("the file needs an external_id or email column to find or create people".into()));
    }
    Ok(columns)
}

/// A spreadsheet-safe cell from an export (`'=…`) reads back as it was.
fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => cell,
    }
}

fn parse_bool(field: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(Error::invalid(field, format!("{field} is true/false, yes/no or 1/0"))),
    }
}

/// A cell that is plainly a number. Leading zeros (`01234`) and signs other
/// than `-` keep a cell a string: zip codes and phone numbers are not numbers.
fn number(v: &str) -> Option<Value> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = digits.split_once('.').map_or((digits, None), |(i, f)| (i, Some(f)));
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(int) || (int.len() > 1 && int.starts_with('0')) || frac.is_some_and(|f| !plain(f)) {
        return None;
    }
    match frac {
        None => v.parse::<i64>().ok().map(Value::from),
        Some(_) => v.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number),
    }
}

/// A cell as the JSON value `input::attribute` types: by the attribute's
/// kind when it has one, else by what the cell looks like.
fn attribute_value(v: &str, kind: Option<AttrKind>) -> Value {
    let text = || Value::String(v.to_owned());
    match kind {
        Some(AttrKind::Number) => number(v).unwrap_or_else(text),
        Some(AttrKind::Bool) => parse_bool("", v).map(Value::Bool).unwrap_or_else(|_| text()),
        Some(AttrKind::String | AttrKind::Date) => text(),
        None if v.eq_ignore_ascii_case("true") => Value::Bool(true),
        None if v.eq_ignore_ascii_case("false") => Value::Bool(false),
        None => number(v).unwrap_or_else(text),
    }
}

/// One parsed row, ready to write.
struct Row {
    line: u64,
    external_id: Option<String>,
    email: Option<String>,
    input: PersonInput,
}

/// A record as person input. `kinds` are the attribute kinds known so far;
/// a new attribute's kind is learnt from its first value.
fn row_input(columns: &[Column], rec: &csv::StringRecord, kinds: &mut HashMap<String, AttrKind>) -> Result<PersonInput> {
    let mut p = PersonInput::default();
    let mut attrs = Map::new();
    let (mut lat, mut lon) = (None, None);
    let coordinate = |field: &str, v: &str| v.parse::<f64>().map_err(|_| Error::invalid(field, format!("{field} is a number")));
    for (col, cell) in columns.iter().zip(rec.iter()) {
        let v = unguard(cell.trim());
        if v.is_empty() {
            continue;
        }
        let s = Some(v.to_owned());
        match col {
            Column::ExternalId => p.external_id = s,
            Column::Email => p.email = s,
            Column::Phone => p.phone = s,
            Column::PhoneKind => p.phone_kind = s,
            Column::Name => p.name = s,
            Column::Company => p.company = Some(CompanyInput::Name(v.to_owned())),
            Column::Manager => p.manager = Some(parse_bool("manager", v)?),
            Column::Country => p.country = s,
            Column::City => p.city = s,
            Column::Lat => lat = Some(coordinate("lat", v)?),
            Column::Lon => lon = Some(coordinate("lon", v)?),
            Column::Tags => p.tags = Some(v.split([';', '|']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()),
            Column::Unsubscribed => p.unsubscribed = Some(parse_bool("unsubscribed", v)?),
            Column::Attribute(name) => {
                let value = attribute_value(v, kinds.get(name).copied());
                if !kinds.contains_key(name)
                    && let Ok(a) = input::attribute(&format!("attributes.{name}"), &value, None)
                {
                    kinds.insert(name.clone(), a.kind);
                }
                attrs.insert(name.clone(), value);
            }
            Column::Skip => {}
        }
    }
    match (lat, lon) {
        (Some(lat), Some(lon)) => p.location = Some(Some(Location { lat, lon })),
        (None, None) => {}
        (Some(_), None) => return Err(Error::invalid("lon", "lat is given, lon is missing")),
        (None, Some(_)) => return Err(Error::invalid("lat", "lon is given, lat is missing")),
    }
    if !attrs.is_empty() {
        p.attributes = Some(attrs);
    }
    Ok(p)
}

/// Checks what can be checked without the database, so that the usual bad
/// rows never cost a chunk its transaction.
fn prepare_row(line: u64, input: PersonInput) -> Result<Row> {
    let external_id = input::text("external_id", input.external_id.as_deref(), 255)?;
    let email = input.email.as_deref().map(|e| input::email("email", e)).transpose()?;
    if external_id.is_none() && email.is_none() {
        return Err(Error::invalid("external_id", "a row needs an external_id or an email"));
    }
    if let Some(p) = &input.phone {
        input::phone("phone", p)?;
    }
    if let Some(k) = &input.phone_kind {
        input::phone_kind("phone_kind", k)?;
    }
    if let Some(t) = &input.tags {
        input::tags("tags", t)?;
    }
    Ok(Row { line, external_id, email, input })
}

/// A row that is wrong as a whole rather than in one field.
fn bad_row(message: String) -> Error {
    Error::BadRequest { code: "bad_row", message, field: None }
}

/// Writes rows in one transaction; all or nothing. Says which were new.
async fn write_rows(db: &Db, workspace_id: &str, rows: &[Row]) -> Result<Vec<bool>> {
    let now = now_ms();
    Ok(with_tx!(db, tx => {
        let mut c = Conn::from(&mut *tx);
        let mut created = Vec::with_capacity(rows.len());
        for r in rows {
            let found = profile::find_known(&mut c, workspace_id, r.external_id.as_deref(), r.email.as_deref()).await?;
            created.push(found.is_none());
            profile::write(&mut c, workspace_id, found, &r.input, now).await?;
        }
        created
    }))
}

fn tally(report: &mut ImportReport, created: &[bool]) {
    for c in created {
        if *c {
            report.created += 1;
        } else {
            report.updated += 1;
        }
    }
}

/// Writes a chunk; if it fails, writes its rows one by one and reports the
/// ones that fail. A failure of the database itself ends the import.
async fn flush(db: &Db, workspace_id: &str, rows: &[Row], report: &mut ImportReport) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if let Ok(created) = write_rows(db, workspace_id, rows).await {
        tally(report, &created);
        return Ok(());
    }
    for r in rows {
        match write_rows(db, workspace_id, std::slice::from_ref(r)).await {
            Ok(created) => tally(report, &created),
            Err(e @ Error::Internal(_)) => return Err(e),
            Err(e) => report.fail(r.line, &e),
        }
    }
    Ok(())
}

async fn attribute_kinds(db: &Db, workspace_id: &str) -> Result<HashMap<String, AttrKind>> {
    Ok(profile::schema(db, workspace_id).await?.attributes)
}

/// Imports people from CSV (a header row, then one person a row). Bad rows
/// are reported with their line and skipped; a header that cannot work, or
/// a failing database, is an error.
#[tracing::instrument(skip_all, fields(workspace = %workspace_id))]
pub async fn import_csv<R: Read>(
    db: &Db,
    workspace_id: &str,
    reader: R,
    mapping: &Mapping,
    mut progress: impl FnMut(Progress),
) -> Result<ImportReport> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(reader);
    let csv_error = |e: csv::Error| match e.kind() {
        csv::ErrorKind::Io(_) => Error::Internal(anyhow::anyhow!("reading the file: {e}")),
        _ => Error::BadRequest { code: "bad_csv", message: format!("the header row cannot be read: {e}"), field: None },
    };
    let headers = rdr.headers().map_err(csv_error)?.clone();
    if headers.is_empty() || headers.iter().all(|h| h.trim().is_empty()) {
        return Err(Error::BadRequest { code: "bad_csv", message: "the file has no header row".into(), field: None });
    }
    let mut report = ImportReport::default();
    let columns = plan(&headers, mapping, &mut report)?;
    let mut kinds = attribute_kinds(db, workspace_id).await?;
    let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK);
    let mut done = Progress::default();
    let mut rec = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let line = rec.position().map_or(line, |p| p.line());
                done.rows += 1;
                let parsed = if rec.len() != headers.len() {
                    Err(bad_row(format!("this row has {} cells; the header has {}", rec.len(), headers.len())))
                } else {
                    row_input(&columns, &rec, &mut kinds).and_then(|input| prepare_row(line, input))
                };
                match parsed {
                    Ok(row) => chunk.push(row),
                    Err(e) => report.fail(line, &e),
                }
            }
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(csv_error(e)),
            Err(e) => {
                done.rows += 1;
                let line = e.position().map_or(line, |p| p.line());
                report.fail(line, &bad_row(format!("this row cannot be read: {e}")));
            }
        }
        if chunk.len() >= CHUNK {
            flush(db, workspace_id, &chunk, &mut report).await?;
            chunk.clear();
            // What the chunk stored is what the next rows are typed by.
            kinds = attribute_kinds(db, workspace_id).await?;
            done.bytes = rdr.position().byte();
            progress(done);
        }
    }
    flush(db, workspace_id, &chunk, &mut report).await?;
    done.bytes = rdr.position().byte();
    progress(done);
    report.errors.sort_by_key(|e| e.line);
    tracing::info!(created = report.created, updated = report.updated, failed = report.failed, "people imported");
    Ok(report)
}

/// The fixed columns of an export, before one per attribute.
pub const EXPORT_COLUMNS: [&str; 16] = [
    "id",
    "external_id",
    "email",
    "phone",
    "phone_kind",
    "name",
    "company",
    "manager",
    "country",
    "city",
    "lat",
    "lon",
    "tags",
    "unsubscribed",
    "created_at",
    "last_seen_at",
];

/// Text a spreadsheet would run as a formula gets a leading `'`.
fn guard(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() }
}

fn text_cell(v: &Option<String>) -> String {
    v.as_deref().map(guard).unwrap_or_default()
}

fn attribute_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => guard(s),
        // Numbers and booleans are written by us, never a formula.
        Some(other) => other.to_string(),
    }
}

fn person_record(p: &Person, attributes: &[String]) -> Vec<String> {
    let (lat, lon) = p.location.map_or((String::new(), String::new()), |l| (l.lat.to_string(), l.lon.to_string()));
    let mut cells = vec![
        p.id.clone(),
        text_cell(&p.external_id),
        text_cell(&p.email),
        text_cell(&p.phone),
        text_cell(&p.phone_kind),
        text_cell(&p.name),
        text_cell(&p.company.as_ref().map(|c| c.name.clone())),
        p.manager.to_string(),
        text_cell(&p.country),
        text_cell(&p.city),
        lat,
        lon,
        guard(&p.tags.join(";")),
        p.unsubscribed.to_string(),
        p.created_at.clone(),
        p.last_seen_at.clone().unwrap_or_default(),
    ];
    cells.extend(attributes.iter().map(|a| attribute_cell(p.attributes.get(a))));
    cells
}

/// An export under way: a search, read page by page, as CSV text.
pub struct Export {
    db: Db,
    prepared: Prepared,
    attributes: Vec<String>,
    started: bool,
    finished: bool,
    rows: u64,
}

impl Export {
    /// Checks the search (a bad filter fails here, before anything is sent).
    pub async fn start(db: &Db, workspace_id: &str, filter: Option<&Value>, q: Option<&str>) -> Result<Export> {
        let req = SearchRequest {
            q: q.map(str::to_owned),
            filter: filter.cloned(),
            // Oldest first: people created during the export land at the end
            // instead of shifting the pages.
            sort: Some(Sort { field: SortField::CreatedAt, order: Order::Asc }),
            limit: Some(search::PAGE_MAX),
            cursor: None,
        };
        let mut prepared = search::prepare(db, workspace_id, &req).await?;
        // The API's page cap is for screens; an export reads in larger steps.
        prepared.limit = EXPORT_PAGE;
        let attributes: Vec<(String,)> = with_db!(db, pool => sqlx::query_as(
            "SELECT name FROM attribute_def WHERE workspace_id = $1 ORDER BY name")
            .bind(workspace_id).fetch_all(pool).await?);
        Ok(Export {
            db: db.clone(),
            prepared,
            attributes: attributes.into_iter().map(|(n,)| n).collect(),
            started: false,
            finished: false,
            rows: 0,
        })
    }

    /// People written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The next piece of the file (the header comes with the first page), or
    /// `None` after the last.
    pub async fn next_chunk(&mut self, index: &dyn PeopleIndex) -> Result<Option<Vec<u8>>> {
        if self.finished {
            return Ok(None);
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        let failed = |e: csv::Error| Error::Internal(anyhow::anyhow!("writing CSV: {e}"));
        if !self.started {
            self.started = true;
            let header = EXPORT_COLUMNS.iter().map(|c| (*c).to_owned()).chain(self.attributes.iter().map(|a| format!("attributes.{a}")));
            w.write_record(header).map_err(failed)?;
        }
        let page = index.search(&self.prepared).await?;
        let people = profile::many(&self.db, &self.prepared.workspace_id, &page.ids).await?;
        for p in &people {
            w.write_record(person_record(p, &self.attributes)).map_err(failed)?;
        }
        self.rows += people.len() as u64;
        match page.next_cursor {
            Some(c) => self.prepared.cursor = Some(c),
            None => self.finished = true,
        }
        w.into_inner().map(Some).map_err(|e| Error::Internal(anyhow::anyhow!("writing CSV: {e}")))
    }
}

/// Writes everyone matching `filter` and `q` as CSV; returns how many.
#[tracing::instrument(skip_all, fields(workspace = %workspace_id))]
pub async fn export_csv<W: Write>(
    db: &Db,
    index: &dyn PeopleIndex,
    workspace_id: &str,
    filter: Option<&Value>,
    q: Option<&str>,
    mut writer: W,
) -> Result<u64> {
    let mut export = Export::start(db, workspace_id, filter, q).await?;
    while let Some(bytes) = export.next_chunk(index).await? {
        writer.write_all(&bytes).map_err(|e| Error::Internal(anyhow::anyhow!("writing the export: {e}")))?;
    }
    writer.flush().map_err(|e| Error::Internal(anyhow::anyhow!("writing the export: {e}")))?;
    Ok(export.rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(cells.to_vec())
    }

    #[test]
    fn headers_map_to_fields_attributes_or_nothing() {
        let mut report = ImportReport::default();
        let h = record(&["Email", " Full Name ", "plan", "attributes.seats", "id", "bad.name", "Lat", "lon"]);
        let cols = plan(&h, &Mapping::default(), &mut report).unwrap();
        assert_eq!(
            cols,
            vec![
                Column::Email,
                Column::Attribute("Full_Name".into()),
                Column::Attribute("plan".into()),
                Column::Attribute("seats".into()),
                Column::Skip,
                Column::Skip,
                Column::Lat,
                Column::Lon,
            ]
        );
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert_eq!((report.errors[0].line, report.errors[0].field.as_deref()), (1, Some("bad.name")));
        assert_eq!(report.failed, 0, "a skipped column is not a failed row");
    }

    #[test]
    fn an_explicit_mapping_wins_and_must_fit_the_file() {
        let mut report = ImportReport::default();
        let map = Mapping::from_pairs(&["E-Mail=email", "Plan=attributes.plan", "Notes=skip"]).unwrap();
        let cols = plan(&record(&["E-Mail", "Plan", "Notes"]), &map, &mut report).unwrap();
        assert_eq!(cols, vec![Column::Email, Column::Attribute("plan".into()), Column::Skip]);
        let e = plan(&record(&["email"]), &map, &mut report).unwrap_err();
        assert_eq!(e.status(), 422);
        let bad = Mapping::from_pairs(&["x=nowhere"]).unwrap();
        assert!(plan(&record(&["x", "email"]), &bad, &mut report).is_err());
        assert!(Mapping::from_pairs(&["no equals sign"]).is_err());
        assert!(Mapping::from_json(&serde_json::json!({"a": 1})).is_err());
    }

    #[test]
    fn a_header_that_cannot_work_is_refused() {
        let mut report = ImportReport::default();
        for h in [&["name", "company"][..], &["email", "Email"], &["email", "lat"]] {
            let e = plan(&record(h), &Mapping::default(), &mut report).unwrap_err();
            assert_eq!(e.code(), "bad_csv", "{h:?}");
        }
    }

    #[test]
    fn cells_are_typed_by_kind_or_by_look() {
        assert_eq!(attribute_value("42", None), serde_json::json!(42));
        assert_eq!(attribute_value("-1.5", None), serde_json::json!(-1.5));
        assert_eq!(attribute_value("TRUE", None), serde_json::json!(true));
        assert_eq!(attribute_value("01234", None), serde_json::json!("01234"));
        assert_eq!(attribute_value("+4917", None), serde_json::json!("+4917"));
        assert_eq!(attribute_value("1e5", None), serde_json::json!("1e5"));
        assert_eq!(attribute_value("true", Some(AttrKind::String)), serde_json::json!("true"));
        assert_eq!(attribute_value("7", Some(AttrKind::String)), serde_json::json!("7"));
        assert_eq!(attribute_value("yes", Some(AttrKind::Bool)), serde_json::json!(true));
        assert_eq!(attribute_value("2024-01-02", Some(AttrKind::Date)), serde_json::json!("2024-01-02"));
    }

    #[test]
    fn rows_become_person_input() {
        let cols =
            vec![Column::Email, Column::Manager, Column::Tags, Column::Lat, Column::Lon, Column::Attribute("seats".into()), Column::Phone];
        let mut kinds = HashMap::new();
        let p = row_input(&cols, &record(&["a@b.co", "Yes", "vip; beta|x", "52.5", "13.4", "3", "'+49 170 1234567"]), &mut kinds).unwrap();
        assert_eq!(p.manager, Some(true));
        assert_eq!(p.tags.as_deref(), Some(&["vip".to_owned(), "beta".to_owned(), "x".to_owned()][..]));
        assert_eq!(p.location, Some(Some(Location { lat: 52.5, lon: 13.4 })));
        assert_eq!(p.phone.as_deref(), Some("+49 170 1234567"), "an export's guard is undone");
        assert_eq!(kinds.get("seats"), Some(&AttrKind::Number));
        let e = row_input(&cols, &record(&["a@b.co", "maybe", "", "", "", "", ""]), &mut kinds).unwrap_err();
        assert_eq!(e.field(), Some("manager"));
        let e = row_input(&cols, &record(&["a@b.co", "", "", "52.5", "", "", ""]), &mut kinds).unwrap_err();
        assert_eq!(e.field(), Some("lon"));
        // Empty cells say nothing.
        let p = row_input(&cols, &record(&["a@b.co", "", "", "", "", "", ""]), &mut kinds).unwrap();
        assert!(p.manager.is_none() && p.tags.is_none() && p.attributes.is_none() && p.location.is_none());
    }

    #[test]
    fn rows_need_a_key_and_valid_contacts() {
        let ok = PersonInput { email: Some("Ann@Example.com".into()), ..Default::default() };
        assert_eq!(prepare_row(2, ok).unwrap().email.as_deref(), Some("ann@example.com"));
        let none = PersonInput { name: Some("Ann".into()), ..Default::default() };
        assert_eq!(prepare_row(2, none).err().and_then(|e| e.field().map(str::to_owned)).as_deref(), Some("external_id"));
        let bad = PersonInput { email: Some("nope".into()), ..Default::default() };
        assert_eq!(prepare_row(2, bad).err().and_then(|e| e.field().map(str::to_owned)).as_deref(), Some("email"));
    }

    #[test]
    fn formula_like_text_is_guarded() {
        assert_eq!(guard("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(guard("@home"), "'@home");
        assert_eq!(guard("Ann"), "Ann");
        assert_eq!(unguard("'=SUM(A1)"), "=SUM(A1)");
        assert_eq!(unguard("'quoted"), "'quoted");
        assert_eq!(attribute_cell(Some(&serde_json::json!(-3))), "-3");
        assert_eq!(attribute_cell(Some(&serde_json::json!("-3"))), "'-3");
    }
}
