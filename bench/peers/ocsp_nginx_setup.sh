#!/usr/bin/env bash
# nginx serving one pre-signed OCSP response, as a static file, at every GET /ocsp/<anything>:
# the "serve a small pre-computed blob over HTTP" ceiling for Signet's OCSP GET path, with the
# same URL shape, so one client (`signet-bench ocsp`, which verifies every answer: signature,
# CertID, status) can drive both sides.
#
#   ./ocsp_nginx_setup.sh start RESPONSE.der   # start nginx, print its OCSP URL
#   NGINX_WORKERS=2 ./ocsp_nginx_setup.sh start RESPONSE.der
#   ./ocsp_nginx_setup.sh stop
#
# Give nginx as many worker processes as Signet has responder threads (`[responder] threads`,
# default 1), so each side has the same share of the cores. keepalive_requests is high so that
# neither side closes the client's connections mid-run, and the file is served from nginx's
# open-file cache with sendfile. RESPONSE.der is the answer Signet
# itself gives (fetch it from Signet's responder first), so both sides send the same bytes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
D=$HERE/run/ocsp_nginx
PY=${PYTHON:-python3}

start() {
  local resp=${1:?usage: $0 start RESPONSE.der}
  stop >/dev/null
  local W=$D/www; mkdir -p "$W" "$D/tmp"
  cp "$resp" "$W/response.der"
  local port; port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$D/nginx.conf" <<EOF
worker_processes ${NGINX_WORKERS:-1};
pid $D/nginx.pid;
error_log $D/nginx.error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  # tuned for a small static file: no open/fstat/close per request, header and body in one
  # write (sendfile + tcp_nopush send them together; tcp_nodelay flushes at once)
  open_file_cache max=16 inactive=600s; open_file_cache_valid 600s;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp;
  uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
  server {
    listen 127.0.0.1:$port;
    root $W;
    location /ocsp/ {
      default_type application/ocsp-response;
      try_files /response.der =404;
    }
  }
}
EOF
  nginx -c "$D/nginx.conf"      # daemonizes; master pid goes to $D/nginx.pid
  echo "http://127.0.0.1:$port/ocsp" > "$D/url"
  sleep 0.3
  curl -s -o "$D/check.der" -w "nginx pid $(cat "$D/nginx.pid"), ${NGINX_WORKERS:-1} worker(s): GET http://127.0.0.1:$port/ocsp/x HTTP %{http_code} %{size_download} B %{content_type}\n" \
    "http://127.0.0.1:$port/ocsp/x"
  cmp -s "$D/check.der" "$resp" || { echo "nginx does not serve $resp" >&2; exit 1; }
}

stop() {
  [ -f "$D/nginx.pid" ] || { echo "nginx not running"; return 0; }
  local pid; pid=$(cat "$D/nginx.pid")
  kill -QUIT "$pid" 2>/dev/null && echo "stopped nginx master pid $pid (workers exit with it)"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$D/nginx.pid"
}

case "${1:-start}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  *) echo "usage: $0 start RESPONSE.der | stop" >&2; exit 2 ;;
esac
