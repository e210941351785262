"""Root metadata: the whole trust of a device (release keys, fleet keys, their thresholds), signed,
versioned, expiring, and replaced over MQTT only as a chain (TUF root rotation).

A root is a DSSE envelope (payload type :data:`ROOT_PAYLOAD_TYPE`) whose payload is canonical
JSON::

    {"type": "edge-agent/root", "version": N, "expires": unix_s,
     "roles": {"root":    {"keys": [base64 raw Ed25519], "threshold": k},
               "release": {"keys": [...], "threshold": k},
               "fleet":   {"keys": [...], "threshold": k}}}

* ``root`` keys sign root metadata (keep them offline); ``release`` keys sign bundles;
  ``fleet`` keys sign commands. A key may hold several roles.
* Version 1 is provisioned with the device and must be signed by its own root keys to its own
  threshold. Version N+1 is accepted only when signed by a threshold of version N's root keys
  *and* a threshold of its own root keys; versions cannot be skipped, so a device that was
  offline during several rotations applies every intermediate root in order
  (:func:`catch_up`). Signatures are checked over the exact payload bytes before it is parsed.
* Expiry is checked on the newest root only, after catching up (an intermediate root may well
  have expired by the time an offline device sees it): an expired newest root is refused
  (``expired``) and the device stays on the newest unexpired root of the chain. A root that
  expires once installed stays installed (the current model keeps serving), but the installer
  refuses new installs under it (``root_expired``) until a newer root arrives.

Pure: bytes in, values or :class:`BundleRejected` out. :class:`RootStore` is the file adapter.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.bundle.container import Signature
from agent.bundle.crypto import raw_public
from agent.bundle.envelope import b64, make_envelope, open_envelope, unb64
from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.fsutil import atomic_write, read_capped
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason

ROOT_PAYLOAD_TYPE = "application/vnd.edge-agent.root.v1+json"
ROOT_TYPE = "edge-agent/root"
ROLES = ("root", "release", "fleet")
MAX_ROOT_BYTES = 64 << 10
ROOT_FILE = "root.json"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Root:
    """An accepted root: its roles as :class:`TrustRoot` values, and the exact signed envelope."""

    version: int
    expires: int
    root: TrustRoot
    release: TrustRoot
    fleet: TrustRoot
    envelope: bytes

    def expired(self, now: float) -> bool:
        return self.expires <= now


def load_root(envelope: bytes) -> Root:
    """A provisioned root, accepted when signed by its own root keys to its own threshold."""
    payload, signatures = _open(envelope)
    root = _parse(payload, envelope)
    root.root.verify(ROOT_PAYLOAD_TYPE, payload, signatures)
    return root


def next_root(current: Root, envelope: bytes) -> Root:
    """Root ``current.version + 1``, verified by the current root keys and by its own."""
    payload, signatures = _open(envelope)
    current.root.verify(ROOT_PAYLOAD_TYPE, payload, signatures)
    new = _parse(payload, envelope)
    current_is = f"version {current.version} is current"
    if new.version < current.version:
        raise BundleRejected(Reason.ROLLBACK, f"root version {new.version}; {current_is}")
    if new.version == current.version:
        raise BundleRejected(Reason.ALREADY_INSTALLED, f"root version {new.version}; {current_is}")
    if new.version != current.version + 1:
        raise BundleRejected(
            Reason.MALFORMED, f"root version {new.version} skips {current.version + 1}"
        )
    new.root.verify(ROOT_PAYLOAD_TYPE, payload, signatures)
    return new


@dataclass(frozen=True)
class CatchUp:
    """What :func:`catch_up` did: the newest root reached, and why it stopped there."""

    root: Root
    applied: tuple[int, ...]
    refused: BundleRejected | None = None
    tip_expired: int | None = None  # the expired version the chain reached, not accepted


def catch_up(current: Root, available: Mapping[int, bytes], now: float | None = None) -> CatchUp:
    """Apply ``current.version + 1, + 2, ...`` from ``available`` (version -> envelope) in order,
    stopping at the first gap or at the first version that does not verify (``refused``).

    With ``now``, an expired root may be a link of the chain but is never accepted as the new
    root: the result is the newest unexpired root reached, and an expired tip is ``refused``
    with ``expired`` (:attr:`CatchUp.tip_expired`)."""
    root, applied, refused = current, list[int](), None
    fresh, fresh_applied = current, list[int]()
    while (envelope := available.get(root.version + 1)) is not None:
        try:
            root = next_root(root, envelope)
        except BundleRejected as exc:
            refused = exc
            break
        applied.append(root.version)
        if now is None or not root.expired(now):
            fresh, fresh_applied = root, list(applied)
    if fresh is not root:
        staying = f"staying on version {fresh.version}"
        refused = BundleRejected(
            Reason.EXPIRED, f"root version {root.version} expired at {root.expires}; {staying}"
        )
        return CatchUp(fresh, tuple(fresh_applied), refused, tip_expired=root.version)
    return CatchUp(root, tuple(applied), refused)


def make_root(
    version: int,
    expires: int,
    roles: Mapping[str, tuple[Sequence[Ed25519PublicKey], int]],
    signers: Sequence[Ed25519PrivateKey],
) -> bytes:
    """A root envelope; ``roles`` maps each of :data:`ROLES` to ``(keys, threshold)``.
    For a rotation, ``signers`` are a threshold of the old root keys and of the new ones."""
    if set(roles) != set(ROLES):
        raise ValueError(f"roles must be exactly {', '.join(ROLES)}")
    obj = {
        "type": ROOT_TYPE,
        "version": version,
        "expires": expires,
        "roles": {
            name: {"keys": [b64(raw_public(k)) for k in keys], "threshold": threshold}
            for name, (keys, threshold) in roles.items()
        },
    }
    payload = dumps_canonical(obj)
    envelope = make_envelope(ROOT_PAYLOAD_TYPE, payload, signers)
    _parse(payload, envelope)  # validates what we are about to sign
    return envelope


def role_keys(root: TrustRoot) -> list[Ed25519PublicKey]:
    return list(root.keys.values())


def _open(envelope: bytes) -> tuple[bytes, list[Signature]]:
    return open_envelope(envelope, ROOT_PAYLOAD_TYPE, MAX_ROOT_BYTES, "root metadata")


def _parse(payload: bytes, envelope: bytes) -> Root:
    try:
        obj = loads_strict(payload, MAX_ROOT_BYTES, 8)
        if not isinstance(obj, dict) or set(obj) != {"type", "version", "expires", "roles"}:
            raise ValueError("payload needs exactly type, version, expires and roles")
        if obj["type"] != ROOT_TYPE:
            raise ValueError(f"type must be {ROOT_TYPE}")
        version, expires = obj["version"], obj["expires"]
        if not all(_is_int(v) and v >= 1 for v in (version, expires)):
            raise ValueError("version and expires must be positive integers")
        roles = obj["roles"]
        if not isinstance(roles, dict) or set(roles) != set(ROLES):
            raise ValueError(f"roles must be exactly {', '.join(ROLES)}")
        parsed = {name: _role(name, roles[name]) for name in ROLES}
    except (StrictJSONError, ValueError, binascii.Error, TypeError) as exc:
        raise BundleRejected(Reason.MALFORMED, f"root metadata: {exc}") from None
    return Root(version, expires, parsed["root"], parsed["release"], parsed["fleet"], envelope)


def _role(name: str, value: object) -> TrustRoot:
    if not isinstance(value, dict) or set(value) != {"keys", "threshold"}:
        raise ValueError(f"role {name} needs exactly keys and threshold")
    threshold, raw = value["threshold"], value["keys"]
    if not _is_int(threshold) or not isinstance(raw, list):
        raise ValueError(f"role {name}: threshold must be an integer and keys a list")
    keys = [Ed25519PublicKey.from_public_bytes(unb64(k)) for k in raw]
    if len({raw_public(k) for k in keys}) != len(keys):
        raise ValueError(f"role {name}: keys must be distinct")
    label = "" if name == "release" else name
    return TrustRoot.from_keys(keys, threshold, role=label)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RootStore:
    """The newest accepted root in ``directory/root.json`` (the exact envelope, atomic, 0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / ROOT_FILE

    def load(self) -> bytes | None:
        try:
            return read_capped(self.path, MAX_ROOT_BYTES)
        except FileNotFoundError:
            return None

    def save(self, root: Root) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, root.envelope, 0o600)
        _log.info("trust root version %s saved to %s", root.version, self.path)

    def newest(self, provisioned: Root) -> Root:
        """The saved root when it verifies and is newer than ``provisioned``, else that one."""
        data = self.load()
        if data is None:
            return provisioned
        try:
            saved = _parse(_open(data)[0], data)
        except BundleRejected as exc:
            _log.error("ignoring %s: %s", self.path, exc)
            return provisioned
        if saved.version <= provisioned.version:
            return provisioned
        saved.root.verify(ROOT_PAYLOAD_TYPE, *_open(data))  # it was accepted as a chain link
        return saved
