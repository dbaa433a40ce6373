-- An outbound's counts by channel and status, kept as its deliveries change,
-- so that showing an outbound (and every outbound of a list page) reads a
-- handful of rows instead of counting every delivery.
CREATE TABLE delivery_count (
    outbound_id TEXT NOT NULL REFERENCES outbound(id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    status      TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (outbound_id, channel, status)
);

INSERT INTO delivery_count (outbound_id, channel, status, n)
SELECT outbound_id, channel, status, COUNT(*) FROM delivery WHERE outbound_id IS NOT NULL GROUP BY outbound_id, channel, status;

CREATE FUNCTION delivery_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.outbound_id IS NOT NULL THEN
        UPDATE delivery_count SET n = n - 1 WHERE outbound_id = OLD.outbound_id AND channel = OLD.channel AND status = OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.outbound_id IS NOT NULL THEN
        INSERT INTO delivery_count (outbound_id, channel, status, n) VALUES (NEW.outbound_id, NEW.channel, NEW.status, 1)
        ON CONFLICT (outbound_id, channel, status) DO UPDATE SET n = delivery_count.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER delivery_count_insert_delete AFTER INSERT OR DELETE ON delivery
    FOR EACH ROW EXECUTE FUNCTION delivery_count_change();
CREATE TRIGGER delivery_count_update AFTER UPDATE OF status ON delivery
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION delivery_count_change();
