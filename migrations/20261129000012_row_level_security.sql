-- Row-level security: Postgres itself keeps tenants apart, beside the tenant filter every query
-- already has.
--
-- Two roles, neither able to log in:
-- - missive_tenant serves tenant requests. It owns no table and has no BYPASSRLS; it sees and
--   writes only the rows of the tenant named by the transaction's `app.tenant_id` setting, and
--   none when that is unset.
-- - missive_service may cross tenants: the workers, the accept path's group commit (one statement
--   for several tenants) and the admin.
-- The role that runs the migrations (the one Missive connects as) is made a member of both. A
-- tenant request's transaction switches to missive_tenant (`SET LOCAL ROLE`, with
-- `set_config('role', 'missive_tenant', true)`) and names its tenant in the same statement; both
-- end with the transaction, so a pooled connection never carries them to the next one. One
-- database URL is therefore all a setup needs.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'missive_tenant') THEN
        CREATE ROLE missive_tenant NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'missive_service') THEN
        CREATE ROLE missive_service NOLOGIN NOBYPASSRLS;
    END IF;
    EXECUTE format('GRANT missive_tenant, missive_service TO %I', current_user);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO missive_tenant', current_schema());
END $$;

-- The transaction's tenant; NULL (no rows) when none is set. A setting once set in a session
-- reads as '' after its transaction ends, hence NULLIF.
CREATE FUNCTION missive_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'emails', 'deliveries', 'email_events',
                             'idempotency_keys', 'trusted_networks', 'templates',
                             'template_versions', 'webhooks', 'webhook_events',
                             'webhook_attempts', 'suppressions', 'usage_daily']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY service_rows ON %I TO missive_service
                            USING (true) WITH CHECK (true)', t);
        EXECUTE format('CREATE POLICY tenant_rows ON %I TO missive_tenant
                            USING (tenant_id = missive_current_tenant())
                            WITH CHECK (tenant_id = missive_current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO missive_tenant', t);
    END LOOP;
END $$;

-- A tenant reads its own row; tenants are created and changed by the admin only.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY service_rows ON tenants TO missive_service USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON tenants TO missive_tenant USING (id = missive_current_tenant());
GRANT SELECT ON tenants TO missive_tenant;

-- Identity columns (event ids) need their sequences.
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO missive_tenant', current_schema());
END $$;
