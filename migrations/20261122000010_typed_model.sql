-- One accept path for REST and SMTP, and a typed delivery model.
--
-- An idempotency record now remembers the emails a request stored, not REST's JSON answer: a
-- replay over SMTP finds its id without reading REST's response, and REST rebuilds its answer
-- from the ids. Records older than a day are forgotten anyway; those still inside the window are
-- carried over from the answers they hold.
ALTER TABLE idempotency_keys ADD COLUMN email_ids uuid[];

UPDATE idempotency_keys SET email_ids = CASE
    WHEN response_body ? 'id' THEN ARRAY[(response_body ->> 'id')::uuid]
    ELSE ARRAY(SELECT (item ->> 'id')::uuid
               FROM jsonb_array_elements(response_body -> 'data') AS item)
END;

ALTER TABLE idempotency_keys
    ALTER COLUMN email_ids SET NOT NULL,
    ADD CONSTRAINT idempotency_keys_email_ids_check CHECK (cardinality(email_ids) > 0),
    DROP COLUMN response_status,
    DROP COLUMN response_body;

-- Event kinds are the core model's (`EventKind`), as delivery statuses already were
-- (`deliveries_status_check`); the store's tests compare both lists with the model.
ALTER TABLE email_events ADD CONSTRAINT email_events_type_check CHECK (type IN (
    'email.queued', 'email.scheduled', 'email.sending', 'email.delivered', 'email.deferred',
    'email.bounced', 'email.failed', 'email.canceled', 'email.suppressed'
));
