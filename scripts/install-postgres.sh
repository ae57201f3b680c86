#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the PostgreSQL ledger tests (test/helpers/postgres.ts
# starts a temporary cluster from its binaries as the unprivileged postgres user). Skipped when
# the binaries are there, or when not root.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-postgres: not root; install Debian's postgresql yourself to run the PostgreSQL ledger tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends postgresql > /dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql > /dev/null
fi
ls /usr/lib/postgresql/*/bin/initdb
