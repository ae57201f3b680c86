#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (test/browser/), when it is not there yet.
# playwright-core drives this browser; its own browser download is never used.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium: not root; install Debian's chromium yourself (apt-get install chromium) to run the browser tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium > /dev/null
/usr/bin/chromium --version
