#!/usr/bin/env bash
# System packages some tests need (Debian's, no downloaded browsers). Installs only what is missing,
# and only when it can (root with apt); tests that need a missing one say so and are skipped.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages for tests: ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null 2>&1 \
    || echo "could not install ${need[*]}; the tests that need them will be skipped"
fi
exit 0
