-- The triggers that keep each person's coverage columns (0010) as their credentials change:
-- any insert, delete, or change of owner, laptop, status, class or synced flag recounts the
-- people concerned in the same transaction. SQLite writes trigger bodies inline; PostgreSQL
-- runs them through a function, hence one file per database. Never edit once shipped.
CREATE TRIGGER coverage_credential_added AFTER INSERT ON credentials
BEGIN
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = NEW.person_id)
    WHERE id = NEW.person_id;
END;

CREATE TRIGGER coverage_credential_changed
AFTER UPDATE OF person_id, device_id, status, device_class, backup_eligible ON credentials
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
END;

CREATE TRIGGER coverage_credential_removed AFTER DELETE ON credentials
BEGIN
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = OLD.person_id)
    WHERE id = OLD.person_id;
END;
