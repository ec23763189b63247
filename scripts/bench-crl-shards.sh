#!/usr/bin/env bash
# Partitioned CRLs against the single full CRL at scale, in one run, on a throwaway
# PostgreSQL (BENCHMARKS.md, "CRL shards"). Not part of the test suite.
#
#   scripts/bench-crl-shards.sh [TOTAL] [REVOKED] [SHARDS]   # default 1000000 1000000 64
#
# In a scratch directory (kept; its path is printed):
#   1. PostgreSQL 15 as `nobody` on a unix socket (fsync and synchronous_commit on);
#   2. `signet serve` once to initialise the CA, then stopped;
#   3. `signet-bench fill`: TOTAL certificates of that CA through the store's bulk path
#      (Store::insert_bulk, one audit row each), REVOKED of them revoked and unexpired, each
#      in its shard of SHARDS as issuance would file it; time, rate and database size per
#      certificate;
#   4. today's design, `[crl] shards = 0`: `signet serve`, one revocation, the full CRL's
#      build, store, size and the publisher's peak RSS (VmHWM);
#   5. `[crl] shards = SHARDS`: `signet serve` publishes every shard before serving (the
#      publisher logs the total); start-up time; one revocation, timed from the revoke
#      call's return to its shard served (by the responder, listing the serial); every
#      shard's size from /crl/index.json (checked against the bytes served for one); peak
#      RSS; every shard verified with `openssl crl -CAfile`.
# Needs a release build: cargo build --release -p signet -p signet-bench
set -euo pipefail

TOTAL=${1:-1000000}
REVOKED=${2:-$TOTAL}
SHARDS=${3:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIGNET=${SIGNET:-$ROOT/target/release/signet}
BENCH=${BENCH:-$ROOT/target/release/signet-bench}
for b in "$SIGNET" "$BENCH"; do
  [ -x "$b" ] || { echo "build first: cargo build --release -p signet -p signet-bench" >&2; exit 1; }
done
W=$(mktemp -d /tmp/signet-bench-crl-shards.XXXXXX)
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
  -c synchronous_commit=on -c max_connections=100 -c shared_buffers=256MB -c max_wal_size=4GB" \
  start >/dev/null
psql -q -h "$SOCK" -U signet -d postgres -c 'create database signet'
export SIGNET_DATABASE_URL="postgres:///signet?host=$SOCK&user=signet"
PSQL=(psql -q -At -h "$SOCK" -U signet -d signet)

serve() {
  "$SIGNET" serve --dir "$D" --listen 127.0.0.1:18443 --responder-listen 127.0.0.1:18080 "$@" \
    >>"$W/serve.log" 2>&1 &
  SERVE_PID=$!
}
wait_for() { # URL [curl args...]
  local url=$1; shift
  for _ in $(seq 1 200000); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.001
  done
  echo "timed out waiting for $url" >&2; return 1
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=; }
set_shards() { sed -i -E "s/^shards = [0-9]+/shards = $1/" "$D/signet.toml"; grep -q "^shards = $1\$" "$D/signet.toml"; }
hwm() { awk '/VmHWM/ {print $2, $3}' /proc/$SERVE_PID/status; }

serve --init
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
stop
KEY_ID=$("${PSQL[@]}" -c "select issuer_key_id from certificates limit 1")
before_size=$("${PSQL[@]}" -c "select pg_database_size('signet')")

echo "== fill: $TOTAL certificates, $REVOKED revoked, $SHARDS shards, key $KEY_ID"
t0=$(ms)
"$BENCH" fill --db "$SIGNET_DATABASE_URL" --issuer-key-id "$KEY_ID" --count "$TOTAL" \
  --revoked "$REVOKED" --shards "$SHARDS" --lifetime 86400s
t_fill=$(( $(ms) - t0 ))
"${PSQL[@]}" -c "VACUUM ANALYZE certificates"
size=$("${PSQL[@]}" -c "select pg_database_size('signet')")
echo "fill: ${t_fill} ms wall (with migration check); database $(( (size - before_size) / 1048576 )) MiB more:" \
  "$(( (size - before_size) / TOTAL )) bytes per certificate"
"${PSQL[@]}" -c "select relname, pg_total_relation_size(oid)/1048576 as mib from pg_class where relname in ('certificates','audit_log','certificate_names') order by 1"

issue_and_revoke() { # NAME -> prints the serial; revokes it; sets t_revoke_done (ms)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/$1.key" \
    -subj "/CN=$1.internal" -addext "subjectAltName=DNS:$1.internal" -out "$W/$1.csr" 2>/dev/null
  "$SIGNET" issue --admin --ca-url https://127.0.0.1:18443 --dir "$D" --csr "$W/$1.csr" \
    --out "$W/$1.crt" >/dev/null
}
serial_of() { openssl x509 -in "$W/$1.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//'; }

echo "== today's design: one full CRL ([crl] shards = 0)"
set_shards 0
serve
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
wait_for http://127.0.0.1:18080/readyz
issue_and_revoke full
SERIAL=$(serial_of full)
before=$(grep -c "published a CRL" "$W/serve.log" || true)
t0=$(ms)
"$SIGNET" revoke --ca-url https://127.0.0.1:18443 --dir "$D" "$SERIAL" >/dev/null
deadline=$(( $(ms) + 300000 ))
until [ "$(grep -c "published a CRL" "$W/serve.log" || true)" -gt "$before" ]; do
  [ "$(ms)" -lt "$deadline" ] || { echo "no CRL published in 300 s" >&2; exit 1; }
  sleep 0.01
done
echo "full CRL published $(( $(ms) - t0 )) ms after the revoke"
grep "published a CRL" "$W/serve.log" | tail -1
curl -fsS http://127.0.0.1:18080/crl/issuing.crl -o "$W/full.crl"
echo "full CRL: $(stat -c %s "$W/full.crl") bytes; $(openssl crl -inform DER -in "$W/full.crl" -CAfile "$D/issuing_ca.crt" -noout 2>&1)"
echo "peak RSS (full): $(hwm)"
stop

echo "== partitioned: [crl] shards = $SHARDS"
set_shards "$SHARDS"
: >"$W/serve-shards.log"
t0=$(ms)
"$SIGNET" serve --dir "$D" --listen 127.0.0.1:18443 --responder-listen 127.0.0.1:18080 \
  >>"$W/serve-shards.log" 2>&1 &
SERVE_PID=$!
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
echo "start to /healthz (every shard published first): $(( $(ms) - t0 )) ms"
grep "published every CRL partition" "$W/serve-shards.log" | tail -1
wait_for http://127.0.0.1:18080/readyz
# No shard was stored yet, so that start built and signed every shard from the database:
# the line above is "all shards rebuilt" (the scheduled re-signing does the same work).
curl -fsS http://127.0.0.1:18080/crl/index.json -o "$W/index.json"
python3 - "$W/index.json" "$KEY_ID" <<'PY'
import json, sys
idx = json.load(open(sys.argv[1]))
shards = [c for c in idx["crls"] if c["shard"] is not None and not c["delta"] and c["issuer_key_id"] == sys.argv[2]]
sizes = sorted(c["size"] for c in shards)
print(f"shards: {len(shards)}; sizes min {sizes[0]} median {sizes[len(sizes)//2]} max {sizes[-1]} bytes; total {sum(sizes)}")
print("every shard under 1 MB:", all(s < 1_000_000 for s in sizes))
PY
issue_and_revoke shard
SERIAL=$(serial_of shard)
CDP=$(openssl x509 -in "$W/shard.crt" -noout -ext crlDistributionPoints | sed -n 's/.*URI://p' | tr -d ' ')
echo "its CDP: $CDP"
t0=$(ms)
"$SIGNET" revoke --ca-url https://127.0.0.1:18443 --dir "$D" "$SERIAL" >/dev/null
t_answered=$(ms)
deadline=$(( $(ms) + 60000 ))
until curl -fsS "$CDP" -o "$W/shard.crl" 2>/dev/null \
  && openssl crl -inform DER -in "$W/shard.crl" -noout -text | grep -qi "serial number: 0*${SERIAL}\$"; do
  [ "$(ms)" -lt "$deadline" ] || { echo "the shard never listed the serial" >&2; exit 1; }
  sleep 0.002
done
t_served=$(ms)
echo "revoke answered in $(( t_answered - t0 )) ms; its shard served listing it $(( t_served - t_answered )) ms after the answer ($(( t_served - t0 )) ms after the call)"
grep "published a CRL" "$W/serve-shards.log" | tail -1
echo "shard: $(stat -c %s "$W/shard.crl") bytes; $(openssl crl -inform DER -in "$W/shard.crl" -CAfile "$D/issuing_ca.crt" -noout 2>&1)"
openssl crl -inform DER -in "$W/shard.crl" -noout -text | grep -A3 "Issuing Distribution Point"
echo "peak RSS (shards): $(hwm)"
stop
