#!/usr/bin/env bash
# apt-install.sh PACKAGE WHAT: installs one Debian package for the tests, quietly, running
# apt-get update only when the package lists are too old to have it. Without root it says what to
# install by hand and exits 0 (the tests that need it then skip with a message).
set -euo pipefail
package="$1"
what="$2"
if [ "$(id -u)" -ne 0 ]; then
  echo "install: not root; install Debian's $package yourself to run $what" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "$package" > /dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$package" > /dev/null
fi
