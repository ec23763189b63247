-- Signet schema 0006, PostgreSQL flavour: the ACME server's objects (RFC 8555).
--
-- The SQLite flavour (migrations/sqlite/0006_acme.sql) has the same
-- tables, in the same types. Keep the two files in step.
--
-- Everything an ACME exchange creates lives here, so that any number of
-- `signet serve` processes on one database answer as one server: a nonce
-- one made is accepted by another, an order made through one is finalized
-- through another. Times are unix seconds. JSON columns hold text.

-- Server-wide secrets shared by every process on the database: the key
-- nonces are authenticated with. Written once (first writer wins), never
-- changed.
CREATE TABLE acme_secrets (
    name       TEXT   NOT NULL PRIMARY KEY,
    secret     TEXT   NOT NULL,  -- base64url
    created_at BIGINT NOT NULL
);

-- Nonces already used: the replay filter. A nonce is accepted only while its
-- MAC-protected timestamp is recent, so rows are purged once they expire.
CREATE TABLE acme_used_nonces (
    nonce      TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX acme_used_nonces_expires_idx ON acme_used_nonces (expires_at);

-- Accounts, one per (provisioner, account key).
CREATE TABLE acme_accounts (
    id          TEXT   NOT NULL PRIMARY KEY,
    provisioner TEXT   NOT NULL,
    thumbprint  TEXT   NOT NULL,  -- RFC 7638 SHA-256 thumbprint of the key, base64url
    jwk         TEXT   NOT NULL,  -- the account's public key, JWK JSON
    status      TEXT   NOT NULL,  -- valid | deactivated | revoked
    contact     TEXT   NOT NULL,  -- JSON array of URLs
    eab_kid     TEXT,             -- the external account key it was bound with
    created_at  BIGINT NOT NULL,
    UNIQUE (provisioner, thumbprint)
);

-- Orders. identifiers: JSON array of {"type","value"}.
CREATE TABLE acme_orders (
    id                 TEXT   NOT NULL PRIMARY KEY,
    account_id         TEXT   NOT NULL REFERENCES acme_accounts (id) ON DELETE CASCADE,
    status             TEXT   NOT NULL,  -- pending | ready | processing | valid | invalid
    identifiers        TEXT   NOT NULL,
    expires_at         BIGINT NOT NULL,
    error              TEXT,             -- problem document, JSON
    certificate_serial TEXT,             -- lowercase hex, once valid
    replaces           TEXT,             -- ARI CertID of the certificate this order replaces
    created_at         BIGINT NOT NULL
);
CREATE INDEX acme_orders_account_idx ON acme_orders (account_id, created_at);
CREATE INDEX acme_orders_expires_idx ON acme_orders (expires_at);

-- Authorizations, one per identifier of an order.
CREATE TABLE acme_authorizations (
    id               TEXT   NOT NULL PRIMARY KEY,
    order_id         TEXT   NOT NULL REFERENCES acme_orders (id) ON DELETE CASCADE,
    account_id       TEXT   NOT NULL,
    identifier_type  TEXT   NOT NULL,  -- dns | ip
    identifier_value TEXT   NOT NULL,  -- as ordered: "*.example.com" for a wildcard
    status           TEXT   NOT NULL,  -- pending | valid | invalid | deactivated
    expires_at       BIGINT NOT NULL
);
CREATE INDEX acme_authorizations_order_idx ON acme_authorizations (order_id);

-- Challenges of an authorization.
CREATE TABLE acme_challenges (
    id           TEXT   NOT NULL PRIMARY KEY,
    authz_id     TEXT   NOT NULL REFERENCES acme_authorizations (id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL,  -- http-01 | dns-01 | tls-alpn-01
    token        TEXT   NOT NULL,
    status       TEXT   NOT NULL,  -- pending | processing | valid | invalid
    validated_at BIGINT,
    error        TEXT             -- problem document, JSON
);
CREATE INDEX acme_challenges_authz_idx ON acme_challenges (authz_id);

-- External account binding keys (RFC 8555 section 7.3.4), per provisioner.
-- The HMAC key must be kept to verify bindings; it is as secret as the
-- database itself.
CREATE TABLE acme_eab_keys (
    kid         TEXT   NOT NULL PRIMARY KEY,
    provisioner TEXT   NOT NULL,
    hmac_key    TEXT   NOT NULL,  -- base64url
    created_at  BIGINT NOT NULL,
    account_id  TEXT,             -- the account it was bound to (once only)
    revoked_at  BIGINT
);
