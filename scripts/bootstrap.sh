#!/usr/bin/env bash
# Create the virtual environment on a fresh Debian / Raspberry Pi OS machine.
# Usage: scripts/bootstrap.sh PYTHON VENV
set -euo pipefail
py=${1:-python3}
venv=${2:-.venv}

if ! command -v "$py" >/dev/null 2>&1; then
  echo "error: $py not found; install Python >= 3.11 (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: $py is $("$py" -V 2>&1); Python >= 3.11 is required" >&2
  exit 1
fi
if [ -x "$venv/bin/python" ]; then
  exit 0
fi
if ! "$py" -m venv --help >/dev/null 2>&1 || ! "$py" -c 'import ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3-venv with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  else
    echo "error: the venv module is missing; run: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
echo "creating $venv with $("$py" -V 2>&1)"
"$py" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
