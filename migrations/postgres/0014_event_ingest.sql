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
);

-- The name index keeps the person before the count: a count going up
-- rewrites its entry in place instead of moving it across the index. "Did
-- it at least N times" still reads the index alone.
DROP INDEX event_summary_name;
CREATE INDEX event_summary_name ON event_summary (workspace_id, name, person_id, count);
