-- Delivery ids are now made in the order of their people (see
-- outbound::create), so the sender claims in id order again and the index of
-- 0019 goes back to the one of 0013. 0019 stays for databases that ran it.
DROP INDEX delivery_work;
CREATE INDEX delivery_work ON delivery (outbound_id, status, id);
