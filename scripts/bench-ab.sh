#!/usr/bin/env bash
# A/B of two Signet builds: issuance and OCSP GET, alternating A B A B A B (BENCHMARKS.md,
# "issue 15's move, A/B"). Not part of the test suite.
#
#   scripts/bench-ab.sh DIR_A DIR_B PG_SOCKET_DIR [PAIRS]
#
# DIR_A and DIR_B each hold a release `signet` and `signet-bench`. PG_SOCKET_DIR is the unix
# socket directory of a PostgreSQL server whose user `signet` may create databases (see
# BENCHMARKS.md, "Commands"). Each run: a fresh database `ab` and data directory, `signet serve
# --init` on 127.0.0.1:18443/18080, provisioner rate limits raised to 1,000,000, then
# `signet-bench issue -c 64 -n 20000` (every answer checked), one leaf issued with
# `issue --admin`, its OCSP answer verified with `openssl ocsp -respin -CAfile`, and
# `wrk -t2 -c64 -d8s` with bench/peers/wrk/get_expect.lua (every answer 200 and
# byte-identical to the verified one; wrk fails on any other). Exits non-zero on any failure.
set -euo pipefail
A=$1 B_=$2 SOCK=$3 PAIRS=${4:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/signet-bench-ab.XXXXXX)
URL="postgres:///ab?host=$SOCK&user=signet"
cd "$W"
run() {
  local dir=$1 n=$2 D=$W/data
  local S=$dir/signet B=$dir/signet-bench
  psql -q -h "$SOCK" -U signet -d postgres -c 'drop database if exists ab' -c 'create database ab' 2>/dev/null
  rm -rf "$D" ready
  SIGNET_DATABASE_URL=$URL setsid "$S" serve --dir "$D" --init --listen 127.0.0.1:18443 \
    --responder-listen 127.0.0.1:18080 --ready-file ready >serve.log 2>&1 &
  for _ in $(seq 100); do [ -s ready ] && break; sleep 0.2; done
  [ -s ready ] || { cat serve.log; exit 1; }
  pkill -f "$S serve --dir $D"; sleep 1
  python3 - "$D/signet.toml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
key = 'public_key_file = "provisioners/default.pub"\n'
assert key in s, "no default provisioner in signet.toml"
s = s.replace(key, key + 'rate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n', 1)
open(p, 'w').write(s)
PY
  rm -f ready
  SIGNET_DATABASE_URL=$URL setsid "$S" serve --dir "$D" --ready-file ready >serve.log 2>&1 &
  for _ in $(seq 100); do [ -s ready ] && break; sleep 0.2; done
  [ -s ready ] || { cat serve.log; exit 1; }
  echo "$dir run$n issue: $("$B" issue --url https://127.0.0.1:18443 --token-key "$D/provisioners/default.key" \
    --cacert "$D/root_ca.crt" -c 64 -n 20000 | tail -1)"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key \
    -subj /CN=leaf.internal -addext subjectAltName=DNS:leaf.internal -out leaf.csr 2>/dev/null
  "$S" issue --admin --ca-url https://127.0.0.1:18443 --dir "$D" --csr leaf.csr --out leaf.chain >/dev/null 2>&1
  openssl x509 -in leaf.chain -out leaf.pem
  openssl ocsp -issuer "$D/issuing_ca.crt" -cert leaf.pem -no_nonce -reqout req.der 2>/dev/null
  local G; G=$(base64 -w0 req.der | python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.stdin.read(),safe=""))')
  curl -fsS "http://127.0.0.1:18080/ocsp/$G" -o resp.der
  openssl ocsp -respin resp.der -issuer "$D/issuing_ca.crt" -CAfile "$D/root_ca.crt" -cert leaf.pem 2>&1 |
    grep -q "^Response verify OK" || { echo "the OCSP answer does not verify" >&2; exit 1; }
  local o; o=$(wrk -t2 -c64 -d8s --latency -s "$ROOT/bench/peers/wrk/get_expect.lua" \
    "http://127.0.0.1:18080/ocsp/$G" -- resp.der)
  echo "$dir run$n ocsp: $(echo "$o" | grep Requests/sec | awk '{print $2}')/s p99 $(echo "$o" | awk '$1=="99%"{print $2}') | $(echo "$o" | grep checked)"
  pkill -f "$S serve --dir $D"; sleep 1
}
for n in $(seq "$PAIRS"); do run "$A" "$n"; run "$B_" "$n"; done
