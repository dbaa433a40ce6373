-- Event summaries live in one tree keyed by event name, then person. Before,
-- a summary had two: its primary key by person and an index by name, and at
-- a million people each tracked event rewrote a page of each that no other
-- event of its batch touched. "Did it at least N times" reads this tree as
-- it read the name index; a person's own summaries are found name by name
-- (a workspace has few event names), see `events::summaries`.
--
-- No foreign key to person: checking it on a person's delete would read the
-- whole table without an index by person. A person's summaries are deleted
-- (or moved, on a merge) with them, in the same transaction.
CREATE TABLE event_summary_new (
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    count        BIGINT NOT NULL,
    first_at     BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, name, person_id)
) WITHOUT ROWID;
INSERT INTO event_summary_new (workspace_id, name, person_id, count, first_at, last_at)
    SELECT workspace_id, name, person_id, count, first_at, last_at FROM event_summary ORDER BY workspace_id, name, person_id;
DROP TABLE event_summary;
ALTER TABLE event_summary_new RENAME TO event_summary;
