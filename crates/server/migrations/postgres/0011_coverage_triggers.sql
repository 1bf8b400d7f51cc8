-- The triggers that keep each person's coverage columns (0010) as their credentials change:
-- any insert, delete, or change of owner, laptop, status, class or synced flag recounts the
-- people concerned in the same transaction. PostgreSQL runs trigger bodies through a function;
-- SQLite writes them inline, hence one file per database. Never edit once shipped.
CREATE FUNCTION keywarden_coverage_recount(person TEXT) RETURNS void LANGUAGE sql AS $$
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = person)
    WHERE id = person;
$$;

CREATE FUNCTION keywarden_credential_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM keywarden_coverage_recount(OLD.person_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.person_id <> OLD.person_id) THEN
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
