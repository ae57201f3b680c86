#!/usr/bin/env bash
# Installs tus-py-client (Debian's python3-tuspy) for the independent-client tests
# (test/integration/tuspy-client.test.ts), run with Debian's /usr/bin/python3. Skipped when it is
# there, or when not root.
set -euo pipefail
if /usr/bin/python3 -c 'import tusclient' 2> /dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-tuspy: not root; install Debian's python3-tuspy yourself to run the tus-py-client tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends python3-tuspy > /dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-tuspy > /dev/null
fi
/usr/bin/python3 -c 'import tusclient; print("tusclient installed")'
