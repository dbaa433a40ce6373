-- People in full: contact details, companies, typed attributes, tags, event
-- summaries, segments and the full-text index behind people search.

CREATE TABLE company (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspace(id),
    external_id     TEXT,
    name            TEXT NOT NULL,
    attributes      TEXT NOT NULL DEFAULT '{}',
    -- The shared conversation of all members, when the workspace uses
    -- company conversations.
    conversation_id TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX company_name ON company (workspace_id, lower(name));
CREATE UNIQUE INDEX company_external ON company (workspace_id, external_id);

-- Every person's conversation is their company's: all members see it and
-- write in it.
ALTER TABLE workspace ADD COLUMN company_conversations BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE person ADD COLUMN phone TEXT;
ALTER TABLE person ADD COLUMN phone_kind TEXT;
ALTER TABLE person ADD COLUMN company_id TEXT REFERENCES company(id);
ALTER TABLE person ADD COLUMN manager BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE person ADD COLUMN country TEXT;
ALTER TABLE person ADD COLUMN city TEXT;
ALTER TABLE person ADD COLUMN lat DOUBLE PRECISION;
ALTER TABLE person ADD COLUMN lon DOUBLE PRECISION;
ALTER TABLE person ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE person ADD COLUMN unsubscribed BOOLEAN NOT NULL DEFAULT FALSE;
-- Name, email, phone and company name in one text, for the full-text index.
ALTER TABLE person ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

CREATE INDEX person_company ON person (company_id);

-- A company conversation is shared by every member of its company.
ALTER TABLE conversation ADD COLUMN company_id TEXT REFERENCES company(id);
CREATE INDEX conversation_company ON conversation (company_id);
CREATE INDEX person_country ON person (workspace_id, lower(country));
CREATE INDEX person_city ON person (workspace_id, lower(city));
CREATE INDEX person_email_ci ON person (workspace_id, lower(email));
CREATE INDEX person_phone ON person (workspace_id, phone);
CREATE INDEX person_created ON person (workspace_id, created_at, id);
CREATE INDEX person_seen ON person (workspace_id, COALESCE(last_seen_at, 0), id);
CREATE INDEX person_geo ON person (workspace_id, lat, lon);

-- The type of each attribute name, fixed by its first value, so filters can
-- check operators and values against it.
CREATE TABLE attribute_def (
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('string', 'number', 'bool', 'date')),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

-- One row per attribute value, indexed for filters. Strings are matched
-- lower-cased in str_value; numbers, booleans (0/1) and dates (ms) in
-- num_value. person.attributes keeps the values as given.
CREATE TABLE person_attribute (
    person_id    TEXT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    str_value    TEXT,
    num_value    DOUBLE PRECISION,
    PRIMARY KEY (person_id, name)
);
CREATE INDEX person_attribute_str ON person_attribute (workspace_id, name, str_value);
CREATE INDEX person_attribute_num ON person_attribute (workspace_id, name, num_value);

CREATE TABLE person_tag (
    person_id    TEXT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    tag          TEXT NOT NULL,
    PRIMARY KEY (person_id, tag)
);
CREATE INDEX person_tag_tag ON person_tag (workspace_id, tag);

-- Per person and event name: how often and when first and last.
CREATE TABLE event_summary (
    person_id    TEXT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    count        BIGINT NOT NULL,
    first_at     BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    PRIMARY KEY (person_id, name)
);
CREATE INDEX event_summary_name ON event_summary (workspace_id, name, count);

CREATE INDEX event_name ON event (workspace_id, name, at, person_id);
CREATE INDEX event_person_name ON event (person_id, name, at);

CREATE TABLE segment (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspace(id),
    name         TEXT NOT NULL,
    filter       TEXT NOT NULL,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX segment_workspace ON segment (workspace_id, name);


-- Full text over person.search_text ('simple': names and emails are not
-- words of one language).
CREATE INDEX person_fts ON person USING GIN (to_tsvector('simple', search_text));
UPDATE person SET search_text = trim(COALESCE(name, '') || ' ' || COALESCE(email, ''));
