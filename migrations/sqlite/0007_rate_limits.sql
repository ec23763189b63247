-- Signet schema 0007, SQLite flavour: rate-limit buckets shared by every process.
--
-- The PostgreSQL flavour (migrations/postgres/0007_rate_limits.sql) has the same
-- table, in the same types. Keep the two files in step.
--
-- One token bucket per provisioner ("p/<name>") and per requester of a
-- provisioner ("i/<name>/<SHA-256 of the requester, hex>"), so that any number
-- of `signet serve` replicas on one PostgreSQL database share one budget. A
-- request takes one token (1000 milli-tokens) in a single UPDATE that first
-- refills the bucket for the time elapsed by the database's clock (see
-- signet-store's rate_limit.rs). A missing row is a full bucket; a row is
-- deleted once it would be full again (full_at_ms in the past).
CREATE TABLE rate_limit_buckets (
    bucket       TEXT   NOT NULL PRIMARY KEY,
    milli_tokens BIGINT NOT NULL,  -- tokens left after the last grant, x 1000
    updated_ms   BIGINT NOT NULL,  -- unix milliseconds (database clock) of the last grant
    full_at_ms   BIGINT NOT NULL   -- unix milliseconds at which the bucket is full again
);
CREATE INDEX rate_limit_buckets_full_at_idx ON rate_limit_buckets (full_at_ms);
