-- Staff tokens belong to people and expire; laptops can be retired or marked lost.
-- Portable SQL: the same file is shipped for PostgreSQL. Never edit once shipped.

-- Every token expires. Who granted it (the issuing token's person, if any) and why it was
-- revoked are kept with it.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN granted_by TEXT;
ALTER TABLE api_tokens ADD COLUMN granted_by_person TEXT;
ALTER TABLE api_tokens ADD COLUMN revoked_reason TEXT;
-- Tokens issued before tokens expired: 90 days from issue, but a staff token issued to nobody
-- (the first-start admin token) lives one day.
UPDATE api_tokens SET expires_at = created_at + CASE
    WHEN person_id IS NULL AND role <> 'scim' THEN 86400000
    ELSE 7776000000 END
  WHERE expires_at IS NULL;
CREATE INDEX api_tokens_by_person ON api_tokens(person_id);

-- When each token was last used (at most one write a minute per token). A record of activity,
-- like the audit log, kept apart from the token's own state.
CREATE TABLE api_token_use (
    token_id     TEXT PRIMARY KEY REFERENCES api_tokens(id),
    last_used_at BIGINT NOT NULL
);

-- A laptop's end: retired (replaced, decommissioned), lost, or left behind by its only person
-- (offboarded). Its device key is refused from then on; its rows stay as history.
ALTER TABLE devices ADD COLUMN retired_at BIGINT;
ALTER TABLE devices ADD COLUMN retired_reason TEXT;
ALTER TABLE devices ADD COLUMN retired_by TEXT;
