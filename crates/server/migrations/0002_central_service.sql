-- Central service: SCIM identity attributes and groups, role tokens, hash-chained audit log,
-- ticket redemption attempts (rate limits), populations with their policy, and exceptions.
-- Portable SQL: the same file is shipped for PostgreSQL. Never edit once shipped.

ALTER TABLE people ADD COLUMN external_id TEXT;
ALTER TABLE people ADD COLUMN given_name TEXT;
ALTER TABLE people ADD COLUMN family_name TEXT;
ALTER TABLE people ADD COLUMN email TEXT;
ALTER TABLE people ADD COLUMN title TEXT;
ALTER TABLE people ADD COLUMN user_type TEXT;
ALTER TABLE people ADD COLUMN employee_number TEXT;
ALTER TABLE people ADD COLUMN department TEXT;
ALTER TABLE people ADD COLUMN manager_id TEXT;
ALTER TABLE people ADD COLUMN deleted_at BIGINT;
CREATE INDEX people_by_external_id ON people(external_id);

CREATE TABLE scim_groups (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL UNIQUE,
    external_id  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE scim_group_members (
    group_id  TEXT NOT NULL REFERENCES scim_groups(id),
    person_id TEXT NOT NULL REFERENCES people(id),
    PRIMARY KEY (group_id, person_id)
);
CREATE INDEX scim_group_members_by_person ON scim_group_members(person_id);

ALTER TABLE credentials ADD COLUMN device_class TEXT NOT NULL DEFAULT 'roaming';

-- The audit chain: each row's hash covers its content and the previous row's hash; the head
-- row (one only) holds the last sequence number and hash, and its row lock orders writers.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_log_by_seq ON audit_log(seq);
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

CREATE TABLE ticket_attempts (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    ticket_id TEXT,
    outcome   TEXT NOT NULL
);
CREATE INDEX ticket_attempts_by_device ON ticket_attempts(device_id, at);
CREATE INDEX ticket_attempts_by_ticket ON ticket_attempts(ticket_id, at);

CREATE TABLE populations (
    name        TEXT PRIMARY KEY,
    priority    BIGINT NOT NULL,
    match_kind  TEXT NOT NULL,
    match_key   TEXT,
    match_value TEXT NOT NULL,
    policy      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE exceptions (
    id         TEXT PRIMARY KEY,
    person_id  TEXT NOT NULL REFERENCES people(id),
    owner      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX exceptions_by_person ON exceptions(person_id);
