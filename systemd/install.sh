#!/usr/bin/env bash
# Install or remove the edge-agent systemd service.
#
#   systemd/install.sh install      # venv, config skeleton, device key, credentials, unit
#   systemd/install.sh venv         # only the venv: /opt/edge-agent from this checkout
#   systemd/install.sh uninstall    # Home Assistant entities, unit and venv removed; config,
#                                   # keys and state are kept
#   systemd/install.sh uninstall --purge   # ... and config, keys and state are deleted too
#
# Environment:
#   DESTDIR    install under this root instead of / (packaging, tests); systemctl is not called
#   AGENT_BIN  an existing edge-agent executable to run instead of making the venv (the unit's
#              ExecStart then names it); unset: the venv below is created or upgraded
#   VENV       where the venv goes (default /opt/edge-agent): the device wheel of this checkout
#              (agent/ and edge-agent only) with DEVICE_EXTRAS (default device: LiteRT, paho-mqtt,
#              cryptography, simplejpeg, linuxpy, no OpenCV; device,video adds OpenCV;
#              tflite-runtime for the legacy runtime); never TensorFlow
#   PYTHON     the interpreter the venv is made with (default python3, >= 3.11)
#   DEVICE_ID  this device's id (default: the short host name)
#
# The unit runs as a DynamicUser, so no account is created: systemd allocates one at start and
# gives it /var/lib/edge-agent (StateDirectory=). Secrets stay root-owned 0600 files under
# /etc/edge-agent/credentials and reach the service through LoadCredential=.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${DESTDIR:-}"
CHECKOUT="$(cd "$HERE/.." && pwd)"
VENV="${VENV:-/opt/edge-agent}"
PYTHON="${PYTHON:-python3}"
DEVICE_EXTRAS="${DEVICE_EXTRAS:-device}"
DEFAULT_BIN="/opt/edge-agent/bin/edge-agent"
MARKER=".edge-agent-venv"   # in a venv this script made, so uninstall removes only that
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

make_venv() {
    # The agent's own venv: the device wheel built from this checkout (scripts/device_wheel.py:
    # agent/ and edge-agent only) with its DEVICE_EXTRAS; re-running upgrades it (as make install).
    local venv="$ROOT$VENV" wheel
    if [ ! -x "$venv/bin/python" ]; then
        "$CHECKOUT/scripts/bootstrap.sh" "$PYTHON" "$venv" >&2
        touch "$venv/$MARKER"
        say "created venv $venv"
    elif [ ! -e "$venv/$MARKER" ]; then
        die "$venv exists and was not made by this script: remove it or set VENV"
    fi
    wheel="$("$venv/bin/python" "$CHECKOUT/scripts/device_wheel.py" "$CHECKOUT/dist/device")"
    say "installing $(basename "$wheel")[$DEVICE_EXTRAS] into $venv (no TensorFlow)"
    "$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel" >&2
    "$venv/bin/pip" install -q "$wheel[$DEVICE_EXTRAS]" >&2
    "$venv/bin/edge-agent" --version >/dev/null || die "$venv/bin/edge-agent does not run"
    say "installed $("$venv/bin/edge-agent" --version) in $venv"
}

do_install() {
    local run_bin   # what the installer runs now (under DESTDIR) and what the unit names
    if [ -n "${AGENT_BIN:-}" ]; then
        [ -x "$AGENT_BIN" ] || die "$AGENT_BIN is not executable: unset AGENT_BIN to build the venv $VENV, or point it at an edge-agent"
        run_bin="$AGENT_BIN"
    else
        make_venv
        AGENT_BIN="$VENV/bin/edge-agent"
        run_bin="$ROOT$AGENT_BIN"
    fi
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
        "$run_bin" keygen --out "$CREDS" --device-id "$id" --name device >/dev/null
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

hass_remove() {
    # Empty retained discovery configs: Home Assistant forgets the device (best effort: the
    # broker may be unreachable; `edge-agent hass remove` can be run again later).
    local bin="$ROOT$VENV/bin/edge-agent"
    [ -x "$bin" ] && [ -e "$ETC/edge-agent.toml" ] || return 0
    if ! CREDENTIALS_DIRECTORY="$CREDS" "$bin" hass remove --config "$ETC/edge-agent.toml" --if-enabled; then
        say "could not remove the Home Assistant entities (broker unreachable?); see docs/operations.md"
    fi
}

do_uninstall() {
    local purge="${1:-}"
    if systemd_running; then
        systemctl disable --now edge-agent.service || true
    fi
    if [ -z "${KEEP_HASS:-}" ]; then
        hass_remove
    fi
    rm -f "$UNIT" "$DOC/operations.md"
    rmdir "$DOC" 2>/dev/null || true
    say "removed $UNIT"
    if systemd_running; then
        systemctl daemon-reload
    fi
    if [ -e "$ROOT$VENV/$MARKER" ]; then
        rm -rf "$ROOT$VENV"
        say "removed venv $ROOT$VENV"
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
    venv) make_venv ;;
    uninstall) do_uninstall "${2:-}" ;;
    *) echo "usage: $0 install | venv | uninstall [--purge]" >&2; exit 2 ;;
esac
