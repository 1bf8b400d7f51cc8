-- Issuing keys for people (issue 17 point 3): IT enrols organisation-owned keys for people at an
-- issuing station, in a session opened with a staff member's fresh step-up; each key stays
-- "issued, not yet activated" (credentials.status = 'issued') until its person's own laptop
-- shows the PIN was changed, and is suspended when it expires before that.

-- An admin marks a provisioned laptop as an issuing station (as for reclaim stations).
ALTER TABLE devices ADD COLUMN issuing_station BIGINT NOT NULL DEFAULT 0;

-- One issuing session: a station, the staff member whose key stepped up, until when it holds.
CREATE TABLE issuing_sessions (
    id                   TEXT PRIMARY KEY,
    device_id            TEXT NOT NULL REFERENCES devices(id),
    staff_person_id      TEXT NOT NULL REFERENCES people(id),
    staff_credential_id  TEXT NOT NULL,
    staff_role           TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL
);

-- The people a session's list named, validated whole when it opened.
CREATE TABLE issuing_session_people (
    session_id  TEXT NOT NULL REFERENCES issuing_sessions(id),
    person_id   TEXT NOT NULL REFERENCES people(id),
    list_row    BIGINT NOT NULL,
    keys        BIGINT NOT NULL,
    PRIMARY KEY (session_id, person_id)
);

-- Each key issued, its expiry and what became of it.
CREATE TABLE issued_keys (
    credential_id        TEXT PRIMARY KEY REFERENCES credentials(id),
    person_id            TEXT NOT NULL REFERENCES people(id),
    session_id           TEXT NOT NULL REFERENCES issuing_sessions(id),
    issued_by            TEXT NOT NULL,
    station_device_id    TEXT NOT NULL,
    issued_at            BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    activated_at         BIGINT,
    activated_on_device  TEXT,
    expired_at           BIGINT
);
CREATE INDEX issued_keys_by_expiry ON issued_keys (expires_at);
CREATE INDEX issued_keys_by_person ON issued_keys (person_id);
