-- As on SQLite: only conversations that have a company are indexed. Most
-- have none, and an index over every NULL made SQLite's statistics judge a
-- lookup by company worthless; here it is simply smaller.
DROP INDEX conversation_company;
CREATE INDEX conversation_company ON conversation (company_id) WHERE company_id IS NOT NULL;
