"""The model the agent serves: from an encrypted bundle on disk to a loaded interpreter.

The installed bundle stays encrypted at rest in the active A/B slot
(``state_dir/models/slot-<a|b>.edgepkg``, see :mod:`agent.model.slots`); each start verifies it
again (signatures, recipient, hardware, counter, expiry), decrypts it in memory and hands the
model bytes to the runtime. Plaintext never touches the disk. A bundle in one of our own slots may
have a counter below the highest recorded one: that is what a rollback left active.

On the first start, when nothing is installed yet, the bundle named by ``model.bundle`` is
verified as a new release, copied into slot a atomically, and its release counter is committed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from agent.bundle import (
    BundleVerifier,
    DecryptedBundle,
    DeviceIdentity,
    Limits,
    StateStore,
    TrustRoot,
    load_trust,
    open_bundle,
)
from agent.bundle.files import read_bundle
from agent.bundle.keys import decode_device_private, decode_release_public
from agent.bundle.root import Root, RootStore, load_root
from agent.config import AgentConfig
from agent.errors import BundleRejected, ConfigError, InputError
from agent.fsutil import private_dir
from agent.model.slots import SlotState, SlotStore
from agent.reasons import Reason
from agent.runtime import LoadedModel, open_model
from agent.runtime.worker import ModelThread
from agent.schema.labels import LabelError, parse_labels
from agent.schema.meta import MetadataError, ModelMetadata
from agent.secrets import FileResolver, read_public, read_secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveModel:
    """A verified, decrypted and loaded model with what results need to name it."""

    name: str
    version: int
    sha256: str
    metadata: ModelMetadata
    model: LoadedModel
    #: The accelerator's model bytes while ``model`` runs on the CPU after a fallback (for the
    #: re-probe); None otherwise. Usually the very object the CPU interpreter already holds.
    accelerated: bytes | None = None
    #: A chain's earlier stages (``metadata.stages`` but the last, which is ``model``), on CPU.
    stages: tuple[LoadedModel, ...] = ()

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def close(self) -> None:
        """Close every interpreter of the model, each on its own thread (no waiting)."""
        for loaded in (*self.stages, self.model):
            loaded.close()


@dataclass(frozen=True)
class Credentials:
    trust: TrustRoot
    device: DeviceIdentity
    fleet: TrustRoot | None = None  # keys whose signed commands the device obeys
    root: Root | None = None  # the root metadata trust and fleet came from (rotatable over MQTT)


def load_root_credentials(config: AgentConfig, resolver: FileResolver) -> Root:
    """The newest root this device accepted: the persisted one in ``state_dir/trust``, or the
    provisioned ``keys.root_file`` when nothing newer was accepted yet."""
    data = read_public(resolver, "keys.root_file", config.keys.root_file or "")
    try:
        provisioned = load_root(data)
        return RootStore(Path(config.state_dir) / "trust").newest(provisioned)
    except BundleRejected as exc:
        raise ConfigError("keys.root_file", str(exc)) from None


def load_credentials(config: AgentConfig, resolver: FileResolver) -> Credentials:
    """The trusted release keys and this device's identity, from the files the config names."""
    keys = config.keys
    root = load_root_credentials(config, resolver) if keys.root_file else None
    if root is not None:
        trust = root.release
    elif keys.trust_file:
        data = read_public(resolver, "keys.trust_file", keys.trust_file)
        try:
            trust = load_trust(data)
        except BundleRejected as exc:
            raise ConfigError("keys.trust_file", str(exc)) from None
    elif keys.trusted_keys:
        publics = [
            decode_release_public(read_public(resolver, f"keys.trusted_keys[{i}]", name), name)
            for i, name in enumerate(keys.trusted_keys)
        ]
        trust = TrustRoot.from_keys(publics, keys.threshold)
    else:
        raise ConfigError("keys", "give keys.trust_file or keys.trusted_keys")
    private = decode_device_private(
        read_secret(resolver, "keys.device_key", keys.device_key), "keys.device_key"
    )
    groups = {
        rid: decode_device_private(
            read_secret(resolver, f"keys.group_keys.{rid}", name), f"keys.group_keys.{rid}"
        )
        for rid, name in keys.group_keys
    }
    device = DeviceIdentity(
        config.device_id, private, config.model.hardware_id, MappingProxyType(groups)
    )
    fleet = [
        decode_release_public(read_public(resolver, f"keys.fleet_keys[{i}]", name), name)
        for i, name in enumerate(keys.fleet_keys)
    ]
    fleet_root = TrustRoot.from_keys(fleet, keys.fleet_threshold, role="fleet") if fleet else None
    if root is not None:
        fleet_root = root.fleet
    return Credentials(trust, device, fleet_root, root)


class ModelStore:
    """The installed bundles (encrypted) in the A/B slots of ``state_dir/models``."""

    def __init__(self, state_dir: Path, limits: Limits | None = None) -> None:
        private_dir(Path(state_dir))  # 0700, also when it existed with a wider mode
        self.slots = SlotStore(Path(state_dir), limits)
        self.directory = self.slots.directory
        self.limits = self.slots.limits
        self.state = StateStore(Path(state_dir))

    def installed(self) -> bytes | None:
        """The active slot's bundle, or ``None`` when nothing is installed yet."""
        active = self.slots.load().active
        return None if active is None else self.slots.read(active)

    def install(self, data: bytes, bundle: DecryptedBundle) -> None:
        """Make ``data`` the active bundle: inactive slot (atomic), switch, commit its counter."""
        state = self.slots.load()
        self.slots.write(state.inactive, data)
        self.slots.commit(state.activated(state.inactive))
        self.state.record_installed(bundle)


def open_active_model(
    config: AgentConfig,
    resolver: FileResolver,
    store: ModelStore,
    credentials: Credentials,
    *,
    now: float | None = None,
) -> ActiveModel:
    """Verify, decrypt and load the installed model, installing ``model.bundle`` first if needed."""
    now = time.time() if now is None else now
    slots = store.slots.load()
    if slots.active is not None:
        bundle = _open_slots(store, credentials, now, slots)
    elif config.model.bundle:
        path = resolver.path(config.model.bundle)
        data = read_bundle(path, store.limits)
        bundle = _open(data, store, credentials, now, reopen=False)
        store.install(data, bundle)
        log.info("installed initial bundle %s", path)
    else:
        raise ConfigError("model.bundle", "no model is installed yet and none is configured")
    return load_bundle(bundle, config)


def _open_slots(
    store: ModelStore, credentials: Credentials, now: float, slots: SlotState
) -> DecryptedBundle:
    """The active slot's bundle; when it does not verify, the previous slot's, made active.

    A device whose active slot went bad (a disk error, or anything that slipped past the
    checks at install time) keeps serving the model before it rather than nothing.
    """
    assert slots.active is not None
    try:
        bundle = _open(store.slots.read(slots.active), store, credentials, now, reopen=True)
    except (BundleRejected, InputError) as exc:
        if slots.previous is None:
            raise
        log.error(
            "active slot %s does not verify (%s); serving the previous slot %s",
            slots.active,
            exc,
            slots.previous,
        )
        bundle = _open(store.slots.read(slots.previous), store, credentials, now, reopen=True)
        store.slots.commit(slots.rolled_back())
        return bundle
    _finish_commit(store, bundle)
    return bundle


def _finish_commit(store: ModelStore, bundle: DecryptedBundle) -> None:
    """Record the active slot's counter when the record is behind it.

    The slot switch is an install's commit point; the counter is recorded just after it. A crash
    in between (power loss, ``kill -9``) leaves the active slot newer than the recorded counter,
    so the start-up finishes the commit. A rollback's older active slot records nothing (the
    recorded counter never goes down).
    """
    manifest = bundle.verified.manifest
    highest = store.state.load().highest(manifest.name)
    if highest is None or manifest.counter > highest:
        log.warning(
            "active slot holds %s release %s but release %s is recorded: finishing the commit",
            manifest.name,
            manifest.counter,
            highest,
        )
        store.state.record_installed(bundle)


def _open(
    data: bytes, store: ModelStore, credentials: Credentials, now: float, *, reopen: bool
) -> DecryptedBundle:
    verifier = BundleVerifier(
        credentials.trust,
        credentials.device,
        store.state.load(),
        now=now,
        limits=store.limits,
        own_slot=reopen,
    )
    return open_bundle(data, verifier)


def load_bundle(bundle: DecryptedBundle, config: AgentConfig) -> ActiveModel:
    """Load a decrypted bundle's model into the configured runtime (bytes, never a path).

    All its interpreters (a chain's stages too) are created on one new
    :class:`~agent.runtime.worker.ModelThread`, which makes every later call on them.
    """
    manifest = bundle.verified.manifest
    model_bytes = bundle.files["model.tflite"]
    metadata = _metadata(bundle)
    cpu_variant = bundle.file("model_cpu.tflite")
    model = bytes(model_bytes)
    owner = ModelThread(f"interpreter:{manifest.name}:{manifest.counter}")
    owner.acquire()  # held while the stages load, so a failure in between stops the thread
    try:
        loaded = open_model(
            model,
            backend=config.model.backend,
            accelerator=config.model.accelerator,
            threads=config.model.threads,
            cpu_fallback_model=None if cpu_variant is None else bytes(cpu_variant),
            owner=owner,
        )
        try:
            stages = _stage_models(bundle, metadata, config, owner)
        except BaseException:
            loaded.close()
            raise
    finally:
        owner.release()
    return ActiveModel(
        name=manifest.name,
        version=manifest.counter,
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        metadata=metadata,
        model=loaded,
        accelerated=model if loaded.fallback_reason else None,
        stages=stages,
    )


def _stage_models(
    bundle: DecryptedBundle, metadata: ModelMetadata, config: AgentConfig, owner: ModelThread
) -> tuple[LoadedModel, ...]:
    """The earlier stages of a chain, from the same verified bundle (CPU interpreters)."""
    loaded: list[LoadedModel] = []
    for spec in metadata.stages[:-1]:
        data = bundle.file(spec.file)
        if data is None:
            raise BundleRejected(Reason.MALFORMED, f"metadata.stages names {spec.file}, not in it")
        try:
            stage = open_model(
                bytes(data),
                backend=config.model.backend,
                threads=config.model.threads,
                input_shape=spec.input_shape,
                owner=owner,
            )
        except BaseException:
            for earlier in loaded:
                earlier.close()
            raise
        loaded.append(stage)
    return tuple(loaded)


def _metadata(bundle: DecryptedBundle) -> ModelMetadata:
    raw = bundle.file("metadata.json")
    if raw is None:
        raise BundleRejected(
            Reason.MALFORMED, "bundle has no metadata.json; rebuild it with --metadata"
        )
    try:
        metadata = ModelMetadata.from_json(bytes(raw))
    except MetadataError as exc:
        raise BundleRejected(Reason.MALFORMED, f"metadata.json: {exc}") from None
    labels = bundle.file("labels.txt")
    if labels is not None and not metadata.labels:
        try:
            names = parse_labels(bytes(labels).decode("utf-8", "replace"))
        except LabelError as exc:
            raise BundleRejected(Reason.MALFORMED, f"labels.txt: {exc}") from None
        metadata = replace(metadata, labels=names)
    return metadata
