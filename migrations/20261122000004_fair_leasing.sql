-- Leasing takes each tenant's oldest due rows in turn, so it probes due rows per tenant.
CREATE INDEX deliveries_tenant_due_idx ON deliveries (tenant_id, next_attempt_at)
    WHERE status IN ('queued', 'deferred');
