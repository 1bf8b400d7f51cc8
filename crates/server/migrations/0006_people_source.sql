-- Where a person came from: 'scim' (the HR feed) or 'admin' (created by hand through the admin
-- API). Staff roles are granted only to people the HR feed provisioned, so an admin cannot mint
-- a second identity to hold a second help-desk token. Portable SQL, the same for PostgreSQL.
-- Never edit once shipped.
ALTER TABLE people ADD COLUMN source TEXT NOT NULL DEFAULT 'admin';
UPDATE people SET source = 'scim'
    WHERE id IN (SELECT subject FROM audit_log WHERE action = 'scim.user.created');
