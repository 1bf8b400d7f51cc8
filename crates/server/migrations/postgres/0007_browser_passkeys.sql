-- Browser passkeys and self-service sessions, for PostgreSQL: the same tables as the SQLite
-- migration; `credentials.device_id` and `ceremony_id` become optional in place (a passkey added
-- in the browser has no laptop and no agent ceremony). Never edit once shipped.
ALTER TABLE credentials ALTER COLUMN device_id DROP NOT NULL;
ALTER TABLE credentials ALTER COLUMN ceremony_id DROP NOT NULL;

-- Passkeys added in the browser (self-service pages) have no laptop and no agent ceremony;
-- every credential records how it came (agent or browser), whether its authenticator said in
-- signed data that it is backup eligible (a synced passkey) and backed up, and the name its
-- person gave it.
ALTER TABLE credentials ADD COLUMN enrolled_via TEXT NOT NULL DEFAULT 'agent';
ALTER TABLE credentials ADD COLUMN backup_eligible BIGINT NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN backup_state BIGINT NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN name TEXT;

-- A person's session on the self-service pages. The cookie holds a random token; only its hash
-- is stored. `proven_at` is the last fresh proof (an enrolment ticket or link redeemed, a passkey
-- assertion): adding a passkey needs a recent one. Offboarding ends every session of the person.
CREATE TABLE web_sessions (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    person_id       TEXT NOT NULL REFERENCES people(id),
    proof           TEXT NOT NULL,
    signed_in_with  TEXT,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    proven_at       BIGINT NOT NULL,
    proof_expires_at BIGINT NOT NULL,
    ended_at        BIGINT,
    end_reason      TEXT
);
CREATE INDEX web_sessions_by_person ON web_sessions(person_id);

-- One-time links from the desktop app's enrolment session to the browser.
CREATE TABLE web_links (
    id                   TEXT PRIMARY KEY,
    link_hash            TEXT NOT NULL UNIQUE,
    person_id            TEXT NOT NULL REFERENCES people(id),
    enrolment_session_id TEXT NOT NULL REFERENCES enrolment_sessions(id),
    device_id            TEXT NOT NULL REFERENCES devices(id),
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    used_at              BIGINT
);
CREATE INDEX web_links_by_person ON web_links(person_id);

-- WebAuthn challenges issued to browsers: sign-in (no session yet), step-up and registration.
CREATE TABLE web_challenges (
    id          TEXT PRIMARY KEY,
    session_id  TEXT REFERENCES web_sessions(id),
    purpose     TEXT NOT NULL,
    state       TEXT NOT NULL,
    device_class TEXT,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX web_challenges_by_expiry ON web_challenges(expires_at);
