-- Signet schema 0012, PostgreSQL flavour: indexes that make every certificate listing
-- filter an index walk (issue 20).
--
-- The SQLite flavour (migrations/sqlite/0012_listing_indexes.sql) has the same indexes and
-- says what each is for. The provisioner expression is spelled as a regular expression
-- here; keep it identical to PROVISIONER_POSTGRES in signet-store's listing.rs, so the
-- planner matches the listing's condition to the index.

CREATE INDEX certificates_requester_idx ON certificates (requester, created_at, serial);
CREATE INDEX certificates_requester_expiry_idx ON certificates (requester, not_after, serial);

CREATE INDEX certificates_provisioner_idx ON certificates (
    (substring(requester from '^(?:token|k8s|acme):([^:]+):')), created_at, serial);
CREATE INDEX certificates_provisioner_expiry_idx ON certificates (
    (substring(requester from '^(?:token|k8s|acme):([^:]+):')), not_after, serial);

CREATE INDEX certificates_profile_idx ON certificates (profile, created_at, serial);
CREATE INDEX certificates_profile_expiry_idx ON certificates (profile, not_after, serial);

CREATE INDEX certificates_revoked_created_idx
    ON certificates (created_at, serial) WHERE revoked_at IS NOT NULL;
