-- Sending domains: a tenant's domains, the DKIM key each signs with, and what DNS last said
-- about the records it publishes.
--
-- The private key is sealed with MISSIVE_SECRET_KEY (as SMTP override passwords are), the
-- domain's id as associated data; the public key is what the DKIM record publishes. A rotation
-- keeps the key in use (`selector` ...) and adds the next one (`next_selector` ...), which takes
-- over once its record is found; until then both records are published side by side.
CREATE TABLE domains (
    tenant_id             uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                    uuid        NOT NULL,
    name                  text        NOT NULL,
    status                text        NOT NULL DEFAULT 'not_started',
    region                text        NOT NULL DEFAULT 'us-east-1',
    open_tracking         boolean     NOT NULL DEFAULT false,
    click_tracking        boolean     NOT NULL DEFAULT false,
    tls                   text        NOT NULL DEFAULT 'opportunistic',
    dkim_algorithm        text        NOT NULL,
    selector              text        NOT NULL,
    public_key            text        NOT NULL,
    private_key_id        text        NOT NULL,
    private_key           bytea       NOT NULL,
    next_selector         text,
    next_public_key       text,
    next_private_key_id   text,
    next_private_key      bytea,
    -- Each record's last verdict: {"DKIM": {"status": ..., "reason": ...}, ...}.
    record_checks         jsonb       NOT NULL DEFAULT '{}',
    checked_at            timestamptz,
    verified_at           timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- The background re-check takes the domains checked longest ago first.
CREATE INDEX domains_checked ON domains (checked_at NULLS FIRST);

-- A tenant may require that every sender domain be one of its verified domains (or one the
-- admin allows).
ALTER TABLE tenants ADD COLUMN require_verified_domains boolean NOT NULL DEFAULT false;

-- The accept path caches each tenant's verified domains and their keys; a change empties that
-- tenant's entry in every process. The payload is the tenant id.
CREATE FUNCTION missive_notify_domains() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('missive_domains',
                      CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER domains_notify AFTER INSERT OR UPDATE OR DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION missive_notify_domains();

-- Row-level security, as on every tenant-owned table.
ALTER TABLE domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE domains FORCE ROW LEVEL SECURITY;
CREATE POLICY service_rows ON domains TO missive_service USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON domains TO missive_tenant
    USING (tenant_id = missive_current_tenant())
    WITH CHECK (tenant_id = missive_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON domains TO missive_tenant;
