-- Sorting people by name or email walks an index in that order, as sorting
-- by creation or last seen does: without one, the first page of everyone by
-- name sorts every person of the workspace (seconds at a million). The
-- expressions are the sort keys search uses, so the index serves them as is.
CREATE INDEX person_name_sort ON person (workspace_id, lower(COALESCE(name, '')), id);
CREATE INDEX person_email_sort ON person (workspace_id, lower(COALESCE(email, '')), id);
