#!/usr/bin/env bash
# Issue 19's figures at scale, in one run, on a throwaway PostgreSQL (BENCHMARKS.md, "CRL
# shards" and "At scale"). Not part of the test suite.
#
#   scripts/bench-scale.sh [TOTAL] [REVOKED] [SHARDS] [NAMES]
#       defaults 1000000, TOTAL/10, 64, TOTAL/1000
#   The issue's population: scripts/bench-scale.sh 10000000 1000000 64
#   (about 20 GB of disk and 25+ minutes of the whole machine: run it on a quiet one).
#
# In a scratch directory (kept; its path is printed):
#   1. PostgreSQL as `nobody` on a unix socket (fsync and synchronous_commit on);
#   2. `signet serve --init` once to make the CA, then stopped;
#   3. `signet-bench fill`: TOTAL certificates of that CA through the store's bulk path
#      (Store::insert_bulk, one audit row each), REVOKED of them revoked and unexpired,
#      each in its shard of SHARDS as issuance would file it, NAMES distinct names (so a
#      name filter selects TOTAL/NAMES of them), notAfter spread over the next 12-24 h;
#      then VACUUM ANALYZE; the time, rate and database size per certificate;
#   4. today's design, `[crl] shards = 0`: `signet serve` builds the full CRL before
#      serving (its entries, size, build and store time from the publisher's log); start
#      to /healthz; one revocation to the full CRL published; the CRL checked with
#      `openssl crl -CAfile`; the publisher's peak RSS (VmHWM);
#   5. `[crl] shards = SHARDS`: `signet serve` builds and signs every shard before serving
#      (none is stored yet; the publisher logs the total); start to /healthz; every shard's
#      size from /crl/index.json, each checked with `openssl crl -CAfile`; then SAMPLES
#      (default 10) revocations of certificates of different shards, each timed from the
#      revoke's answer (POST /v1/certificates/{serial}/revoke over HTTPS, keep-alive) to
#      the responder serving that shard with the serial listed (polled with a conditional
#      GET on one keep-alive connection; the serial's DER found in the CRL served, and the
#      last one checked with openssl too): median and max;
#   6. the admin listing, GET /v1/certificates over HTTPS with the admin token, keyset
#      pages of 100: filters by name (several names, each walked to its end), by status
#      (revoked) and by expiry (expiring_within=13h); PAGES pages each (default 200), one
#      at a time; every answer checked (200, 100 items but on the last page, each item
#      matching the filter, no serial twice, the cursor followed); p50, p99, max per filter;
#   7. OCSP for uniformly random uncached serials: OCSP_ASKED (default 200,000) serials
#      chosen at random among every certificate filled (a uniform sample of the rows,
#      revoked ones included) asked for once each with GET, driven by wrk (2 threads, 64
#      connections, OCSP_SECONDS, default 20), every answer checked inside wrk (200,
#      successful, the serial one this thread asked, its status good or revoked as the
#      database says); three verified with `openssl ocsp` (signature to the root, status).
#      A serial is asked twice only when a thread has used up its share, and the count of
#      those is printed.
# Any failed check exits non-zero.
# Needs a release build: cargo build --release -p signet -p signet-bench
set -euo pipefail

TOTAL=${1:-1000000}
REVOKED=${2:-$((TOTAL / 10))}
SHARDS=${3:-64}
NAMES=${4:-$((TOTAL / 1000))}
SAMPLES=${SAMPLES:-10}
PAGES=${PAGES:-200}
OCSP_ASKED=${OCSP_ASKED:-200000}
OCSP_SECONDS=${OCSP_SECONDS:-20}
[ "$NAMES" -ge 1 ] || NAMES=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIGNET=${SIGNET:-$ROOT/target/release/signet}
BENCH=${BENCH:-$ROOT/target/release/signet-bench}
for b in "$SIGNET" "$BENCH"; do
  [ -x "$b" ] || { echo "build first: cargo build --release -p signet -p signet-bench" >&2; exit 1; }
done
W=$(mktemp -d /tmp/signet-bench-scale.XXXXXX)
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

echo "scratch: $W; $(uptime)"
as_pg initdb -D "$PG/data" -U signet --auth=trust -E UTF8 >/dev/null
as_pg pg_ctl -D "$PG/data" -l "$PG/log" -w -o "-c listen_addresses='' -k $SOCK -c fsync=on \
  -c synchronous_commit=on -c max_connections=100 -c shared_buffers=256MB -c max_wal_size=4GB" \
  start >/dev/null
psql -q -h "$SOCK" -U signet -d postgres -c 'create database signet'
export SIGNET_DATABASE_URL="postgres:///signet?host=$SOCK&user=signet"
PSQL=(psql -q -At -h "$SOCK" -U signet -d signet)

serve() { # LOG [args...]
  local log=$1; shift
  "$SIGNET" serve --dir "$D" --listen 127.0.0.1:18443 --responder-listen 127.0.0.1:18080 "$@" \
    >>"$log" 2>&1 &
  SERVE_PID=$!
}
wait_for() { # URL [curl args...]
  local url=$1; shift
  for _ in $(seq 1 200000); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || { echo "signet serve exited" >&2; return 1; }
    sleep 0.005
  done
  echo "timed out waiting for $url" >&2; return 1
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=; }
set_shards() { sed -i -E "s/^shards = [0-9]+/shards = $1/" "$D/signet.toml"; grep -q "^shards = $1\$" "$D/signet.toml"; }
hwm() { awk '/VmHWM/ {print $2, $3}' /proc/$SERVE_PID/status; }

serve "$W/serve-init.log" --init
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
stop
KEY_ID=$("${PSQL[@]}" -c "select issuer_key_id from certificates limit 1")
before_size=$("${PSQL[@]}" -c "select pg_database_size('signet')")

echo "== fill: $TOTAL certificates, $REVOKED revoked, $SHARDS shards, $NAMES names, key $KEY_ID"
t0=$(ms)
"$BENCH" fill --db "$SIGNET_DATABASE_URL" --issuer-key-id "$KEY_ID" --count "$TOTAL" \
  --revoked "$REVOKED" --shards "$SHARDS" --names "$NAMES" --lifetime 24h --spread 12h
t_fill=$(( $(ms) - t0 ))
t0=$(ms)
"${PSQL[@]}" -c "VACUUM ANALYZE"
echo "VACUUM ANALYZE: $(( $(ms) - t0 )) ms"
size=$("${PSQL[@]}" -c "select pg_database_size('signet')")
echo "fill: ${t_fill} ms wall (with migration check): $(( TOTAL * 1000 / (t_fill > 0 ? t_fill : 1) )) certificates/s;" \
  "database $(( (size - before_size) / 1048576 )) MiB more: $(( (size - before_size) / TOTAL )) bytes per certificate"
"${PSQL[@]}" -c "select relname || ' ' || pg_total_relation_size(oid)/1048576 || ' MiB' from pg_class where relname in ('certificates','audit_log','certificate_names') order by 1"

issue() { # NAME: a certificate issued over the API into $W/NAME.crt
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/$1.key" \
    -subj "/CN=$1.internal" -addext "subjectAltName=DNS:$1.internal" -out "$W/$1.csr" 2>/dev/null
  "$SIGNET" issue --admin --ca-url https://127.0.0.1:18443 --dir "$D" --csr "$W/$1.csr" \
    --out "$W/$1.crt" >/dev/null
}
serial_of() { openssl x509 -in "$W/$1.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//'; }
cdp_of() { openssl x509 -in "$W/$1.crt" -noout -ext crlDistributionPoints | sed -n 's/.*URI://p' | tr -d ' '; }

wait_published() { # LOG COUNT: until LOG has more than COUNT "published a CRL" lines
  local deadline=$(( $(ms) + 600000 ))
  until [ "$(grep -c "published a CRL" "$1" || true)" -gt "$2" ]; do
    [ "$(ms)" -lt "$deadline" ] || { echo "no CRL published in 600 s" >&2; exit 1; }
    sleep 0.01
  done
}

echo "== today's design: one full CRL ([crl] shards = 0)"
set_shards 0
# The stored full CRL (init's, empty) is still valid and not due: this start serves at once,
# and the revocation below builds the full CRL of the filled population.
t0=$(ms)
serve "$W/serve-full.log"
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
echo "start to /healthz: $(( $(ms) - t0 )) ms"
wait_for http://127.0.0.1:18080/readyz
issue full
SERIAL=$(serial_of full)
before=$(grep -c "published a CRL" "$W/serve-full.log" || true)
t0=$(ms)
"$SIGNET" revoke --ca-url https://127.0.0.1:18443 --dir "$D" "$SERIAL" >/dev/null
wait_published "$W/serve-full.log" "$before"
echo "one revocation: the full CRL published $(( $(ms) - t0 )) ms after the revoke call"
grep "published a CRL" "$W/serve-full.log" | tail -1
curl -fsS http://127.0.0.1:18080/crl/issuing.crl -o "$W/full.crl"
echo "full CRL: $(stat -c %s "$W/full.crl") bytes; $(openssl crl -inform DER -in "$W/full.crl" -CAfile "$D/issuing_ca.crt" -noout 2>&1)"
openssl crl -inform DER -in "$W/full.crl" -noout -text | grep -qi "serial number: 0*${SERIAL}\$" \
  || { echo "the full CRL does not list $SERIAL" >&2; exit 1; }
echo "peak RSS (full): $(hwm)"
echo "full CRL rows stored: $("${PSQL[@]}" -c "select count(*) from crls where issuer_key_id = '$KEY_ID' and shard = -1 and delta_base = 0")"
stop

echo "== partitioned: [crl] shards = $SHARDS"
set_shards "$SHARDS"
t0=$(ms)
serve "$W/serve-shards.log"
wait_for https://127.0.0.1:18443/healthz --cacert "$D/root_ca.crt"
echo "start to /healthz (every shard built, signed and stored first): $(( $(ms) - t0 )) ms"
# No shard was stored yet, so that start built and signed every shard from the database:
# the line below is "all shards rebuilt" (the scheduled re-signing does the same work).
grep "published every CRL partition" "$W/serve-shards.log" | tail -1 || true
wait_for http://127.0.0.1:18080/readyz
curl -fsS http://127.0.0.1:18080/crl/index.json -o "$W/index.json"
python3 - "$W/index.json" "$KEY_ID" "$W/shard-urls" <<'PY'
import json, sys
idx = json.load(open(sys.argv[1]))
shards = [c for c in idx["crls"] if c["shard"] is not None and not c["delta"] and c["issuer_key_id"] == sys.argv[2]]
sizes = sorted(c["size"] for c in shards)
print(f"shards: {len(shards)}; sizes min {sizes[0]} median {sizes[len(sizes)//2]} max {sizes[-1]} bytes; total {sum(sizes)}")
print("every shard under 1 MB:", all(s < 1_000_000 for s in sizes))
open(sys.argv[3], "w").write("".join(c["url"] + "\n" for c in shards))
PY
n=0
while read -r url; do
  curl -fsS "$url" -o "$W/s.crl"
  openssl crl -inform DER -in "$W/s.crl" -CAfile "$D/issuing_ca.crt" -noout 2>&1 | grep -q "verify OK" \
    || { echo "shard $url does not verify" >&2; exit 1; }
  n=$((n + 1))
done <"$W/shard-urls"
echo "every shard ($n) verified with openssl crl -CAfile"

# Certificates of SAMPLES different shards, issued over the API.
: >"$W/samples"
declare -A seen=()
for i in $(seq 1 $((SAMPLES * 4))); do
  [ "$(wc -l <"$W/samples")" -lt "$SAMPLES" ] || break
  issue "s$i"
  cdp=$(cdp_of "s$i")
  [ -z "${seen[$cdp]:-}" ] || continue
  seen[$cdp]=1
  echo "$(serial_of "s$i") $cdp" >>"$W/samples"
done
[ "$(wc -l <"$W/samples")" -eq "$SAMPLES" ] || { echo "could not issue into $SAMPLES shards" >&2; exit 1; }
python3 - "$W/samples" "$D/admin.token" "$D/root_ca.crt" <<'PY'
import http.client, ssl, statistics, sys, time, urllib.parse
samples = [l.split() for l in open(sys.argv[1])]
token = open(sys.argv[2]).read().strip()
ctx = ssl.create_default_context(cafile=sys.argv[3])
api = http.client.HTTPSConnection("127.0.0.1", 18443, context=ctx, timeout=30)
times = []
for serial_hex, url in samples:
    u = urllib.parse.urlsplit(url)
    crl = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    crl.request("GET", u.path)
    r = crl.getresponse(); r.read()
    assert r.status == 200, (url, r.status)
    etag = r.getheader("ETag")
    v = bytes.fromhex(serial_hex if len(serial_hex) % 2 == 0 else "0" + serial_hex)
    if v[0] & 0x80:
        v = b"\0" + v
    der_serial = bytes([2, len(v)]) + v
    api.request("POST", f"/v1/certificates/{serial_hex}/revoke", body='{"reason":"superseded"}',
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = api.getresponse(); body = r.read()
    answered = time.monotonic()
    assert r.status == 200, (r.status, body)
    polls = 0
    while True:
        polls += 1
        crl.request("GET", u.path, headers={"If-None-Match": etag})
        r = crl.getresponse(); der = r.read()
        if r.status == 200:
            etag = r.getheader("ETag")
            if der_serial in der:
                break
        elif r.status != 304:
            raise SystemExit(f"{url}: HTTP {r.status}")
        if time.monotonic() - answered > 60:
            raise SystemExit(f"{url} never listed {serial_hex}")
    took = (time.monotonic() - answered) * 1000
    times.append(took)
    open(sys.argv[1] + ".last.crl", "wb").write(der)
    print(f"  {serial_hex} -> {url.rsplit('/', 1)[-1]}: served listing it {took:.1f} ms after the revoke answered ({polls} polls)")
times.sort()
print(f"one revocation to its shard served: {len(times)} samples, median {statistics.median(times):.1f} ms, "
      f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms")
PY
last_serial=$(tail -1 "$W/samples" | cut -d' ' -f1)
openssl crl -inform DER -in "$W/samples.last.crl" -CAfile "$D/issuing_ca.crt" -noout 2>&1 | grep -q "verify OK" \
  && openssl crl -inform DER -in "$W/samples.last.crl" -noout -text | grep -qi "serial number: 0*${last_serial}\$" \
  || { echo "the last sample's shard does not verify or list $last_serial" >&2; exit 1; }
echo "the last sample's shard verified and lists it (openssl crl)"
grep "published a CRL" "$W/serve-shards.log" | tail -3
echo "peak RSS (shards): $(hwm)"
echo "CRL rows stored: $("${PSQL[@]}" -c "select count(*) from crls where issuer_key_id = '$KEY_ID'")"

echo "== admin listing: GET /v1/certificates, 100 per page, $PAGES pages per filter"
python3 - "$D/admin.token" "$D/root_ca.crt" "$PAGES" "$NAMES" <<'PY'
import http.client, json, random, ssl, sys, time, urllib.parse
from datetime import datetime, timedelta, timezone
token = open(sys.argv[1]).read().strip()
ctx = ssl.create_default_context(cafile=sys.argv[2])
pages, names = int(sys.argv[3]), int(sys.argv[4])
api = http.client.HTTPSConnection("127.0.0.1", 18443, context=ctx, timeout=30)
def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))
def walk(query, check, limit):
    """Follows the cursor for at most `limit` pages; returns the latencies in ms."""
    times, seen, cursor = [], set(), None
    while len(times) < limit:
        q = dict(query, limit="100")
        if cursor:
            q["cursor"] = cursor
        t0 = time.monotonic()
        api.request("GET", "/v1/certificates?" + urllib.parse.urlencode(q),
                    headers={"Authorization": f"Bearer {token}"})
        r = api.getresponse(); body = r.read()
        times.append((time.monotonic() - t0) * 1000)
        if r.status != 200:
            raise SystemExit(f"{query}: HTTP {r.status} {body[:200]!r}")
        page = json.loads(body)
        items, cursor = page["items"], page.get("next_cursor")
        if cursor and len(items) != 100:
            raise SystemExit(f"{query}: {len(items)} items on a page that is not the last")
        for it in items:
            if it["serial_number"] in seen:
                raise SystemExit(f"{query}: {it['serial_number']} listed twice")
            seen.add(it["serial_number"])
            why = check(it)
            if why:
                raise SystemExit(f"{query}: {it['serial_number']} {why}")
        if not cursor:
            break
    return times, len(seen)
def report(label, times, rows):
    times = sorted(times)
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{label}: {len(times)} pages, {rows} rows checked; p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {times[-1]:.1f} ms")
random.seed(19)
# By name: whole walks of random names until PAGES pages were taken.
times, rows, walked = [], 0, 0
while len(times) < pages:
    name = f"svc-{random.randrange(names)}.fill.internal"
    t, n = walk({"name": name}, lambda it, name=name: None if f"dns:{name}" in it["sans"] else "does not carry the name", pages - len(times))
    times += t; rows += n; walked += 1
report(f"name (= one of {names}; {walked} names walked)", times, rows)
t, n = walk({"status": "revoked"}, lambda it: None if it["status"] == "revoked" else f"is {it['status']}", pages)
report("status=revoked", t, n)
horizon = datetime.now(timezone.utc) + timedelta(hours=13)
def expiring(it):
    if it["status"] != "good":
        return f"is {it['status']}"
    if ts(it["not_after"]) > horizon + timedelta(seconds=5):
        return f"expires {it['not_after']}, after the horizon"
    return None
t, n = walk({"expiring_within": "13h"}, expiring, pages)
report("expiring_within=13h", t, n)
PY

echo "== OCSP: $OCSP_ASKED uniformly random serials of the $TOTAL filled, each asked once, ${OCSP_SECONDS}s"
# A uniform sample of the rows with their status, through the primary key in random order.
"${PSQL[@]}" -c "select serial, case when revoked_at is null then 'good' else 'revoked' end \
  from certificates where issuer_key_id = '$KEY_ID' and length(serial) = 32 \
  order by random() limit $OCSP_ASKED" >"$W/ocsp-serials"
issue template
TEMPLATE_SERIAL=$(openssl x509 -in "$W/template.crt" -noout -serial | cut -d= -f2)
[ ${#TEMPLATE_SERIAL} -eq 32 ] || { echo "template serial $TEMPLATE_SERIAL is not 16 octets" >&2; exit 1; }
openssl x509 -in "$W/template.crt" -out "$W/template.pem"
openssl ocsp -issuer "$D/issuing_ca.crt" -cert "$W/template.pem" -no_nonce -reqout "$W/t.der" 2>/dev/null
python3 - "$W" <<'PY'
import base64, sys, urllib.parse
w = sys.argv[1]
t = open(f"{w}/t.der", "rb").read()
import subprocess
old = bytes.fromhex(subprocess.check_output(["openssl", "x509", "-in", f"{w}/template.pem", "-noout", "-serial"], text=True).split("=")[1].strip())
assert t.count(old) == 1
with open(f"{w}/paths.txt", "w") as f:
    for line in open(f"{w}/ocsp-serials"):
        serial_hex, status = line.strip().split("|")
        serial = bytes.fromhex(serial_hex)
        assert len(serial) == 16
        path = "/ocsp/" + urllib.parse.quote(base64.b64encode(t.replace(old, serial)).decode(), safe="")
        f.write(f"{serial_hex} {status} {path}\n")
PY
cat >"$W/walk.lua" <<'LUA'
-- Each thread walks its own share of paths.txt (lines t+1, t+1+T, ...: disjoint across
-- threads) and checks every answer against the status the database gave.
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
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
      local serial_hex, status, path = line:match("^(%x+) (%a+) (%S+)$")
      paths[#paths + 1] = path
      asked[serial_hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)] = status
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
-- responseStatus successful (0a 01 00) right after the outer SEQUENCE header; the CertID's
-- serial (02 10 + 16 octets) followed by certStatus: good is [0] IMPLICIT NULL (80 00),
-- revoked is [1] constructed (a1).
local function check(status, body)
  if status ~= 200 then return "HTTP " .. status end
  local s = body:find("\10\1\0", 1, true)
  if s == nil or s > 6 then return "responseStatus is not successful" end
  local from = 1
  while true do
    local at = body:find("\2\16", from, true)
    if at == nil then return "no serial this thread asked for in the response" end
    local want = asked[body:sub(at + 2, at + 17)]
    if want ~= nil then
      local st = body:sub(at + 18, at + 19)
      if want == "good" and st == "\128\0" then return nil end
      if want == "revoked" and st:sub(1, 1) == "\161" then return nil end
      return "certStatus is not " .. want
    end
    from = at + 1
  end
end
response = function(status, headers, body)
  local why = check(status, body)
  if why == nil then ok = ok + 1 else
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
  io.write(string.format("answers checked: %d right, %d wrong; %d requests repeated a serial " ..
    "already asked by the same thread\n", t_ok, t_bad, t_rep))
  if t_bad > 0 or t_ok == 0 then
    io.write("FAILED: " .. (why ~= "" and why or "no answer") .. "\n")
    os.exit(1)
  end
end
LUA
PATHS=$W/paths.txt THREADS=2 wrk -t2 -c64 -d"${OCSP_SECONDS}s" --latency -s "$W/walk.lua" \
  http://127.0.0.1:18080 >"$W/wrk.out" || { cat "$W/wrk.out"; echo "wrk failed or an answer was wrong" >&2; exit 1; }
grep -E "Requests/sec|50%|99%|Non-2xx|errors|answers checked" "$W/wrk.out"
cat "$D/root_ca.crt" "$D/issuing_ca.crt" >"$W/chain.pem"
asked=$(wc -l <"$W/paths.txt")
for n in 1 $(( (asked + 1) / 2 )) "$asked"; do
  read -r serial status path < <(sed -n "${n}p" "$W/paths.txt")
  curl -fsS "http://127.0.0.1:18080$path" -o "$W/r.der"
  verdict=$(openssl ocsp -respin "$W/r.der" -issuer "$D/issuing_ca.crt" -serial "0x$serial" -CAfile "$W/chain.pem" 2>&1) || true
  grep -q "^Response verify OK" <<<"$verdict" && grep -qi "^0x$serial: $status" <<<"$verdict" \
    || { echo "sample $n (serial $serial, $status) FAILED:" >&2; echo "$verdict" >&2; exit 1; }
  echo "sample $n (serial $serial): $status, signature verified"
done
echo "peak RSS (shards, after OCSP): $(hwm)"
stop
echo "done; $(uptime)"
