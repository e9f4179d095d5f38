-- The rows written for every email no longer check their parent with a foreign key. Each check
-- is a query per inserted row that also locks the parent (FOR KEY SHARE): a delivery result's
-- events locked, and so rewrote, their email's row, and the group commit's rows locked their
-- tenant's. pg_stat_statements counted four such checks per email on the emails table, one on
-- tenants, and two per email on the webhook outbox (one per attempt), writing WAL for each.
--
-- The parents are written by the same statements, or read by them, so the checks never failed:
-- the accept statement writes an email with its deliveries and its first events; the worker and
-- the dispatcher write events and attempts only for the rows they leased; tenant ids come from
-- authenticated keys. Emails and outbox rows are not deleted by Missive; should one be deleted
-- by hand, the triggers below delete what hung from it, as a cascade would have (the foreign
-- keys refused instead, which no code relied on).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_tenant_id_email_id_fkey;
ALTER TABLE email_events DROP CONSTRAINT email_events_tenant_id_email_id_fkey;
ALTER TABLE emails DROP CONSTRAINT emails_tenant_id_fkey;
ALTER TABLE webhook_attempts DROP CONSTRAINT webhook_attempts_tenant_id_event_id_fkey;

CREATE FUNCTION missive_delete_email_children() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries d USING deleted x WHERE d.tenant_id = x.tenant_id AND d.email_id = x.id;
    DELETE FROM email_events e USING deleted x WHERE e.tenant_id = x.tenant_id AND e.email_id = x.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER emails_delete_children AFTER DELETE ON emails
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION missive_delete_email_children();

CREATE FUNCTION missive_delete_webhook_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM webhook_attempts a USING deleted x
    WHERE a.tenant_id = x.tenant_id AND a.event_id = x.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER webhook_events_delete_attempts AFTER DELETE ON webhook_events
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION missive_delete_webhook_attempts();
