-- The sender claims queued deliveries in the order of their people, so that
-- a chunk's conversations, messages, timeline events and summaries land next
-- to each other in every index keyed by person: a chunk of people picked at
-- random (the order of the random delivery ids) touched a different page of
-- each such index for every recipient.
DROP INDEX delivery_work;
CREATE INDEX delivery_work ON delivery (outbound_id, status, person_id);
