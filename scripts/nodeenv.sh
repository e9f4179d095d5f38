#!/usr/bin/env bash
# The Node packages the test suite calls (tests/node/package.json: the official Resend Node SDK),
# installed into .missive/node once per change of the package list. Prints the folder holding
# node_modules. Installs Debian's nodejs and npm when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=.missive/node
pkg=tests/node/package.json
stamp="$dir/.package.json"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || { echo "nodeenv.sh: node and npm are required (apt-get install nodejs npm)" >&2; exit 1; }
  echo "nodeenv.sh: installing nodejs and npm" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
if [ -d "$dir/node_modules/resend" ] && [ -f "$stamp" ] && cmp -s "$pkg" "$stamp"; then
  echo "$PWD/$dir"; exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
cp "$pkg" "$dir/package.json"
npm install --prefix "$dir" --silent --no-audit --no-fund >&2
cp "$pkg" "$stamp"
echo "$PWD/$dir"
