-- A lease now changes only columns no index covers (leased_by, lease_expires_at, updated_at), so
-- Postgres writes the leased version of a row beside the old one on its page (a HOT update): no
-- entry in any of the outbox's indexes and none for vacuum to remove. With the index of leased
-- rows, every lease was a full update, an entry in each of four indexes per row: 13 buffers per
-- row leased, measured. The rows in flight are counted where the lease looks anyway, among each
-- endpoint's first due rows (see the lease statement); renewal and reaping, rare, walk those.
DROP INDEX webhook_events_leased_idx;
-- Room on each page for its rows' leased versions.
ALTER TABLE webhook_events SET (fillfactor = 80);
