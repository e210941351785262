"""Simulated agents for the fleet simulation: many devices per process, one event loop.

Each simulated device runs the device's real update code -- signed command verification and the
replay ledger (:mod:`agent.update.commands`), header verification, per-block hashes and payload
decryption (:class:`~agent.bundle.verify.BundleVerifier`), the pure transfer state machine
(:mod:`agent.update.transfer`) and the partial file with its persisted bitmap
(:mod:`agent.update.partial`) -- over its own MQTT connection. What is simulated: inference (a
digest of the decrypted model stands in for the canary run) and the MQTT adapter (one paho
client per device, all driven by one ``selectors`` loop per process instead of two threads per
device). A device fails its canary when a seeded hash of its id falls under the failure rate.
"""

from __future__ import annotations

import hashlib
import logging
import selectors
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.bundle import BundleVerifier, DeviceIdentity, ReleaseState, TrustRoot
from agent.bundle.verify import VerifiedManifest
from agent.errors import BundleRejected
from agent.mqtt.messages import ModelRef, StatusMessage, UpdateStatus
from agent.mqtt.topics import DeviceTopics
from agent.update.commands import CommandLedger, open_command
from agent.update.partial import PartialPayload
from agent.update.protocol import COMMAND_DESIRED, COMMAND_ROLLBACK, BundleTopics, command_topic
from agent.update.transfer import Transfer, TransferLimits, block_sizes

_log = logging.getLogger(__name__)
GROUP = "sim"
STATUS_EVERY_S = 1.0


@dataclass(frozen=True)
class SimConfig:
    host: str
    port: int
    prefix: str
    devices: tuple[str, ...]
    state_root: Path
    release_keys: tuple[bytes, ...]  # raw Ed25519 public keys (picklable)
    fleet_keys: tuple[bytes, ...]
    group_key_pem: bytes
    fail_rate: float
    seed: str
    window: int = 8
    protocol: str = "5"  # "5" (falls back to 3.1.1 when refused) or "3.1.1"
    offline: tuple[str, ...] = ()  # announce, then go offline until ``come_back_s``
    come_back_s: float | None = None  # after ready; None: they stay offline
    flapping: tuple[str, ...] = ()  # drop the connection every ``flap_s`` and reconnect
    flap_s: float = 5.0
    ports: tuple[int, ...] = ()  # several broker nodes: device i connects to ports[i % n]


def fails_canary(device: str, seed: str, rate: float) -> bool:
    """Deterministic failure injection: the same device, seed and rate always decide alike."""
    digest = hashlib.sha256(f"{seed}/{device}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@dataclass
class _Download:
    bid: str
    verifier: BundleVerifier
    verified: VerifiedManifest
    partial: PartialPayload
    transfer: Transfer
    started: float


@dataclass
class SimDevice:
    """One device: its MQTT client, its model slots and its update state."""

    config: SimConfig
    device_id: str
    identity: DeviceIdentity
    fleet: TrustRoot
    release: TrustRoot
    client: paho.Client = field(init=False)
    ledger: CommandLedger = field(default_factory=CommandLedger)
    state: ReleaseState = field(default_factory=ReleaseState)
    model: ModelRef = field(default_factory=lambda: ModelRef("sim", "1", "00" * 32))
    previous: ModelRef | None = None
    update: UpdateStatus = field(default_factory=UpdateStatus)
    download: _Download | None = None
    last_status: float = 0.0
    connected: bool = False
    writing: bool = False
    protocol: paho.MQTTProtocolVersion = paho.MQTTv5
    fall_back: bool = False
    port: int = 0

    def __post_init__(self) -> None:
        self.topics = DeviceTopics(self.config.prefix, self.device_id)
        self.bundles = BundleTopics(self.config.prefix)
        if self.config.protocol == "3.1.1":
            self.protocol = paho.MQTTv311
        self.client = self._new_client()

    def _new_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-{self.device_id}", protocol=self.protocol
        )
        client.will_set(str(self.topics.availability), b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def connect(self) -> None:
        """A fresh connection (after a fallback, or coming back online)."""
        if self.fall_back:
            self.protocol, self.fall_back = paho.MQTTv311, False
            self.client = self._new_client()
        self.client.connect(self.config.host, self.port or self.config.port, keepalive=60)
        self.writing = False

    def _on_disconnect(self, *_args: object) -> None:
        self.connected = False

    # -- MQTT (called from the worker's loop thread) ---------------------------------------------

    def _on_connect(self, client: paho.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        if rc.is_failure:
            if self.protocol == paho.MQTTv5 and rc.value in (0x01, 0x84):
                self.fall_back = True  # the worker reconnects with MQTT 3.1.1
                return
            _log.warning("%s: connection refused: %s", self.device_id, rc)
            return
        self.connected = True
        for name in (COMMAND_DESIRED, COMMAND_ROLLBACK):
            client.subscribe(str(command_topic(self.topics, name)), qos=1)
        # A fresh session: subscribe again to what was asked for, as agent.mqtt.client does.
        download, offer = self.download, getattr(self, "_pending_offer", None)
        if download is not None:
            for index in sorted(download.transfer.outstanding):
                client.subscribe(str(self.bundles.block(download.bid, index)), qos=1)
        elif offer is not None:
            client.subscribe(str(self.bundles.header(offer.id)), qos=1)
        client.publish(str(self.topics.availability), b"online", qos=1, retain=True)
        self.publish_status()

    def _on_message(self, _client: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        try:
            if topic.startswith(str(self.topics.base) + "/commands/"):
                self._command(payload)
            elif self.download is not None or topic.endswith("/header"):
                self._bundle_message(topic, payload)
        except BundleRejected as exc:
            self._reject(exc.code, str(exc))

    def publish_status(self) -> None:
        status = StatusMessage(
            ts=time.time(),
            state="running",
            backend="sim",
            model=self.model,
            groups=(GROUP,),
            update=self.update,
        )
        self.client.publish(str(self.topics.status), status.to_json(), qos=1, retain=True)
        self.last_status = time.monotonic()

    def _set(self, **fields: Any) -> None:
        self.update = UpdateStatus(**{**self.update.to_obj(), **fields})
        self.publish_status()

    # -- commands --------------------------------------------------------------------------------

    def _command(self, envelope: bytes) -> None:
        if not envelope:  # the fleet withdrew its desired command: stop fetching
            if self.download is not None:
                self._reject("withdrawn", "the fleet withdrew the desired command")
            self._pending_offer = None
            return
        signed = open_command(envelope, self.fleet, self.device_id)
        if not self.ledger.is_new(signed):
            return
        self.ledger = self.ledger.accept(signed)
        command = signed.command
        if command.command == COMMAND_ROLLBACK:
            self._rollback()
            return
        assert command.bundle is not None
        self._pending_offer = command.bundle
        self.client.subscribe(str(self.bundles.header(command.bundle.id)), qos=1)

    def _rollback(self) -> None:
        if self.previous is None:
            self._reject("no_previous", "no previous model to roll back to")
            return
        self.model, self.previous = self.previous, self.model
        self._set(state="rolled_back", reason="command", detail=None)

    # -- transfer --------------------------------------------------------------------------------

    def _bundle_message(self, topic: str, payload: bytes) -> None:
        offer = getattr(self, "_pending_offer", None)
        if topic.endswith("/header") and offer is not None and self.download is None:
            self.client.unsubscribe(topic)
            self._start(offer, payload)
            return
        download = self.download
        if download is None:
            return
        index = self.bundles.block_index(download.bid, topic)
        if index is None or not download.transfer.is_expected(index):
            return
        now = time.monotonic()
        self.client.unsubscribe(topic)
        try:
            download.verifier.check_block(index, payload)
        except BundleRejected:
            download.transfer.corrupt(index, now)
            return
        start, _end = download.verified.manifest.payload.block_range(index)
        download.partial.write(start, payload)
        download.transfer.arrived(index, now)
        download.partial.maybe_flush(now)
        if download.transfer.complete:
            self._finish(download)
            return
        self._request(download, now)

    def _start(self, offer: Any, header: bytes) -> None:
        self._pending_offer = None
        if not offer.header_matches(header):
            raise BundleRejected("malformed", "header does not match the desired command")
        verifier = BundleVerifier(self.release, self.identity, self.state, now=time.time())
        verified = verifier.verify_header(header)
        info = verified.manifest.payload
        directory = self.config.state_root / self.device_id
        partial = PartialPayload(directory, offer.id, info.length, len(info.blocks))
        now = time.monotonic()
        transfer = Transfer(
            partial.bitmap,
            block_sizes(info.length, info.block_size),
            TransferLimits(window=self.config.window),
            now,
        )
        self.download = _Download(offer.id, verifier, verified, partial, transfer, now)
        self._set(
            state="downloading",
            reason=None,
            detail=None,
            bundle=offer.id,
            name=offer.name,
            counter=offer.counter,
            blocks=offer.blocks,
            blocks_held=transfer.held.count,
        )
        self._request(self.download, now)

    def _request(self, download: _Download, now: float) -> None:
        for index in download.transfer.requests(now):
            self.client.subscribe(str(self.bundles.block(download.bid, index)), qos=1)

    def tick(self, now: float) -> None:
        """Periodic work: retries of bad blocks, progress status at most every second."""
        download = self.download
        if download is None:
            return
        self._request(download, now)
        if now - self.last_status >= STATUS_EVERY_S:
            transfer = download.transfer
            self._set(blocks_held=transfer.held.count, bytes_per_s=transfer.bytes_per_s(now))

    def _finish(self, download: _Download) -> None:
        download.partial.flush(time.monotonic())
        self._set(state="verifying", blocks_held=download.transfer.held.count)
        decrypted = download.verifier.decrypt(download.partial.read())
        download.partial.discard()
        self.download = None
        manifest = download.verified.manifest
        self._set(state="canary")
        model = decrypted.file("model.tflite")
        assert model is not None
        if fails_canary(self.device_id, self.config.seed, self.config.fail_rate):
            self._reject("canary_mismatch", "injected canary failure")
            return
        self.previous = self.model
        self.model = ModelRef(
            manifest.name, str(manifest.counter), hashlib.sha256(model).hexdigest()
        )
        self.state = self.state.installed(manifest.name, manifest.counter, manifest.created)
        self._set(state="installed", requested=download.transfer.requested)

    def _reject(self, code: str, detail: str) -> None:
        if self.download is not None:
            self.download.partial.close()
            self.download = None
        self._set(state="rejected", reason=code, detail=detail[:200])


def run_worker(config: SimConfig, ready: Any, stop: Any, back: Any = None) -> None:
    """Connect every device of ``config``, then drive them until ``stop`` is set."""
    group_key = _load_x25519(config.group_key_pem)
    fleet = TrustRoot.from_keys(Ed25519PublicKey.from_public_bytes(k) for k in config.fleet_keys)
    release = TrustRoot.from_keys(
        Ed25519PublicKey.from_public_bytes(k) for k in config.release_keys
    )
    devices = []
    selector = selectors.DefaultSelector()
    ports = config.ports or (config.port,)
    for number, device_id in enumerate(config.devices):
        identity = DeviceIdentity(
            device_id, X25519PrivateKey.generate(), group_keys={f"group:{GROUP}": group_key}
        )
        device = SimDevice(config, device_id, identity, fleet, release)
        device.port = ports[number % len(ports)]
        devices.append(device)
    world = _World(selector, devices, config)
    for device in devices:
        world.connect(device)
    world.settle_connections(time.monotonic() + 120)
    for device in devices:
        if device.device_id in config.offline:
            world.go_offline(device)
    ready.put(sum(d.connected for d in devices))
    world.loop(stop, back)
    if world.reconnects:
        _log.warning("%d connection(s) lost and made again", world.reconnects)
    for device in devices:
        device.client.disconnect()


@dataclass
class _World:
    selector: selectors.BaseSelector
    devices: list[SimDevice]
    config: SimConfig
    registered: dict[str, Any] = field(default_factory=dict)
    reconnects: int = 0

    def connect(self, device: SimDevice) -> None:
        device.connect()
        sock = device.client.socket()
        assert isinstance(sock, socket.socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as agent.mqtt.client does
        stale = self.selector.get_map().get(sock.fileno())
        if stale is not None:  # paho closed another device's socket and the fd came back
            self.drop(stale.data)
        self.selector.register(sock, selectors.EVENT_READ, device)
        self.registered[device.device_id] = sock

    def reconnect_lost(self, away: set[str]) -> int:
        """Devices whose connection paho closed (the broker or the socket dropped it) connect
        again, as an agent does; ``away``: devices meant to be offline. Returns how many."""
        lost = [
            d for d in self.devices
            if d.device_id not in away and not d.connected and d.client.socket() is None
        ]  # fmt: skip
        for device in lost:
            self.drop(device)
            self.connect(device)
        return len(lost)

    def drop(self, device: SimDevice) -> None:
        sock = self.registered.pop(device.device_id, None)
        if sock is not None:
            self.selector.unregister(sock)
        device.connected = False

    def go_offline(self, device: SimDevice) -> None:
        """A clean goodbye: ``offline`` retained, then the socket closes."""
        device.client.publish(str(device.topics.availability), b"offline", qos=1, retain=True)
        for _ in range(20):
            device.client.loop_write()
            device.client.loop_read()
        self.drop(device)
        device.client.disconnect()

    def settle_connections(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.step()
            for device in [d for d in self.devices if d.fall_back]:
                self.drop(device)
                self.connect(device)
            if all(d.connected for d in self.devices):
                return

    def step(self) -> None:
        for device in self.devices:
            sock = self.registered.get(device.device_id)
            wants = device.client.want_write()
            if sock is not None and wants != device.writing:
                device.writing = wants
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wants else 0)
                self.selector.modify(sock, events, device)
        for key, mask in self.selector.select(timeout=0.05):
            client = key.data.client
            if mask & selectors.EVENT_READ:
                client.loop_read(max_packets=32)
            if mask & selectors.EVENT_WRITE:
                client.loop_write()

    def loop(self, stop: Any, back: Any = None) -> None:
        """``back``: an event that brings the offline devices back (else ``come_back_s``)."""
        started = last_tick = time.monotonic()
        back_s = self.config.come_back_s
        next_flap = started + self.config.flap_s
        offline = [d for d in self.devices if d.device_id in self.config.offline]
        flapping = [d for d in self.devices if d.device_id in self.config.flapping]
        while not stop.is_set():
            self.step()
            now = time.monotonic()
            due = back_s is not None and now - started >= back_s
            if offline and (due or (back is not None and back.is_set())):
                for device in offline:
                    self.connect(device)
                offline = []
            if flapping and now >= next_flap:
                next_flap = now + self.config.flap_s
                for device in flapping:
                    self.drop(device)
                    device.client.disconnect()
                    self.connect(device)
            if now - last_tick >= 0.25:
                last_tick = now
                self.reconnects += self.reconnect_lost({d.device_id for d in offline})
                for device in self.devices:
                    device.client.loop_misc()
                    device.tick(now)


def _load_x25519(pem: bytes) -> X25519PrivateKey:
    from agent.bundle.keys import decode_device_private

    return decode_device_private(pem, "group key")
