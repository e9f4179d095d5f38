-- Mail received for tenants' receiving domains (the inbound MX), stored whole before the MX
-- answers 250, like an accepted email. A domain name receives for one tenant at a time.
CREATE UNIQUE INDEX domains_receiving_name ON domains (name) WHERE receiving = 'enabled';

CREATE TABLE received_emails (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    -- The tenant's default project: receiving domains are the tenant's; its applications read.
    project_id   uuid        NOT NULL,
    id           uuid        NOT NULL,
    domain_id    uuid        NOT NULL,
    -- The envelope: '' for the null reverse path.
    mail_from    text        NOT NULL,
    rcpt_to      text[]      NOT NULL CHECK (cardinality(rcpt_to) > 0),
    -- From the message's headers, for listings.
    message_id   text,
    from_address text,
    subject      text,
    size         integer     NOT NULL CHECK (size >= 0),
    raw          bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX received_emails_created_idx
    ON received_emails (tenant_id, project_id, created_at DESC, id DESC);

ALTER TABLE received_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE received_emails FORCE ROW LEVEL SECURITY;
CREATE POLICY service_rows ON received_emails TO missive_service USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON received_emails TO missive_tenant
    USING (tenant_id = missive_current_tenant()
           AND project_id = COALESCE(missive_current_project(), project_id))
    WITH CHECK (tenant_id = missive_current_tenant()
           AND project_id = COALESCE(missive_current_project(), project_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON received_emails TO missive_tenant;
