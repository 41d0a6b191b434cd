#!/usr/bin/env bash
# Chromium for the browser tests: Debian's `chromium` package (/usr/bin/chromium),
# installed when missing (as root, or with sudo), with its recommended fonts as tested. playwright-core comes with the
# project's npm dependencies (scripts/ensure-tools.sh); it never downloads a browser.
set -euo pipefail

if [[ -x ${CHROMIUM:-/usr/bin/chromium} ]]; then
  exit 0
fi
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || {
    echo "ensure-browser: Chromium is missing; install Debian's package: apt-get install chromium" >&2
    exit 1
  }
  as_root=(sudo)
fi
echo "ensure-browser: apt-get install chromium" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get install -y -q chromium >/dev/null \
  || { "${as_root[@]}" apt-get update -q >/dev/null && "${as_root[@]}" apt-get install -y -q chromium >/dev/null; }
/usr/bin/chromium --version >&2
