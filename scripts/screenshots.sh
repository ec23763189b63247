#!/usr/bin/env bash
# Regenerate the console's screenshots in docs/screenshots/ (linked from the README): runs
# the console's browser test (crates/signet/tests/console.rs) with SIGNET_SCREENSHOTS set,
# which writes each page at desktop (1280x900) and phone (390x844) widths, then shrinks
# the PNGs losslessly when optipng is installed.
#
#   scripts/screenshots.sh
#
# Needs what the test needs: chromium, chromium-driver, openssl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/docs/screenshots
mkdir -p "$OUT"
rm -f "$OUT"/*.png
cd "$ROOT"
SIGNET_SCREENSHOTS=$OUT cargo nextest run --locked -p signet --test console
if command -v optipng >/dev/null; then
  optipng -quiet -o2 "$OUT"/*.png
fi
ls -l "$OUT"
