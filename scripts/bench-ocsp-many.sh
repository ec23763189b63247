#!/usr/bin/env bash
# OCSP over many certificates: memory and rate when the answers do not fit one cache entry
# (BENCHMARKS.md, "OCSP for 1,000,000 issued certificates"). Not part of the test suite.
#
#   scripts/bench-ocsp-many.sh DATA_DIR DATABASE_URL [ISSUED] [ASKED] [SECONDS]
#
# Against a running `signet serve` (responder on 127.0.0.1:18080) whose data directory is
# DATA_DIR and database DATABASE_URL (PostgreSQL, psql-style URL):
#   1. inserts ISSUED (default 1,000,000) good certificates of its issuing CA, 16-octet serials;
#   2. makes GET requests for ASKED (default 200,000) distinct ones of them, from a real
#      `openssl ocsp` request with only the serial changed;
#   3. drives them with wrk (64 connections, round robin) for SECONDS (default 20) and reads
#      the server's RSS and peak RSS, and checks a sample of answers with openssl.
set -euo pipefail
D=$1 DB=$2 ISSUED=${3:-1000000} ASKED=${4:-200000} SECONDS_=${5:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/signet-bench-ocsp.XXXXXX)
PID=$(pgrep -f "signet serve --dir $D" | head -1)
echo "scratch: $W; signet serve pid $PID"

KEY_ID=$(psql -At "$DB" -c "select issuer_key_id from certificates limit 1")
echo "inserting $ISSUED good certificates"
psql -q "$DB" <<SQL
INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, profile, not_before,
  not_after, requester, der, created_at)
SELECT '6b' || lpad(to_hex(g), 30, '0'), 'CN=bench', '$KEY_ID', 'CN=many-' || g, '[]', 'server',
  extract(epoch from now())::bigint - 60, extract(epoch from now())::bigint + 86400, 'bench',
  '\x00', extract(epoch from now())::bigint
FROM generate_series(1, $ISSUED) AS g
ON CONFLICT (serial) DO NOTHING;
SQL

# A template request: a real certificate of this CA (its issuer name and key hashes, and a
# 16-octet serial), asked about with `openssl ocsp`; the others differ in the serial only.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/k.pem" \
  -subj /CN=template.internal -addext subjectAltName=DNS:template.internal -out "$W/t.csr" 2>/dev/null
"$ROOT/target/release/signet" issue --ca-url https://127.0.0.1:18443 --dir "$D" --csr "$W/t.csr" \
  --out "$W/t.chain" >/dev/null 2>&1
openssl x509 -in "$W/t.chain" -out "$W/t.pem"
TEMPLATE_SERIAL=$(openssl x509 -in "$W/t.pem" -noout -serial | cut -d= -f2)
[ ${#TEMPLATE_SERIAL} -eq 32 ] || { echo "template serial $TEMPLATE_SERIAL is not 16 octets; run again" >&2; exit 1; }
openssl ocsp -issuer "$D/issuing_ca.crt" -cert "$W/t.pem" -no_nonce -reqout "$W/t.der" 2>/dev/null
python3 - "$W" "$ISSUED" "$ASKED" "$TEMPLATE_SERIAL" <<'PY'
import base64, random, sys, urllib.parse
w, issued, asked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = open(f"{w}/t.der", "rb").read()
old = bytes.fromhex(sys.argv[4])
assert t.count(old) == 1
random.seed(1)
with open(f"{w}/paths.txt", "w") as f:
    for g in random.sample(range(1, issued + 1), asked):
        serial = bytes.fromhex("6b" + format(g, "030x"))
        der = t.replace(old, serial)
        f.write("/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="") + "\n")
PY
cat > "$W/rotate.lua" <<'LUA'
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i * 7919) % #paths + 1])
end
LUA
echo "before: $(awk '/VmRSS|VmHWM/ {printf "%s %s %s; ", $1, $2, $3}' /proc/$PID/status)"
PATHS=$W/paths.txt wrk -t2 -c64 -d"${SECONDS_}s" --latency -s "$W/rotate.lua" http://127.0.0.1:18080 \
  | grep -E "Requests/sec|50%|99%|Non-2xx|errors"
echo "after:  $(awk '/VmRSS|VmHWM/ {printf "%s %s %s; ", $1, $2, $3}' /proc/$PID/status)"
for n in 1 1000 100000; do
  p=$(sed -n "${n}p" "$W/paths.txt")
  curl -fsS "http://127.0.0.1:18080$p" -o "$W/r.der"
  openssl ocsp -respin "$W/r.der" -resp_text -noverify 2>/dev/null | grep -m1 -E "Cert Status|Responder Error" || true
done
