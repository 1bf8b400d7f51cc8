-- What each key enforced itself when it was enrolled through the agent, after the agent put its
-- population's on-key policy on it (authenticatorConfig): the minimum PIN length (attested
-- where the key gave it) and alwaysUv (1, 0, or NULL when the key does not offer it). NULL for
-- browser passkeys and for credentials bound before this migration. Counted per model by the
-- console without reading every credential's key_info.
-- Portable SQL, the same for PostgreSQL. Never edit once shipped.
ALTER TABLE credentials ADD COLUMN key_min_pin_length BIGINT;
ALTER TABLE credentials ADD COLUMN key_always_uv BIGINT;
