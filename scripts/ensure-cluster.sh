#!/usr/bin/env bash
# The clustered-broker tests start their own Aedes-on-Redis and RabbitMQ nodes: make sure the
# programs exist (Debian: nodejs, npm, redis-server, rabbitmq-server).
set -euo pipefail
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ]; } ||
  missing+=(rabbitmq-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get (clustered-broker tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  exit 0
fi
echo "error: the clustered-broker tests need: ${missing[*]}." >&2
echo "       install them with: sudo apt-get install ${missing[*]}" >&2
exit 1
