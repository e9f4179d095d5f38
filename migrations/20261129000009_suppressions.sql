-- Each tenant's suppression list, and bounces classified.
--
-- A recipient on its tenant's list when an email is accepted gets a delivery that is
-- `suppressed` from the start (with its `email.suppressed` event) and is never leased. A hard
-- bounce puts its address on the list, in the statement that records the bounce.

-- The new status; NOT VALID then VALIDATE, so the check of existing rows does not hold the
-- table's exclusive lock.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('queued', 'sending', 'delivered', 'deferred', 'bounced', 'failed',
                      'canceled', 'suppressed')) NOT VALID;
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_status_check;

-- What a refusal said about the address (core `BounceClass`): the delivery's latest, and each
-- event's own.
ALTER TABLE deliveries ADD COLUMN bounce_class text CHECK (bounce_class IN ('hard', 'soft'));
ALTER TABLE email_events ADD COLUMN bounce_class text CHECK (bounce_class IN ('hard', 'soft'));

CREATE TABLE suppressions (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid NOT NULL,
    -- Lower-cased (with the database's lower(), at every write and every lookup).
    email      text NOT NULL CHECK (email = lower(email) AND length(email) <= 320),
    origin     text NOT NULL CHECK (origin IN ('bounce', 'complaint', 'manual')),
    -- The email that bounced; null for manual entries.
    source_id  uuid,
    -- The refusal that put the address here.
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Accepts look every recipient up here; an address is on a tenant's list once.
CREATE UNIQUE INDEX suppressions_email_key ON suppressions (tenant_id, email);
