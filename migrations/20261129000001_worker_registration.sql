-- Worker registration, so a dead worker's leases are taken over in seconds instead of when
-- MISSIVE_LEASE_SECS runs out.
--
-- Each worker process inserts a row here and, in the same transaction, takes a session-level
-- advisory lock (namespace 1836283755, key lock_key) on a connection it keeps for its whole
-- life. Postgres frees the lock the moment that connection ends, however the process died
-- (kill -9, a crash, a lost host once TCP keepalives notice). Any worker then finds the row whose
-- lock nobody holds, deletes it and expires the leases it named (`leased_by`), so the next lease
-- takes them. A live worker's lock is held and its leases are renewed, so a long SMTP
-- conversation is never taken from it; lease expiry stays as the last resort for a worker that
-- hangs while its connection lives. The webhook dispatcher's outbox leases name their holder the
-- same way.
CREATE TABLE workers (
    id          uuid PRIMARY KEY,
    lock_key    integer GENERATED ALWAYS AS IDENTITY,
    kind        text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);

-- The worker that holds a delivery's lease (its row in `workers`); NULL when none does.
ALTER TABLE deliveries ADD COLUMN leased_by uuid;
