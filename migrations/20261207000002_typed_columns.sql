-- Every status, kind and class a column stores is one of the core model's names
-- (`missive_core::named`), listed by a CHECK that the store's tests compare with the model. These
-- columns held names Missive wrote without such a list. Each list is added NOT VALID, then
-- validated, so the existing rows are checked without holding off writes for the scan.
ALTER TABLE domains ADD CONSTRAINT domains_status_check
    CHECK (status IN ('not_started', 'verified', 'failed', 'temporary_failure')) NOT VALID;
ALTER TABLE domains ADD CONSTRAINT domains_tls_check
    CHECK (tls IN ('opportunistic', 'enforced')) NOT VALID;
ALTER TABLE domains ADD CONSTRAINT domains_region_check
    CHECK (region IN ('us-east-1', 'eu-west-1', 'sa-east-1', 'ap-northeast-1')) NOT VALID;
ALTER TABLE domains ADD CONSTRAINT domains_dkim_algorithm_check
    CHECK (dkim_algorithm IN ('rsa', 'ed25519')) NOT VALID;
ALTER TABLE workers ADD CONSTRAINT workers_kind_check
    CHECK (kind IN ('delivery', 'webhooks')) NOT VALID;

ALTER TABLE domains VALIDATE CONSTRAINT domains_status_check;
ALTER TABLE domains VALIDATE CONSTRAINT domains_tls_check;
ALTER TABLE domains VALIDATE CONSTRAINT domains_region_check;
ALTER TABLE domains VALIDATE CONSTRAINT domains_dkim_algorithm_check;
ALTER TABLE workers VALIDATE CONSTRAINT workers_kind_check;

-- The rows the accept statement stores and the results the delivery worker records, each
-- bound as one array of a composite type whose fields are named here and in the store's Rust
-- types, instead of one array per column bound by position.
CREATE TYPE accept_email AS (
    tenant_id     uuid,
    id            uuid,
    message_id    text,
    from_address  text,
    envelope_from text,
    smtputf8      boolean,
    reply_to      text[],
    subject       text,
    html          text,
    text          text,
    tags          jsonb,
    mime          bytea,
    scheduled_at  timestamptz
);

CREATE TYPE accept_delivery AS (
    tenant_id    uuid,
    id           uuid,
    email_id     uuid,
    recipient    text,
    kind         text,
    scheduled_at timestamptz,
    event        text
);

-- One tenant's counts in an accept statement: recipients, emails, emails over SMTP.
CREATE TYPE accept_count AS (
    tenant_id uuid,
    used      bigint,
    sent      bigint,
    smtp      bigint
);

CREATE TYPE delivery_result AS (
    tenant_id       uuid,
    email_id        uuid,
    id              uuid,
    lease_id        uuid,
    status          text,
    next_attempt_at timestamptz,
    code            integer,
    response        text,
    event           text,
    bounce_class    text,
    suppression_id  uuid,
    route           text,
    route_host      text
);

-- Each reported log event kind and the webhook event type it is reported as.
CREATE TYPE event_hook AS (
    kind text,
    hook text
);

-- One webhook attempt's outcome for the dispatcher's attempts statement.
CREATE TYPE webhook_attempt AS (
    tenant_id       uuid,
    event_id        uuid,
    webhook_id      uuid,
    holder          uuid,
    status          text,
    next_attempt_at timestamptz,
    http_status     integer,
    response        text,
    duration_ms     integer,
    disable         text
);
