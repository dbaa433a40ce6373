-- Chatbot flows: where each conversation's bot is in its flow. The person is
-- the conversation's (merges move conversations, so it is not copied here).
CREATE TABLE flow_run (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspace(id),
    automation_id     TEXT NOT NULL REFERENCES automation(id) ON DELETE CASCADE,
    conversation_id   TEXT NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,
    -- The step it is at (or stopped at).
    node              TEXT NOT NULL,
    -- running, waiting, paused (a teammate answered), done or failed.
    status            TEXT NOT NULL,
    -- What a waiting run waits for: choice (a button), answer (free text)
    -- or timer (a wait step's job).
    waiting_for       TEXT,
    -- The bot message whose buttons or question is open.
    prompt_message_id TEXT,
    -- Bumped by every step: an answer or a job meant for an earlier step
    -- finds another number and does nothing.
    episode           BIGINT NOT NULL DEFAULT 0,
    -- The person's last answer or button, for branch conditions (`reply`).
    reply             TEXT,
    -- Bad answers to the open question so far.
    attempts          BIGINT NOT NULL DEFAULT 0,
    error             TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
-- A conversation has at most one live run: a second start finds it taken.
CREATE UNIQUE INDEX flow_run_live ON flow_run (conversation_id) WHERE status IN ('running', 'waiting');
CREATE INDEX flow_run_conversation ON flow_run (conversation_id, status);
CREATE INDEX flow_run_automation ON flow_run (automation_id, id);
