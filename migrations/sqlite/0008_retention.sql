-- Signet schema 0008, SQLite flavour: retention (bounded hot tables).
--
-- The PostgreSQL flavour (migrations/postgres/0008_retention.sql) has the same
-- table, in the same types. Keep the two files in step.
--
-- From this migration on, rows of certificates ARE removed: the retention sweep
-- (signet-store's retention.rs, run by `signet serve` per [retention]) takes out
-- certificates whose notAfter is older than the configured expired_after, in
-- batches, with their certificate_names rows. (0001's comment "Rows are never
-- deleted" held until then; migrations are checksummed, so it stays as written.)
-- In mode "archive" each removed row is first copied here; in mode "delete" it is
-- only deleted. The audit log keeps every row either way.
--
-- The OCSP responder, the CRL publisher and the API read only certificates: a
-- serial that has left it is unknown to them (OCSP answers "unknown", GET by
-- serial 404), as RFC 5280 5.1.2.6 allows for CRLs once a certificate has expired.
CREATE TABLE certificates_archive (
    serial            TEXT    NOT NULL PRIMARY KEY, -- as in certificates
    issuer            TEXT    NOT NULL,
    issuer_key_id     TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    sans              TEXT    NOT NULL,             -- JSON array, as in certificates
    profile           TEXT    NOT NULL,
    not_before        BIGINT  NOT NULL,
    not_after         BIGINT  NOT NULL,
    requester         TEXT    NOT NULL,
    der               BLOB   NOT NULL,
    created_at        BIGINT  NOT NULL,
    revoked_at        BIGINT  NULL,
    revocation_reason INTEGER NULL,
    revocation_seq    BIGINT  NULL,
    archived_at       BIGINT  NOT NULL              -- unix seconds: when the sweep moved it here
);

-- Pruning the archive by hand ("archived before ...") without a scan.
CREATE INDEX certificates_archive_archived_at_idx ON certificates_archive (archived_at);
