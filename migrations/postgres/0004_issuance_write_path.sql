-- Signet schema 0004, PostgreSQL flavour: less work per issued certificate.
--
-- The SQLite flavour (migrations/sqlite/0004_issuance_write_path.sql) drops
-- the same index; see there for why its certificate_names keeps the foreign
-- key and the row trigger.

-- No query filters on issuer_key_id alone: CRL generation uses
-- certificates_crl_idx (issuer_key_id, serial) WHERE revoked_at IS NOT NULL.
-- The index only cost one B-tree insert per certificate.
DROP INDEX certificates_issuer_key_id_idx;

-- certificate_names was filled by a row trigger: one PL/pgSQL call and one
-- SPI query per certificate, plus a foreign-key check (another query and a
-- row lock) per name. Group commit inserts certificates many rows per
-- statement, so a statement trigger over the transition table does the same
-- in one query per batch.
--
-- The foreign key goes: the triggers are the only writers of this table and
-- derive every row from a certificates row in the same statement, and
-- certificates rows are never deleted, so it could not fail; it only cost a
-- lookup and a lock per name.
ALTER TABLE certificate_names DROP CONSTRAINT certificate_names_serial_fkey;

DROP TRIGGER certificate_names_after_insert ON certificates;

CREATE FUNCTION certificate_names_sync_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO certificate_names (name, serial)
    SELECT DISTINCT j.name, n.serial
    FROM inserted AS n
    CROSS JOIN LATERAL json_array_elements_text(n.sans::json) AS j(name);
    RETURN NULL;
END;
$$;

CREATE TRIGGER certificate_names_after_insert
AFTER INSERT ON certificates
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION certificate_names_sync_inserted();

-- certificate_names_after_update_sans (0002) stays a row trigger: the store
-- never updates sans.
