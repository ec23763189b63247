-- Signet schema 0010, SQLite flavour: shard CRLs read from the index alone.
--
-- The PostgreSQL flavour (migrations/postgres/0010_crl_covering_index.sql) makes
-- the same index with INCLUDE; SQLite has none, so the covered columns trail the key
-- (serial is unique, so they never change the order). A shard's CRL then reads
-- revoked_at, revocation_reason and not_after from the index, not the table.
DROP INDEX certificates_crl_shard_idx;
CREATE INDEX certificates_crl_shard_idx
    ON certificates (issuer_key_id, crl_shard, serial, revoked_at, revocation_reason, not_after)
    WHERE revoked_at IS NOT NULL;
