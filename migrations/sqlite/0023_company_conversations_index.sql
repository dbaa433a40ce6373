-- Most conversations belong to no company, so the statistics of an index over
-- every conversation's company_id say one value (NULL) covers them all, and
-- SQLite then judged a lookup by company worthless and scanned the whole
-- conversation table instead: for every widget load and every message of a
-- person with a company. Only conversations that have a company are indexed
-- now; `company_id = ?` implies the index's condition.
DROP INDEX conversation_company;
CREATE INDEX conversation_company ON conversation (company_id) WHERE company_id IS NOT NULL;
