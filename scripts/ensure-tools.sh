#!/usr/bin/env bash
# Make sure the reference tools the tests use are installed: promtool (Debian package `prometheus`) checks the
# alert rules and the Prometheus config. Installs it with apt-get when running as root; otherwise says how.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "promtool not found; installing the Debian package 'prometheus' (promtool only is used) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
  command -v promtool >/dev/null 2>&1 && exit 0
fi
echo "promtool is required by the tests: install it (Debian/Ubuntu: sudo apt-get install prometheus)" >&2
exit 1
