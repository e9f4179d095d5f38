#!/usr/bin/env bash
# A Python virtualenv with the tools the test suite calls (tests/requirements.txt), under
# .missive/venv. Prints the interpreter's path. Installs Debian's python3-venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.missive/venv
req=tests/requirements.txt
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  echo "$PWD/$venv/bin/python"; exit 0
fi
command -v python3 >/dev/null 2>&1 || {
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || { echo "pyenv.sh: python3 is required (apt-get install python3 python3-venv)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
}
rm -rf "$venv"
mkdir -p .missive
if ! python3 -m venv "$venv" >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || { echo "pyenv.sh: python3 cannot create a venv; install python3-venv" >&2; exit 1; }
  echo "pyenv.sh: installing python3-venv" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  rm -rf "$venv"; python3 -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
cp "$req" "$stamp"
echo "$PWD/$venv/bin/python"
