#!/usr/bin/env bash
# Installs what the tests need into .venv (created if missing), Chromium for the browser
# tests (Debian's package, when run as root), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/fonts/truetype/noto ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # the emoji font only makes the screenshots faithful; the tests do not depend on it
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
  else
    echo "Chromium is missing: install it (Debian: apt-get install chromium) for the browser tests." >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
