-- Accepted emails, one delivery row per envelope recipient, the event history, and idempotency
-- records. An email is committed with its deliveries, its `email.queued` events and its
-- idempotency record in one transaction before the client hears back.

CREATE TABLE emails (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    -- Our Message-ID header value, without angle brackets.
    message_id    text NOT NULL,
    from_address  text NOT NULL,
    -- The SMTP envelope sender (MAIL FROM), and whether the envelope needs SMTPUTF8.
    envelope_from text NOT NULL,
    smtputf8      boolean NOT NULL DEFAULT false,
    reply_to      text[] NOT NULL DEFAULT '{}',
    subject       text NOT NULL,
    html          text,
    text          text,
    tags          jsonb NOT NULL DEFAULT '[]',
    -- The final MIME message as it is relayed.
    mime          bytea NOT NULL,
    scheduled_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX emails_created_idx ON emails (tenant_id, created_at DESC, id DESC);
CREATE INDEX emails_tags_idx ON emails USING gin (tags jsonb_path_ops);

CREATE TABLE deliveries (
    tenant_id           uuid NOT NULL,
    id                  uuid NOT NULL,
    email_id            uuid NOT NULL,
    recipient           text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('to', 'cc', 'bcc')),
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sending', 'delivered', 'deferred', 'bounced', 'failed', 'canceled')),
    attempts            integer NOT NULL DEFAULT 0,
    -- When the row is next due; for a scheduled email, its scheduled time.
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    -- Set while a worker holds the row; an expired lease is reclaimed by any worker, and the
    -- lease id makes sure a worker that lost its lease cannot record a result over the new one.
    lease_expires_at    timestamptz,
    lease_id            uuid,
    last_smtp_code      integer,
    last_smtp_response  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, email_id) REFERENCES emails (tenant_id, id)
);

CREATE INDEX deliveries_email_idx ON deliveries (tenant_id, email_id);
-- What the delivery worker scans: due rows, and leases that ran out.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX deliveries_lease_idx ON deliveries (lease_expires_at) WHERE status = 'sending';

CREATE TABLE email_events (
    tenant_id      uuid NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    email_id       uuid NOT NULL,
    delivery_id    uuid,
    type           text NOT NULL,
    recipient      text,
    smtp_code      integer,
    smtp_response  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, email_id) REFERENCES emails (tenant_id, id)
);

CREATE INDEX email_events_email_idx ON email_events (tenant_id, email_id, id);

CREATE TABLE idempotency_keys (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 256),
    -- SHA-256 of the request body: the same key with another body is a conflict.
    request_hash     bytea NOT NULL,
    response_status  integer NOT NULL,
    response_body    jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Wakes delivery workers when rows are queued; polling stays as the fallback.
CREATE FUNCTION missive_notify_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('missive_deliveries', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION missive_notify_deliveries();
