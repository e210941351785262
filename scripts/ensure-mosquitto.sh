#!/usr/bin/env bash
# Tests start their own mosquitto processes; make sure the binary exists.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  if command -v mosquitto_pub >/dev/null 2>&1; then
    exit 0
  fi
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing mosquitto and mosquitto-clients with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients
  exit 0
fi
echo "error: the tests need the mosquitto broker and its clients." >&2
echo "       install them with: sudo apt-get install mosquitto mosquitto-clients" >&2
exit 1
