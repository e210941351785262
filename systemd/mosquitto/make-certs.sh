#!/usr/bin/env bash
# Certificates for the edge-agent broker recipe, made with openssl (EC P-256, SHA-256).
#
#   make-certs.sh ca     DIR            a new CA: DIR/ca.key (keep it offline) and DIR/ca.crt
#   make-certs.sh broker DIR HOST...    DIR/broker.{key,crt} for these DNS names / IP addresses
#   make-certs.sh client DIR NAME       DIR/NAME.{key,crt} with CN=NAME: a device id, "fleet"
#                                       or "homeassistant" (the broker's ACL keys off the CN)
#
# DAYS (default 825) sets the validity of broker and client certificates.
# BROKER_GROUP (default mosquitto): broker.key is made root:BROKER_GROUP 0640 when that group
# exists here, because mosquitto 2 reads its key after dropping root to the mosquitto user. On
# another machine it stays 0600; install it on the broker with
#   install -o root -g mosquitto -m 0640 broker.key /etc/mosquitto/edge-agent/broker.key
# Every other key stays 0600 (owner only); certificates are 0644.
set -euo pipefail

DAYS="${DAYS:-825}"
BROKER_GROUP="${BROKER_GROUP:-mosquitto}"
die() { echo "make-certs: error: $*" >&2; exit 1; }

new_key() { (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1") }

sign() {  # sign DIR NAME EXTFILE SUBJECT
    local dir="$1" name="$2" ext="$3" subject="$4"
    [ -f "$dir/ca.key" ] || die "$dir/ca.key not found: run 'make-certs.sh ca $dir' first"
    new_key "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days "$DAYS" -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$dir/$name.csr" "$ext"
    chmod 0644 "$dir/$name.crt"
    echo "make-certs: $dir/$name.crt ($subject)"
}

broker_key_access() {  # the mosquitto group reads the key; nobody else does
    local key="$1"
    if getent group "$BROKER_GROUP" >/dev/null 2>&1 && chgrp "$BROKER_GROUP" "$key" 2>/dev/null; then
        [ "$(id -u)" = 0 ] && chown root "$key"
        chmod 0640 "$key"
        echo "make-certs: $key is group $BROKER_GROUP, mode 0640 (mosquitto reads it after dropping root)"
    else
        echo "make-certs: note: $key is 0600; on the broker install it with" \
            "'install -o root -g $BROKER_GROUP -m 0640 broker.key /etc/mosquitto/edge-agent/'"
    fi
}

cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 ca DIR | broker DIR HOST... | client DIR NAME"
mkdir -p "$dir"
case "$cmd" in
    ca)
        [ -e "$dir/ca.key" ] && die "$dir/ca.key exists; refusing to replace a CA"
        new_key "$dir/ca.key"
        openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=edge-agent CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -out "$dir/ca.crt"
        echo "make-certs: $dir/ca.crt (keep $dir/ca.key offline)"
        ;;
    broker)
        shift 2
        [ "$#" -gt 0 ] || die "name at least one host name or IP address for the broker"
        san=""
        for host in "$@"; do
            if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then san+="IP:$host,"; else san+="DNS:$host,"; fi
        done
        ext="$(mktemp)"
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
            "${san%,}" > "$ext"
        sign "$dir" broker "$ext" "/CN=$1"
        broker_key_access "$dir/broker.key"
        ;;
    client)
        name="${3:-}"
        [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] \
            || die "client name '$name' must be a device id (letters, digits, '_', '.', '-')"
        ext="$(mktemp)"
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' > "$ext"
        sign "$dir" "$name" "$ext" "/CN=$name"
        ;;
    *) die "unknown command '$cmd'" ;;
esac
