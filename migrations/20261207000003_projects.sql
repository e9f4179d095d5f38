-- Projects: a tenant (the customer's organization) holds projects (its applications).
--
-- What an application produces and consumes carries a `project_id`: keys, emails with their
-- deliveries and events, idempotency keys, templates with their versions, webhooks with their
-- events and attempts, usage counters, trusted networks. What is about the customer's identity
-- and reputation stays the tenant's and is shared: domains, suppressions, quotas, the tenant's
-- SMTP server.
--
-- Every tenant has a `default` project whose id is the tenant's own id, so every existing row
-- moves to it by copying its tenant_id, and every existing key, request and test behaves as
-- before.

CREATE TABLE projects (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    id                  uuid NOT NULL,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The project's request rate; null: the tenant's.
    requests_per_minute integer CHECK (requests_per_minute > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- A deleted project keeps its history; its keys are revoked with it.
    deleted_at          timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX projects_live_name_key ON projects (tenant_id, lower(name))
    WHERE deleted_at IS NULL;

INSERT INTO projects (tenant_id, id, name, created_at, updated_at)
SELECT id, id, 'default', created_at, created_at FROM tenants;

-- The transaction's project, when a request is confined to one; NULL: all of the tenant's.
CREATE FUNCTION missive_current_project() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.project_id', true), '')::uuid $$;

-- Where a row written in a confined transaction lands when the statement names no project: the
-- request's project, else the tenant's default. Outside a confined transaction it is NULL, so a
-- service statement that forgot the project fails on NOT NULL instead of guessing.
CREATE FUNCTION missive_request_project() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT COALESCE(missive_current_project(), missive_current_tenant()) $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'emails', 'deliveries', 'email_events',
                             'idempotency_keys', 'trusted_networks', 'templates',
                             'template_versions', 'webhooks', 'webhook_events',
                             'webhook_attempts', 'usage_daily']
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN project_id uuid', t);
        EXECUTE format('UPDATE %I SET project_id = tenant_id', t);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN project_id SET NOT NULL,
                            ALTER COLUMN project_id SET DEFAULT missive_request_project()', t);
        -- A request confined to a project sees and writes that project's rows only; one
        -- confined to the tenant alone (the operator, the tenant's totals) sees all of them.
        EXECUTE format('DROP POLICY tenant_rows ON %I', t);
        EXECUTE format('CREATE POLICY tenant_rows ON %I TO missive_tenant
                            USING (tenant_id = missive_current_tenant()
                                   AND project_id = COALESCE(missive_current_project(), project_id))
                            WITH CHECK (tenant_id = missive_current_tenant()
                                   AND project_id = COALESCE(missive_current_project(), project_id))', t);
    END LOOP;
END $$;

-- A project's requests read its own row; projects are changed by the service role (the admin
-- and delegated administration, which lock the tenant's row).
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY service_rows ON projects TO missive_service USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON projects TO missive_tenant
    USING (tenant_id = missive_current_tenant()
           AND id = COALESCE(missive_current_project(), id));
GRANT SELECT ON projects TO missive_tenant;

-- Keys, templates and idempotency keys are unique within their project, not across the tenant.
DROP INDEX api_keys_live_name_key;
CREATE UNIQUE INDEX api_keys_live_name_key ON api_keys (tenant_id, project_id, name)
    WHERE revoked_at IS NULL;
DROP INDEX templates_name_key;
CREATE UNIQUE INDEX templates_name_key ON templates (tenant_id, project_id, lower(name));
DROP INDEX templates_alias_key;
CREATE UNIQUE INDEX templates_alias_key ON templates (tenant_id, project_id, alias);
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD PRIMARY KEY (tenant_id, project_id, key);

-- The lease shares turns between projects (each project's oldest due rows first), so one
-- project's backlog cannot starve a sibling's mail any more than another tenant's.
CREATE INDEX deliveries_project_due_idx ON deliveries (tenant_id, project_id, next_attempt_at)
    WHERE status IN ('queued', 'deferred');
DROP INDEX deliveries_tenant_due_idx;

-- Usage is counted per project; a tenant's usage is the sum of its projects'.
ALTER TABLE usage_daily
    DROP CONSTRAINT usage_daily_pkey,
    ADD PRIMARY KEY (tenant_id, day, project_id, shard);

-- The quota is the tenant's, over all its projects, and must hold exactly across processes.
-- A tenant with a quota counts its accepted recipients here too, one row per day whose row lock
-- orders its accepts: each sees the count the one before it committed. Usage rows stay sharded
-- per project, so the counters a tenant reads never wait on the quota's lock.
CREATE TABLE quota_counters (
    tenant_id uuid   NOT NULL,
    day       date   NOT NULL,
    used      bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (tenant_id, day)
);
ALTER TABLE quota_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE quota_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY service_rows ON quota_counters TO missive_service USING (true) WITH CHECK (true);

-- The accept statement's rows name their project (new attributes go last, as the store's
-- types declare them).
ALTER TYPE accept_email ADD ATTRIBUTE project_id uuid;
ALTER TYPE accept_delivery ADD ATTRIBUTE project_id uuid;
ALTER TYPE accept_count ADD ATTRIBUTE project_id uuid;

-- A console session works in one project at a time (its key's, or one a `projects:manage` key
-- switched to).
ALTER TABLE console_sessions ADD COLUMN project_id uuid;
UPDATE console_sessions SET project_id = tenant_id WHERE tenant_id IS NOT NULL;
ALTER TABLE console_sessions
    ADD CONSTRAINT console_sessions_project CHECK ((tenant_id IS NULL) = (project_id IS NULL));

-- Key caches hold a key's project and its rate limit: a change to a project empties them.
CREATE TRIGGER projects_notify
    AFTER UPDATE OR DELETE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION missive_notify_api_keys();
