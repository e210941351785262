"""Audio sources: recordings, a folder of recordings, raw PCM on a FIFO, and a microphone
through PortAudio and ALSA (a ``file`` PCM reading a FIFO stands in for the sound card)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from agent.sources.audio import AudioBlock
from agent.sources.audio_file import AudioFileSource
from agent.sources.audio_pcm import PcmStreamSource

RATE = 16000


def tone(seconds: float, freq: float = 440.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")


def drain(source: object, *, until_samples: int | None = None, timeout: float = 20.0) -> list:
    blocks: list[AudioBlock] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        block = source.get(0.2)  # type: ignore[attr-defined]
        if block is not None:
            blocks.append(block)
        elif source.finished:  # type: ignore[attr-defined]
            break
        if until_samples is not None and sum(len(b.samples) for b in blocks) >= until_samples:
            break
    return blocks


def test_a_wav_file_is_read_whole_as_contiguous_mono_blocks_with_its_name(tmp_path: Path) -> None:
    samples = tone(1.05)
    stereo = np.stack([samples, samples], axis=1)
    path = tmp_path / "rec.wav"
    soundfile.write(path, stereo, RATE, subtype="PCM_16")
    source = AudioFileSource(path, realtime=False, block_s=0.1)
    blocks = drain(source)
    source.close()
    assert source.finished
    assert [b.offset for b in blocks] == [i * 1600 for i in range(11)]
    assert [len(b.samples) for b in blocks][-2:] == [1600, 800]
    assert {b.rate for b in blocks} == {RATE}
    assert {b.file for b in blocks} == {"rec.wav"}
    np.testing.assert_array_equal(
        np.concatenate([b.samples for b in blocks]), samples.astype(np.float32) / 32768
    )
    duration = len(samples) / RATE
    assert blocks[0].stream_wall == pytest.approx(path.stat().st_mtime - duration)


def test_a_flac_file_decodes_to_the_same_samples_as_the_wav(tmp_path: Path) -> None:
    samples = tone(0.5)
    soundfile.write(tmp_path / "a.wav", samples, RATE, subtype="PCM_16")
    soundfile.write(tmp_path / "a.flac", samples, RATE, subtype="PCM_16")
    wav = AudioFileSource(tmp_path / "a.wav", realtime=False)
    flac = AudioFileSource(tmp_path / "a.flac", realtime=False)
    a, b = drain(wav), drain(flac)
    wav.close()
    flac.close()
    np.testing.assert_array_equal(
        np.concatenate([x.samples for x in a]), np.concatenate([x.samples for x in b])
    )


def test_realtime_pacing_delivers_a_file_no_faster_than_its_duration(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "a.wav", tone(0.6), RATE, subtype="PCM_16")
    started = time.monotonic()
    source = AudioFileSource(tmp_path / "a.wav", realtime=True, block_s=0.1)
    blocks = drain(source)
    source.close()
    assert sum(len(b.samples) for b in blocks) == 0.6 * RATE
    assert time.monotonic() - started >= 0.55


def test_a_folder_yields_each_finished_recording_once_and_skips_undecodable_ones(
    tmp_path: Path,
) -> None:
    soundfile.write(tmp_path / "1.wav", tone(0.3), RATE, subtype="PCM_16")
    (tmp_path / "2.wav").write_bytes(b"RIFF\x00\x00not audio")
    (tmp_path / ".hidden.wav").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    source = AudioFileSource(tmp_path, poll_s=0.05)
    first = drain(source, until_samples=int(0.3 * RATE), timeout=10)
    soundfile.write(tmp_path / "3.flac", tone(0.2, 880), RATE, subtype="PCM_16")
    second = drain(source, until_samples=int(0.2 * RATE), timeout=10)
    time.sleep(0.3)
    again = source.get(0.2)
    source.close()
    assert {b.file for b in first} == {"1.wav"}
    assert {b.file for b in second} == {"3.flac"}
    assert first[0].stream != second[0].stream
    assert second[0].offset == 0
    assert again is None
    assert source.stats()["error.bad_audio"] == 1


def test_a_missing_recording_finishes_the_source_counting_it(tmp_path: Path) -> None:
    source = AudioFileSource(tmp_path / "none.wav", realtime=False)
    assert drain(source, timeout=5) == []
    assert source.finished
    assert source.stats()["error.bad_audio"] == 1


def _write_fifo(path: Path, data: bytes, chunk: int, pause: float = 0.0) -> threading.Thread:
    def run() -> None:
        with open(path, "wb", buffering=0) as fifo:
            for i in range(0, len(data), chunk):
                fifo.write(data[i : i + chunk])
                if pause:
                    time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_raw_pcm_on_a_fifo_decodes_each_writer_as_its_own_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "audio.pcm"
    os.mkfifo(fifo)
    stereo = np.stack([tone(0.5), tone(0.5, 880)], axis=1).astype("<i2")
    source = PcmStreamSource(str(fifo), sample_format="s16le", rate=RATE, channels=2)
    _write_fifo(fifo, stereo.tobytes(), chunk=999).join(10)  # odd chunks split frames
    first = drain(source, until_samples=len(stereo), timeout=10)
    # The next arecord run, once the reader saw the first one go (a writer that takes over the
    # FIFO before the reader noticed the last one leave is a continuation of its stream).
    time.sleep(0.5)
    _write_fifo(fifo, stereo.tobytes(), chunk=4096).join(10)
    second = drain(source, until_samples=len(stereo), timeout=10)
    source.close()
    expected = stereo.astype(np.float32).mean(axis=1) / 32768
    for blocks in (first, second):
        np.testing.assert_allclose(np.concatenate([b.samples for b in blocks]), expected, atol=1e-7)
        assert blocks[0].offset == 0
    assert first[0].stream != second[0].stream
    assert source.stats()["dropped"] == 0


def test_f32le_pcm_is_taken_as_is(tmp_path: Path) -> None:
    fifo = tmp_path / "audio.f32"
    os.mkfifo(fifo)
    samples = (tone(0.2).astype(np.float32) / 32768).astype("<f4")
    source = PcmStreamSource(str(fifo), sample_format="f32le", rate=RATE)
    _write_fifo(fifo, samples.tobytes(), chunk=1000).join(10)
    blocks = drain(source, until_samples=len(samples), timeout=10)
    source.close()
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), samples)


# -- microphone: PortAudio -> ALSA -> a `file` PCM whose infile is a FIFO the test writes -----


@pytest.fixture
def alsa_mic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An ALSA PCM ``testmic`` (plug -> file -> null) capturing what is written to the FIFO."""
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    conf = tmp_path / "asoundrc"
    conf.write_text(
        'pcm.testmic_raw { type file; slave.pcm "null"; file "/dev/null";'
        f' infile "{fifo}"; format "raw" }}\n'
        'pcm.testmic { type plug; slave { pcm "testmic_raw"; format S16_LE;'
        f" rate {RATE}; channels 1 }} }}\n"
    )
    alsa_conf = Path("/usr/share/alsa/alsa.conf")
    if not alsa_conf.exists():
        pytest.skip("no ALSA configuration on this host (libasound2-data)")
    monkeypatch.setenv("ALSA_CONFIG_PATH", f"{alsa_conf}:{conf}")
    return fifo


class _Microphone(threading.Thread):
    """Writes a tone into the FIFO at real-time pace; ``pause`` stops writing (device gone)."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fifo = fifo
        self.pause = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        # O_RDWR never blocks on a FIFO and keeps it open for ALSA's opens and probes.
        fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        block = tone(0.05).tobytes()
        try:
            while not self.stop.is_set():
                if not self.pause.is_set():
                    with contextlib.suppress(BlockingIOError):  # nobody capturing: pipe full
                        os.write(fd, block)
                time.sleep(0.05)
        finally:
            os.close(fd)


def test_microphone_capture_through_alsa_and_reconnect_after_the_device_stalls(
    alsa_mic: Path,
) -> None:
    mic = _Microphone(alsa_mic)
    mic.start()  # before PortAudio starts: its device probe opens the FIFO
    try:
        pytest.importorskip("sounddevice", reason="PortAudio (libportaudio2) is not installed")
    except BaseException:
        mic.stop.set()
        raise
    from agent.sources.audio_mic import MicrophoneSource

    source = MicrophoneSource("testmic", rate=RATE, block_s=0.05, stall_s=0.5)
    try:
        before = drain(source, until_samples=RATE // 2, timeout=15)
        mic.pause.set()
        deadline = time.monotonic() + 10
        while source.stats().get("error.device_lost", 0) == 0 and time.monotonic() < deadline:
            source.get(0.1)
        mic.pause.clear()
        after = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(len(b.samples) for b in after) < RATE // 2:
            block = source.get(0.2)
            if block is not None and block.stream != before[0].stream:
                after.append(block)
    finally:
        mic.stop.set()
        source.close()
    assert source.stats()["error.device_lost"] >= 1
    assert source.connections >= 2
    for blocks in (before, after):
        assert sum(len(b.samples) for b in blocks) >= RATE // 2
        samples = np.concatenate([b.samples for b in blocks])
        peak = np.argmax(np.abs(np.fft.rfft(samples))) * RATE / len(samples)
        assert abs(peak - 440) < 10
        offsets = [b.offset for b in blocks]
        assert offsets == sorted(offsets)
