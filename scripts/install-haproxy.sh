#!/usr/bin/env bash
# Installs Debian's HAProxy for the several-nodes test (test/integration/cluster.test.ts runs it
# with deploy/haproxy.cfg in front of three sluice processes). Skipped when it is there, or when
# not root.
set -euo pipefail
if command -v haproxy > /dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-haproxy: not root; install Debian's haproxy yourself to run the several-nodes test" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends haproxy > /dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends haproxy > /dev/null
fi
/usr/sbin/haproxy -v | head -1
