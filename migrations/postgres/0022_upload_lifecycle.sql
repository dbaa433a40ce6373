-- Uploads are kept while something uses them: a message, an outbound or a
-- template. This index answers "does any message still link this file?"
-- when a message, conversation or person is deleted and when unused files
-- are swept.
CREATE INDEX message_attachment_upload ON message_attachment (upload_id);

-- A chat template's files (upload ids, a JSON list, as on outbound), given
-- to the outbound started from it.
ALTER TABLE template ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
