#!/usr/bin/env bash
# The test suite drives a real Chromium and a real Redis server. On a Debian machine where
# we are root, install them from Debian's packages; anywhere else, say what is missing and
# fail, so no test is silently skipped.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || [ -n "${CHROMIUM_PATH:-}" ] || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian packages the tests need: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi

echo "The tests need these programs, which are not installed: ${need[*]}" >&2
echo "Install them (Debian/Ubuntu: apt-get install ${need[*]}), or set CHROMIUM_PATH to a Chromium binary." >&2
exit 1
