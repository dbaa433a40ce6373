-- Missed chat messages are emailed: on by default, off per workspace, per
-- automation and per message.
ALTER TABLE workspace ADD COLUMN email_fallback BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE automation ADD COLUMN email_fallback BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE message ADD COLUMN email_fallback BOOLEAN NOT NULL DEFAULT TRUE;

-- Per conversation: the token of its reply-to address, the message whose
-- job is the one to send (earlier jobs find themselves stale: one email for
-- several messages in a row), and how far emails have covered the thread.
CREATE TABLE email_fallback (
    conversation_id    TEXT PRIMARY KEY REFERENCES conversation(id) ON DELETE CASCADE,
    workspace_id       TEXT NOT NULL,
    reply_token        TEXT NOT NULL UNIQUE,
    pending_message_id TEXT,
    planned_at         BIGINT NOT NULL DEFAULT 0,
    sent_through       BIGINT NOT NULL DEFAULT 0,
    sent_at            BIGINT
);
CREATE INDEX email_fallback_pending ON email_fallback (pending_message_id);
