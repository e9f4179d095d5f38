-- Outbox rows no longer check their endpoint with a foreign key. The check locked the endpoint's
-- row (FOR KEY SHARE) for every row inserted, and the accept path's concurrent transactions all
-- insert rows for the same few endpoints, so each such lock became a multixact: Postgres spent
-- about a fifth more CPU per email for a tenant with one endpoint. The rows are written by the
-- statements that read the endpoint (they join `webhooks`), and deleting an endpoint still
-- deletes its rows, by the trigger below. A row written by a transaction racing the endpoint's
-- deletion can outlive it: no lease or API reaches it, since both go through the endpoint.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_tenant_id_webhook_id_fkey;

CREATE FUNCTION missive_delete_webhook_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM webhook_events e USING deleted d
    WHERE e.tenant_id = d.tenant_id AND e.webhook_id = d.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER webhooks_delete_events AFTER DELETE ON webhooks
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION missive_delete_webhook_events();
