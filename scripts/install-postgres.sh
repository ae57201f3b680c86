#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the PostgreSQL ledger tests (test/helpers/postgres.ts
# starts a temporary cluster from its binaries as the unprivileged postgres user). Skipped when
# the binaries are there.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" postgresql "the PostgreSQL ledger tests"
ls /usr/lib/postgresql/*/bin/initdb 2> /dev/null || true
