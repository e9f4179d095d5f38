-- The lease probes each tenant's due rows, which deliveries_tenant_due_idx serves. With the older
-- index on next_attempt_at alone still present, the planner probed that one instead and filtered
-- by tenant: with one tenant's backlog of 20,000 rows, every lease walked all of them once per
-- idle tenant (17,800 buffers and 9 ms per lease, against 0.1 ms). The worker's "when is the next
-- row due" query now takes each tenant's first due row from the per-tenant index too.
DROP INDEX deliveries_due_idx;
