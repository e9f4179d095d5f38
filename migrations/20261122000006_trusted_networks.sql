-- Source networks whose SMTP clients submit for a tenant without AUTH (appliances that cannot
-- authenticate). A network belongs to one tenant: overlapping networks, whether of two tenants
-- or of one, are refused by the exclusion constraint, so a client address never maps to two
-- tenants.
CREATE TABLE trusted_networks (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    network     cidr NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, network),
    CONSTRAINT trusted_networks_no_overlap EXCLUDE USING gist (network inet_ops WITH &&)
);


-- Listeners cache address lookups with the API keys; a change empties those caches.
CREATE TRIGGER trusted_networks_notify
    AFTER INSERT OR UPDATE OR DELETE ON trusted_networks
    FOR EACH STATEMENT EXECUTE FUNCTION missive_notify_api_keys();
