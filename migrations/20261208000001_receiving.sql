-- Receiving, the rest: what the Receiving API lists without reading the message, the arrival's
-- authentication verdicts, the `email.received` webhook, per-tenant caps and usage counts.

-- Read by the whole tenant: receiving domains are the tenant's, shared by its projects.
DROP POLICY tenant_rows ON received_emails;
CREATE POLICY tenant_rows ON received_emails TO missive_tenant
    USING (tenant_id = missive_current_tenant())
    WITH CHECK (tenant_id = missive_current_tenant());
-- Pages walk the primary key (ids are time-ordered), as the email list does.
DROP INDEX received_emails_created_idx;

ALTER TABLE received_emails
    -- From the headers and the MIME structure: to, cc, bcc, reply_to, from as written, and the
    -- attachments' metadata (each with its id and the part it is).
    ADD COLUMN summary        jsonb NOT NULL DEFAULT '{}',
    -- SPF, DKIM and DMARC as checked on arrival.
    ADD COLUMN authentication jsonb NOT NULL DEFAULT '{}',
    -- The SMTP client: its address and what it said in HELO/EHLO.
    ADD COLUMN client_ip      inet,
    ADD COLUMN helo           text CHECK (length(helo) <= 255);

-- `record`: verdicts are kept and shown, nothing refused for them; `enforce`: a message whose
-- DMARC check fails while the author domain's policy says reject is refused at DATA.
ALTER TABLE domains ADD COLUMN inbound_dmarc text NOT NULL DEFAULT 'record'
    CHECK (inbound_dmarc IN ('record', 'enforce'));

-- A tenant's own inbound caps; null: the operator's defaults.
ALTER TABLE tenants
    ADD COLUMN received_per_day      bigint CHECK (received_per_day >= 0),
    ADD COLUMN received_stored_bytes bigint CHECK (received_stored_bytes >= 0);

-- A tenant's arrivals today and the bytes it keeps, spread over shards (an arrival counts in one
-- chosen at random) so that concurrent arrivals never wait on one another's row lock, each held
-- until its commit's WAL flush: the statement that stores a message reads the sums as committed
-- and counts in its shard. Concurrent arrivals may pass a cap by at most their number.
CREATE TABLE received_totals (
    tenant_id    uuid     NOT NULL,
    shard        smallint NOT NULL CHECK (shard >= 0),
    day          date     NOT NULL,
    today        bigint   NOT NULL CHECK (today >= 0),
    stored_bytes bigint   NOT NULL CHECK (stored_bytes >= 0),
    PRIMARY KEY (tenant_id, shard)
);
ALTER TABLE received_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE received_totals FORCE ROW LEVEL SECURITY;
CREATE POLICY service_rows ON received_totals TO missive_service USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON received_totals TO missive_tenant
    USING (tenant_id = missive_current_tenant())
    WITH CHECK (tenant_id = missive_current_tenant());
GRANT SELECT ON received_totals TO missive_tenant;

ALTER TABLE usage_daily
    ADD COLUMN received       bigint NOT NULL DEFAULT 0,
    ADD COLUMN received_bytes bigint NOT NULL DEFAULT 0;

ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (
    cardinality(events) > 0
    AND events <@ ARRAY['email.sent', 'email.scheduled', 'email.delivered',
                        'email.delivery_delayed', 'email.bounced', 'email.complained',
                        'email.failed', 'email.suppressed', 'email.canceled',
                        'email.received']::text[]
);
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_type_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_type_check CHECK (
    type IN ('email.sent', 'email.scheduled', 'email.delivered', 'email.delivery_delayed',
             'email.bounced', 'email.complained', 'email.failed', 'email.suppressed',
             'email.canceled', 'email.received')
);

-- Received messages are compressed with lz4, as sent bodies are (20261122000008): pglz on a
-- 10 KB message costs Postgres several times the CPU. Servers without lz4 keep pglz.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE received_emails ALTER COLUMN raw SET COMPRESSION lz4';
EXCEPTION
    WHEN feature_not_supported OR syntax_error THEN
        RAISE NOTICE 'lz4 is not available on this server: received messages stay compressed with pglz';
END
$$;
