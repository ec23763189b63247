#!/usr/bin/env bash
# Issue 18's issuance benchmark: one `signet serve` against two replicas of it on one
# PostgreSQL database, alternating (A B A B), with the CPU each certificate cost
# (BENCHMARKS.md, "Replicas"). Not part of the test suite.
#
#   scripts/bench-replicas.sh BUILD_DIR PG_SOCKET_DIR [PAIRS]
#
# BUILD_DIR holds a release `signet` and `signet-bench`; PG_SOCKET_DIR is the unix socket
# directory of a PostgreSQL server whose user `signet` may create databases. One CA is made
# (`signet init`), with `[server] url = "https://127.0.0.1:18443"` (the tokens' audience,
# shared by every replica) and the provisioner's rate limits raised to 1,000,000 (they stay
# on, so every request still takes tokens from its shared bucket row), on one database kept
# across runs. Each run: replica 1 on 127.0.0.1:18443 (with the responder on :18080), and for the
# two-replica runs replica 2 on :18444 (no responder); then `signet-bench issue -c 64 -n N`
# with every answer checked (201 and a certificate for the CSR's key), its clients dealt
# round-robin to the replicas. CPU: utime+stime of the signet processes and of the postgres
# processes, each from /proc before and after the load, divided by the certificates issued.
# Each pair also runs two replicas with one tokio worker thread each (TOKIO_WORKER_THREADS=1).
set -euo pipefail
BIN=$1 SOCK=$2 PAIRS=${3:-3} N=${N:-20000}
S=$BIN/signet B=$BIN/signet-bench
W=$(mktemp -d /tmp/signet-bench-replicas.XXXXXX)
URL="postgres:///rep?host=$SOCK&user=signet"
cd "$W"
# The database is made before `init` (which records the CA's first CRLs in it) and kept
# across runs: a CA with history refuses an empty one.
psql -q -h "$SOCK" -U signet -d postgres -c 'drop database if exists rep' -c 'create database rep' 2>/dev/null
SIGNET_DATABASE_URL=$URL "$S" init --dir data >/dev/null
"$S" provisioner add token --dir data --name default >/dev/null
python3 - data/signet.toml <<'PY'
import sys, re
p = sys.argv[1]; s = open(p).read()
key = 'public_key_file = "provisioners/default.pub"\n'
assert key in s, "no default provisioner in signet.toml"
s = s.replace(key, key + 'rate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n', 1)
if re.search(r'^\[server\]$', s, re.M):
    s = re.sub(r'^\[server\]$', '[server]\nurl = "https://127.0.0.1:18443"', s, count=1, flags=re.M)
else:
    s += '\n[server]\nurl = "https://127.0.0.1:18443"\n'
open(p, 'w').write(s)
PY
# Each replica has a data directory of its own (a copy: the same CA, keys and settings), as
# separate machines would; one directory cannot be served twice.
cp -a data data2
# The benchmark's PostgreSQL processes: its postmaster and that postmaster's children (other
# clusters on the machine, such as test suites' throwaway ones, are not counted).
pg_pids() {
  local pm
  pm=$(head -1 "$(psql -qAt -h "$SOCK" -U signet -d postgres -c 'show data_directory')/postmaster.pid")
  echo "$pm" $(pgrep -P "$pm")
}
ticks() { # utime+stime (clock ticks) of every process in PIDS
  local t=0 pid f
  for pid in "$@"; do
    f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    f=${f##*) }; set -- $f; t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
xacts() { # write transactions so far in the cluster: the next transaction id (itself one)
  psql -qAt -h "$SOCK" -U signet -d rep -c "select pg_current_xact_id()"
}
start() { # start a replica: PORT, responder address (or off), tag, data directory
  local port=$1 resp=$2 tag=$3 dir=$4
  rm -f "ready-$tag"
  env ${WORKERS:+TOKIO_WORKER_THREADS=$WORKERS} SIGNET_DATABASE_URL="$URL" setsid "$S" serve --dir "$dir" --listen "127.0.0.1:$port" \
    --responder-listen "$resp" --ready-file "ready-$tag" >"serve-$tag.log" 2>&1 &
  for _ in $(seq 150); do [ -s "ready-$tag" ] && break; sleep 0.2; done
  [ -s "ready-$tag" ] || { cat "serve-$tag.log"; exit 1; }
}
# A run: REPLICAS (1 or 2), run number, tokio worker threads per replica (TOKIO_WORKER_THREADS;
# empty = tokio's default, one per core). CPU is reported per certificate for the signet
# processes and the postgres processes apart (the load tool's own CPU is not counted).
run() {
  local replicas=$1 n=$2 urls=https://127.0.0.1:18443
  WORKERS=${3:-}
  start 18443 127.0.0.1:18080 one data
  if [ "$replicas" = 2 ]; then start 18444 off two data2; urls="$urls,https://127.0.0.1:18444"; fi
  local s0 p0 s1 p1 x0 x1
  s0=$(ticks $(pgrep -f "$S serve")); p0=$(ticks $(pg_pids)); x0=$(xacts)
  local out; out=$("$B" issue --url "$urls" --aud https://127.0.0.1:18443 \
    --token-key data/provisioners/default.key --cacert data/root_ca.crt -c 64 -n "$N" | tail -1)
  s1=$(ticks $(pgrep -f "$S serve")); p1=$(ticks $(pg_pids)); x1=$(xacts)
  local hz; hz=$(getconf CLK_TCK)
  echo "$replicas replica(s)${WORKERS:+, $WORKERS worker(s) each} run$n: $out | CPU per cert: $(python3 -c "
s, p = ($s1-$s0)/$hz*1e6/$N, ($p1-$p0)/$hz*1e6/$N
print(f'signet {s:.0f} us + postgres {p:.0f} us = {s+p:.0f} us; {($x1-$x0)/$N:.2f} write transactions')")"
  pkill -f "$S serve --dir data" || true; sleep 1
}
for n in $(seq "$PAIRS"); do
  run 1 "$n"
  run 2 "$n"
  # Two replicas with one worker thread each: as many runtime threads as one replica has on
  # a 2-core machine, so what is left of the difference is the second process and its
  # database sessions, not oversubscribed cores.
  run 2 "$n" 1
done
rm -rf "$W"
