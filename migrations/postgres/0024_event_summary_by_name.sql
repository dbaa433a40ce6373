-- As on SQLite: a summary is keyed by workspace, event name and person, the
-- order "did it at least N times" reads, and the name index that repeated it
-- is gone. The index by person stays here for the foreign key's cascade.
ALTER TABLE event_summary DROP CONSTRAINT event_summary_pkey;
ALTER TABLE event_summary ADD PRIMARY KEY (workspace_id, name, person_id);
DROP INDEX event_summary_name;
CREATE INDEX event_summary_person ON event_summary (person_id);
