-- Coverage kept as the data changes. Every person's row carries what the coverage report needs
-- of their active credentials (counts by device class, a bit per class, synced passkeys, the one
-- laptop they were all enrolled on) and their population. Triggers on `credentials` (0011)
-- recount the person from `coverage_recount` in the same transaction as any change to their
-- credentials, so no write path can forget it; the service assigns the population (it depends
-- on the population rules) when a person's attributes, their groups or the rules change. The
-- report then reads one grouped scan of an index instead of joining every credential.
-- Portable SQL, the same for PostgreSQL. Never edit once shipped.
ALTER TABLE people ADD COLUMN population TEXT;
ALTER TABLE people ADD COLUMN cov_n BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN cov_classes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN cov_roaming BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN cov_platform BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN cov_phone BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN cov_software BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN cov_synced BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN cov_laptop TEXT;
ALTER TABLE people ADD COLUMN cov_several_laptops BIGINT NOT NULL DEFAULT 0;

-- Each person's active credentials counted afresh, one row a person. Both databases push a
-- condition on `person_id` into the view, so a recount of one person reads only their rows
-- (found by `credentials_by_person`; the status is tested inside the counts, not in the join,
-- so that no planner prefers an index of every active credential). `classes`: roaming 1,
-- platform 2, phone 4, software 8.
CREATE VIEW coverage_recount AS
SELECT p.id AS person_id,
       COUNT(CASE WHEN c.status = 'active' THEN 1 END) AS n,
       MAX(CASE WHEN c.status = 'active' AND c.device_class = 'roaming' THEN 1 ELSE 0 END)
     + MAX(CASE WHEN c.status = 'active' AND c.device_class = 'platform' THEN 2 ELSE 0 END)
     + MAX(CASE WHEN c.status = 'active' AND c.device_class = 'phone' THEN 4 ELSE 0 END)
     + MAX(CASE WHEN c.status = 'active' AND c.device_class = 'software' THEN 8 ELSE 0 END)
       AS classes,
       COUNT(CASE WHEN c.status = 'active' AND c.device_class = 'roaming' THEN 1 END) AS roaming,
       COUNT(CASE WHEN c.status = 'active' AND c.device_class = 'platform' THEN 1 END) AS platform,
       COUNT(CASE WHEN c.status = 'active' AND c.device_class = 'phone' THEN 1 END) AS phone,
       COUNT(CASE WHEN c.status = 'active' AND c.device_class = 'software' THEN 1 END) AS software,
       COUNT(CASE WHEN c.status = 'active' AND c.backup_eligible = 1 THEN 1 END) AS synced,
       CASE WHEN MIN(CASE WHEN c.status = 'active' THEN c.device_id END)
               = MAX(CASE WHEN c.status = 'active' THEN c.device_id END)
            THEN MIN(CASE WHEN c.status = 'active' THEN c.device_id END) END AS laptop,
       CASE WHEN MIN(CASE WHEN c.status = 'active' THEN c.device_id END)
              <> MAX(CASE WHEN c.status = 'active' THEN c.device_id END)
            THEN 1 ELSE 0 END AS several_laptops
FROM people p
LEFT JOIN credentials c ON c.person_id = p.id
GROUP BY p.id;

-- Rows written before this migration.
UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
    cov_synced, cov_laptop, cov_several_laptops) =
    (r.n, r.classes, r.roaming, r.platform, r.phone, r.software, r.synced, r.laptop,
     r.several_laptops)
FROM coverage_recount r WHERE r.person_id = people.id;

-- The report's grouped scan reads only this index (it carries the columns of its own condition
-- so that SQLite need not read the table to check them).
CREATE INDEX people_coverage ON people (population, cov_n, cov_classes, cov_roaming,
    cov_platform, cov_phone, cov_software, cov_synced, active, deleted_at)
    WHERE active = 1 AND deleted_at IS NULL;
-- The laptops of the people of the populations that judge laptops, grouped from this index alone.
CREATE INDEX people_laptops ON people (population, cov_several_laptops, cov_laptop, id, active,
    deleted_at) WHERE active = 1 AND deleted_at IS NULL;
-- Active credentials by key model, kept by the same triggers (`model` is '' when unknown).
-- Every transaction that changes credentials writes the audit chain's head first, so these
-- rows are never locked in two orders at once.
CREATE TABLE credential_models (
    aaguid TEXT NOT NULL,
    model  TEXT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (aaguid, model)
);
INSERT INTO credential_models (aaguid, model, n)
SELECT aaguid, COALESCE(model, ''), COUNT(*) FROM credentials WHERE status = 'active'
GROUP BY aaguid, COALESCE(model, '');
-- The marks of who has been below policy since when (0009), walked in order by the overview.
CREATE INDEX below_policy_by_since ON below_policy_since (since, person_id);
-- Inactive people, the few the dormant-access checks start from (the overview runs them).
CREATE INDEX people_inactive ON people (id, user_name) WHERE active = 0;
-- People whose population is still to be assigned (rows written before this migration or by
-- hand); the service assigns them at start and before a report.
CREATE INDEX people_unassigned ON people (id) WHERE population IS NULL;
