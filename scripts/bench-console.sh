#!/usr/bin/env bash
# The operator console at scale (BENCHMARKS.md, "Console"): server time of the overview and
# of certificate searches with ENTRIES certificates in the database. Not part of the test
# suite.
#
#   scripts/bench-console.sh [ENTRIES]        # default 1000000, on SQLite
#   BACKEND=postgres scripts/bench-console.sh # the same on a throwaway PostgreSQL
#
# What it does, in a scratch directory (kept; its path is printed):
#   1. `signet serve` once to initialise the CA, then stops it;
#   2. bulk-inserts ENTRIES certificates of that CA through SQL (created over the last 30
#      days, expiring from a day ago to 29 days ahead, 1% revoked, one DNS name each;
#      profiles 95% server, 4% client, 1% peer; requesters token:default:bench-0..99 (most),
#      k8s:cluster:ns/sa-0..49 (10%), admin (1%) and token:rare:x (30 certificates)), so
#      the triggers of migration 0011 keep the console's aggregates as they would for real
#      issuance, then ANALYZE;
#   3. starts `signet serve` again, signs in to the console with the admin token (curl),
#      and asks each page 21 times over one kept-alive connection: the first answer is
#      dropped, the others' time to first byte (server time plus a loopback round trip) is
#      reported as median and maximum.
# Needs a release build: cargo build --release -p signet
set -euo pipefail

ENTRIES=${1:-1000000}
BACKEND=${BACKEND:-sqlite}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIGNET=${SIGNET:-$ROOT/target/release/signet}
[ -x "$SIGNET" ] || { echo "build first: cargo build --release -p signet" >&2; exit 1; }
W=$(mktemp -d /tmp/signet-bench-console.XXXXXX)
chmod 755 "$W"
D=$W/data
ms() { date +%s%3N; }
SERVE_PID=
PG_UP=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  [ -n "$PG_UP" ] && runuser -u nobody -- pg_ctl -D "$W/pg/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
echo "scratch: $W; backend: $BACKEND; $ENTRIES certificates"

if [ "$BACKEND" = postgres ]; then
  mkdir -p "$W/pg" "$W/sock"
  chown nobody "$W/pg" "$W/sock"
  runuser -u nobody -- initdb -D "$W/pg/data" -U signet --auth=trust -E UTF8 >/dev/null
  runuser -u nobody -- pg_ctl -D "$W/pg/data" -l "$W/pg/log" -w -o "-c listen_addresses='' \
    -k $W/sock -c shared_buffers=256MB" start >/dev/null
  PG_UP=1
  psql -q -h "$W/sock" -U signet -d postgres -c 'create database signet'
  export SIGNET_DATABASE_URL="postgres:///signet?host=$W/sock&user=signet"
  sql() { psql -q -At -h "$W/sock" -U signet -d signet "$@"; }
  query() { sql -c "$1"; }
else
  sql() { sqlite3 "$D/signet.db" "$@"; }
  query() { sql "$1"; }
fi

serve() {
  "$SIGNET" serve --dir "$D" --init --listen 127.0.0.1:18443 --responder-listen 127.0.0.1:18080 \
    >>"$W/serve.log" 2>&1 &
  SERVE_PID=$!
  for _ in $(seq 1 6000); do
    curl -fsS -o /dev/null --cacert "$D/root_ca.crt" https://127.0.0.1:18443/healthz 2>/dev/null && return 0
    sleep 0.01
  done
  echo "serve did not come up" >&2; tail -5 "$W/serve.log" >&2; exit 1
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=; }

serve
stop
KEY_ID=$(query "select issuer_key_id from certificates where profile = 'server' limit 1")
NOW=$(date +%s)
echo "inserting $ENTRIES certificates of key $KEY_ID"
t0=$(ms)
if [ "$BACKEND" = postgres ]; then
  sql <<SQL
INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, profile, not_before,
  not_after, requester, der, created_at, revoked_at, revocation_reason)
SELECT '5e' || lpad(to_hex(g), 8, '0') || lpad(to_hex(g::bigint * 7919), 12, '0'), 'CN=bench',
  '$KEY_ID', 'CN=host-' || g || '.bench.internal', '["dns:host-' || g || '.bench.internal"]',
  CASE WHEN g % 100 < 95 THEN 'server' WHEN g % 100 < 99 THEN 'client' ELSE 'peer' END,
  $NOW - 2592000 + (g::bigint * 2592000 / $ENTRIES), $NOW - 86400 + (g::bigint * 2592000 / $ENTRIES),
  CASE WHEN g % 33333 = 7 THEN 'token:rare:x' WHEN g % 10 = 9 THEN 'k8s:cluster:ns/sa-' || (g % 50)
       WHEN g % 101 = 0 THEN 'admin' ELSE 'token:default:bench-' || (g % 100) END,
  '\x00', $NOW - 2592000 + (g::bigint * 2592000 / $ENTRIES),
  CASE WHEN g % 100 = 0 THEN $NOW - 30 END, CASE WHEN g % 100 = 0 THEN 1 END
FROM generate_series(1, $ENTRIES) AS g;
VACUUM ANALYZE;
SQL
else
  sql <<SQL
WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $ENTRIES)
INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, profile, not_before,
  not_after, requester, der, created_at, revoked_at, revocation_reason)
SELECT printf('5e%08x%012x', g, g * 7919), 'CN=bench', '$KEY_ID',
  'CN=host-' || g || '.bench.internal', '["dns:host-' || g || '.bench.internal"]',
  CASE WHEN g % 100 < 95 THEN 'server' WHEN g % 100 < 99 THEN 'client' ELSE 'peer' END,
  $NOW - 2592000 + (g * 2592000 / $ENTRIES), $NOW - 86400 + (g * 2592000 / $ENTRIES),
  CASE WHEN g % 33333 = 7 THEN 'token:rare:x' WHEN g % 10 = 9 THEN 'k8s:cluster:ns/sa-' || (g % 50)
       WHEN g % 101 = 0 THEN 'admin' ELSE 'token:default:bench-' || (g % 100) END, x'00',
  $NOW - 2592000 + (g * 2592000 / $ENTRIES),
  CASE WHEN g % 100 = 0 THEN $NOW - 30 END, CASE WHEN g % 100 = 0 THEN 1 END
FROM s;
ANALYZE;
SQL
fi
echo "inserted in $(( $(ms) - t0 )) ms"

serve
JAR=$W/cookies
# Sign in (same-origin form post), keeping the session cookie.
curl -fsS -o /dev/null --cacert "$D/root_ca.crt" -c "$JAR" -H "Origin: https://127.0.0.1:18443" \
  --data-urlencode "token=$(cat "$D/admin.token")" https://127.0.0.1:18443/ui/sign-in
timing() { # NAME PATH
  local urls=()
  for _ in $(seq 1 21); do urls+=(-o /dev/null "https://127.0.0.1:18443$2"); done
  curl -sS --cacert "$D/root_ca.crt" -b "$JAR" -w '%{http_code} %{time_starttransfer}\n' \
    "${urls[@]}" | tail -n +2 | sort -k2 -n | awk -v name="$1" '
      { if ($1 != 200) bad = $1; t[NR] = $2 * 1000 }
      END { if (bad) { print name ": HTTP " bad; exit 1 }
            printf "%-40s median %6.1f ms   max %6.1f ms   (20 requests)\n", name, t[int((NR + 1) / 2)], t[NR] }'
}
timing "overview (/ui)" "/ui"
timing "certificates, first page" "/ui/certificates"
timing "search by name" "/ui/certificates?q=host-4242.bench.internal"
timing "search by serial" "/ui/certificates?q=$(printf '5e%08x%012x' 4242 $((4242 * 7919)))"
timing "valid, expiring within 24 h, by expiry" "/ui/certificates?status=good&expiring=24h&sort=expiry"
timing "expired (most recently expired first)" "/ui/certificates?status=expired"
timing "expiring within 7 d (soonest first)" "/ui/certificates?expiring=7d"
timing "expiry range, 2 days" "/ui/certificates?expires_from=$(date -u -d '+3 days' +%F)&expires_until=$(date -u -d '+4 days' +%F)"
timing "revoked" "/ui/certificates?status=revoked"
timing "revoked, by expiry" "/ui/certificates?status=revoked&sort=expiry"
timing "by provisioner (90%)" "/ui/certificates?provisioner=default"
timing "by provisioner (90%), by expiry" "/ui/certificates?provisioner=default&sort=expiry"
timing "by provisioner (30 certificates)" "/ui/certificates?provisioner=rare"
timing "by provisioner (none)" "/ui/certificates?provisioner=nobody"
timing "by requester (30 certificates)" "/ui/certificates?requester=token:rare:x"
timing "by requester (9,000), by expiry" "/ui/certificates?requester=token:default:bench-5&sort=expiry-desc"
timing "by requester (none)" "/ui/certificates?requester=nobody"
timing "by profile peer (1%)" "/ui/certificates?profile=peer"
timing "by profile client (4%), by expiry" "/ui/certificates?profile=client&sort=expiry"
timing "audit log" "/ui/audit"
stop
