-- Files teammates upload to attach to messages. The bytes live in the data
-- dir (`uploads/<id>`); the row is written after the file, so a row always
-- has its file. The id is a random token: holding the link is what lets a
-- visitor download it, so it must not be guessable.
CREATE TABLE upload (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    created_by   TEXT NOT NULL REFERENCES teammate(id),
    created_at   BIGINT NOT NULL
);
CREATE INDEX upload_workspace ON upload (workspace_id, created_at);

-- A message's attachments in the order they were given. Deleting a message
-- (with its conversation or person) takes its links with it; the upload stays.
CREATE TABLE message_attachment (
    message_id TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    upload_id  TEXT NOT NULL REFERENCES upload(id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (message_id, position)
);

-- An outbound's attachments (upload ids, a JSON list), given to each
-- recipient's message when the sending job writes it.
ALTER TABLE outbound ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
