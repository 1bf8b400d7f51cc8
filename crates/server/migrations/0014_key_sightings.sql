-- Keys known without a serial: a key is recognised by the organisation's own credential on it,
-- through a silent probe (its single-use challenge is an assertion_challenges row with purpose
-- key_probe:inventory or key_probe:reclaim). `key_sightings` records, per credential and
-- laptop, that a verified probe answer recognised the key holding it there, and under which id
-- that laptop knew the key.
-- Portable SQL, the same for PostgreSQL. Never edit once shipped.
CREATE TABLE key_sightings (
    credential_id TEXT NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices(id),
    agent_key_id  TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (credential_id, device_id)
);
