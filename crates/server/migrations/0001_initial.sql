-- Keywarden service schema, first version. Times are unix milliseconds; binary values are
-- unpadded base64url text; ids are UUID text. Never edit a migration once it has shipped.

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE people (
    id               TEXT PRIMARY KEY,
    user_name        TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    active           BIGINT NOT NULL,
    webauthn_user_id TEXT NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE provisioning_tokens (
    id             TEXT PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    used_by_device TEXT
);

CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    public_key      TEXT NOT NULL UNIQUE,
    hostname        TEXT NOT NULL,
    agent_version   TEXT NOT NULL,
    provisioned_at  BIGINT NOT NULL,
    last_seq        BIGINT NOT NULL,
    last_report_id  TEXT,
    last_report_at  BIGINT
);

CREATE TABLE reports (
    device_id    TEXT NOT NULL REFERENCES devices(id),
    report_id    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (device_id, report_id)
);

CREATE TABLE enrolment_tickets (
    id                 TEXT PRIMARY KEY,
    ticket_hash        TEXT NOT NULL UNIQUE,
    person_id          TEXT NOT NULL REFERENCES people(id),
    created_by         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    redeemed_at        BIGINT,
    redeemed_by_device TEXT
);

CREATE TABLE enrolment_sessions (
    id          TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL UNIQUE REFERENCES enrolment_tickets(id),
    person_id   TEXT NOT NULL REFERENCES people(id),
    device_id   TEXT NOT NULL REFERENCES devices(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE ceremonies (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES enrolment_sessions(id),
    challenge     TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    credential_id TEXT
);

CREATE TABLE credentials (
    id                 TEXT PRIMARY KEY,
    person_id          TEXT NOT NULL REFERENCES people(id),
    device_id          TEXT NOT NULL REFERENCES devices(id),
    ceremony_id        TEXT NOT NULL REFERENCES ceremonies(id),
    aaguid             TEXT NOT NULL,
    model              TEXT,
    software_key       BIGINT NOT NULL,
    attestation_format TEXT NOT NULL,
    attestation_type   TEXT NOT NULL,
    status             TEXT NOT NULL,
    webauthn           TEXT NOT NULL,
    key_info           TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX credentials_by_person ON credentials(person_id);

CREATE TABLE enrolment_evidence (
    credential_id      TEXT PRIMARY KEY REFERENCES credentials(id),
    attestation_object TEXT NOT NULL,
    client_data_json   TEXT NOT NULL,
    challenge          TEXT NOT NULL,
    rp_id              TEXT NOT NULL,
    origin             TEXT NOT NULL,
    verification       TEXT NOT NULL,
    device_posture     TEXT
);

CREATE TABLE audit_log (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log(at);
