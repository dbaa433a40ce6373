-- When an automation that fires once per person per period (a proactive
-- greeting) last fired for each person.
CREATE TABLE automation_fired (
    automation_id TEXT NOT NULL REFERENCES automation(id) ON DELETE CASCADE,
    person_id     TEXT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL,
    fired_at      BIGINT NOT NULL,
    PRIMARY KEY (automation_id, person_id)
);
