-- Tenant limits and usage counters.
--
-- Request rates are enforced in each process (in memory); the columns here only say what they
-- are. Sending quotas are enforced by the statement that stores accepted emails, against
-- `usage_daily`, so they hold across processes and restarts.

-- Null: the configured default.
ALTER TABLE tenants
    ADD COLUMN requests_per_minute integer CHECK (requests_per_minute > 0),
    ADD COLUMN emails_per_day      bigint  CHECK (emails_per_day >= 0),
    ADD COLUMN emails_per_month    bigint  CHECK (emails_per_month >= 0);

-- A key's own, lower limit; null: the tenant's.
ALTER TABLE api_keys ADD COLUMN requests_per_minute integer CHECK (requests_per_minute > 0);

-- What each tenant did each day (UTC), as counters written by the statements that do it: the
-- accept statement (`used`, `sent`, `smtp_messages`, `suppressed`), the result statement
-- (`delivered`, `bounced`, `failed`) and the request counter (`api_requests`). Reading usage
-- sums a month of rows, never the events.
--
-- A tenant without a quota spreads its counts over a few rows per day (`shard`): the writers
-- that store emails in parallel then never wait on one another's row lock until commit. A
-- tenant with a quota counts in shard 0 only, whose row lock then orders its accepts: each
-- sees the count the one before it committed, which is what makes the quota exact.
CREATE TABLE usage_daily (
    tenant_id     uuid     NOT NULL,
    day           date     NOT NULL,
    shard         smallint NOT NULL CHECK (shard >= 0),
    -- Recipients accepted: the quota's unit.
    used          bigint   NOT NULL DEFAULT 0,
    -- Emails accepted, whatever their recipients.
    sent          bigint   NOT NULL DEFAULT 0,
    -- Of those, the ones submitted over SMTP.
    smtp_messages bigint   NOT NULL DEFAULT 0,
    -- Recipients, by what happened to them.
    delivered     bigint   NOT NULL DEFAULT 0,
    bounced       bigint   NOT NULL DEFAULT 0,
    failed        bigint   NOT NULL DEFAULT 0,
    suppressed    bigint   NOT NULL DEFAULT 0,
    api_requests  bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, shard)
);
-- No foreign key to tenants: every counting statement would lock the tenant's row FOR KEY
-- SHARE, which concurrent writers turn into multixacts (measured on the webhook outbox).
-- Tenants are never deleted, only marked so.

-- A key's rate limit is read with the key: caches must drop it when it changes.
DROP TRIGGER api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify
    AFTER UPDATE OF tenant_id, key_hash, scopes, expires_at, revoked_at, requests_per_minute
       OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION missive_notify_api_keys();
