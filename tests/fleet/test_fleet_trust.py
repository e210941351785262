"""``edge-fleet trust`` refuses to make root metadata that devices would refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.keys import encode_private, encode_release_public
from fleet.cli import main as fleet


def test_an_already_expired_root_is_refused_before_it_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "root.key", tmp_path / "root.pub"
    private.write_bytes(encode_private(key))
    private.chmod(0o600)
    public.write_bytes(encode_release_public(key.public_key()))
    out = tmp_path / "root-1.json"
    code = fleet(["trust", "init", "--root", str(public), "--release", str(public),
                  "--fleet", str(public), "--sign", str(private), "--expires-days", "-1",
                  "--out", str(out)])  # fmt: skip
    assert code != 0
    assert "--expires-days -1: devices refuse an expired root" in capsys.readouterr().err
    assert not out.exists()
