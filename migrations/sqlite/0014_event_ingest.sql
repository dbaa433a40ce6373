-- Event ingest writes as few scattered pages as it can: at a million people
-- every index keyed by person puts each event on a page of its own.

-- The timeline's name filter reads a person's events through event_person
-- (a person's events are few); this second per-person index only cost writes.
DROP INDEX event_person_name;

-- People whose event summaries changed, appended in time order. Search
-- results kept in memory and the Meilisearch sync follow it, instead of each
-- event moving person.updated_at (a scattered row and two index entries).
-- Rows are pruned a day after they are written.
CREATE TABLE person_touched (
    at           BIGINT NOT NULL,
    person_id    TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    PRIMARY KEY (at, person_id)
) WITHOUT ROWID;

-- A summary lives in its primary key (no separate row to find and rewrite),
-- and its name index keeps the person before the count: a count going up
-- rewrites its entry in place instead of moving it across the index. "Did
-- it at least N times" still reads the index alone.
CREATE TABLE event_summary_new (
    person_id    TEXT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    count        BIGINT NOT NULL,
    first_at     BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    PRIMARY KEY (person_id, name)
) WITHOUT ROWID;
INSERT INTO event_summary_new (person_id, workspace_id, name, count, first_at, last_at)
    SELECT person_id, workspace_id, name, count, first_at, last_at FROM event_summary ORDER BY person_id, name;
DROP TABLE event_summary;
ALTER TABLE event_summary_new RENAME TO event_summary;
CREATE INDEX event_summary_name ON event_summary (workspace_id, name, person_id, count);
