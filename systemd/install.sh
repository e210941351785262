#!/usr/bin/env bash
# Install or remove the edge-agent systemd service.
#
#   systemd/install.sh install      # config skeleton, device key, credentials, unit, daemon-reload
#   systemd/install.sh uninstall    # unit removed; config, keys and state are kept
#   systemd/install.sh uninstall --purge   # ... and config, keys and state are deleted too
#
# Environment:
#   DESTDIR    install under this root instead of / (packaging, tests); systemctl is not called
#   AGENT_BIN  the edge-agent executable (default /opt/edge-agent/bin/edge-agent; see
#              docs/quickstart-pi.md for making that venv)
#   DEVICE_ID  this device's id (default: the short host name)
#
# The unit runs as a DynamicUser, so no account is created: systemd allocates one at start and
# gives it /var/lib/edge-agent (StateDirectory=). Secrets stay root-owned 0600 files under
# /etc/edge-agent/credentials and reach the service through LoadCredential=.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${DESTDIR:-}"
AGENT_BIN="${AGENT_BIN:-/opt/edge-agent/bin/edge-agent}"
DEFAULT_BIN="/opt/edge-agent/bin/edge-agent"
ETC="$ROOT/etc/edge-agent"
CREDS="$ETC/credentials"
UNIT="$ROOT/etc/systemd/system/edge-agent.service"
DOC="$ROOT/usr/share/doc/edge-agent"
STATE="$ROOT/var/lib/edge-agent"

say() { echo "install-service: $*"; }
die() { echo "install-service: error: $*" >&2; exit 1; }

systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

device_id() {
    local id="${DEVICE_ID:-$(hostname -s 2>/dev/null || hostname)}"
    [[ "$id" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] \
        || die "device id '$id' must be 1-64 letters, digits, '_', '.', '-' (set DEVICE_ID)"
    echo "$id"
}

secret_placeholder() {
    # An empty 0600 file so LoadCredential= finds it; fill it only if the config uses it.
    if [ ! -e "$CREDS/$1" ]; then
        install -m 0600 /dev/null "$CREDS/$1"
        say "created empty $CREDS/$1 ($2)"
    fi
}

do_install() {
    [ -x "$AGENT_BIN" ] || die "$AGENT_BIN is not executable: install the agent first (docs/quickstart-pi.md) or set AGENT_BIN"
    local id
    id="$(device_id)"
    install -d -m 0755 "$ETC" "$DOC" "$(dirname "$UNIT")"
    install -d -m 0700 "$CREDS"
    if [ -e "$ETC/edge-agent.toml" ]; then
        say "keeping existing $ETC/edge-agent.toml"
    else
        sed "s/^device_id = .*/device_id = \"$id\"          # this device's id: MQTT client id and topic level/" \
            "$HERE/edge-agent.toml" > "$ETC/edge-agent.toml.tmp"
        chmod 0644 "$ETC/edge-agent.toml.tmp"
        mv "$ETC/edge-agent.toml.tmp" "$ETC/edge-agent.toml"
        say "wrote config skeleton $ETC/edge-agent.toml (device $id): edit it before starting"
    fi
    if [ -e "$CREDS/device.key" ]; then
        say "keeping existing device key $CREDS/device.key"
    else
        "$AGENT_BIN" keygen --out "$CREDS" --device-id "$id" --name device >/dev/null
        mv "$CREDS/device.pub" "$ETC/device.pub"
        chmod 0644 "$ETC/device.pub"
        say "generated device key $CREDS/device.key; give $ETC/device.pub to the fleet manager"
    fi
    secret_placeholder mqtt-password "the MQTT password, if mqtt.password_file names it"
    secret_placeholder device-tls.key "the TLS client key, if mqtt.key_file names it"
    sed "s#$DEFAULT_BIN#$AGENT_BIN#g" "$HERE/edge-agent.service" > "$UNIT.tmp"
    chmod 0644 "$UNIT.tmp"
    mv "$UNIT.tmp" "$UNIT"
    install -m 0644 "$HERE/../docs/operations.md" "$DOC/operations.md"
    say "installed $UNIT (ExecStart $AGENT_BIN)"
    if systemd_running; then
        systemctl daemon-reload
        say "systemd reloaded; start with: systemctl enable --now edge-agent"
    else
        say "systemd is not running here (or DESTDIR is set): no daemon-reload"
    fi
}

do_uninstall() {
    local purge="${1:-}"
    if systemd_running; then
        systemctl disable --now edge-agent.service || true
    fi
    rm -f "$UNIT" "$DOC/operations.md"
    rmdir "$DOC" 2>/dev/null || true
    say "removed $UNIT"
    if systemd_running; then
        systemctl daemon-reload
    fi
    if [ "$purge" = "--purge" ]; then
        rm -rf "$ETC" "$STATE" "$ROOT/var/lib/private/edge-agent"
        say "purged $ETC (config and keys) and $STATE (models, counters, queued results)"
    else
        say "kept $ETC (config and keys) and $STATE; 'uninstall --purge' deletes them"
    fi
}

case "${1:-}" in
    install) do_install ;;
    uninstall) do_uninstall "${2:-}" ;;
    *) echo "usage: $0 install | uninstall [--purge]" >&2; exit 2 ;;
esac
