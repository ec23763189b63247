#!/usr/bin/env bash
# ACME benchmark (issue 16; BENCHMARKS.md, "ACME orders"): `signet-bench acme` against a
# PostgreSQL-backed `signet serve` (A) and against Pebble (B), alternating A B A B. Not part of
# the test suite.
#
#   scripts/bench-acme.sh BIN_DIR PG_SOCKET_DIR [PAIRS]
#
# BIN_DIR holds a release `signet` and `signet-bench`. PG_SOCKET_DIR is the unix socket
# directory of a PostgreSQL server whose user `signet` may create databases. Pebble is
# Debian's `pebble` package (skipped, and said so, when /usr/bin/pebble is missing).
# Environment: C (clients, default 32), N (orders per run, 3000), K (accounts, 64).
#
# Signet: a fresh database `acmebench` and data directory, `signet serve --init` on
# 127.0.0.1:18443, then `signet provisioner add acme --name web --http01-port 18402
# --validation-networks 127.0.0.0/8` (ACME has no rate limit to raise) and serve again.
# Pebble: its own TLS certificate (made here with openssl), httpPort 18402,
# PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_VA_ALWAYS_VALID=0. Each run prints the
# tool's result line and the CPU seconds that the server, PostgreSQL's backends for the
# database and the tool used over the whole run (account creation and CSR preparation
# included). Exits non-zero on any failure (the tool exits non-zero on any failed order).
set -euo pipefail
BIN=$(cd "$1" && pwd) SOCK=$2 PAIRS=${3:-2}
C=${C:-32} N=${N:-3000} K=${K:-64}
HTTP01=18402
W=$(mktemp -d /tmp/signet-bench-acme.XXXXXX)
URL="postgres:///acmebench?host=$SOCK&user=signet"
cd "$W"
SERVER_PID=
stop() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; fi; }
trap stop EXIT
cpu() { # CPU seconds (user + system) of the given pids, from /proc
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}' 
}
pg_backends() { pgrep -f "postgres: signet acmebench" || true; }
bench() { # label directory-url cacert
  local out t0 t1 tool
  TIMEFORMAT='%U %S'
  { time "$BIN/signet-bench" acme --directory "$2" --cacert "$3" -c "$C" -n "$N" --accounts "$K" \
      --http01-listen "0.0.0.0:$HTTP01" >out.txt 2>err.txt; } 2>time.txt ||
    { cat err.txt out.txt >&2; echo "$1: signet-bench failed" >&2; exit 1; }
  tool=$(awk '{printf "%.1f", $1 + $2}' time.txt)
  echo "$1: $(tail -1 out.txt)"
  echo "$1 cpu: server $(cpu "$SERVER_PID")s postgres $(cpu $(pg_backends))s tool ${tool}s"
}
signet_run() {
  local n=$1 D=$W/data S=$BIN/signet
  psql -q -h "$SOCK" -U signet -d postgres -c 'drop database if exists acmebench' -c 'create database acmebench' 2>/dev/null
  rm -rf "$D" ready
  SIGNET_DATABASE_URL=$URL "$S" serve --dir "$D" --init --listen 127.0.0.1:18443 \
    --responder-listen off --ready-file ready >serve.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 150); do [ -s ready ] && break; sleep 0.2; done
  [ -s ready ] || { cat serve.log; exit 1; }
  stop
  SIGNET_DATABASE_URL=$URL "$S" provisioner add acme --dir "$D" --name web --http01-port "$HTTP01" \
    --validation-networks 127.0.0.0/8 >/dev/null
  rm -f ready
  SIGNET_DATABASE_URL=$URL "$S" serve --dir "$D" --listen 127.0.0.1:18443 --responder-listen off \
    --ready-file ready >serve.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 150); do [ -s ready ] && break; sleep 0.2; done
  [ -s ready ] || { cat serve.log; exit 1; }
  bench "signet run$n" https://127.0.0.1:18443/acme/web/directory "$D/root_ca.crt"
  stop
}
pebble_run() {
  local n=$1
  if [ ! -x /usr/bin/pebble ]; then echo "pebble run$n: skipped, /usr/bin/pebble missing (apt-get install pebble)"; return; fi
  if [ ! -f pebble.crt ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tlsroot.key \
      -subj /CN=pebble-bench-root -days 2 -out tlsroot.crt 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout pebble.key \
      -subj /CN=localhost -out pebble.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in pebble.csr -CA tlsroot.crt -CAkey tlsroot.key -CAcreateserial -days 2 \
      -extfile ext.cnf -out pebble.crt 2>/dev/null
    cat >pebble.json <<EOF
{"pebble": {"listenAddress": "127.0.0.1:18444", "managementListenAddress": "127.0.0.1:18445",
 "certificate": "$W/pebble.crt", "privateKey": "$W/pebble.key", "httpPort": $HTTP01,
 "tlsPort": 18403, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
  fi
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_VA_ALWAYS_VALID=0 \
    /usr/bin/pebble -config pebble.json >pebble.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -fsS --cacert tlsroot.crt https://127.0.0.1:18444/dir >/dev/null 2>&1 && break; sleep 0.2
  done
  curl -fsS --cacert tlsroot.crt https://127.0.0.1:18444/dir >/dev/null || { cat pebble.log; exit 1; }
  bench "pebble run$n" https://127.0.0.1:18444/dir tlsroot.crt
  stop
}
echo "C=$C N=$N K=$K; load before: $(uptime)"
for n in $(seq "$PAIRS"); do signet_run "$n"; pebble_run "$n"; done
echo "load after: $(uptime)"
