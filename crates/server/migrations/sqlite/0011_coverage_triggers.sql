-- The triggers that keep each person's coverage columns and the counts by key model (0010) as
-- credentials change: any insert, delete, or change of owner, laptop, status, class, synced
-- flag or model recounts the people concerned and moves the model counts, in the same
-- transaction. SQLite writes trigger bodies inline, a row at a time; PostgreSQL runs them
-- through functions once per statement, hence one file per database. Never edit once shipped.
CREATE TRIGGER coverage_credential_added AFTER INSERT ON credentials
BEGIN
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = NEW.person_id)
    WHERE id = NEW.person_id;
    INSERT INTO credential_models (aaguid, model, n)
    SELECT NEW.aaguid, COALESCE(NEW.model, ''), 1 WHERE NEW.status = 'active'
    ON CONFLICT (aaguid, model) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER coverage_credential_changed
AFTER UPDATE OF person_id, device_id, status, device_class, backup_eligible, aaguid, model
ON credentials
BEGIN
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = OLD.person_id)
    WHERE id = OLD.person_id;
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = NEW.person_id)
    WHERE id = NEW.person_id AND NEW.person_id <> OLD.person_id;
    UPDATE credential_models SET n = n - 1
    WHERE OLD.status = 'active' AND aaguid = OLD.aaguid AND model = COALESCE(OLD.model, '');
    INSERT INTO credential_models (aaguid, model, n)
    SELECT NEW.aaguid, COALESCE(NEW.model, ''), 1 WHERE NEW.status = 'active'
    ON CONFLICT (aaguid, model) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER coverage_credential_removed AFTER DELETE ON credentials
BEGIN
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = OLD.person_id)
    WHERE id = OLD.person_id;
    UPDATE credential_models SET n = n - 1
    WHERE OLD.status = 'active' AND aaguid = OLD.aaguid AND model = COALESCE(OLD.model, '');
END;
