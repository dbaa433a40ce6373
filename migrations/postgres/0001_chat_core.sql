-- Live chat core: tenancy, auth, people, conversations, messages and the
-- realtime streams that make resume-after-reconnect lossless.
-- Times are milliseconds since the Unix epoch (UTC); ids are opaque text.

CREATE TABLE workspace (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    app_id           TEXT NOT NULL UNIQUE,
    identity_secret  TEXT NOT NULL,
    require_identity BOOLEAN NOT NULL DEFAULT FALSE,
    settings         TEXT NOT NULL DEFAULT '{}',
    created_at       BIGINT NOT NULL
);

CREATE TABLE teammate (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspace(id),
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    avatar_url    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX teammate_workspace ON teammate (workspace_id);

CREATE TABLE auth_token (
    token_hash   TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    teammate_id  TEXT NOT NULL REFERENCES teammate(id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE api_key (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL REFERENCES teammate(id),
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE person (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    external_id  TEXT,
    email        TEXT,
    name         TEXT,
    attributes   TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    last_seen_at BIGINT
);
CREATE UNIQUE INDEX person_external ON person (workspace_id, external_id);
CREATE INDEX person_email ON person (workspace_id, email);

CREATE TABLE visitor_session (
    token_hash   TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    person_id    TEXT NOT NULL REFERENCES person(id),
    created_at   BIGINT NOT NULL
);
CREATE INDEX visitor_session_person ON visitor_session (person_id);

CREATE TABLE conversation (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    person_id       TEXT NOT NULL REFERENCES person(id),
    title           TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'snoozed', 'closed')),
    snoozed_until   BIGINT,
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    assignee_id     TEXT REFERENCES teammate(id),
    channel         TEXT NOT NULL DEFAULT 'chat',
    transparent     BOOLEAN NOT NULL DEFAULT FALSE,
    person_seen_at  BIGINT NOT NULL DEFAULT 0,
    last_message_id TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX conversation_list ON conversation (workspace_id, archived, updated_at, id);
CREATE INDEX conversation_person ON conversation (person_id, updated_at);

CREATE TABLE participant (
    conversation_id TEXT NOT NULL REFERENCES conversation(id),
    teammate_id     TEXT NOT NULL REFERENCES teammate(id),
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    role            TEXT NOT NULL CHECK (role IN ('write', 'read_only', 'watcher')),
    muted           BOOLEAN NOT NULL DEFAULT FALSE,
    added_at        BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, teammate_id)
);

CREATE TABLE teammate_read (
    conversation_id TEXT NOT NULL REFERENCES conversation(id),
    teammate_id     TEXT NOT NULL REFERENCES teammate(id),
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    read_at         BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, teammate_id)
);

CREATE TABLE message (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    conversation_id TEXT NOT NULL REFERENCES conversation(id),
    author_type     TEXT NOT NULL CHECK (author_type IN ('person', 'teammate', 'bot', 'system')),
    author_id       TEXT,
    body            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('chat', 'note', 'announcement', 'checkin')),
    buttons         TEXT,
    echo_id         TEXT,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT,
    deleted_by      TEXT
);
CREATE INDEX message_thread ON message (conversation_id, id);
-- A resent echo_id from the same author is the same message: stored once.
CREATE UNIQUE INDEX message_echo ON message (workspace_id, author_type, author_id, echo_id);

-- The timeline: everything a person does (page views, tracked events, ...).
CREATE TABLE event (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    person_id    TEXT NOT NULL REFERENCES person(id),
    name         TEXT NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}',
    at           BIGINT NOT NULL
);
CREATE INDEX event_person ON event (person_id, at);

-- One ordered stream per realtime audience (a person's widget tabs, a
-- workspace's teammates). seq is allocated by an upsert on `stream`, inside
-- the same transaction that writes the event, so seq order is commit order.
CREATE TABLE stream (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    last_seq     BIGINT NOT NULL
);

CREATE TABLE stream_event (
    stream       TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    frame      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (stream, seq)
);

-- Live widget connections per node, so "online" is right across nodes.
-- Nodes are the deployment's, not a workspace's.
CREATE TABLE node (
    id           TEXT PRIMARY KEY,
    heartbeat_at BIGINT NOT NULL
);

CREATE TABLE presence (
    node_id      TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    connections  BIGINT NOT NULL,
    PRIMARY KEY (node_id, person_id)
);
CREATE INDEX presence_person ON presence (person_id);
