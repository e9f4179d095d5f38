-- Tenants and their API keys.
--
-- Rule for every tenant-owned table: it carries tenant_id, and every unique index (the primary key
-- included) starts with tenant_id, so no query can reach another tenant's row by id alone.

CREATE TABLE tenants (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    default_from            text,
    reply_to                text,
    allowed_sender_domains  text[] NOT NULL DEFAULT '{}',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    disabled_at             timestamptz
);

-- Names identify tenants to operators; two tenants called "Acme" and "acme" would be a mistake.
CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name));

CREATE TABLE api_keys (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The first characters of the key, kept in clear so a person can tell keys apart.
    prefix        text NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    key_hash      bytea NOT NULL CHECK (length(key_hash) = 32),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- Authentication looks a key up by its hash before it knows the tenant. Not unique on purpose:
-- unique indexes start with tenant_id, and SHA-256 collisions of random keys do not happen.
CREATE INDEX api_keys_key_hash_idx ON api_keys (key_hash);

-- Two live keys of one tenant with the same name would be indistinguishable in listings.
CREATE UNIQUE INDEX api_keys_live_name_key ON api_keys (tenant_id, name) WHERE revoked_at IS NULL;
