-- The triggers that keep each person's coverage columns and the counts by key model (0010) as
-- credentials change: any insert, delete, or change of owner, laptop, status, class, synced
-- flag or model recounts the people concerned and moves the model counts, in the same
-- transaction. PostgreSQL does it once per statement, for every person and model the statement
-- touched (its transition tables), so a bulk write recounts each person once; SQLite has no
-- statement triggers and does it per row, inline. Hence one file per database. Never edit once
-- shipped.
CREATE FUNCTION keywarden_coverage_recount(persons TEXT[]) RETURNS void LANGUAGE sql AS $$
    UPDATE people SET (cov_n, cov_classes, cov_roaming, cov_platform, cov_phone, cov_software,
        cov_synced, cov_laptop, cov_several_laptops) = (SELECT n, classes, roaming, platform,
        phone, software, synced, laptop, several_laptops FROM coverage_recount
        WHERE person_id = people.id)
    WHERE id = ANY (persons);
$$;

-- Move the counts by key model by each model's change in active credentials, in one order.
CREATE FUNCTION keywarden_models_moved(aaguids TEXT[], models TEXT[], deltas BIGINT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO credential_models (aaguid, model, n)
    SELECT aaguid, model, SUM(delta) FROM unnest(aaguids, models, deltas) AS d(aaguid, model, delta)
    GROUP BY aaguid, model HAVING SUM(delta) <> 0 ORDER BY aaguid, model
    ON CONFLICT (aaguid, model) DO UPDATE SET n = credential_models.n + EXCLUDED.n;
$$;

CREATE FUNCTION keywarden_credentials_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keywarden_coverage_recount(ARRAY(SELECT DISTINCT person_id FROM added));
    PERFORM keywarden_models_moved(array_agg(aaguid), array_agg(COALESCE(model, '')),
        array_agg(1::BIGINT))
    FROM added WHERE status = 'active';
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
    PERFORM keywarden_models_moved(array_agg(aaguid), array_agg(model), array_agg(delta))
    FROM (SELECT aaguid, COALESCE(model, '') AS model, 1::BIGINT AS delta FROM new_rows
          WHERE status = 'active'
          UNION ALL
          SELECT aaguid, COALESCE(model, ''), -1::BIGINT FROM old_rows
          WHERE status = 'active') AS moved;
    RETURN NULL;
END;
$$;

CREATE FUNCTION keywarden_credentials_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keywarden_coverage_recount(ARRAY(SELECT DISTINCT person_id FROM removed));
    PERFORM keywarden_models_moved(array_agg(aaguid), array_agg(COALESCE(model, '')),
        array_agg(-1::BIGINT))
    FROM removed WHERE status = 'active';
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
