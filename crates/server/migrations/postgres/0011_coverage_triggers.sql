-- The triggers that keep each person's coverage columns (0010) as their credentials change:
-- any insert, delete, or change of owner, laptop, status, class or synced flag recounts the
-- people concerned in the same transaction. PostgreSQL recounts once per statement, for every
-- person the statement touched (its transition tables), so a bulk write recounts each person
-- once; SQLite has no statement triggers and recounts per row, inline. Hence one file per
-- database. Never edit once shipped.
CREATE FUNCTION keywarden_coverage_recount(persons TEXT[]) RETURNS void LANGUAGE sql AS $$
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = people.id)
    WHERE id = ANY (persons);
$$;

CREATE FUNCTION keywarden_credentials_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keywarden_coverage_recount(ARRAY(SELECT DISTINCT person_id FROM added));
    RETURN NULL;
END;
$$;

CREATE FUNCTION keywarden_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keywarden_coverage_recount(ARRAY(
        SELECT o.person_id FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.person_id, o.device_id, o.status, o.device_class, o.backup_eligible)
            IS DISTINCT FROM (n.person_id, n.device_id, n.status, n.device_class, n.backup_eligible)
        UNION
        SELECT n.person_id FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.person_id <> n.person_id));
    RETURN NULL;
END;
$$;

CREATE FUNCTION keywarden_credentials_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keywarden_coverage_recount(ARRAY(SELECT DISTINCT person_id FROM removed));
    RETURN NULL;
END;
$$;

CREATE TRIGGER coverage_credentials_added AFTER INSERT ON credentials
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION keywarden_credentials_added();
CREATE TRIGGER coverage_credentials_changed AFTER UPDATE ON credentials
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keywarden_credentials_changed();
CREATE TRIGGER coverage_credentials_removed AFTER DELETE ON credentials
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION keywarden_credentials_removed();
