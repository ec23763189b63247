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
# Environment: C (clients, default 32), N (orders per run, 3000), K (accounts, 64), LIMIT
# (seconds one run of the tool may take, 900; every order is also bounded by the tool's
# --order-timeout, 60 s, so a server that never validates ends the run with errors),
# PEBBLE=0 (Signet only), PN (orders per Pebble run, 500) and PLIMIT (seconds, 120).
#
# Pebble runs are shorter: Debian's Pebble 2.4 deadlocks under this load, sooner or later
# (measured here: 3,000 orders with 32 clients wedged it every time, after about 1,000;
# runs of 100 to 300 completed in 5 tries of 6; a longer poll interval did not help). Its Order handler takes an
# order's read lock twice (letsencrypt/pebble#554, fixed upstream after 2.10.1); a writer
# between the two waits for ever, and so does every request after it. A wedged run is
# reported as such, with Pebble's goroutines saved, and gives no figure.
#
# Signet: a fresh database `acmebench` and data directory, `signet serve --init` on
# 127.0.0.1:18443, then `signet provisioner add acme --name web --http01-port 18402
# --validation-networks 127.0.0.0/8`, its rate limit raised out of the way (newAccount and
# newOrder take from it; default 1000/s), and serve again. After the server has stopped
# (so that its backends have flushed their statistics), the database's counters per order:
# commits (pg_stat_database xact_commit), rows written, and, when the extension can be
# created (it needs shared_preload_libraries = pg_stat_statements and a role allowed to),
# SQL statements (pg_stat_statements calls); and the cluster's WAL flushes (pg_stat_wal
# wal_sync) per order.
# Pebble: its own TLS certificate (made here with openssl), httpPort 18402,
# PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_VA_ALWAYS_VALID=0. Each run prints the
# tool's result line and the CPU seconds that the server, PostgreSQL's backends for the
# database and the tool used over the whole run (account creation and CSR preparation
# included). Exits non-zero when a Signet run fails (the tool exits non-zero on any failed
# order); a Pebble run that fails is reported and the script goes on.
set -euo pipefail
BIN=$(cd "$1" && pwd) SOCK=$2 PAIRS=${3:-2} REPO=$(cd "$(dirname "$0")/.." && pwd)
C=${C:-32} N=${N:-3000} K=${K:-64} LIMIT=${LIMIT:-900} PEBBLE=${PEBBLE:-1}
PN=${PN:-500} PLIMIT=${PLIMIT:-120}
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
bench() { # label directory-url cacert [orders [limit]]
  local out t0 t1 tool n=${4:-$N} limit=${5:-$LIMIT}
  TIMEFORMAT='%U %S'
  { time timeout "$limit" "$BIN/signet-bench" acme --directory "$2" --cacert "$3" -c "$C" \
      -n "$n" --accounts "$K" --http01-listen "0.0.0.0:$HTTP01" >out.txt 2>err.txt; } 2>time.txt ||
    { cat err.txt out.txt >&2; echo "$1: signet-bench failed (or ran over ${limit}s)" >&2; return 1; }
  tool=$(awk '{printf "%.1f", $1 + $2}' time.txt)
  echo "$1: $(tail -1 out.txt)"
  local server_cpu pg_cpu
  server_cpu=$(cpu "$SERVER_PID") pg_cpu=$(cpu $(pg_backends))
  echo "$1 cpu: server ${server_cpu}s postgres ${pg_cpu}s tool ${tool}s" \
    "(per order, accounts and set-up included: server $(per_order "$server_cpu" 1000 "$n") ms," \
    "postgres $(per_order "$pg_cpu" 1000 "$n") ms)"
}
per_order() { awk -v v="$1" -v m="$2" -v n="${3:-$N}" 'BEGIN {printf "%.2f", v * m / n}'; }
q() { psql -qAt -h "$SOCK" -U signet -d "$1" -c "$2" 2>/dev/null; }
db_counters() { # commits, rows written, statements (or -), WAL flushes of the cluster
  local row calls wal
  row=$(q postgres "select xact_commit, tup_inserted + tup_updated + tup_deleted from pg_stat_database where datname = 'acmebench'")
  calls=$(q acmebench "select sum(calls) from pg_stat_statements where dbid = (select oid from pg_database where datname = 'acmebench')" || true)
  wal=$(q postgres "select wal_sync from pg_stat_wal" || true)
  echo "${row:-0|0}|${calls:--}|${wal:--}"
}
db_report() { # label counters-before counters-after
  awk -F'|' -v b="$2" -v a="$3" -v n="$N" -v k="$K" -v label="$1" 'BEGIN {
    split(b, x, "|"); split(a, y, "|");
    # Per order, the accounts made before the timed loop included (K of them for N orders).
    s = (x[3] == "-" || y[3] == "-" || y[3] == "") ? "- (no pg_stat_statements)" : sprintf("%.1f", (y[3] - x[3]) / n);
    w = (x[4] == "-" || y[4] == "-") ? "-" : sprintf("%.1f", (y[4] - x[4]) / n);
    printf "%s database per order (%d accounts included): commits %.1f, rows written %.1f, statements %s, WAL flushes %s\n",
      label, k, (y[1] - x[1]) / n, (y[2] - x[2]) / n, s, w }'
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
  # The web provisioner's entry is the last: raise its limits out of the benchmark's way.
  awk 'BEGIN {web = 0} /^name = "web"$/ {web = 1} {print}
    web == 1 && /^type = "acme"$/ {print "rate_limit_per_second = 1000000"; print "rate_limit_burst = 1000000"; web = 2}' \
    "$D/signet.toml" >"$D/signet.toml.new" && mv "$D/signet.toml.new" "$D/signet.toml"
  grep -q '^rate_limit_per_second = 1000000$' "$D/signet.toml" ||
    { echo "could not raise the web provisioner's rate limit" >&2; exit 1; }
  q acmebench 'create extension if not exists pg_stat_statements' >/dev/null || true
  q acmebench 'select pg_stat_statements_reset()' >/dev/null || true
  rm -f ready
  SIGNET_DATABASE_URL=$URL "$S" serve --dir "$D" --listen 127.0.0.1:18443 --responder-listen off \
    --ready-file ready >serve.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 150); do [ -s ready ] && break; sleep 0.2; done
  [ -s ready ] || { cat serve.log; exit 1; }
  local before
  before=$(db_counters)
  bench "signet run$n" https://127.0.0.1:18443/acme/web/directory "$D/root_ca.crt" || exit 1
  stop
  sleep 1
  db_report "signet run$n" "$before" "$(db_counters)"
}
pebble_run() {
  local n=$1
  if [ "$PEBBLE" = 0 ]; then echo "pebble run$n: skipped (PEBBLE=0)"; return; fi
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
  if ! bench "pebble run$n" https://127.0.0.1:18444/dir tlsroot.crt "$PN" "$PLIMIT"; then
    # Debian's Pebble (2.4) wedges under concurrent load: its Order handler read-locks an
    # order twice (letsencrypt/pebble#554), and a writer queued between the two (the
    # order's completion, a validation) then waits for ever, and every request after it.
    # Its goroutines show it (SIGQUIT makes Go print them and exit).
    kill -QUIT "$SERVER_PID" 2>/dev/null || true
    sleep 1
    cp pebble.log "$W/pebble-run$n.log"
    if grep -q 'semacquire' pebble.log && grep -q 'pebble/wfe' pebble.log; then
      echo "pebble run$n: no figure: Pebble deadlocked ($(grep -c '^goroutine .*semacquire' pebble.log) goroutines waiting on its locks, see $W/pebble-run$n.log; letsencrypt/pebble#554)"
    else
      echo "pebble run$n: failed, see $W/pebble-run$n.log"
    fi
  fi
  stop
}
echo "$(date -u +%FT%TZ) C=$C N=$N K=$K cores=$(nproc) $("$BIN/signet" --version 2>/dev/null | head -1)" \
  "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "postgres=$(q postgres 'show server_version' || echo '?')" \
  "synchronous_commit=$(q postgres 'show synchronous_commit' || echo '?') fsync=$(q postgres 'show fsync' || echo '?')"
echo "load before: $(uptime)"
for n in $(seq "$PAIRS"); do signet_run "$n"; pebble_run "$n"; done
echo "load after: $(uptime)"
