"""Acceptance through the real agent process: raw PCM written to a FIFO (as ``arecord -t raw``
writes it) into BirdNET in a signed bundle gives, on MQTT, the labels of the model run by hand
on the same windows, each result with its window's times."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import cli as agent_cli
from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage
from agent.runtime import open_model
from convert import cli as convert_cli
from tests.model.test_audio_classifier import HOP_S, RATE, WINDOW_S, _by_hand, birdnet_metadata
from tests.model.test_audio_classifier import birdsong as chirps
from tests.support.agent_env import AgentProcess
from tests.support.audio_models import audio_models  # noqa: F401
from tests.support.broker import MosquittoBroker, Received, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DEVICE = "pi-garden-1"


def test_pcm_on_a_fifo_through_the_agent_gives_the_labels_of_the_model_by_hand(
    tmp_path: Path,
    audio_models: Callable[[str], Path],  # noqa: F811
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    labels = audio_models("birdnet_labels").read_text(encoding="utf-8").splitlines()
    (tmp_path / "metadata.json").write_bytes(birdnet_metadata(labels).to_json())
    assert convert_cli.main(["keygen", "--out", str(tmp_path / "release")]) == 0
    assert agent_cli.main(["keygen", "--out", str(tmp_path / "dev"), "--device-id", DEVICE]) == 0
    bundle = tmp_path / "birdnet-1.edgepkg"
    assert convert_cli.main([
        "bundle", str(audio_models("birdnet")), "--name", "birdnet", "--version", "1",
        "--metadata", str(tmp_path / "metadata.json"),
        "--signing-key", str(tmp_path / "release" / "release.key"),
        "--recipient", str(tmp_path / "dev" / "device.pub"), "-o", str(bundle),
    ]) == 0  # fmt: skip
    fifo = tmp_path / "arecord.pcm"
    os.mkfifo(fifo)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
        '[keys]\ntrusted_keys = ["release/release.pub"]\ndevice_key = "dev/device.key"\n'
        f'[model]\nbundle = "{bundle}"\nthreads = 1\n'
        f'[source]\ntype = "pcm"\npath = "{fifo}"\nsample_rate = {RATE}\n'
        f'sample_format = "s16le"\nwindow_s = {WINDOW_S}\nhop_s = {HOP_S}\n'
    )
    pcm = chirps(9.0)
    model = open_model(audio_models("birdnet").read_bytes(), threads=1)
    direct = _by_hand(model, birdnet_metadata(labels), pcm, RATE)
    model.close()
    watcher = Subscriber(broker, f"edge/{DEVICE}/results", "pcm-watcher")
    agent = agents(config)

    def arecord() -> None:
        with open(fifo, "wb", buffering=0) as out:  # opens once the agent reads the FIFO
            data = pcm.tobytes()
            for i in range(0, len(data), 9600):  # 0.1 s of audio per write
                out.write(data[i : i + 9600])

    writer = threading.Thread(target=arecord, daemon=True)
    writer.start()

    def results(got: list[Received]) -> list[ResultMessage]:
        return sorted((r for m in got for r in results_in(m.payload)), key=lambda r: r.seq)

    watcher.wait_for(
        lambda got: len(got) >= len(direct), timeout=120, describe=lambda _: agent.log()[-3000:]
    )
    time.sleep(0.5)
    got = results(watcher.messages)
    assert agent.terminate() == 0
    watcher.close()
    writer.join(5)
    assert len(got) == len(direct) == 5
    for result, (start_s, end_s, names, scores) in zip(got, direct, strict=True):
        window = result.outputs["window"]
        assert (window["start_s"], window["end_s"]) == (start_s, end_s)
        assert window["end_ts"] - window["start_ts"] == pytest.approx(WINDOW_S, abs=1e-5)
        # Wall times count samples from the stream's first (as a live capture would arrive).
        assert window["start_ts"] - got[0].outputs["window"]["start_ts"] == pytest.approx(start_s)
        assert [c["label"] for c in result.outputs["classes"]] == names
        assert [c["score"] for c in result.outputs["classes"]] == pytest.approx(scores, abs=1e-6)
