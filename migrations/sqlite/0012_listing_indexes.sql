-- Signet schema 0012, SQLite flavour: indexes that make every certificate listing filter
-- an index walk (the console's searches and GET /api/v1/certificates, issue 20).
--
-- The PostgreSQL flavour (migrations/postgres/0012_listing_indexes.sql) has the same
-- indexes; only the provisioner expression is spelled differently. Keep the two in step,
-- and keep that expression identical to PROVISIONER_SQLITE in signet-store's listing.rs:
-- SQLite uses an index on an expression only for the very same expression.
--
-- Each pair leads with the filter's value and continues in one of the listing's orders:
-- (created_at, serial), newest first read backwards, and (not_after, serial), by expiry.
-- So "this requester's newest 50" or "this provisioner's 50 soonest to expire" is one
-- range of one index however many or few certificates match; before, a filter that
-- matched few rows walked the whole created_at index (718 ms at 1,000,000 certificates)
-- and one that matched many under the expiry order sorted them all. Each index costs one
-- more B-tree entry per certificate written (BENCHMARKS.md, "Listing indexes").

-- requester = ? (GET /api/v1/certificates?requester=, the console's requester search).
CREATE INDEX certificates_requester_idx ON certificates (requester, created_at, serial);
CREATE INDEX certificates_requester_expiry_idx ON certificates (requester, not_after, serial);

-- The provisioner of a requester recorded as token:<name>:..., k8s:<name>:... or
-- acme:<name>:... (the text between the first and second colon), else NULL. The listing
-- uses it for a provisioner name without a colon; a name with one is matched by prefix
-- ranges over certificates_requester_idx, as before.
CREATE INDEX certificates_provisioner_idx ON certificates (
    (CASE WHEN substr(requester, 1, instr(requester, ':') - 1) IN ('token', 'k8s', 'acme')
               AND instr(substr(requester, instr(requester, ':') + 1), ':') > 1
          THEN substr(requester, instr(requester, ':') + 1,
                      instr(substr(requester, instr(requester, ':') + 1), ':') - 1)
     END),
    created_at, serial);
CREATE INDEX certificates_provisioner_expiry_idx ON certificates (
    (CASE WHEN substr(requester, 1, instr(requester, ':') - 1) IN ('token', 'k8s', 'acme')
               AND instr(substr(requester, instr(requester, ':') + 1), ':') > 1
          THEN substr(requester, instr(requester, ':') + 1,
                      instr(substr(requester, instr(requester, ':') + 1), ':') - 1)
     END),
    not_after, serial);

-- profile = ? (client or peer among many server certificates, or server among them).
CREATE INDEX certificates_profile_idx ON certificates (profile, created_at, serial);
CREATE INDEX certificates_profile_expiry_idx ON certificates (profile, not_after, serial);

-- status = revoked, newest first (0011's partial index on not_after serves the expiry
-- orders). Only revoked rows are in it: it costs the revocation, not the issuance.
CREATE INDEX certificates_revoked_created_idx
    ON certificates (created_at, serial) WHERE revoked_at IS NOT NULL;
