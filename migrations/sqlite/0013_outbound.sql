-- Outbound: mass sends by chat, email and SMS, one delivery row per
-- recipient and channel, check-in answers, reusable templates, and the
-- workspace's SMS routes.

CREATE TABLE outbound (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspace(id),
    kind             TEXT NOT NULL CHECK (kind IN ('chat', 'one_way', 'announcement', 'checkin')),
    title            TEXT,
    body             TEXT NOT NULL,
    channels         TEXT NOT NULL,
    audience         TEXT NOT NULL,
    options          TEXT NOT NULL,
    from_teammate_id TEXT REFERENCES teammate(id),
    created_by       TEXT NOT NULL REFERENCES teammate(id),
    follow_up_of     TEXT REFERENCES outbound(id),
    status           TEXT NOT NULL CHECK (status IN ('sending', 'sent')),
    recipients       BIGINT NOT NULL,
    -- A transparent chat: the one conversation every recipient shares.
    conversation_id  TEXT REFERENCES conversation(id),
    archived         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX outbound_list ON outbound (workspace_id, id);

CREATE TABLE delivery (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    outbound_id     TEXT REFERENCES outbound(id),
    person_id       TEXT NOT NULL REFERENCES person(id),
    channel         TEXT NOT NULL CHECK (channel IN ('chat', 'email', 'sms')),
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'delivered', 'failed', 'skipped')),
    reason          TEXT,
    route           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    provider_id     TEXT,
    conversation_id TEXT,
    message_id      TEXT,
    -- Not before this time (a retry's pause), and who is working it.
    next_at         BIGINT NOT NULL DEFAULT 0,
    claimed_at      BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX delivery_log ON delivery (outbound_id, id);
CREATE INDEX delivery_status ON delivery (outbound_id, status, channel);
-- The sender claims queued rows in id order.
CREATE INDEX delivery_work ON delivery (outbound_id, status, id);
CREATE INDEX delivery_conversation ON delivery (conversation_id);
CREATE INDEX delivery_provider ON delivery (provider_id);

CREATE TABLE checkin_reply (
    outbound_id  TEXT NOT NULL REFERENCES outbound(id),
    person_id    TEXT NOT NULL REFERENCES person(id),
    workspace_id TEXT NOT NULL,
    ok           BOOLEAN NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (outbound_id, person_id)
);

CREATE TABLE template (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    kind         TEXT NOT NULL CHECK (kind IN ('chat', 'one_way')),
    title        TEXT NOT NULL,
    body         TEXT NOT NULL,
    channels     TEXT NOT NULL DEFAULT '[]',
    audience     TEXT,
    options      TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX template_list ON template (workspace_id, kind, title);

-- {from, routes: [{name, kind: http|log, url?, username?, password?}]}
ALTER TABLE workspace ADD COLUMN sms TEXT;
