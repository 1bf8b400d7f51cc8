-- Coverage kept as the data changes. Every person's row carries what the coverage report needs
-- of their active credentials (counts by device class, a bit per class, synced passkeys, the one
-- laptop they were all enrolled on) and their population. Triggers on `credentials` recount the
-- person in the same transaction as any change to their credentials, so no write path can forget
-- it; the service assigns the population (it depends on the population rules) when a person's
-- attributes, their groups or the rules change. The report then reads one grouped scan of an
-- index instead of joining every credential. `cov_classes`: roaming 1, platform 2, phone 4,
-- software 8. PostgreSQL runs triggers through a function, hence one file per database.
-- Never edit once shipped.
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

-- Rows written before this migration.
UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) =
        (SELECT COUNT(*),
                COALESCE(MAX(CASE WHEN device_class = 'roaming' THEN 1 ELSE 0 END)
                       + MAX(CASE WHEN device_class = 'platform' THEN 2 ELSE 0 END)
                       + MAX(CASE WHEN device_class = 'phone' THEN 4 ELSE 0 END)
                       + MAX(CASE WHEN device_class = 'software' THEN 8 ELSE 0 END), 0),
                COUNT(CASE WHEN device_class = 'roaming' THEN 1 END),
                COUNT(CASE WHEN device_class = 'platform' THEN 1 END),
                COUNT(CASE WHEN device_class = 'phone' THEN 1 END),
                COUNT(CASE WHEN device_class = 'software' THEN 1 END),
                COUNT(CASE WHEN backup_eligible = 1 THEN 1 END),
                CASE WHEN MIN(device_id) = MAX(device_id) THEN MIN(device_id) END,
                CASE WHEN MIN(device_id) <> MAX(device_id) THEN 1 ELSE 0 END
         FROM credentials WHERE person_id = people.id AND status = 'active');

CREATE FUNCTION keywarden_coverage_recount(person TEXT) RETURNS void LANGUAGE sql AS $$
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) =
        (SELECT COUNT(*),
                COALESCE(MAX(CASE WHEN device_class = 'roaming' THEN 1 ELSE 0 END)
                       + MAX(CASE WHEN device_class = 'platform' THEN 2 ELSE 0 END)
                       + MAX(CASE WHEN device_class = 'phone' THEN 4 ELSE 0 END)
                       + MAX(CASE WHEN device_class = 'software' THEN 8 ELSE 0 END), 0),
                COUNT(CASE WHEN device_class = 'roaming' THEN 1 END),
                COUNT(CASE WHEN device_class = 'platform' THEN 1 END),
                COUNT(CASE WHEN device_class = 'phone' THEN 1 END),
                COUNT(CASE WHEN device_class = 'software' THEN 1 END),
                COUNT(CASE WHEN backup_eligible = 1 THEN 1 END),
                CASE WHEN MIN(device_id) = MAX(device_id) THEN MIN(device_id) END,
                CASE WHEN MIN(device_id) <> MAX(device_id) THEN 1 ELSE 0 END
         FROM credentials WHERE person_id = people.id AND status = 'active')
    WHERE id = person;
$$;

CREATE FUNCTION keywarden_credential_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM keywarden_coverage_recount(OLD.person_id);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.person_id <> OLD.person_id) THEN
        PERFORM keywarden_coverage_recount(NEW.person_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER coverage_credential_added AFTER INSERT ON credentials
    FOR EACH ROW EXECUTE FUNCTION keywarden_credential_changed();
CREATE TRIGGER coverage_credential_changed
    AFTER UPDATE OF person_id, device_id, status, device_class, backup_eligible ON credentials
    FOR EACH ROW EXECUTE FUNCTION keywarden_credential_changed();
CREATE TRIGGER coverage_credential_removed AFTER DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION keywarden_credential_changed();

-- The report's grouped scan reads only this index.
CREATE INDEX people_coverage ON people (population, cov_n, cov_classes, cov_roaming,
    cov_platform, cov_phone, cov_software, cov_synced)
    WHERE active = 1 AND deleted_at IS NULL;
-- People whose population is still to be assigned (rows written before this migration or by
-- hand); the service assigns them at start and before a report.
CREATE INDEX people_unassigned ON people (id) WHERE population IS NULL;
