#!/usr/bin/env bash
# The backprop page in a real browser: runs examples/backprop_walkthrough into OUT_DIR, then drives
# Debian's chromium (headless, through puppeteer-core from the npm registry; no browser download)
# over each page it wrote: every step, every leaf's gradient against what tapegrad computed, a
# screenshot, no console error. A missing chromium or node is installed (as root); if that fails,
# the test fails saying why: it never skips.
#   bash tests/browser/run.sh path/to/backprop_walkthrough OUT_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
walkthrough="$1"
out="$2"

fail() {
  echo "" >&2
  echo "*** browser.backprop_page FAILED: $* ***" >&2
  echo "" >&2
  exit 1
}

need() {  # need COMMAND DEBIAN-PACKAGE...
  command -v "$1" > /dev/null 2>&1 && return 0
  echo "browser test: $1 is missing; installing ${*:2}" >&2
  [ "$(id -u)" -eq 0 ] || fail "$1 is not installed and this is not root: apt-get install -y ${*:2}"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${@:2}" ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${@:2}"; }; } >&2 ||
    fail "could not install ${*:2} (apt-get failed), so the page cannot be tested"
  command -v "$1" > /dev/null 2>&1 || fail "${*:2} installed but $1 is still missing"
}
need chromium chromium
need node nodejs
need npm npm

rm -rf "$out/pages"
"$walkthrough" "$out/pages" > "$out.walkthrough.log" 2>&1 ||
  { cat "$out.walkthrough.log" >&2; fail "backprop_walkthrough exited non-zero"; }

# puppeteer-core as the committed lock file pins it, installed beside a copy of the script (Node
# resolves imports from the script's folder); reinstalled only when the lock file changes.
driver="$out/driver"
mkdir -p "$driver"
cp "$here/check_page.mjs" "$driver/"
if ! cmp -s "$here/package-lock.json" "$driver/package-lock.json" || [ ! -d "$driver/node_modules" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$driver/"
  # PUPPETEER_SKIP_DOWNLOAD: puppeteer-core downloads nothing anyway; this keeps it so.
  (cd "$driver" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >&2 ||
    fail "npm ci could not install puppeteer-core from the npm registry"
fi

node "$driver/check_page.mjs" /usr/bin/chromium "$out/pages" "$out/pages/expected_gradients.json"
