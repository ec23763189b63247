-- Signet schema 0002, PostgreSQL flavour: one-time token replay protection
-- and certificate listing support.
--
-- The SQLite flavour (migrations/sqlite/0002_tokens_and_listing.sql) has the
-- same tables, columns and meanings; only the trigger syntax and the JSON
-- functions differ. Keep the two files in step.

-- One-time tokens (JWT "jti") already presented, per provisioner. A row is
-- inserted when a token is first used; inserting the same key again is how a
-- replay is detected, so this table is what makes "one time" hold across
-- every process sharing the database. Rows are purged by signet-store some
-- time after expires_at (unix seconds), once the token could no longer be
-- accepted anyway.
CREATE TABLE used_tokens (
    provisioner TEXT   NOT NULL,  -- provisioner (token issuer) name
    jti         TEXT   NOT NULL,  -- token id, unique per provisioner
    expires_at  BIGINT NOT NULL,  -- unix seconds: the token's exp
    used_at     BIGINT NOT NULL,  -- unix seconds: when it was consumed
    PRIMARY KEY (provisioner, jti)
);

-- Purging expired rows.
CREATE INDEX used_tokens_expires_at_idx ON used_tokens (expires_at);

-- Admin listings: newest first, keyset-paginated on (created_at, serial).
CREATE INDEX certificates_created_at_serial_idx ON certificates (created_at, serial);

-- Every subject alternative name of every certificate, one row per distinct
-- name, derived from certificates.sans (a JSON array of strings) by the
-- triggers below so that it can never disagree with it. Lets "certificates
-- for dns:api.internal" be an exact, indexed lookup instead of a scan over
-- JSON text.
CREATE TABLE certificate_names (
    name   TEXT NOT NULL,  -- one SAN in tagged form, e.g. "dns:api.internal"
    serial TEXT NOT NULL REFERENCES certificates (serial) ON DELETE CASCADE,
    PRIMARY KEY (name, serial)
);

-- Certificates recorded before this migration.
INSERT INTO certificate_names (name, serial)
SELECT DISTINCT j.name, c.serial
FROM certificates AS c
CROSS JOIN LATERAL json_array_elements_text(c.sans::json) AS j(name);

CREATE FUNCTION certificate_names_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM certificate_names WHERE serial = OLD.serial;
    END IF;
    INSERT INTO certificate_names (name, serial)
    SELECT DISTINCT j.name, NEW.serial
    FROM json_array_elements_text(NEW.sans::json) AS j(name);
    RETURN NULL;
END;
$$;

CREATE TRIGGER certificate_names_after_insert
AFTER INSERT ON certificates
FOR EACH ROW EXECUTE FUNCTION certificate_names_sync();

-- The store never changes sans, but if anything does, follow it.
CREATE TRIGGER certificate_names_after_update_sans
AFTER UPDATE OF sans ON certificates
FOR EACH ROW EXECUTE FUNCTION certificate_names_sync();
