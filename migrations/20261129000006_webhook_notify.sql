-- Wakes webhook dispatchers when outbox rows are written; polling stays as the fallback. The
-- statements that write email events always run the outbox insert, mostly for no row (tenants
-- without endpoints): only a statement that inserted something notifies.
CREATE FUNCTION missive_notify_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted) THEN
        PERFORM pg_notify('missive_webhooks', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER webhook_events_notify AFTER INSERT ON webhook_events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION missive_notify_webhooks();
