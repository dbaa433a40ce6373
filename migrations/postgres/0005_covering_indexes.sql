-- Filters on tags, attributes and event counts select person ids from these
-- tables; with the id in the index that is a scan of the index alone, not a
-- lookup of every matching row. And a search's outer test, "this workspace
-- and one of these ids", is answered from (workspace_id, id) without reading
-- the person.

DROP INDEX person_tag_tag;
CREATE INDEX person_tag_tag ON person_tag (workspace_id, tag, person_id);

DROP INDEX person_attribute_str;
CREATE INDEX person_attribute_str ON person_attribute (workspace_id, name, str_value, person_id);
DROP INDEX person_attribute_num;
CREATE INDEX person_attribute_num ON person_attribute (workspace_id, name, num_value, person_id);

DROP INDEX event_summary_name;
CREATE INDEX event_summary_name ON event_summary (workspace_id, name, count, person_id);

CREATE INDEX person_workspace_id ON person (workspace_id, id);
