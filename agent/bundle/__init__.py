"""Signed, encrypted model bundles: one pure core for the writer and the reader.

Modules: :mod:`~agent.bundle.container` (binary layout and limits), :mod:`~agent.bundle.crypto`
(signatures, key wrap, chunked AEAD stream), :mod:`~agent.bundle.manifest` (the signed schema),
:mod:`~agent.bundle.trust` (trusted keys, thresholds, trust-file rotation),
:mod:`~agent.bundle.verify` (the reader), :mod:`~agent.bundle.writer` (the writer),
:mod:`~agent.bundle.keys` (key files) and :mod:`~agent.bundle.state` (persisted counters and
time floor, the only module that touches files).
"""

from __future__ import annotations

from agent.bundle.container import Limits
from agent.bundle.manifest import FileEntry, Manifest, PayloadInfo
from agent.bundle.state import ReleaseState, StateStore
from agent.bundle.trust import TrustRoot, load_trust, make_trust_file, rotate_trust
from agent.bundle.verify import (
    BundleVerifier,
    DecryptedBundle,
    DeviceIdentity,
    VerifiedManifest,
    check_block,
    open_bundle,
)
from agent.bundle.writer import RecipientKey, Release, build_bundle

__all__ = [
    "BundleVerifier",
    "DecryptedBundle",
    "DeviceIdentity",
    "FileEntry",
    "Limits",
    "Manifest",
    "PayloadInfo",
    "RecipientKey",
    "Release",
    "ReleaseState",
    "StateStore",
    "TrustRoot",
    "VerifiedManifest",
    "build_bundle",
    "check_block",
    "load_trust",
    "make_trust_file",
    "open_bundle",
    "rotate_trust",
]
