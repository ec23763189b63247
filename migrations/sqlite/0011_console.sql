-- Signet schema 0011, SQLite flavour: the operator console (issue 20).
--
-- The PostgreSQL flavour (migrations/postgres/0011_console.sql) has the same
-- tables, columns and meanings; only the trigger syntax differs (there a
-- statement trigger per write, here a row trigger). Keep the two in step.

-- Signed-in console sessions. The browser holds a random 256-bit id in a
-- cookie; only its SHA-256 is kept here, so reading this table (or a backup)
-- gives no session. Kept in the database, so every `signet serve` replica on
-- one PostgreSQL database knows every session, and signing out anywhere ends
-- it everywhere.
CREATE TABLE console_sessions (
    id_hash    TEXT   NOT NULL PRIMARY KEY, -- hex SHA-256 of the session id
    role       TEXT   NOT NULL,             -- 'admin' or 'auditor'
    csrf       TEXT   NOT NULL,             -- the synchronizer token of its forms
    created_at BIGINT NOT NULL,             -- unix seconds
    last_seen  BIGINT NOT NULL,             -- unix seconds: the idle timeout runs from here
    expires_at BIGINT NOT NULL              -- unix seconds: the absolute end
);
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);

-- The overview's counts without scanning certificates: per hour of notAfter
-- (not_after / 3600), how many certificates and how many of them revoked.
-- "Valid now" is the sum over the hours after the current one plus an index
-- range count over the rest of the current hour; "expiring within 7 days" the
-- same over a range of hours. Kept by the triggers below in the transaction
-- that writes the certificate, revokes it or sweeps it away (retention).
-- shard is always 0 here; PostgreSQL spreads concurrent writers over shards.
CREATE TABLE certificate_expiry_hours (
    hour    BIGINT NOT NULL,
    shard   INTEGER NOT NULL,
    total   BIGINT NOT NULL,
    revoked BIGINT NOT NULL,
    PRIMARY KEY (hour, shard)
);

-- Issuance and revocation per hour (of created_at and of revoked_at), for the
-- overview's charts. History: a retention sweep does not change it.
CREATE TABLE certificate_activity_hours (
    hour    BIGINT NOT NULL,
    shard   INTEGER NOT NULL,
    issued  BIGINT NOT NULL,
    revoked BIGINT NOT NULL,
    PRIMARY KEY (hour, shard)
);

-- The revoked part of a partial hour, counted from the index alone.
CREATE INDEX certificates_revoked_not_after_idx
    ON certificates (not_after) WHERE revoked_at IS NOT NULL;

-- The overview's OCSP signer deadline: the newest signer certificate, without walking
-- every certificate issued since it (only signer rows are in this index).
CREATE INDEX certificates_ocsp_signer_idx
    ON certificates (created_at) WHERE profile = 'ocsp-signer';

-- What was recorded before this migration.
INSERT INTO certificate_expiry_hours (hour, shard, total, revoked)
SELECT not_after / 3600, 0, COUNT(*), SUM(revoked_at IS NOT NULL)
FROM certificates GROUP BY not_after / 3600;

INSERT INTO certificate_activity_hours (hour, shard, issued, revoked)
SELECT hour, 0, SUM(issued), SUM(revoked) FROM (
    SELECT created_at / 3600 AS hour, 1 AS issued, 0 AS revoked FROM certificates
    UNION ALL
    SELECT revoked_at / 3600, 0, 1 FROM certificates WHERE revoked_at IS NOT NULL
) GROUP BY hour;

CREATE TRIGGER certificate_stats_after_insert
AFTER INSERT ON certificates
BEGIN
    INSERT INTO certificate_expiry_hours (hour, shard, total, revoked)
    VALUES (NEW.not_after / 3600, 0, 1, NEW.revoked_at IS NOT NULL)
    ON CONFLICT (hour, shard) DO UPDATE
        SET total = total + 1, revoked = revoked + excluded.revoked;
    INSERT INTO certificate_activity_hours (hour, shard, issued, revoked)
    VALUES (NEW.created_at / 3600, 0, 1, 0)
    ON CONFLICT (hour, shard) DO UPDATE SET issued = issued + 1;
    INSERT INTO certificate_activity_hours (hour, shard, issued, revoked)
    SELECT NEW.revoked_at / 3600, 0, 0, 1 WHERE NEW.revoked_at IS NOT NULL
    ON CONFLICT (hour, shard) DO UPDATE SET revoked = revoked + 1;
END;

CREATE TRIGGER certificate_stats_after_revoke
AFTER UPDATE OF revoked_at ON certificates
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    UPDATE certificate_expiry_hours SET revoked = revoked + 1
    WHERE hour = NEW.not_after / 3600 AND shard = 0;
    INSERT INTO certificate_activity_hours (hour, shard, issued, revoked)
    VALUES (NEW.revoked_at / 3600, 0, 0, 1)
    ON CONFLICT (hour, shard) DO UPDATE SET revoked = revoked + 1;
END;

CREATE TRIGGER certificate_stats_after_delete
AFTER DELETE ON certificates
BEGIN
    UPDATE certificate_expiry_hours
    SET total = total - 1, revoked = revoked - (OLD.revoked_at IS NOT NULL)
    WHERE hour = OLD.not_after / 3600 AND shard = 0;
END;
