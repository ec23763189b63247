-- Signet schema 0009, SQLite flavour: partitioned and delta CRLs (issue 19).
--
-- The PostgreSQL flavour (migrations/postgres/0009_crl_shards.sql) has the same
-- columns and indexes. Keep the two files in step.

-- The CRL partition (shard) a certificate belongs to: the one its CRL
-- distribution point names, fixed at issuance (signet-pkix's crl::shard_of of
-- the serial and the shard count then configured). NULL: its CRL distribution
-- point names the CA's single full CRL (every certificate issued before
-- [crl] shards was set, or with it 0). Adding a nullable column without a
-- default rewrites nothing.
ALTER TABLE certificates ADD COLUMN crl_shard INTEGER NULL;

-- The archive keeps the same columns (0008).
ALTER TABLE certificates_archive ADD COLUMN crl_shard INTEGER NULL;

-- A shard's CRL is one range of this index: its revoked certificates in
-- serial order (the keyset CRL pages), never a scan of the table.
CREATE INDEX certificates_crl_shard_idx
    ON certificates (issuer_key_id, crl_shard, serial) WHERE revoked_at IS NOT NULL;

-- Whether any unexpired certificate still names the full CRL (it is published
-- for as long as one does), and which shards unexpired certificates name.
CREATE INDEX certificates_unsharded_idx
    ON certificates (issuer_key_id, not_after) WHERE crl_shard IS NULL;

-- Which partition a stored CRL is of, and whether it is a delta:
--   shard              -1 for the CA's full CRL (every CRL stored before this
--                      migration), else the shard number;
--   delta_base         0 for a complete (base) CRL, else the number of the base
--                      CRL this delta CRL extends (RFC 5280 5.2.4);
--   revocation_cursor  the revocation sequence ('revocation' counter) read
--                      before the CRL's entries were: a delta lists what was
--                      revoked after its base's cursor.
-- CRL numbers stay one sequence per CA key across all of them.
ALTER TABLE crls ADD COLUMN shard INTEGER NOT NULL DEFAULT -1;
ALTER TABLE crls ADD COLUMN delta_base BIGINT NOT NULL DEFAULT 0;
ALTER TABLE crls ADD COLUMN revocation_cursor BIGINT NOT NULL DEFAULT 0;

CREATE INDEX crls_partition_idx ON crls (issuer_key_id, shard, delta_base, number);
