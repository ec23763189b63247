#!/usr/bin/env bash
# Issue 17's benchmark: issuance with the issuing key in SoftHSM2 against the same build with
# a file key, alternating (A B A B), and the raw signing rate of both keys (BENCHMARKS.md,
# "CA keys in SoftHSM2, A/B"). Not part of the test suite.
#
#   scripts/bench-pkcs11.sh BUILD_DIR PG_SOCKET_DIR [PAIRS]
#
# BUILD_DIR holds a release `signet` and `signet-bench`; PG_SOCKET_DIR is the unix socket
# directory of a PostgreSQL server whose user `signet` may create databases (BENCHMARKS.md,
# "Commands"). A SoftHSM2 token is made in a temporary directory (SOFTHSM2_CONF); two CAs are
# made once, both P-256: `file` (`signet init`, keys in files) and `hsm` (`signet init
# --key-store pkcs11`, both CA keys generated in the token), each with its own database
# (made before `init` and kept across runs: a CA with history refuses an empty one). Each run:
# `signet serve` for that CA on 127.0.0.1:18443/18080 (provisioner rate limits raised to
# 1,000,000), then `signet-bench issue -c 64 -n N` (every answer checked: 201 and a
# certificate for the CSR's key). Before the issuance pairs, `signet-bench sign` measures each
# issuing key alone (2 threads, 100,000 signatures or 8 s, every signature verified). Exits non-zero on any failure.
set -euo pipefail
BIN=$1 SOCK=$2 PAIRS=${3:-3} N=${N:-20000}
S=$BIN/signet B=$BIN/signet-bench
MODULE=${PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
W=$(mktemp -d /tmp/signet-bench-pkcs11.XXXXXX)
url() { echo "postgres:///pk_$1?host=$SOCK&user=signet"; }
cd "$W"
mkdir tokens
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$W/tokens" >softhsm2.conf
export SOFTHSM2_CONF=$W/softhsm2.conf
softhsm2-util --init-token --free --label signet --pin 1234 --so-pin 5678 >/dev/null
export SIGNET_PKCS11_PIN=1234

# One database per CA, made before `init` (which records the CA's first CRLs in it) and kept
# across runs: a CA refuses to start on an empty database once it has history.
for d in file hsm; do
  psql -q -h "$SOCK" -U signet -d postgres -c "drop database if exists pk_$d" -c "create database pk_$d" 2>/dev/null
done
SIGNET_DATABASE_URL=$(url file) "$S" init --dir file >/dev/null
SIGNET_DATABASE_URL=$(url hsm) "$S" init --dir hsm --key-store pkcs11 --pkcs11-module "$MODULE" --pkcs11-token signet >/dev/null
for d in file hsm; do
  "$S" provisioner add token --dir "$d" --name default >/dev/null
  python3 - "$d/signet.toml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
key = 'public_key_file = "provisioners/default.pub"\n'
assert key in s, "no default provisioner in signet.toml"
s = s.replace(key, key + 'rate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n', 1)
open(p, 'w').write(s)
PY
done
ISSUING_URI=$(sed -n 's/^issuing_key *= *"\(pkcs11:[^"]*\)"/\1/p' hsm/signet.toml)
[ -n "$ISSUING_URI" ] || { echo "hsm/signet.toml names no pkcs11 issuing key" >&2; exit 1; }
echo "issuing key in the token: $ISSUING_URI"

for n in $(seq "$PAIRS"); do
  echo "file run$n sign: $("$B" sign --key-file file/issuing_ca.key -c 2 -d 8s | tail -1)"
  echo "hsm  run$n sign: $("$B" sign --pkcs11-module "$MODULE" --key "$ISSUING_URI" -c 2 -d 8s | tail -1)"
done

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
# A run: serve CA D, issue N certificates; prints the load tool's line and the CPU per
# certificate of signet serve and of PostgreSQL (from /proc: valid on a busy machine, where
# the wall-clock rate is not).
run() {
  local D=$1 n=$2
  rm -f ready
  SIGNET_DATABASE_URL=$(url "$D") setsid "$S" serve --dir "$D" --listen 127.0.0.1:18443 \
    --responder-listen 127.0.0.1:18080 --ready-file ready >"serve-$D.log" 2>&1 &
  local pid=$!
  for _ in $(seq 150); do [ -s ready ] && break; sleep 0.2; done
  [ -s ready ] || { cat "serve-$D.log"; exit 1; }
  local s0 p0 s1 p1 out hz
  s0=$(ticks "$pid"); p0=$(ticks $(pg_pids))
  out=$("$B" issue --url https://127.0.0.1:18443 --token-key "$D/provisioners/default.key" \
    --cacert "$D/root_ca.crt" -c 64 -n "$N" | tail -1)
  s1=$(ticks "$pid"); p1=$(ticks $(pg_pids)); hz=$(getconf CLK_TCK)
  echo "$D run$n issue: $out | CPU per cert: signet $(((s1 - s0) * 1000000 / hz / N)) us, postgres $(((p1 - p0) * 1000000 / hz / N)) us"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for n in $(seq "$PAIRS"); do run file "$n"; run hsm "$n"; done
rm -rf "$W"
