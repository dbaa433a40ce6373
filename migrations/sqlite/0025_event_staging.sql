-- Events from the site's backend (`POST /events`) are appended here when
-- they arrive, and folded into `event` and `event_summary` a little later
-- in person order. At a million people each event, written straight away,
-- rewrote a page of the person index and one of the summaries that no
-- other event of its batch shared; folded many at a time in that order,
-- neighbouring events share their pages. Readers that need every event
-- (timelines, summaries, event filters) wait for the fold first. A person
-- deleted or merged away takes their staged events with them (or to the
-- person they were merged into) in the same transaction; the foreign keys
-- make sure a fold never meets an event of nobody.
CREATE TABLE event_staged (
    seq          INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    person_id    TEXT NOT NULL REFERENCES person(id),
    name         TEXT NOT NULL,
    data         TEXT NOT NULL,
    at           BIGINT NOT NULL
);

-- One fold's events, moved here from `event_staged` in person order and
-- taken off the front in chunks, each chunk in the transaction that writes
-- it into the timeline: what is here after a crash is folded at the next
-- start, and nothing twice.
CREATE TABLE event_folding (
    seq          INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    person_id    TEXT NOT NULL REFERENCES person(id),
    name         TEXT NOT NULL,
    data         TEXT NOT NULL,
    at           BIGINT NOT NULL
);
