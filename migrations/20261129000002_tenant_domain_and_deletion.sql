-- SelfMX's tenant fields, and deletion that means deleted.
--
-- `domain` is a tenant's primary sending domain (always among its allowed sender domains, and
-- echoed back); `from_name` is the display name a message's From gets when it has none.
--
-- DELETE /v1/tenants/{id} used to leave the tenant answering 200 as `disabled`, which is what
-- PATCH {"status": "disabled"} is for. A deleted tenant now answers 404 everywhere and leaves the
-- listing, its keys are revoked and its trusted networks freed; its rows (emails, events) stay
-- for the operator's records, and its name may be used again.
ALTER TABLE tenants
    ADD COLUMN domain text,
    ADD COLUMN from_name text CHECK (length(from_name) BETWEEN 1 AND 256),
    ADD COLUMN deleted_at timestamptz;

DROP INDEX tenants_name_key;
CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name)) WHERE deleted_at IS NULL;
