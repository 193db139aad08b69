#!/usr/bin/env bash
# System tools the end-to-end tests run for real: PostgreSQL (a throwaway cluster
# made with initdb), nginx (the reverse proxy), headless Chromium (a screenshot),
# Node.js/npm (Azurite), Prometheus with promtool and the PostgreSQL exporter
# (scraping the deployment, checking the alert rules). Installs what is missing from Debian's packages;
# without root or apt it only reports, and the tests that need a tool skip.
set -euo pipefail

declare -A wanted=(
  [postgresql]="/usr/lib/postgresql/*/bin/initdb"
  [nginx]="/usr/sbin/nginx"
  [chromium]="/usr/bin/chromium"
  [nodejs]="/usr/bin/node"
  [npm]="/usr/bin/npm"
  [prometheus]="/usr/bin/promtool"
  [prometheus-postgres-exporter]="/usr/bin/prometheus-postgres-exporter"
)
missing=()
for package in "${!wanted[@]}"; do
  # shellcheck disable=SC2086
  compgen -G ${wanted[$package]} >/dev/null || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && { echo "system tools: all present"; exit 0; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
if command -v apt-get >/dev/null && { [ -z "$sudo" ] || $sudo true 2>/dev/null; }; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "cannot install ${missing[*]} (no root/apt); tests needing them will skip" >&2
fi
