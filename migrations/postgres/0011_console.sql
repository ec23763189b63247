-- Signet schema 0011, PostgreSQL flavour: the operator console (issue 20).
--
-- The SQLite flavour (migrations/sqlite/0011_console.sql) has the same tables,
-- columns and meanings, and says what each is for. Here the aggregates are
-- kept by statement triggers over transition tables (group commit inserts many
-- certificates per statement: one upsert per distinct hour, not per row), and
-- each writer adds to its own shard (its backend pid modulo 8), so concurrent
-- batches of several writers and replicas do not queue on one hot row. Rows are
-- upserted in (hour, shard) order, so two writers never lock them crosswise.

CREATE TABLE console_sessions (
    id_hash    TEXT   NOT NULL PRIMARY KEY,
    role       TEXT   NOT NULL,
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);

CREATE TABLE certificate_expiry_hours (
    hour    BIGINT NOT NULL,
    shard   INTEGER NOT NULL,
    total   BIGINT NOT NULL,
    revoked BIGINT NOT NULL,
    PRIMARY KEY (hour, shard)
);

CREATE TABLE certificate_activity_hours (
    hour    BIGINT NOT NULL,
    shard   INTEGER NOT NULL,
    issued  BIGINT NOT NULL,
    revoked BIGINT NOT NULL,
    PRIMARY KEY (hour, shard)
);

CREATE INDEX certificates_revoked_not_after_idx
    ON certificates (not_after) WHERE revoked_at IS NOT NULL;

CREATE INDEX certificates_ocsp_signer_idx
    ON certificates (created_at) WHERE profile = 'ocsp-signer';

INSERT INTO certificate_expiry_hours (hour, shard, total, revoked)
SELECT not_after / 3600, 0, COUNT(*), COUNT(revoked_at)
FROM certificates GROUP BY not_after / 3600;

INSERT INTO certificate_activity_hours (hour, shard, issued, revoked)
SELECT hour, 0, SUM(issued), SUM(revoked) FROM (
    SELECT created_at / 3600 AS hour, 1 AS issued, 0 AS revoked FROM certificates
    UNION ALL
    SELECT revoked_at / 3600, 0, 1 FROM certificates WHERE revoked_at IS NOT NULL
) AS a GROUP BY hour;

CREATE FUNCTION certificate_stats_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := pg_backend_pid() % 8;
BEGIN
    INSERT INTO certificate_expiry_hours (hour, shard, total, revoked)
    SELECT n.not_after / 3600, my_shard, COUNT(*), COUNT(n.revoked_at)
    FROM inserted AS n GROUP BY n.not_after / 3600 ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE
        SET total = certificate_expiry_hours.total + excluded.total,
            revoked = certificate_expiry_hours.revoked + excluded.revoked;
    INSERT INTO certificate_activity_hours (hour, shard, issued, revoked)
    SELECT a.hour, my_shard, SUM(a.issued), SUM(a.revoked) FROM (
        SELECT n.created_at / 3600 AS hour, 1 AS issued, 0 AS revoked FROM inserted AS n
        UNION ALL
        SELECT n.revoked_at / 3600, 0, 1 FROM inserted AS n WHERE n.revoked_at IS NOT NULL
    ) AS a GROUP BY a.hour ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE
        SET issued = certificate_activity_hours.issued + excluded.issued,
            revoked = certificate_activity_hours.revoked + excluded.revoked;
    RETURN NULL;
END;
$$;

CREATE TRIGGER certificate_stats_after_insert
AFTER INSERT ON certificates
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION certificate_stats_inserted();

CREATE FUNCTION certificate_stats_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := pg_backend_pid() % 8;
BEGIN
    INSERT INTO certificate_expiry_hours (hour, shard, total, revoked)
    SELECT n.not_after / 3600, my_shard, 0, COUNT(*)
    FROM changed_new AS n JOIN changed_old AS o ON o.serial = n.serial
    WHERE o.revoked_at IS NULL AND n.revoked_at IS NOT NULL
    GROUP BY n.not_after / 3600 ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE
        SET revoked = certificate_expiry_hours.revoked + excluded.revoked;
    INSERT INTO certificate_activity_hours (hour, shard, issued, revoked)
    SELECT n.revoked_at / 3600, my_shard, 0, COUNT(*)
    FROM changed_new AS n JOIN changed_old AS o ON o.serial = n.serial
    WHERE o.revoked_at IS NULL AND n.revoked_at IS NOT NULL
    GROUP BY n.revoked_at / 3600 ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE
        SET revoked = certificate_activity_hours.revoked + excluded.revoked;
    RETURN NULL;
END;
$$;

CREATE TRIGGER certificate_stats_after_revoke
AFTER UPDATE ON certificates
REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
FOR EACH STATEMENT EXECUTE FUNCTION certificate_stats_revoked();

CREATE FUNCTION certificate_stats_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := pg_backend_pid() % 8;
BEGIN
    INSERT INTO certificate_expiry_hours (hour, shard, total, revoked)
    SELECT o.not_after / 3600, my_shard, -COUNT(*), -COUNT(o.revoked_at)
    FROM removed AS o GROUP BY o.not_after / 3600 ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE
        SET total = certificate_expiry_hours.total + excluded.total,
            revoked = certificate_expiry_hours.revoked + excluded.revoked;
    RETURN NULL;
END;
$$;

CREATE TRIGGER certificate_stats_after_delete
AFTER DELETE ON certificates
REFERENCING OLD TABLE AS removed
FOR EACH STATEMENT EXECUTE FUNCTION certificate_stats_deleted();
