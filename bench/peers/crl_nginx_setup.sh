#!/usr/bin/env bash
# CRL peers + a static-file ceiling, over the certs prepared by ocsp_setup.sh (run/ocsp):
#   - build the CRL with `openssl ca -gencrl` (from index.txt) and `cfssl gencrl` (serial list)
#   - serve ca.crl and one pre-signed OCSP response (ocsp.der) as static files from nginx
#     on 127.0.0.1 (a ceiling for "serve a small pre-computed blob over HTTP" on this box)
#
#   ./crl_nginx_setup.sh start   # build CRLs, start nginx, print URLs
#   NGINX_WORKERS=2 ./crl_nginx_setup.sh start   # worker processes (default 1)
#
# For the OCSP comparison, give nginx as many worker processes as Signet has responder
# threads (`[responder] threads`, default 1), so each side has the same share of the cores;
# keepalive_requests is high so that neither side closes wrk's connections mid-run.
#   ./crl_nginx_setup.sh stop    # stop nginx (master pid from its pid file)
#   ./crl_nginx_setup.sh gencrl  # just (re)build the CRLs; used by hyperfine in bench.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CA=$HERE/run/ca; O=$HERE/run/ocsp; D=$HERE/run/crl
PY=${PYTHON:-python3}

gencrl() {
  mkdir -p "$D"
  [ -f "$D/crlnumber" ] || echo 1000 > "$D/crlnumber"
  cat > "$D/ca.cnf" <<EOF
[ ca ]
default_ca = bench
[ bench ]
database = $O/index.txt
crlnumber = $D/crlnumber
default_md = sha256
default_crl_hours = 24
EOF
  openssl ca -batch -gencrl -config "$D/ca.cnf" -cert "$CA/ca.pem" -keyfile "$CA/ca-key.pem" \
    -out "$D/openssl.crl.pem" 2>/dev/null
  echo 86400 > "$D/expiry_s"  # cfssl gencrl reads TIME from a file (or '-'), not argv
  cfssl gencrl "$O/revoked_serials.txt" "$CA/ca.pem" "$CA/ca-key.pem" "$D/expiry_s" 2>/dev/null \
    | base64 -d > "$D/cfssl.crl.der"
}

start() {
  [ -f "$O/index.txt" ] || { echo "run ./ocsp_setup.sh start first" >&2; exit 1; }
  stop >/dev/null
  gencrl
  openssl crl -in "$D/openssl.crl.pem" -outform DER -out "$D/openssl.crl.der"
  for f in openssl cfssl; do
    echo "$f CRL: $(openssl crl -inform DER -in "$D/$f.crl.der" -noout -text | grep -c 'Serial Number:') revoked entries," \
         "$(stat -c %s "$D/$f.crl.der") bytes; $(openssl crl -inform DER -in "$D/$f.crl.der" -CAfile "$CA/ca.pem" -noout 2>&1)"
  done
  local W=$D/www; mkdir -p "$W"
  cp "$D/openssl.crl.der" "$W/ca.crl"; cp "$O/resp_get_openssl.der" "$W/ocsp.der"
  local port; port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$D/nginx.conf" <<EOF
worker_processes ${NGINX_WORKERS:-1};
pid $D/nginx.pid;
error_log $D/nginx.error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  types { application/pkix-crl crl; application/ocsp-response der; }
  client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp;
  uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
  server { listen 127.0.0.1:$port; root $W; }
}
EOF
  mkdir -p "$D/tmp"
  nginx -c "$D/nginx.conf"      # daemonizes; master pid goes to $D/nginx.pid
  echo "http://127.0.0.1:$port" > "$D/nginx.url"
  sleep 0.3
  curl -s -o /dev/null -w "nginx pid $(cat "$D/nginx.pid") at http://127.0.0.1:$port: /ca.crl HTTP %{http_code} %{size_download} B; " "http://127.0.0.1:$port/ca.crl"
  curl -s -o /dev/null -w "/ocsp.der HTTP %{http_code} %{size_download} B\n" "http://127.0.0.1:$port/ocsp.der"
}

stop() {
  [ -f "$D/nginx.pid" ] || { echo "nginx not running"; return 0; }
  local pid; pid=$(cat "$D/nginx.pid")
  kill -QUIT "$pid" 2>/dev/null && echo "stopped nginx master pid $pid (workers exit with it)"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$D/nginx.pid"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  gencrl) gencrl ;;
  *) echo "usage: $0 start|stop|gencrl" >&2; exit 2 ;;
esac
