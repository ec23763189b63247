-- Signet schema 0005, SQLite flavour: which CA a database belongs to.
--
-- The PostgreSQL flavour (migrations/postgres/0005_ca_binding.sql) has the same
-- table, in the same types. Keep the two files in step.
--
-- One row at most (id = 1). `signet init` (and a first `signet serve`) writes
-- it with the new CA's first records; a database that predates it is adopted
-- by the first `signet serve` or `signet issue --local` that finds records of
-- its own CA in it. From then on every command that opens the database with a
-- data directory checks that the directory's root is this one, so that a CA
-- never writes into, or serves from, another CA's database. The row is never
-- changed or deleted.
CREATE TABLE ca_binding (
    id               INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    root_key_id      TEXT    NOT NULL,  -- hex key identifier of the root (its CRLs are filed under it)
    root_fingerprint TEXT    NOT NULL,  -- "sha256:" + hex SHA-256 of the root certificate, DER
    created_at       BIGINT  NOT NULL   -- unix seconds, set by the store
);
