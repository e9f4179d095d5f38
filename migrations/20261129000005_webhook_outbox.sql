-- The webhook outbox: one row per (event of an email's log, endpoint subscribed to its type),
-- written by the statement that writes the event itself (accept, delivery result, cancel), so
-- an event is reported if and only if it happened. The dispatcher leases due rows (SKIP LOCKED,
-- `leased_by` naming the registered worker, reaped like deliveries), posts them signed, and
-- records each attempt.
--
-- `id` is the delivery's message id (svix-id / webhook-id: `msg_` and the id's hex), the same on
-- every attempt. Test events (`POST /v1/webhooks/{id}/test`) name no email.
CREATE TABLE webhook_events (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    webhook_id uuid NOT NULL,
    type text NOT NULL CHECK (
        type IN ('email.sent', 'email.scheduled', 'email.delivered', 'email.delivery_delayed',
                 'email.bounced', 'email.failed', 'email.suppressed', 'email.canceled')
    ),
    email_id uuid,
    email_event_id bigint,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'attempting', 'success', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_by uuid,
    lease_expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);

-- What the dispatcher scans: rows still to send.
CREATE INDEX webhook_events_due_idx ON webhook_events (next_attempt_at)
    WHERE status IN ('pending', 'attempting');
-- An endpoint's events, newest first (the events API).
CREATE INDEX webhook_events_webhook_idx ON webhook_events (tenant_id, webhook_id, created_at);

CREATE TABLE webhook_attempts (
    tenant_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    event_id uuid NOT NULL,
    http_status integer,
    response text NOT NULL,
    duration_ms integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id, id),
    FOREIGN KEY (tenant_id, event_id) REFERENCES webhook_events (tenant_id, id) ON DELETE CASCADE
);
