-- Recovery, offboarding, reclaiming keys, exceptions and break-glass, outgoing webhooks.
-- Portable SQL: the same file is shipped for PostgreSQL. Never edit once shipped.

-- Whose token it is: approvals of a recovery need a token issued to a named person, so that
-- "never the person, never the same approver twice" can be checked.
ALTER TABLE api_tokens ADD COLUMN person_id TEXT;

-- Credential lifecycle: active -> suspended (reported lost) -> revoked (replaced or offboarded).
ALTER TABLE credentials ADD COLUMN status_changed_at BIGINT;
ALTER TABLE credentials ADD COLUMN status_reason TEXT;

-- A ticket can be cancelled (offboarding) before it is redeemed.
ALTER TABLE enrolment_tickets ADD COLUMN cancelled_at BIGINT;
-- A session opened by a recovery ticket names it; finishing it revokes the lost credential.
ALTER TABLE enrolment_sessions ADD COLUMN recovery_id TEXT;
ALTER TABLE enrolment_sessions ADD COLUMN closed_at BIGINT;

-- Laptops bound to the people who enrolled on them; offboarding unbinds them.
CREATE TABLE device_bindings (
    device_id   TEXT NOT NULL REFERENCES devices(id),
    person_id   TEXT NOT NULL REFERENCES people(id),
    bound_at    BIGINT NOT NULL,
    unbound_at  BIGINT,
    PRIMARY KEY (device_id, person_id)
);
CREATE INDEX device_bindings_by_person ON device_bindings(person_id);

-- IT reclaim stations: provisioned laptops that wipe departed people's keys.
ALTER TABLE devices ADD COLUMN reclaim_station BIGINT NOT NULL DEFAULT 0;

-- Fresh WebAuthn assertion challenges (step-up); single use.
CREATE TABLE assertion_challenges (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id),
    purpose    TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- Recoveries: a help-desk member records how identity was proofed and issues a single-use,
-- short-lived ticket; with no active credential left, two other approvers must re-proof first.
CREATE TABLE recoveries (
    id                 TEXT PRIMARY KEY,
    person_id          TEXT NOT NULL REFERENCES people(id),
    lost_credential_id TEXT,
    kind               TEXT NOT NULL,
    ticket_hash        TEXT NOT NULL UNIQUE,
    proofing           TEXT NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    state              TEXT NOT NULL,
    redeemed_at        BIGINT,
    redeemed_by_device TEXT,
    session_id         TEXT,
    completed_at       BIGINT,
    cancelled_at       BIGINT,
    cancel_reason      TEXT
);
CREATE INDEX recoveries_by_person ON recoveries(person_id);

CREATE TABLE recovery_approvals (
    recovery_id TEXT NOT NULL REFERENCES recoveries(id),
    approver    TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    proofing    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (recovery_id, approver)
);

-- The service's own signing key for outgoing webhooks (public half published).
CREATE TABLE service_keys (
    id          TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Durable outgoing events: notifications to people, revocation events to the IdP. Written in
-- the transaction of the change; delivered with retries and backoff; ids are idempotency keys.
CREATE TABLE outbox_events (
    id              TEXT PRIMARY KEY,
    sink            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    person_id       TEXT,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_events_due ON outbox_events(delivered_at, next_attempt_at);

-- One row per offboarding, with its time-to-revoke.
CREATE TABLE offboardings (
    id              TEXT PRIMARY KEY,
    person_id       TEXT NOT NULL REFERENCES people(id),
    trigger_kind    TEXT NOT NULL,
    received_at_us  BIGINT NOT NULL,
    committed_at_us BIGINT,
    acked_at_us     BIGINT,
    event_id        TEXT NOT NULL,
    summary         TEXT NOT NULL
);
CREATE INDEX offboardings_by_person ON offboardings(person_id);

-- Keys of revoked credentials still to be wiped at a reclaim station.
CREATE TABLE key_reclaims (
    id            TEXT PRIMARY KEY,
    person_id     TEXT NOT NULL REFERENCES people(id),
    credential_id TEXT NOT NULL UNIQUE,
    key_id        TEXT NOT NULL,
    aaguid        TEXT NOT NULL,
    ownership     TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    station       TEXT,
    receipt       TEXT
);
CREATE INDEX key_reclaims_by_key ON key_reclaims(key_id, state);

-- Exceptions: what kind, its scope, the break-glass credential it covers, and revocation.
ALTER TABLE exceptions ADD COLUMN kind TEXT NOT NULL DEFAULT 'two_authenticator_rule';
ALTER TABLE exceptions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN credential_id TEXT;
ALTER TABLE exceptions ADD COLUMN revoked_at BIGINT;

-- Alerts for people to look at (a break-glass credential used).
CREATE TABLE alerts (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
