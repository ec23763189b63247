#!/usr/bin/env bash
# OCSP over many certificates: memory and rate when the answers do not fit one cache entry
# (BENCHMARKS.md, "OCSP for 1,000,000 issued certificates"). Not part of the test suite.
#
#   scripts/bench-ocsp-many.sh DATA_DIR DATABASE_URL [ISSUED] [ASKED] [SECONDS] [THREADS]
#   (SIGNET=path/to/signet to use another binary than target/release/signet)
#
# Against a running `signet serve` (API on 127.0.0.1:18443, responder on 127.0.0.1:18080)
# whose data directory is DATA_DIR and database DATABASE_URL (PostgreSQL, psql-style URL):
#   1. inserts ISSUED (default 1,000,000) good certificates of its issuing CA, 16-octet
#      serials 6b00..01 to 6b00..ISSUED (rows already there are kept);
#   2. makes GET requests for ASKED (default 200,000) distinct ones of them, chosen at random
#      (fixed seed), from a real `openssl ocsp` request with only the serial changed;
#   3. drives them with wrk (THREADS threads, default 2; 64 connections) for SECONDS (default
#      20). Thread t of T sends requests t, t+T, t+2T... of the list, so no two threads ask
#      for the same serial; a thread that reaches the end of its share starts it again, and
#      the script says how many requests were repeats;
#   4. checks every answer inside wrk: HTTP 200, an OCSP response with status successful,
#      and a SingleResponse whose CertID serial is one this thread asked for and whose status
#      is good. Any other answer counts as bad; wrk exits non-zero if there was one;
#   5. prints the server's RSS and peak RSS before and after, then fetches three of the
#      asked requests again with curl and verifies them with `openssl ocsp` (signature
#      chain to the root, the serial's status good). Any failure exits non-zero.
#
# The client therefore checks status and content of every answer, and the signature of the
# three samples (not of every answer: `signet-bench ocsp` does that, for one certificate).
set -euo pipefail
D=$1 DB=$2 ISSUED=${3:-1000000} ASKED=${4:-200000} SECONDS_=${5:-20} THREADS=${6:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "$ASKED" -gt "$ISSUED" ]; then
    echo "ASKED ($ASKED) must not exceed ISSUED ($ISSUED)" >&2
    exit 2
fi
W=$(mktemp -d /tmp/signet-bench-ocsp.XXXXXX)
PID=$(pgrep -f "signet serve --dir $D" | head -1)
[ -n "$PID" ] || { echo "no running 'signet serve --dir $D'" >&2; exit 1; }
echo "scratch: $W; signet serve pid $PID"

KEY_ID=$(psql -At "$DB" -c "select issuer_key_id from certificates limit 1")
[ -n "$KEY_ID" ] || { echo "the database has no certificate yet: issue one first" >&2; exit 1; }
echo "inserting $ISSUED good certificates"
psql -q -v ON_ERROR_STOP=1 "$DB" <<SQL
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
"${SIGNET:-$ROOT/target/release/signet}" issue --admin --ca-url https://127.0.0.1:18443 --dir "$D" --csr "$W/t.csr" \
  --out "$W/t.chain" >/dev/null
openssl x509 -in "$W/t.chain" -out "$W/t.pem"
TEMPLATE_SERIAL=$(openssl x509 -in "$W/t.pem" -noout -serial | cut -d= -f2)
[ ${#TEMPLATE_SERIAL} -eq 32 ] || { echo "template serial $TEMPLATE_SERIAL is not 16 octets; run again" >&2; exit 1; }
openssl ocsp -issuer "$D/issuing_ca.crt" -cert "$W/t.pem" -no_nonce -reqout "$W/t.der" 2>/dev/null
# paths.txt: one line per asked certificate, "SERIAL_HEX PATH".
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
        path = "/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
        f.write(f"{serial.hex()} {path}\n")
PY
cat > "$W/walk.lua" <<'LUA'
-- Each thread walks its own share of paths.txt (lines t+1, t+1+T, ...: disjoint across
-- threads) and checks every answer. Counters go back to the main thread for done().
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Skip wrk's connect-then-close probe of the address (harmless here; as the peers' scripts).
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local paths, asked = {}, {}
local n_threads = tonumber(os.getenv("THREADS"))
local i = 0
sent, ok, bad, repeats = 0, 0, 0, 0
first_bad = ""

function init(args)
  local line_no = 0
  for line in io.lines(os.getenv("PATHS")) do
    if line_no % n_threads == id then
      local serial_hex, path = line:match("^(%x+) (%S+)$")
      paths[#paths + 1] = path
      asked[serial_hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)] = true
    end
    line_no = line_no + 1
  end
end

request = function()
  i = i + 1
  if i > #paths then repeats = repeats + 1 end
  sent = sent + 1
  return wrk.format("GET", paths[(i - 1) % #paths + 1])
end

-- OCSPResponse: responseStatus successful is ENUMERATED 0 (0a 01 00) right after the outer
-- SEQUENCE header; the SingleResponse's CertID ends with the serial (02 10 + 16 octets, all
-- ours start with 6b) and is followed by certStatus good ([0] IMPLICIT NULL: 80 00).
local function check(status, body)
  if status ~= 200 then return "HTTP " .. status end
  local s = body:find("\10\1\0", 1, true)
  if s == nil or s > 6 then return "responseStatus is not successful" end
  local at = body:find("\2\16\107", 1, true)
  if at == nil then return "no 16-octet serial of ours in the response" end
  local serial = body:sub(at + 2, at + 17)
  if not asked[serial] then return "answer for a serial this thread did not ask for" end
  if body:sub(at + 18, at + 19) ~= "\128\0" then return "certStatus is not good" end
  return nil
end

response = function(status, headers, body)
  local why = check(status, body)
  if why == nil then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == "" then first_bad = why end
  end
end

done = function(summary, latency, requests)
  local t_ok, t_bad, t_rep, why = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok")
    t_bad = t_bad + t:get("bad")
    t_rep = t_rep + t:get("repeats")
    if why == "" then why = t:get("first_bad") end
  end
  io.write(string.format("answers checked: %d good, %d bad; %d requests repeated a serial " ..
    "already asked by the same thread\n", t_ok, t_bad, t_rep))
  if t_bad > 0 or t_ok == 0 then
    io.write("FAILED: " .. (why ~= "" and why or "no answer") .. "\n")
    os.exit(1)
  end
end
LUA
rss() { awk '/VmRSS|VmHWM/ {printf "%s %s %s; ", $1, $2, $3}' "/proc/$PID/status"; }
echo "before: $(rss)"
PATHS=$W/paths.txt THREADS=$THREADS wrk -t"$THREADS" -c64 -d"${SECONDS_}s" --latency \
  -s "$W/walk.lua" http://127.0.0.1:18080 >"$W/wrk.out" || {
    cat "$W/wrk.out"
    echo "wrk failed or an answer was wrong" >&2
    exit 1
}
grep -E "Requests/sec|50%|99%|Non-2xx|errors|answers checked" "$W/wrk.out"
echo "after:  $(rss)"

# Three of the asked requests again, each verified by openssl: the response's signature
# (delegated signer -> issuing CA -> root) and the serial's status.
cat "$D/root_ca.crt" "$D/issuing_ca.crt" >"$W/chain.pem"
for n in 1 $(((ASKED + 1) / 2)) "$ASKED"; do
  read -r serial path < <(sed -n "${n}p" "$W/paths.txt")
  curl -fsS "http://127.0.0.1:18080$path" -o "$W/r.der"
  if verdict=$(openssl ocsp -respin "$W/r.der" -issuer "$D/issuing_ca.crt" -serial "0x$serial" \
    -CAfile "$W/chain.pem" 2>&1) &&
    grep -q "^Response verify OK" <<<"$verdict" && grep -qi "^0x$serial: good" <<<"$verdict"; then
    echo "sample $n (serial $serial): good, signature verified"
  else
    echo "sample $n (serial $serial) FAILED:" >&2
    echo "$verdict" >&2
    exit 1
  fi
done
