-- Keys known without a serial: a key is recognised by the organisation's own credential on it,
-- through a silent probe. `key_probes` holds each probe's single-use challenge, bound to the
-- laptop it was issued to, its purpose (`inventory` or `reclaim`) and the candidate credential
-- ids (JSON array); `key_sightings` records, per credential and laptop, the keys a verified
-- probe answer recognised there and under which id that laptop knew the key.
-- Portable SQL, the same for PostgreSQL. Never edit once shipped.
CREATE TABLE key_probes (
    id             TEXT PRIMARY KEY,
    device_id      TEXT NOT NULL REFERENCES devices(id),
    purpose        TEXT NOT NULL,
    challenge      TEXT NOT NULL,
    credential_ids TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX key_probes_by_device ON key_probes(device_id, created_at);

CREATE TABLE key_sightings (
    credential_id TEXT NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices(id),
    agent_key_id  TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (credential_id, device_id)
);
