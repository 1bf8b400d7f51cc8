-- The web console: staff roles held by people, the first admin's one-time setup link, and the
-- daily coverage snapshots the overview draws. Portable SQL, the same for PostgreSQL.
-- Never edit once shipped.

-- A staff role held by a person: one role a person (granting another replaces it). Only people
-- the HR feed provisioned hold one, except the first admin, who enrolled through the setup
-- link. Offboarding deletes the row in its own transaction; the audit log keeps the history.
CREATE TABLE staff_roles (
    person_id  TEXT PRIMARY KEY REFERENCES people(id),
    role       TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL
);

-- The first admin's one-time setup link: only its hash is kept; it works once, until it
-- expires, and only while nobody holds the admin role.
CREATE TABLE console_setup (
    id         TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    person_id  TEXT REFERENCES people(id)
);

-- Coverage per population, once a day (UTC day, YYYY-MM-DD), for the burn-down chart.
CREATE TABLE coverage_snapshots (
    day                 TEXT NOT NULL,
    population          TEXT NOT NULL,
    taken_at            BIGINT NOT NULL,
    people              BIGINT NOT NULL,
    compliant           BIGINT NOT NULL,
    below_minimum       BIGINT NOT NULL,
    single_device_class BIGINT NOT NULL,
    no_authenticator    BIGINT NOT NULL,
    under_exception     BIGINT NOT NULL,
    PRIMARY KEY (day, population)
);

-- Since when each person has been below their population's policy (kept by the snapshots;
-- a person back in compliance loses their row).
CREATE TABLE below_policy_since (
    person_id TEXT PRIMARY KEY REFERENCES people(id),
    since     BIGINT NOT NULL
);
