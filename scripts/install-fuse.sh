#!/usr/bin/env bash
# Installs what the kernel-I/O-error tests need (test/integration/io-errors.test.ts): Debian's fuse3
# (fusermount3, the FUSE library) and python3-fusepy, for a passthrough filesystem that fails a
# write or an fdatasync on demand with a real EIO. Skipped when they are there, or when not root.
set -euo pipefail
if command -v fusermount3 > /dev/null && /usr/bin/python3 -c 'import fusepy' 2> /dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-fuse: not root; install Debian's fuse3 and python3-fusepy yourself to run the I/O error tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends fuse3 python3-fusepy > /dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends fuse3 python3-fusepy > /dev/null
fi
/usr/bin/python3 -c 'import fusepy; print("fusepy", getattr(fusepy, "__version__", "installed"))'
