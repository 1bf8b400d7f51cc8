-- Attestation anchored in trust: the roots an authenticator's attestation chain must lead to,
-- the metadata a verified FIDO Metadata Service blob gives per authenticator model, and the
-- blobs loaded (their nextUpdate says when the metadata goes stale).
-- Portable SQL: the same file is shipped for PostgreSQL. Never edit once shipped.

-- One row per root and where it came from: 'mds' (attestationRootCertificates of a verified
-- blob's entries; replaced when a newer blob is loaded) or 'admin' (added by hand, audited).
-- aaguids: JSON array of the models the root vouches for; [] means any model (admin roots).
CREATE TABLE trust_anchors (
    fingerprint TEXT NOT NULL,
    source      TEXT NOT NULL,
    label       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    certificate TEXT NOT NULL,
    aaguids     TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    added_at    BIGINT NOT NULL,
    added_by    TEXT NOT NULL,
    PRIMARY KEY (fingerprint, source)
);

-- Authenticator models from the latest verified blob: attachment is the JSON array of the
-- metadata statement's attachmentHint (the device class comes from it, never from the client);
-- trusted is 0 when a status report marks the model revoked or compromised.
CREATE TABLE authenticator_models (
    aaguid      TEXT PRIMARY KEY,
    description TEXT,
    attachment  TEXT NOT NULL,
    trusted     BIGINT NOT NULL,
    mds_blob_no BIGINT NOT NULL
);

CREATE TABLE mds_blobs (
    blob_no        BIGINT PRIMARY KEY,
    next_update    TEXT NOT NULL,
    next_update_ms BIGINT NOT NULL,
    entries        BIGINT NOT NULL,
    loaded_at      BIGINT NOT NULL,
    loaded_by      TEXT NOT NULL
);
