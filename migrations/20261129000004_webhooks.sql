-- Tenant webhook endpoints (Resend's Webhooks API).
--
-- The signing secret is stored sealed with MISSIVE_SECRET_KEY (XChaCha20-Poly1305, the tenant id
-- as associated data), beside the id of the key that sealed it. After a rotation the previous
-- secret is kept until `previous_secret_expires_at`, and deliveries carry both signatures until
-- then. `disabled_reason` says why Missive disabled an endpoint (410 Gone, days without a
-- success); it is null when the tenant did.
CREATE TABLE webhooks (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL,
    endpoint text NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 2048),
    events text[] NOT NULL CHECK (
        cardinality(events) > 0
        AND events <@ ARRAY['email.sent', 'email.scheduled', 'email.delivered',
                            'email.delivery_delayed', 'email.bounced', 'email.failed',
                            'email.suppressed', 'email.canceled']::text[]
    ),
    status text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    disabled_reason text,
    secret_key_id text NOT NULL,
    secret bytea NOT NULL,
    previous_secret_key_id text,
    previous_secret bytea,
    previous_secret_expires_at timestamptz,
    last_success_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Also the listing's order, newest first (ids are time-ordered UUIDv7).
    PRIMARY KEY (tenant_id, id),
    CHECK ((previous_secret IS NULL) = (previous_secret_key_id IS NULL))
);
