-- Automations: rules scripted in rhai (and, later, chatbot flows) that react
-- to what happens in a workspace, with a log of every run.

CREATE TABLE automation (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    name            TEXT NOT NULL,
    -- rule (a script) or flow (a graph of steps).
    kind            TEXT NOT NULL,
    -- message.received, event.<name>, page.view, …
    trigger_name    TEXT NOT NULL,
    params          TEXT NOT NULL DEFAULT '{}',
    script          TEXT,
    flow            TEXT,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    -- Why it was switched off by Parley (failing again and again); cleared
    -- when a teammate enables it again.
    disabled_reason TEXT,
    -- Failed runs in a row; a success resets it.
    failures        BIGINT NOT NULL DEFAULT 0,
    created_by      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- What a happening looks up: the enabled automations of its trigger.
CREATE INDEX automation_trigger ON automation (workspace_id, trigger_name, enabled);

CREATE TABLE automation_run (
    id              TEXT PRIMARY KEY,
    automation_id   TEXT NOT NULL REFERENCES automation(id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    trigger_name    TEXT NOT NULL,
    -- ok, error or skipped (rate limited, or nothing to act on).
    outcome         TEXT NOT NULL,
    actions         TEXT NOT NULL DEFAULT '[]',
    error           TEXT,
    duration_us     BIGINT NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX automation_run_log ON automation_run (automation_id, at);
