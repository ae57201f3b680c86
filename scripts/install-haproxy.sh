#!/usr/bin/env bash
# Installs Debian's HAProxy for the several-nodes test (test/integration/cluster.test.ts runs it
# with deploy/haproxy.cfg in front of three sluice processes). Skipped when it is there.
set -euo pipefail
if [ -x /usr/sbin/haproxy ]; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" haproxy "the several-nodes test"
[ -x /usr/sbin/haproxy ] && /usr/sbin/haproxy -v | head -1 || true
