-- Leasing goes round the endpoints (as delivery leasing goes round the tenants): for each, the
-- rows it has in flight and its oldest due rows, up to its free share. Both are index probes per
-- endpoint, so a lease costs the same whatever the backlog; before, counting the rows in flight
-- scanned the whole table, and taking the first due rows overall let one endpoint's backlog hide
-- every other endpoint's rows.
CREATE INDEX webhook_events_endpoint_due_idx
    ON webhook_events (tenant_id, webhook_id, next_attempt_at, id)
    WHERE status IN ('pending', 'attempting');
-- The rows in flight: few at any time (at most the dispatchers' slots), also what lease renewal
-- and reaping look for by holder.
CREATE INDEX webhook_events_leased_idx ON webhook_events (tenant_id, webhook_id, leased_by)
    WHERE leased_by IS NOT NULL;
-- Each endpoint's low-water mark in (next_attempt_at, id) order: no unfinished row of it comes
-- before. Leases look for due rows from here and move it up (see the lease statement), so the
-- finished rows before it, whose dead index entries stay until vacuum, are stepped over once
-- rather than by every lease. The id breaks ties: a transaction's rows share its timestamp.
ALTER TABLE webhooks
    ADD COLUMN due_from timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN due_from_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
-- Replaced by the per-endpoint index: one index fewer to update on each of a row's writes.
DROP INDEX webhook_events_due_idx;
-- Every row is updated at least twice (leased, then its outcome), and each update leaves a dead
-- entry at the front of its endpoint's due rows that leases step over until vacuum removes it:
-- vacuum after 2% of the rows changed rather than 20%, as for deliveries.
ALTER TABLE webhook_events SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);
