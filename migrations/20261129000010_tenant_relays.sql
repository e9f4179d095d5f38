-- A tenant's own upstream SMTP server, and the route each attempt took.
--
-- The password is sealed with MISSIVE_SECRET_KEY (XChaCha20-Poly1305, the tenant id as
-- associated data) and stored with the id of the key that sealed it, as webhook secrets are.
-- `smtp_changed_at` versions the settings: every process's delivery worker reads it with each
-- email it leases and rebuilds the tenant's transport when it moves, so a change takes effect
-- for the next attempts everywhere without a restart.
ALTER TABLE tenants
    ADD COLUMN smtp_host text CHECK (length(smtp_host) BETWEEN 1 AND 253),
    ADD COLUMN smtp_port integer CHECK (smtp_port BETWEEN 1 AND 65535),
    ADD COLUMN smtp_tls text CHECK (smtp_tls IN ('none', 'starttls', 'tls')),
    ADD COLUMN smtp_username text CHECK (length(smtp_username) BETWEEN 1 AND 256),
    ADD COLUMN smtp_password_key_id text,
    ADD COLUMN smtp_password bytea,
    ADD COLUMN smtp_enabled boolean NOT NULL DEFAULT false,
    ADD COLUMN smtp_changed_at timestamptz,
    ADD CONSTRAINT tenants_smtp_whole CHECK (
        (smtp_host IS NULL) = (smtp_port IS NULL) AND (smtp_host IS NULL) = (smtp_tls IS NULL)
        AND (smtp_password IS NULL) = (smtp_password_key_id IS NULL)
        AND (smtp_host IS NOT NULL OR (smtp_username IS NULL AND smtp_password IS NULL
                                       AND NOT smtp_enabled))
    );

-- `shared` or `tenant`, and the relay's host:port: the delivery's latest attempt, and each
-- attempt's event.
ALTER TABLE deliveries
    ADD COLUMN route text CHECK (route IN ('shared', 'tenant')),
    ADD COLUMN route_host text;
ALTER TABLE email_events
    ADD COLUMN route text CHECK (route IN ('shared', 'tenant')),
    ADD COLUMN route_host text;
