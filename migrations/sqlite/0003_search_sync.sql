-- Keeping an external search index (Meilisearch) in step with people.

-- How far each stream has been pushed: the largest timestamp (ms) known to be
-- in the index. Readers look a few seconds behind it to catch transactions
-- that committed late.
CREATE TABLE search_sync (
    name   TEXT PRIMARY KEY,
    cursor BIGINT NOT NULL
);

-- People removed by a delete or a merge, so the index can drop them too.
-- Rows are kept for a day after they are pushed, so a full reindex or a node
-- that fell behind can replay them.
CREATE TABLE person_deleted (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    deleted_at   BIGINT NOT NULL
);
CREATE INDEX person_deleted_at ON person_deleted (deleted_at, id);

-- The sync reads people changed since its cursor, in (updated_at, id) order.
CREATE INDEX person_updated ON person (updated_at, id);
