-- Teams: groups of teammates that conversations are routed to (billing,
-- sales…). A conversation has at most one team beside its assignee.
CREATE TABLE team (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (workspace_id, name_key)
);

CREATE TABLE team_member (
    team_id      TEXT NOT NULL REFERENCES team(id) ON DELETE CASCADE,
    teammate_id  TEXT NOT NULL REFERENCES teammate(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    PRIMARY KEY (team_id, teammate_id)
);

ALTER TABLE conversation ADD COLUMN team_id TEXT REFERENCES team(id) ON DELETE SET NULL;
CREATE INDEX conversation_team ON conversation (workspace_id, team_id, updated_at);
