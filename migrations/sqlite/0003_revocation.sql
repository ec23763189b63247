-- Signet schema 0003, SQLite flavour: what the CRL publisher and the OCSP
-- responder need.
--
-- The PostgreSQL flavour (migrations/postgres/0003_revocation.sql) has the
-- same tables, columns and meanings; only the column types and the identity
-- syntax differ. Keep the two files in step.

-- Named counters that only go up, bumped with one atomic upsert
-- (INSERT ... ON CONFLICT DO UPDATE ... RETURNING). Used for:
--   'revocation'          the sequence of revocations (certificates.revocation_seq);
--   'crl:<issuer_key_id>' the CRL Number of each issuing CA (RFC 5280 5.2.3).
-- A row is never deleted, so the numbers stay monotonic across restarts and
-- across every process sharing the database.
CREATE TABLE counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

-- The order in which revocations were committed. Store::revoke bumps the
-- 'revocation' counter inside the revoking transaction; the counter row stays
-- locked until commit, so a larger number is never visible before a smaller
-- one, and a responder that remembers the largest number it has seen can ask
-- cheaply for "revocations since" without missing any. NULL for certificates
-- that are not revoked (and for ones revoked before this migration).
ALTER TABLE certificates ADD COLUMN revocation_seq BIGINT NULL;

CREATE UNIQUE INDEX certificates_revocation_seq_idx
    ON certificates (revocation_seq) WHERE revocation_seq IS NOT NULL;

-- CRL generation pages through one issuer's revoked certificates by serial.
CREATE INDEX certificates_crl_idx
    ON certificates (issuer_key_id, serial) WHERE revoked_at IS NOT NULL;

-- Every CRL published, signed by the issuing CA (the API process); responders
-- serve the one with the largest number.
CREATE TABLE crls (
    issuer_key_id TEXT   NOT NULL,  -- hex key identifier of the issuing key
    number        BIGINT NOT NULL,  -- CRL Number, from counters 'crl:<issuer_key_id>'
    this_update   BIGINT NOT NULL,  -- unix seconds
    next_update   BIGINT NOT NULL,  -- unix seconds
    der           BLOB   NOT NULL,  -- the CRL, DER
    created_at    BIGINT NOT NULL,  -- unix seconds, set by the store
    PRIMARY KEY (issuer_key_id, number)
);

-- The hand-off by which a standalone OCSP responder, which never holds the
-- CA key, obtains its delegated signing certificate: it inserts the public
-- key of the key pair it generated in memory; a `signet serve` process that
-- holds the key of the CA named by issuer_key_id signs a certificate for it,
-- records it in certificates and fills in cert_der, in one transaction.
CREATE TABLE ocsp_signer_requests (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    issuer_key_id TEXT    NOT NULL,  -- the CA asked: hex key identifier of its key
    spki          BLOB    NOT NULL,  -- SubjectPublicKeyInfo, DER
    requested_at  BIGINT  NOT NULL,  -- unix seconds
    cert_der      BLOB    NULL,      -- the certificate, DER; NULL while pending
    fulfilled_at  BIGINT  NULL       -- unix seconds; set with cert_der
);

CREATE INDEX ocsp_signer_requests_pending_idx
    ON ocsp_signer_requests (issuer_key_id, requested_at) WHERE cert_der IS NULL;
