"""Fuzzing the parsers of files that come from outside: the agent config (TOML text and the
structures it decodes to), and the model files inside a bundle (canary.npz, metadata.json).
Only the documented error types come out, quickly, in bounded memory."""

from __future__ import annotations

import io
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import given

from agent.config import parse_config, parse_toml
from agent.errors import ConfigError
from agent.schema.canary import CanaryError, load_canary
from agent.schema.meta import MetadataError, ModelMetadata, Preprocess, TensorSpec
from tests.support.fuzz import check_parser, fuzz_settings, json_bytes, json_variants, outside_bytes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOML = (ROOT / "systemd" / "edge-agent.toml").read_bytes()
SENSOR_TOML = b"""device_id = "pi-1"
state_dir = "/var/lib/edge-agent"
[source]
type = "mqtt_sensor"
fields = ["x", "y"]
[model]
bundle = "m.edgepkg"
"""
CONFIG = tomllib.loads(EXAMPLE_TOML.decode())

METADATA = ModelMetadata(
    task="classification",
    inputs=(TensorSpec("input", (1, 28, 28, 1), "int8", 0.0039, -128),),
    outputs=(TensorSpec("output", (1, 10), "int8", 0.00390625, -128),),
    quantization="int8",
    preprocess=Preprocess(color="gray", mean=(0.0,), std=(255.0,)),
    labels=tuple(str(d) for d in range(10)),
)


def _canary(save: Callable[..., None]) -> bytes:
    out = io.BytesIO()
    save(
        out,
        input=np.zeros((2, 28, 28, 1), np.int8),
        expected=np.ones((2, 10), np.float32),
        atol=np.array(0.01, np.float32),
    )
    return out.getvalue()


CANARIES = [_canary(np.savez), _canary(np.savez_compressed)]


@fuzz_settings
@given(outside_bytes([EXAMPLE_TOML, SENSOR_TOML], max_size=4096))
def test_config_text_only_raises_config_error(data: bytes) -> None:
    check_parser(parse_toml, data, (ConfigError,))


@fuzz_settings
@given(json_variants(CONFIG))
def test_config_structures_only_raise_config_error(raw: object) -> None:
    check_parser(lambda _: parse_config(raw), b"", (ConfigError,))  # type: ignore[arg-type]


@fuzz_settings
@given(outside_bytes(CANARIES, max_size=4096))
def test_canary_npz_only_raises_canary_error(data: bytes) -> None:
    check_parser(load_canary, data, (CanaryError,))


@fuzz_settings
@given(outside_bytes([METADATA.to_json()]) | json_bytes(METADATA.to_dict()))
def test_model_metadata_only_raises_metadata_error(data: bytes) -> None:
    check_parser(ModelMetadata.from_json, data, (MetadataError,))
