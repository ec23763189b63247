#!/usr/bin/env bash
# Runs README.md's quick start exactly as written and checks what each step claims.
#
# The ```sh blocks of the "Quick start" section are read from README.md itself, so the README
# and this check cannot drift apart, and each runs verbatim under bash in a fresh directory:
#   1. the server (`cargo run --release -- serve`), in the background on the README's ports
#      127.0.0.1:8443 (API) and 127.0.0.1:8080 (OCSP and CRLs);
#   2. key + CSR + token + `signet issue`: its output must be a chain that
#      `openssl verify -CAfile signet-data/root_ca.crt` accepts, for the CSR's key and name;
#   3. the same request with curl: answered 201 with the JSON the README describes;
#   4. `signet certificate` and `signet inspect`: api.internal.crt (a chain openssl accepts)
#      and api.internal.key (mode 0600, the certificate's key), then a readable description.
# Then the README's "Check a certificate with OpenSSL" block runs on the certificate from
# step 2 (saved as leaf.pem, as that block says): OCSP says good, the CRL verifies.
#
# The fresh directory is made under target/ so that `cargo run` finds this workspace from
# it; the release build is made first (its time is bounded separately), so that the server's
# start-up is measured on its own. Every step has a deadline, the server is stopped on every
# way out (its whole process group), and any failure exits non-zero with the step's output.
#
# Usage: scripts/readme-quickstart.sh            (KEEP=1 keeps the directory for inspection)
# Environment: BUILD_TIMEOUT (seconds, default 2400), STEP_TIMEOUT (default 120).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readme="$repo/README.md"
BUILD_TIMEOUT="${BUILD_TIMEOUT:-2400}"
STEP_TIMEOUT="${STEP_TIMEOUT:-120}"
START=$SECONDS

say() { printf 'readme-quickstart (+%ds): %s\n' "$((SECONDS - START))" "$*"; }
fail() {
    printf 'readme-quickstart: FAILED: %s\n' "$*" >&2
    exit 1
}
# Show a file (a step's output or the server log) under a heading, on stderr.
show() {
    printf -- '--- %s\n' "$1" >&2
    if [ -s "$2" ]; then cat "$2" >&2; else echo "(empty)" >&2; fi
}

for tool in cargo openssl curl python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || fail "needs $tool on PATH (README: Quick start, Prerequisites)"
done

# ---- The blocks, from README.md ------------------------------------------------------------
# The ```sh blocks between "## Quick start" and the next "## " heading, in order.
mapfile -d '' blocks < <(python3 - "$readme" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^## Quick start[^\n]*\n(.*?)(?=^## )", text, re.S | re.M)
if not m:
    sys.exit("README.md has no '## Quick start' section")
for block in re.findall(r"^```sh\n(.*?)^```", m.group(1), re.S | re.M):
    sys.stdout.write(block + "\0")
PY
)
# The block that checks a certificate with openssl (OCSP and CRL), in "Stapling".
check_block="$(python3 - "$readme" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^Check a certificate with OpenSSL[^\n]*\n\n```sh\n(.*?)^```", text, re.S | re.M)
if not m:
    sys.exit("README.md has no 'Check a certificate with OpenSSL' block")
sys.stdout.write(m.group(1))
PY
)"
if [ "${#blocks[@]}" -ne 4 ]; then
    fail "the quick start has ${#blocks[@]} sh blocks; this script checks 4 (serve, signet issue, curl, signet certificate): update it with README.md"
fi
case "${blocks[0]}" in
*"-- serve"*) ;;
*) fail "the quick start's first block does not start the server: ${blocks[0]}" ;;
esac

# ---- The README's ports, then a fresh directory ------------------------------------------------
for port in 8443 8080; do
    if ! python3 - "$port" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    sys.exit(f"port {sys.argv[1]}: {e.strerror}")
PY
    then
        fail "127.0.0.1:$port is taken, and the quick start uses it: stop whatever listens there (ss -ltnp 'sport = :$port') and run again"
    fi
done

mkdir -p "$repo/target"
work="$(mktemp -d "$repo/target/readme-quickstart.XXXXXX")"
server_pgid=""

stop_server() {
    [ -n "$server_pgid" ] || return 0
    local pgid="$server_pgid"
    server_pgid=""
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for _ in $(seq 1 150); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "readme-quickstart: the server did not stop within 15 s of SIGTERM: killing it" >&2
    kill -KILL -- "-$pgid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    stop_server
    if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
        show "server log" "$work/server.log"
    fi
    if [ "${KEEP:-}" = "1" ] || [ "$status" -ne 0 ]; then
        echo "readme-quickstart: the directory is kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$work"
say "in $work"

# ---- Build (bounded on its own) -------------------------------------------------------------
say "cargo build --release (the quick start's binary; up to ${BUILD_TIMEOUT}s)"
if ! timeout "$BUILD_TIMEOUT" cargo build --release >build.log 2>&1; then
    show "cargo build --release" build.log
    fail "the release build failed or took over ${BUILD_TIMEOUT}s"
fi
say "built"

# ---- Block 1: the server ----------------------------------------------------------------------
printf '%s' "${blocks[0]}" >block1.sh
say "block 1, in the background: $(tr '\n' ' ' <block1.sh)"
# Its own process group (job control), so that stopping it reaches cargo and the server.
set -m
bash block1.sh </dev/null >server.log 2>&1 &
server_pgid=$!
set +m

deadline=$((SECONDS + STEP_TIMEOUT))
until curl -fsS -o /dev/null --max-time 5 --cacert signet-data/root_ca.crt https://127.0.0.1:8443/readyz 2>/dev/null; do
    kill -0 -- "-$server_pgid" 2>/dev/null || fail "the server exited before it answered /readyz"
    [ "$SECONDS" -lt "$deadline" ] || fail "https://127.0.0.1:8443/readyz did not answer within ${STEP_TIMEOUT}s"
    sleep 0.2
done
say "the server answers https://127.0.0.1:8443/readyz, trusting only signet-data/root_ca.crt"
until curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8080/healthz 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the responder at http://127.0.0.1:8080 did not answer within ${STEP_TIMEOUT}s"
    sleep 0.2
done

# What the README says the first start made.
for f in signet-data/root_ca.crt signet-data/issuing_ca.crt signet-data/signet.toml \
    signet-data/signet.db signet-data/admin.token signet-data/provisioners/default.key; do
    [ -s "$f" ] || fail "the first start did not make $f"
done
for f in signet-data/admin.token signet-data/provisioners/default.key signet-data/root_ca.key; do
    mode="$(stat -c %a "$f")"
    [ "$mode" = "600" ] || fail "$f has mode $mode, not 600"
done
fingerprint="$(openssl x509 -in signet-data/root_ca.crt -noout -fingerprint -sha256 |
    sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')"
grep -q "root_fingerprint=sha256:$fingerprint" server.log ||
    fail "the server did not log the root's SHA-256 fingerprint ($fingerprint)"
say "signet-data holds the CA, signet.toml, signet.db, admin.token (0600), provisioners/default.key (0600); the root fingerprint is logged"

# Runs README block $1 (text) as step $2, verbatim under bash -e, bounded; stdout to $2.out.
run_block() {
    printf '%s' "$1" >"$2.sh"
    say "$2: $(grep -c '' "$2.sh") lines"
    if ! timeout "$STEP_TIMEOUT" bash -e -o pipefail "$2.sh" </dev/null >"$2.out" 2>"$2.err"; then
        show "$2.sh" "$2.sh"
        show "$2 stdout" "$2.out"
        show "$2 stderr" "$2.err"
        fail "$2 failed or took over ${STEP_TIMEOUT}s"
    fi
}

# ---- Block 2: key, CSR, token, signet issue ---------------------------------------------------
run_block "${blocks[1]}" block2
[ "$(grep -c 'BEGIN CERTIFICATE' block2.out)" -eq 2 ] ||
    { show "block2 stdout" block2.out; fail "signet issue did not print the leaf and the issuing CA"; }
verify="$(openssl verify -purpose sslserver -CAfile signet-data/root_ca.crt -untrusted block2.out block2.out 2>&1)" ||
    fail "openssl verify refused the chain from signet issue: $verify"
[ "$(openssl x509 -in block2.out -noout -pubkey)" = "$(openssl pkey -in svc.key -pubout)" ] ||
    fail "the certificate from signet issue is not for svc.key"
openssl x509 -in block2.out -noout -ext subjectAltName | grep -q 'DNS:api.internal' ||
    fail "the certificate from signet issue does not name api.internal"
say "block 2: signet issue printed a chain for svc.key and api.internal; openssl verify: $verify"

# ---- Block 3: the same request with curl -----------------------------------------------------
# A curl configuration of the script's own (CURL_HOME) appends the HTTP status to what the
# block prints; the block itself runs as written.
mkdir -p curl-home
printf 'write-out = "\\nHTTP_STATUS=%%{http_code}\\n"\n' >curl-home/.curlrc
CURL_HOME="$PWD/curl-home" run_block "${blocks[2]}" block3
status="$(sed -n 's/^HTTP_STATUS=//p' block3.out)"
[ "$status" = "201" ] || { show "block3 stdout" block3.out; fail "the curl request was answered $status, not 201"; }
if ! python3 - block3.out <<'PY'
import json, subprocess, sys
body = open(sys.argv[1]).read().rsplit("HTTP_STATUS=", 1)[0]
doc = json.loads(body)
for key in ("serial_number", "certificate", "chain", "not_before", "not_after"):
    if key not in doc:
        sys.exit(f"the answer has no {key!r}: {sorted(doc)}")
chain = doc["chain"] if isinstance(doc["chain"], list) else [doc["chain"]]
open("curl-leaf.pem", "w").write(doc["certificate"])
open("curl-chain.pem", "w").write("".join(chain))
serial = subprocess.run(["openssl", "x509", "-in", "curl-leaf.pem", "-noout", "-serial"],
                        capture_output=True, text=True, check=True).stdout.strip().split("=")[1]
if int(serial, 16) != int(doc["serial_number"], 16):
    sys.exit(f"serial_number {doc['serial_number']} is not the certificate's ({serial})")
PY
then
    show "block3 stdout" block3.out
    fail "the curl answer is not the JSON the README describes"
fi
verify="$(openssl verify -purpose sslserver -CAfile signet-data/root_ca.crt -untrusted curl-chain.pem curl-leaf.pem 2>&1)" ||
    fail "openssl verify refused the certificate from the curl request: $verify"
say "block 3: 201 with serial_number, certificate, chain, not_before, not_after; openssl verify: $verify"

# ---- Block 4: signet certificate, signet inspect ----------------------------------------------
run_block "${blocks[3]}" block4
[ -s api.internal.crt ] && [ -s api.internal.key ] ||
    { show "block4 stdout" block4.out; show "block4 stderr" block4.err; fail "signet certificate did not write api.internal.crt and api.internal.key"; }
mode="$(stat -c %a api.internal.key)"
[ "$mode" = "600" ] || fail "api.internal.key has mode $mode, not 600"
verify="$(openssl verify -purpose sslserver -CAfile signet-data/root_ca.crt -untrusted api.internal.crt api.internal.crt 2>&1)" ||
    fail "openssl verify refused api.internal.crt: $verify"
[ "$(openssl x509 -in api.internal.crt -noout -pubkey)" = "$(openssl pkey -in api.internal.key -pubout)" ] ||
    fail "api.internal.crt is not for api.internal.key"
grep -q 'api.internal' block4.out ||
    { show "block4 stdout" block4.out; fail "signet inspect did not describe api.internal.crt"; }
say "block 4: signet certificate wrote api.internal.crt and api.internal.key (0600); openssl verify: $verify; signet inspect describes it"

# ---- The README's OpenSSL check of a certificate (OCSP, CRL) -----------------------------------
cp block2.out leaf.pem
run_block "$check_block" ocsp-check
grep -q '^leaf.pem: good' ocsp-check.out ||
    { show "stdout" ocsp-check.out; show "stderr" ocsp-check.err; fail "openssl ocsp did not say leaf.pem: good"; }
grep -q 'Response verify OK' ocsp-check.err ||
    { show "stderr" ocsp-check.err; fail "openssl ocsp did not verify the response"; }
grep -q 'Certificate Revocation List' ocsp-check.out && grep -q 'verify OK' ocsp-check.err ||
    { show "stdout" ocsp-check.out; show "stderr" ocsp-check.err; fail "openssl crl did not verify the issuing CA's CRL"; }
say "OpenSSL check: OCSP says good (response verified), the CRL verifies"

# ---- Stop as the README says (SIGTERM) --------------------------------------------------------
pgid="$server_pgid"
server_pgid=""
kill -TERM -- "-$pgid"
deadline=$((SECONDS + 15))
while kill -0 -- "-$pgid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        server_pgid="$pgid"
        fail "the server did not stop within 15 s of SIGTERM"
    fi
    sleep 0.1
done
grep -q 'stopped' server.log || fail "the server did not log that it stopped"
say "the server stopped on SIGTERM; all quick start steps passed in $((SECONDS - START))s"
