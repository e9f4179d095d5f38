-- Reports that come back after a relay's 250 (delivery reports, plain bounces, complaints) and
-- the return paths they come back to.
--
-- A report becomes an event of the email it names, like an attempt's result: a late bounce
-- (`email.bounced` with the report's status and reporting MTA), a delay (`email.deferred`), a
-- final delivery report (`email.confirmed`, not a webhook), a complaint (`email.complained`).
ALTER TABLE email_events DROP CONSTRAINT email_events_type_check;
ALTER TABLE email_events ADD CONSTRAINT email_events_type_check CHECK (type IN (
    'email.queued', 'email.scheduled', 'email.sending', 'email.delivered', 'email.deferred',
    'email.bounced', 'email.failed', 'email.canceled', 'email.suppressed', 'email.confirmed',
    'email.complained'
));
-- What a report said beyond the reply columns: its enhanced status and who reported.
ALTER TABLE email_events ADD COLUMN report_status text, ADD COLUMN reporting_mta text;

ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (
    cardinality(events) > 0
    AND events <@ ARRAY['email.sent', 'email.scheduled', 'email.delivered',
                        'email.delivery_delayed', 'email.bounced', 'email.complained',
                        'email.failed', 'email.suppressed', 'email.canceled']::text[]
);
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_type_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_type_check CHECK (
    type IN ('email.sent', 'email.scheduled', 'email.delivered', 'email.delivery_delayed',
             'email.bounced', 'email.complained', 'email.failed', 'email.suppressed',
             'email.canceled')
);

-- Resend's `custom_return_path`: the subdomain of a verified sending domain that return paths
-- use (`send` as Resend's default), one DNS label.
ALTER TABLE domains ADD COLUMN custom_return_path text NOT NULL DEFAULT 'send'
    CHECK (custom_return_path ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$');

-- A suppression keeps the enhanced status of the report or reply that caused it.
ALTER TABLE suppressions ADD COLUMN status text CHECK (length(status) <= 16);

-- Soft bounces per address: a tenant's address is suppressed once its count within the
-- window reaches the operator's limit. One row per address, restarted when its window ends.
CREATE TABLE soft_bounces (
    tenant_id uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email     text        NOT NULL CHECK (email = lower(email)),
    first_at  timestamptz NOT NULL DEFAULT now(),
    count     integer     NOT NULL CHECK (count > 0),
    PRIMARY KEY (tenant_id, email)
);
ALTER TABLE soft_bounces ENABLE ROW LEVEL SECURITY;
ALTER TABLE soft_bounces FORCE ROW LEVEL SECURITY;
CREATE POLICY service_rows ON soft_bounces TO missive_service USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON soft_bounces TO missive_tenant
    USING (tenant_id = missive_current_tenant())
    WITH CHECK (tenant_id = missive_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON soft_bounces TO missive_tenant;

-- One finding of a report for one delivery, as the report statement takes it. `set_status`
-- moves the delivery (a late bounce), `suppress` puts the address on the list at once (a hard
-- bounce, a complaint), `soft` counts a soft bounce.
CREATE TYPE report_finding AS (
    delivery_id    uuid,
    event          text,
    set_status     text,
    bounce_class   text,
    code           integer,
    response       text,
    report_status  text,
    reporting_mta  text,
    suppress       text,
    soft           boolean,
    suppression_id uuid
);
