#!/usr/bin/env bash
# CRL at scale and start-up time, against a throwaway PostgreSQL (BENCHMARKS.md, "CRL" and
# "Start-up"). Not part of the test suite.
#
#   scripts/bench-crl.sh [ENTRIES]        # default 1000000
#
# What it does, in a scratch directory (kept; its path is printed):
#   1. starts PostgreSQL 15 as `nobody` on a unix socket (fsync and synchronous_commit on);
#   2. `signet serve` once on it to initialise the CA, then stops it;
#   3. bulk-inserts ENTRIES revoked certificates of that CA (generate_series);
#   4. starts `signet serve` again and times it to /healthz (HTTPS) and to the responder's
#      /readyz, and reads its RSS once idle;
#   5. revokes one certificate over the API and times until the server logs the new CRL
#      and until /crl/issuing.crl serves it; reads the peak RSS (VmHWM) and checks the CRL
#      with `openssl crl -CAfile`.
# Needs a release build: cargo build --release -p signet
set -euo pipefail

ENTRIES=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIGNET=${SIGNET:-$ROOT/target/release/signet}
[ -x "$SIGNET" ] || { echo "build first: cargo build --release -p signet" >&2; exit 1; }
W=$(mktemp -d /tmp/signet-bench-crl.XXXXXX)
chmod 755 "$W"
PG=$W/pg SOCK=$W/sock D=$W/data
mkdir -p "$PG" "$SOCK"
chown nobody "$PG" "$SOCK"
as_pg() { runuser -u nobody -- "$@"; }
ms() { date +%s%3N; }
SERVE_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  as_pg pg_ctl -D "$PG/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "scratch: $W"
as_pg initdb -D "$PG/data" -U signet --auth=trust -E UTF8 >/dev/null
as_pg pg_ctl -D "$PG/data" -l "$PG/log" -w -o "-c listen_addresses='' -k $SOCK -c fsync=on \
  -c synchronous_commit=on -c max_connections=100 -c shared_buffers=256MB" start >/dev/null
psql -q -h "$SOCK" -U signet -d postgres -c 'create database signet'
export SIGNET_DATABASE_URL="postgres:///signet?host=$SOCK&user=signet"
PSQL=(psql -q -At -h "$SOCK" -U signet -d signet)

serve() { # [--init]: the first start makes the data directory (serve refuses a missing one)
  "$SIGNET" serve --dir "$D" --listen 127.0.0.1:18443 --responder-listen 127.0.0.1:18080 "$@" \
    >>"$W/serve.log" 2>&1 &
  SERVE_PID=$!
}
wait_for() { # URL [curl args...]
  local url=$1; shift
  for _ in $(seq 1 20000); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.001
  done
  echo "timed out waiting for $url" >&2; return 1
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=; }

serve --init
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
stop

# The issuing CA's key: every certificate so far (the server's own, the OCSP signer's) is
# under it. (crls also holds the root CA's CRL, under the root's key.)
KEY_ID=$("${PSQL[@]}" -c "select issuer_key_id from certificates limit 1")
echo "inserting $ENTRIES revoked certificates of key $KEY_ID"
t0=$(ms)
"${PSQL[@]}" <<SQL
INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, profile, not_before,
  not_after, requester, der, created_at, revoked_at, revocation_reason, revocation_seq)
SELECT '5e' || lpad(to_hex(g), 8, '0') || lpad(to_hex(g::bigint * 7919), 12, '0'), 'CN=bench',
  '$KEY_ID', 'CN=bench-' || g, '[]', 'server', extract(epoch from now())::bigint - 60,
  extract(epoch from now())::bigint + 86400, 'bench', '\x00', extract(epoch from now())::bigint,
  extract(epoch from now())::bigint - 30, g % 6, NULL
FROM generate_series(1, $ENTRIES) AS g;
VACUUM ANALYZE certificates;
SQL
echo "inserted in $(( $(ms) - t0 )) ms"

# Start-up with the data in place (the newest CRL is still the small one).
t0=$(ms)
serve
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
t_health=$(( $(ms) - t0 ))
wait_for http://127.0.0.1:18080/readyz
t_ready=$(( $(ms) - t0 ))
sleep 2
echo "start to /healthz: ${t_health} ms; to responder /readyz: ${t_ready} ms"
echo "idle RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$SERVE_PID/status)"

# Issue one certificate with the admin token and revoke it: the CRL then carries them all.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/leaf.key" \
  -subj /CN=bench.internal -addext subjectAltName=DNS:bench.internal -out "$W/leaf.csr" 2>/dev/null
"$SIGNET" issue --admin --ca-url https://127.0.0.1:18443 --dir "$D" --csr "$W/leaf.csr" \
  --out "$W/leaf.crt" >/dev/null
SERIAL=$(openssl x509 -in "$W/leaf.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
before=$(grep -c "published a CRL" "$W/serve.log" || true)
t0=$(ms)
"$SIGNET" revoke --ca-url https://127.0.0.1:18443 --dir "$D" "$SERIAL" >/dev/null
t_revoked=$(( $(ms) - t0 ))
deadline=$(( $(ms) + 120000 ))
until [ "$(grep -c "published a CRL" "$W/serve.log" || true)" -gt "$before" ]; do
  [ "$(ms)" -lt "$deadline" ] || { echo "no CRL published in 120 s" >&2; tail -5 "$W/serve.log" >&2; exit 1; }
  sleep 0.01
done
t_published=$(( $(ms) - t0 ))
NUMBER=$(grep "published a CRL" "$W/serve.log" | tail -1 | sed -E 's/.*number=([0-9]+).*/\1/')
until curl -fsS http://127.0.0.1:18080/crl/issuing.crl -o "$W/issuing.crl" \
  && [ "$(openssl crl -inform DER -in "$W/issuing.crl" -noout -crlnumber 2>/dev/null)" = "$(printf 'crlNumber=0x%02X' "$NUMBER")" ]; do
  [ "$(ms)" -lt "$deadline" ] || { echo "the new CRL was not served in 120 s" >&2; exit 1; }
  sleep 0.05
done
t_served=$(( $(ms) - t0 ))
echo "revoke answered in ${t_revoked} ms; CRL published ${t_published} ms and served ${t_served} ms after the revoke"
grep "published a CRL" "$W/serve.log" | tail -1
echo "CRL: $(stat -c %s "$W/issuing.crl") bytes; $(openssl crl -inform DER -in "$W/issuing.crl" -CAfile "$D/issuing_ca.crt" -noout 2>&1)"
openssl crl -inform DER -in "$W/issuing.crl" -noout -text | grep -qi "serial number: 0*${SERIAL}\$" \
  && echo "the revoked certificate ${SERIAL} is listed"
awk '/VmHWM|VmRSS/ {print $1, $2, $3}' /proc/$SERVE_PID/status
stop

# Start-up again, now that the newest CRL is the large one.
t0=$(ms)
serve
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
t_health=$(( $(ms) - t0 ))
wait_for http://127.0.0.1:18080/readyz
t_ready=$(( $(ms) - t0 ))
deadline=$(( $(ms) + 120000 ))
until curl -fs -o /dev/null http://127.0.0.1:18080/crl/issuing.crl; do
  [ "$(ms)" -lt "$deadline" ] || { echo "no CRL served 120 s after the restart" >&2; exit 1; }
  sleep 0.01
done
t_crl=$(( $(ms) - t0 ))
sleep 2
echo "restart with the large CRL: /healthz ${t_health} ms, responder /readyz ${t_ready} ms, CRL served ${t_crl} ms"
awk '/VmHWM|VmRSS/ {print "idle " $1, $2, $3}' /proc/$SERVE_PID/status
