#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the browser-based writer tests need: Debian's Chromium and
# the npm packages pinned in package-lock.json (playwright-core to drive
# Chromium, speedscope's viewer, ajv for JSON-schema validation), into
# $PYFLAME_TOOLS (default /var/cache/pyflame/tools). Idempotent; exits 0 even
# when something cannot be installed, so that the tests report SKIP with the
# reason instead of CI failing here.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=${PYFLAME_TOOLS:-/var/cache/pyflame/tools}

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq --no-install-recommends chromium \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }; } \
      || echo "browser.sh: could not install chromium; browser tests will be skipped" >&2
  else
    echo "browser.sh: not root; cannot install chromium" >&2
  fi
fi

if ! command -v npm >/dev/null && [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm \
    || echo "browser.sh: could not install nodejs/npm; browser tests will be skipped" >&2
fi

mkdir -p "$tools"
if ! cmp -s "$here/package-lock.json" "$tools/package-lock.json" || [ ! -d "$tools/node_modules" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error) \
    || echo "browser.sh: npm ci failed; browser tests will be skipped" >&2
fi
