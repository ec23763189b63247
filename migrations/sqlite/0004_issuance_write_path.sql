-- Signet schema 0004, SQLite flavour: less work per issued certificate.
--
-- Same as the PostgreSQL flavour for the index. No query filters on
-- issuer_key_id alone (CRL generation uses certificates_crl_idx), so the
-- index only cost one B-tree insert per certificate.
DROP INDEX certificates_issuer_key_id_idx;

-- The PostgreSQL flavour also turns the certificate_names row trigger into a
-- statement trigger and drops that table's foreign key. SQLite has neither
-- statement triggers nor ALTER TABLE … DROP CONSTRAINT (it would mean
-- rebuilding the table), and its row trigger and foreign-key check are plain
-- B-tree lookups inside the same process, so both stay. Meaning is the same:
-- one certificate_names row per distinct name of every certificate.
