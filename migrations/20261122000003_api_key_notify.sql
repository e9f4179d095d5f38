-- Processes cache API key lookups; any change to a key or a tenant (revocation, expiry, status,
-- sending settings) tells them to drop what they hold.
CREATE FUNCTION missive_notify_api_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('missive_api_keys', '');
    RETURN NULL;
END;
$$;

-- Not on `last_used_at`: recording a key's use must not empty every cache.
CREATE TRIGGER api_keys_notify
    AFTER UPDATE OF tenant_id, key_hash, scopes, expires_at, revoked_at OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION missive_notify_api_keys();

CREATE TRIGGER tenants_notify AFTER UPDATE OR DELETE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION missive_notify_api_keys();
