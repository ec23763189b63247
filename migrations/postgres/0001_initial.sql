-- Signet initial schema, PostgreSQL flavour.
--
-- The SQLite flavour (migrations/sqlite/0001_initial.sql) has the same
-- tables, columns and meanings; only the column types and the trigger syntax
-- differ. signet-store runs one set of queries against both, so keep the two
-- files in step: a change here needs the same change there.
--
-- Conventions:
--   * timestamps are BIGINT unix seconds (UTC);
--   * DER is stored as-is (BYTEA here, BLOB in SQLite);
--   * serial is the lowercase hex of the positive serial number, big-endian,
--     minimal (no leading "00" byte), e.g. "01a3f2".

-- Every certificate the CA has issued. Rows are never deleted: the OCSP
-- responder answers from this table (RFC 6960), so a serial that is not here
-- was never issued by us.
CREATE TABLE certificates (
    serial            TEXT    NOT NULL PRIMARY KEY, -- lowercase hex, no leading 00
    issuer            TEXT    NOT NULL,             -- issuer DN string
    issuer_key_id     TEXT    NOT NULL,             -- hex key identifier of the issuing key
    subject           TEXT    NOT NULL,             -- subject DN string
    sans              TEXT    NOT NULL,             -- JSON array: ["dns:a.example","ip:10.0.0.1","uri:spiffe://...","email:..."]
    profile           TEXT    NOT NULL,             -- issuance profile name
    not_before        BIGINT  NOT NULL,             -- unix seconds
    not_after         BIGINT  NOT NULL,             -- unix seconds
    requester         TEXT    NOT NULL,             -- authenticated identity that asked for it
    der               BYTEA   NOT NULL,             -- the certificate, DER
    created_at        BIGINT  NOT NULL,             -- unix seconds, set by the store
    revoked_at        BIGINT  NULL,                 -- unix seconds; NULL = not revoked
    revocation_reason INTEGER NULL,                 -- RFC 5280 CRLReason code; set with revoked_at
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);

-- Expiry sweeps and "what is still valid" queries.
CREATE INDEX certificates_not_after_idx ON certificates (not_after);
-- Per-issuer listings (CRL generation for one issuing key).
CREATE INDEX certificates_issuer_key_id_idx ON certificates (issuer_key_id);
-- CRL generation reads only the revoked rows: a partial index keeps it small.
CREATE INDEX certificates_revoked_at_idx ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

-- Append-only audit trail. An identity column never reuses an id, which
-- keeps "newest first" (ORDER BY id DESC) honest.
CREATE TABLE audit_log (
    id      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT  NOT NULL,  -- unix seconds, set by the store
    actor   TEXT    NOT NULL,  -- who did it
    action  TEXT    NOT NULL,  -- what, e.g. "issue", "revoke"
    serial  TEXT    NULL,      -- certificate concerned, if any
    outcome TEXT    NOT NULL,  -- e.g. "ok", "denied", "error"
    detail  TEXT    NOT NULL   -- free text
);

CREATE INDEX audit_log_serial_idx ON audit_log (serial);

-- The audit log is append-only: rows can be inserted but never changed or
-- removed. Row triggers stop UPDATE and DELETE; a statement trigger stops
-- TRUNCATE, which row triggers do not see. (A superuser can still drop the
-- triggers; revoke UPDATE/DELETE/TRUNCATE from the application role in
-- production as a second line.)
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
