"""Audio windows (pure): PCM decoding, overlapping windows with their times, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from agent.errors import InputError
from agent.pipeline.audio import (
    MAX_BACKLOG_WINDOWS,
    AudioWindower,
    PcmDecoder,
    resample,
    to_mono,
)


def _ramp(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)


def _feed(windower: AudioWindower, samples: np.ndarray, block: int, stream: object = 1) -> list:
    out = []
    for offset in range(0, len(samples), block):
        window = windower.push(samples[offset : offset + block], offset, stream)
        if window is not None:
            out.append(window)
    return out


def test_windows_overlap_by_window_minus_hop_and_carry_their_sample_range() -> None:
    windows = _feed(AudioWindower(rate=10, window=30, hop=15), _ramp(100), block=5)
    assert [(w.start, w.end) for w in windows] == [(0, 30), (15, 45), (30, 60), (45, 75), (60, 90)]
    assert [(w.start_s, w.end_s) for w in windows][:2] == [(0.0, 3.0), (1.5, 4.5)]
    for w in windows:
        np.testing.assert_array_equal(w.samples, _ramp(100)[w.start : w.end])


def test_block_size_does_not_change_the_windows() -> None:
    samples = _ramp(1000)
    by_7 = _feed(AudioWindower(10, 120, 50), samples, block=7)
    by_50 = _feed(AudioWindower(10, 120, 50), samples, block=50)
    assert [(w.start, w.end) for w in by_7] == [(w.start, w.end) for w in by_50]
    for a, b in zip(by_7, by_50, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)


def test_windows_due_together_come_out_on_the_following_pushes() -> None:
    windower = AudioWindower(10, 10, 2)
    first = windower.push(_ramp(16), 0, 1)
    assert first is not None
    assert (first.start, first.end) == (0, 10)
    second = windower.push(np.zeros(0, np.float32), 16, 1)
    assert second is not None
    assert (second.start, second.end) == (2, 12)


def test_a_consumer_far_behind_skips_the_oldest_windows_and_counts_them() -> None:
    windower = AudioWindower(10, 10, 1)
    windower.push(_ramp(10 + 20), 0, 1)
    assert windower.skipped == 20 - MAX_BACKLOG_WINDOWS


def test_a_gap_in_the_offsets_restarts_the_windows_after_it() -> None:
    windower = AudioWindower(10, 20, 10)
    assert windower.push(_ramp(15), 0, 1) is None
    assert windower.push(_ramp(15), 100, 1) is None  # 15..100 missing: nothing spans the gap
    window = windower.push(_ramp(10), 115, 1)
    assert window is not None
    assert (window.start, window.end) == (100, 120)
    assert windower.gaps == 1


def test_a_new_stream_starts_from_its_own_first_sample() -> None:
    windower = AudioWindower(10, 10, 10)
    windower.push(_ramp(5), 0, "a.wav")
    window = windower.push(_ramp(10), 0, "b.wav")
    assert window is not None
    assert (window.start, window.end) == (0, 10)
    np.testing.assert_array_equal(window.samples, _ramp(10))


def test_s16le_stereo_decodes_to_the_mean_of_the_channels_keeping_partial_frames() -> None:
    frames = np.array([[16384, 0], [-32768, -32768], [100, 300]], dtype="<i2")
    data = frames.tobytes()
    decoder = PcmDecoder("s16le", channels=2)
    first = decoder.feed(data[:7])  # one whole frame (4 bytes) and three bytes of the next
    rest = decoder.feed(data[7:])
    np.testing.assert_array_equal(first, [0.25])
    np.testing.assert_allclose(rest, [-1.0, 200 / 32768])


def test_f32le_non_finite_samples_become_silence_or_full_scale() -> None:
    data = np.array([0.5, np.nan, np.inf, -np.inf], dtype="<f4").tobytes()
    np.testing.assert_array_equal(PcmDecoder("f32le", 1).feed(data), [0.5, 0.0, 1.0, -1.0])


def test_unknown_sample_format_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="unknown sample format 'u8'"):
        PcmDecoder("u8", 1)  # type: ignore[arg-type]


def test_to_mono_of_mono_is_the_samples_themselves() -> None:
    samples = np.array([[0.1], [0.2]], dtype=np.float32)
    np.testing.assert_array_equal(to_mono(samples), samples[:, 0])


def test_resampling_44k1_to_48k_keeps_a_tone_at_its_frequency_and_exact_length() -> None:
    t = np.arange(44100 * 3) / 44100
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(tone, 44100, 48000, 144000)
    assert out.shape == (144000,)
    assert out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out))
    assert round(np.argmax(spectrum) * 48000 / len(out)) == 1000


def test_resampling_to_a_length_far_from_the_model_input_is_refused() -> None:
    with pytest.raises(InputError, match="needs 144000"):
        resample(np.zeros(44100 * 2, np.float32), 44100, 48000, 144000)
