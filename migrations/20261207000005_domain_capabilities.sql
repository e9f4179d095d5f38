-- Resend's domain `capabilities`: whether a domain sends (signs and passes as a verified sender
-- domain) and whether it receives (the inbound MX takes mail for it once its MX record is
-- found). Existing domains keep sending and do not receive.
ALTER TABLE domains
    ADD COLUMN sending text NOT NULL DEFAULT 'enabled' CHECK (sending IN ('enabled', 'disabled')),
    ADD COLUMN receiving text NOT NULL DEFAULT 'disabled'
        CHECK (receiving IN ('enabled', 'disabled'));
