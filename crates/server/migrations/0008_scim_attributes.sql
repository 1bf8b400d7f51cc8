-- SCIM attributes the service keeps but does not interpret (name, emails, phoneNumbers,
-- addresses, locale, the enterprise costCenter and organization, ...), as the IdP sent them:
-- a JSON object, returned on every read. The columns the service uses (user_name,
-- display_name, active, external_id, department, user_type, employee_number) stay
-- authoritative and are laid over it. NULL for people created before this migration (their
-- resource is built from the columns). Never edit once shipped.
ALTER TABLE people ADD COLUMN scim_attributes TEXT;
