"""MQTT test fixtures: TLS material and a 3.1.1-only gate (``broker`` comes from tests/support)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.broker import MosquittoBroker

# -- TLS: a CA, a server certificate for 127.0.0.1, a client certificate ----------------------


@dataclass(frozen=True)
class TLSMaterial:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    directory = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("test-ca", ca_key, _name("test-ca"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_san: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    server_cert = _issue("127.0.0.1", server_key, ca_cert.subject, ca_key, ca=False, san=server_san)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue("pi-1", client_key, ca_cert.subject, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    material = TLSMaterial(
        ca_file=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    material.ca_file.write_bytes(ca_cert.public_bytes(pem))
    material.server_cert.write_bytes(server_cert.public_bytes(pem))
    material.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_key(server_key, material.server_key)
    _write_key(client_key, material.client_key)
    return material


# -- a gate in front of mosquitto that answers MQTT 5 like a 3.1.1-only broker ----------------


def _protocol_level(first: bytes) -> int | None:
    """Protocol level byte of a CONNECT packet (after the fixed header and 'MQTT' name)."""
    index = 1
    while index < len(first) and first[index] & 0x80:
        index += 1
    index += 1  # last remaining-length byte
    name_length = int.from_bytes(first[index : index + 2], "big")
    level_at = index + 2 + name_length
    return first[level_at] if level_at < len(first) else None


class Mqtt311Gate:
    """A TCP proxy: MQTT 5 CONNECT -> 3.1.1 CONNACK 0x01 and close; else pipe to mosquitto."""

    def __init__(self, upstream: MosquittoBroker) -> None:
        self.upstream = upstream
        self.refused_v5 = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _addr = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        first = conn.recv(4096)
        if first and _protocol_level(first) == 5:
            self.refused_v5 += 1
            conn.sendall(b"\x20\x02\x00\x01")
            conn.close()
            return
        upstream = socket.create_connection((self.upstream.host, self.upstream.port))
        upstream.sendall(first)
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)

    def close(self) -> None:
        self._closed = True
        self._server.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def mqtt311_gate(broker: MosquittoBroker) -> Iterator[Mqtt311Gate]:
    gate = Mqtt311Gate(broker)
    yield gate
    gate.close()
