-- The web console: its sessions, and the activity figures its operator pages draw.

-- A signed-in console user. The browser holds a random token in a cookie; only its SHA-256 is
-- stored. A tenant session names the API key it was opened with by the key's own SHA-256 (as in
-- `api_keys.key_hash`), so every request checks the key again: revoking the key, expiring it or
-- disabling the tenant ends the session. An operator session keeps the admin key's SHA-256, so a
-- changed admin key ends it. Neither holds a key.
CREATE TABLE console_sessions (
    token_hash   bytea       PRIMARY KEY,
    tenant_id    uuid,
    key_hash     bytea,
    admin_digest bytea,
    -- Sent back in every form and in the header of the console's own requests.
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK ((tenant_id IS NULL) = (key_hash IS NULL)),
    CHECK ((key_hash IS NULL) <> (admin_digest IS NULL))
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- Activity by tenant and period, sampled from `usage_daily` by a periodic rollup (and before an
-- operator page is drawn): the counters' growth since the rollup before lands in the period of
-- the rollup that saw it. The accept and result statements write nothing more for this; the
-- console's pages read these few rows, never the emails or their events.
CREATE TABLE activity_seen (
    tenant_id uuid   NOT NULL,
    day       date   NOT NULL,
    sent      bigint NOT NULL,
    delivered bigint NOT NULL,
    bounced   bigint NOT NULL,
    failed    bigint NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- Minutes for the last hours' delivery rate; hours for a day's sparklines. Old rows are deleted
-- by the rollup.
CREATE TABLE activity_minutes (
    tenant_id uuid        NOT NULL,
    at        timestamptz NOT NULL,
    sent      bigint      NOT NULL DEFAULT 0,
    delivered bigint      NOT NULL DEFAULT 0,
    bounced   bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, at)
);
CREATE INDEX activity_minutes_at_idx ON activity_minutes (at);

CREATE TABLE activity_hours (
    tenant_id uuid        NOT NULL,
    at        timestamptz NOT NULL,
    sent      bigint      NOT NULL DEFAULT 0,
    delivered bigint      NOT NULL DEFAULT 0,
    bounced   bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, at)
);
CREATE INDEX activity_hours_at_idx ON activity_hours (at);
