"""The commands end to end: keygen, bundle, inspect, verify (in process, real files)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from agent import cli as agent_cli
from convert import cli as convert_cli
from convert.commands.bundle import parse_duration
from tests.support.models import LABELS, ModelFactory


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    assert convert_cli.main(["keygen", "--out", str(tmp_path / "release")]) == 0
    assert convert_cli.main(["keygen", "--out", str(tmp_path / "release"), "--name", "second"]) == 0
    assert agent_cli.main(["keygen", "--out", str(tmp_path / "dev"), "--device-id", "pi-7"]) == 0
    assert agent_cli.main(["keygen", "--out", str(tmp_path / "other"), "--device-id", "pi-8"]) == 0
    return tmp_path


def test_keygen_writes_private_keys_mode_0600_and_device_id_in_public_file(keys: Path) -> None:
    assert (keys / "release" / "release.key").stat().st_mode & 0o777 == 0o600
    assert (keys / "dev" / "device.key").stat().st_mode & 0o777 == 0o600
    public = json.loads((keys / "dev" / "device.pub").read_text())
    assert (public["device_id"], public["alg"]) == ("pi-7", "x25519")


def test_keygen_refuses_to_overwrite_a_key(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert convert_cli.main(["keygen", "--out", str(keys / "release")]) == 2
    assert "already exists; refusing to overwrite a key" in capsys.readouterr().err


def _bundle(keys: Path, model: Path, *extra: str) -> Path:
    out = keys / "out.edgepkg"
    argv = [
        "bundle", str(model), "--name", "digits", "--version", "3",
        "--signing-key", str(keys / "release" / "release.key"),
        "--recipient", str(keys / "dev" / "device.pub"), "-o", str(out), *extra,
    ]  # fmt: skip
    assert convert_cli.main(argv) == 0
    return out


def _verify(keys: Path, bundle: Path, *extra: str) -> int:
    argv = [
        "verify", str(bundle), "--trusted-key", str(keys / "release" / "release.pub"),
        "--device-key", str(keys / "dev" / "device.key"), *extra,
    ]  # fmt: skip
    return agent_cli.main(argv)


@pytest.mark.tensorflow
def test_bundle_inspect_and_verify_the_int8_sample_model(
    keys: Path, sample_models: ModelFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    converted = sample_models("int8", "int8")
    bundle = _bundle(
        keys, converted.tflite,
        "--metadata", str(converted.metadata), "--canary", str(converted.canary),
        "--labels", str(LABELS), "--hardware", "rpi4", "--expires", "30d",
    )  # fmt: skip
    capsys.readouterr()
    assert convert_cli.main(["inspect", str(bundle), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["recipients"] == ["pi-7"]
    assert shown["manifest"]["counter"] == 3
    assert shown["manifest"]["metadata"]["quantization"] == "int8"
    assert [f["name"] for f in shown["manifest"]["files"]] == [
        "model.tflite", "metadata.json", "labels.txt", "canary.npz",
    ]  # fmt: skip
    assert _verify(keys, bundle, "--hardware", "rpi4", "--state-dir", str(keys / "state")) == 0
    out = capsys.readouterr().out
    assert "digits release 3" in out
    assert "canary:   passed" in out
    assert "backend:  " in out
    assert _verify(keys, bundle, "--hardware", "rpi4", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert (document["bundle"]["name"], document["bundle"]["counter"]) == ("digits", 3)
    assert document["bundle"]["recipient"] == "pi-7"
    assert document["canary"]["passed"] is True
    assert document["backend"] == "litert"


def test_verify_exits_3_with_the_reason_code(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "fake.tflite"
    model.write_bytes(bytes(1000))
    # Not a model: bundle only derives metadata from real models, so it is given by hand.
    bundle = _bundle(keys, model, "--hardware", "rpi4", "--metadata", str(_metadata(tmp_path)))
    assert _verify(keys, bundle, "--hardware", "rpi3") == 3
    assert "wrong_hardware: bundle is for hardware rpi4" in capsys.readouterr().err
    assert _verify(keys, bundle, "--hardware", "rpi3", "--json") == 3
    rejected = json.loads(capsys.readouterr().out)
    assert (rejected["ok"], rejected["exit_code"]) == (False, 3)
    assert rejected["error"]["code"] == "wrong_hardware"
    other = [
        "verify", str(bundle), "--trusted-key", str(keys / "release" / "second.pub"),
        "--device-key", str(keys / "dev" / "device.key"), "--hardware", "rpi4",
    ]  # fmt: skip
    assert agent_cli.main(other) == 3
    assert "signature_invalid: signature does not verify" in capsys.readouterr().err
    foreign = [
        "verify", str(bundle), "--trusted-key", str(keys / "release" / "release.pub"),
        "--device-key", str(keys / "other" / "device.key"), "--hardware", "rpi4",
    ]  # fmt: skip
    assert agent_cli.main(foreign) == 3
    assert "not_a_recipient" in capsys.readouterr().err


def test_bundle_rejects_a_canary_that_is_not_an_npz(keys: Path, tmp_path: Path) -> None:
    model = tmp_path / "fake.tflite"
    model.write_bytes(bytes(100))
    canary = tmp_path / "canary.npz"
    buffer = io.BytesIO()
    np.savez(buffer, input=np.zeros(3, np.float32))
    canary.write_bytes(buffer.getvalue())
    argv = [
        "bundle", str(model), "--name", "digits", "--version", "1",
        "--signing-key", str(keys / "release" / "release.key"),
        "--recipient", str(keys / "dev" / "device.pub"), "--canary", str(canary),
        "-o", str(tmp_path / "x.edgepkg"),
    ]  # fmt: skip
    assert convert_cli.main(argv) == 2
    assert not (tmp_path / "x.edgepkg").exists()


def test_bundle_refuses_a_file_that_is_not_a_model_when_it_must_derive_the_metadata(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "fake.tflite"
    model.write_bytes(bytes(1000))
    argv = [
        "bundle", str(model), "--name", "digits", "--version", "1",
        "--signing-key", str(keys / "release" / "release.key"),
        "--recipient", str(keys / "dev" / "device.pub"), "-o", str(tmp_path / "x.edgepkg"),
    ]  # fmt: skip
    assert convert_cli.main(argv) == 2
    assert "not a TFLite model (missing the TFL3 file identifier)" in capsys.readouterr().err


def _metadata(tmp_path: Path) -> Path:
    spec = {"name": "x", "shape": [1, 4], "dtype": "float32"}
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps({"task": "raw", "inputs": [spec], "outputs": [spec]}))
    return path


def test_durations_parse_to_seconds() -> None:
    assert [parse_duration(d) for d in ("90m", "12h", "30d", "1w2d")] == [
        5400, 43200, 2592000, 777600,
    ]  # fmt: skip
