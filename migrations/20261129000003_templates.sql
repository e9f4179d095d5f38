-- Tenant templates (Resend's Templates API).
--
-- A template row holds the draft, which PATCH edits; each publish freezes the draft as a new row
-- of template_versions, and sends render the latest published version. `uses` lists the aliases
-- the sources include as partials and the layout, so a save can refuse a cycle or an unknown alias
-- without compiling every template of the tenant.
--
-- Aliases are how sends, partials and layouts name a template; names and aliases are unique per
-- tenant. Deleting a template deletes its versions; mail already queued was rendered at accept
-- and keeps its text.
CREATE TABLE templates (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    alias text CHECK (alias ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    from_address text,
    subject text,
    reply_to text[] NOT NULL DEFAULT '{}',
    html text NOT NULL,
    text text,
    variables jsonb NOT NULL DEFAULT '[]',
    layout text,
    uses text[] NOT NULL DEFAULT '{}',
    published_version integer,
    published_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Also the listing's order, newest first (ids are time-ordered UUIDv7).
    PRIMARY KEY (tenant_id, id)
);

CREATE UNIQUE INDEX templates_name_key ON templates (tenant_id, lower(name));
CREATE UNIQUE INDEX templates_alias_key ON templates (tenant_id, alias);

CREATE TABLE template_versions (
    tenant_id uuid NOT NULL,
    template_id uuid NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    from_address text,
    subject text,
    reply_to text[] NOT NULL,
    html text NOT NULL,
    text text,
    variables jsonb NOT NULL,
    layout text,
    uses text[] NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, template_id, version),
    FOREIGN KEY (tenant_id, template_id) REFERENCES templates (tenant_id, id) ON DELETE CASCADE
);

-- Processes cache compiled templates per tenant; a change empties that tenant's entries. The
-- payload is the tenant id. Versions are only written together with their template's row.
CREATE FUNCTION missive_notify_templates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('missive_templates',
                      CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER templates_notify AFTER INSERT OR UPDATE OR DELETE ON templates
    FOR EACH ROW EXECUTE FUNCTION missive_notify_templates();
