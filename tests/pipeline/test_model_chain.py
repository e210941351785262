"""Model chains (pure): each stage at its own rate over a ring buffer of the previous stage's
output rows, with per-stage counts and latency, and the audio span behind each output."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agent.errors import InputError
from agent.pipeline.chain import Chain, Stage
from agent.schema.meta import MetadataError, ModelMetadata, TensorSpec
from agent.schema.stages import StageSpec

Z = np.zeros(0, np.float32)


def _clock() -> float:
    return next(_ticks)


_ticks = (i * 0.001 for i in itertools.count())


def _stages(calls: list[tuple[str, np.ndarray]]) -> list[Stage]:
    def first(x: np.ndarray) -> np.ndarray:  # 4 samples -> 2 rows of 3: (sum, mean, first)
        calls.append(("a", x))
        s = float(x.sum())
        return np.array([[[s, s / 4, x.ravel()[0]], [s + 1, 0.0, 0.0]]], np.float32)

    def second(x: np.ndarray) -> np.ndarray:  # 3 rows of 3 -> 1 row of 2
        calls.append(("b", x))
        return np.array([[x.sum(), x.shape[1]]], np.float32)

    def third(x: np.ndarray) -> np.ndarray:  # 2 rows of 2 -> a score
        calls.append(("c", x))
        return np.array([[x[0, 0, 0]]], np.float32)

    return [
        Stage(StageSpec("a", "stage_1.tflite", 4, 2, scale=2.0), first, (1, 4)),
        Stage(StageSpec("b", "stage_2.tflite", 3, 2, offset=1.0), second, (1, 3, 3)),
        Stage(StageSpec("c", "model.tflite", 2, 1), third, (1, 2, 2)),
    ]


def test_stages_run_at_their_own_rates_over_ring_buffers_of_the_previous_outputs() -> None:
    calls: list[tuple[str, np.ndarray]] = []
    chain = Chain(_stages(calls), rate=10, clock=_clock)
    samples = np.arange(12, dtype=np.float32)
    outputs = []
    for offset in range(0, 12, 3):
        outputs += chain.feed(samples[offset : offset + 3], offset, stream=1)
    names = [name for name, _ in calls]
    assert names.count("a") == 5  # windows end at 4, 6, 8, 10, 12
    assert names.count("b") == 4  # 10 rows: ring of 3 full at row 3, then every 2 new rows
    assert names.count("c") == 3  # 4 rows of b: ring of 2 full at the second, then every one
    first_a = calls[0][1]
    np.testing.assert_array_equal(first_a, [[0.0, 2.0, 4.0, 6.0]])  # samples 0..3 * scale 2
    first_b = next(x for name, x in calls if name == "b")
    assert first_b.shape == (1, 3, 3)
    assert first_b[0, 0, 0] == 12.0 + 1.0  # sum of scaled samples 0..3, + offset 1
    assert len(outputs) == 3
    assert (outputs[0].start, outputs[0].end) == (0, 8)  # the audio behind the first score
    stats = chain.stats()
    assert [stats[n]["invocations"] for n in "abc"] == [5, 4, 3]
    assert all(stats[n]["mean_ms"] == pytest.approx(1.0) for n in "abc")


def test_a_new_stream_empties_every_ring() -> None:
    calls: list[tuple[str, np.ndarray]] = []
    chain = Chain(_stages(calls), rate=10, clock=_clock)
    chain.feed(np.ones(10, np.float32), 0, stream="a.wav")
    b_before = sum(name == "b" for name, _ in calls)
    assert chain.feed(np.ones(4, np.float32), 0, stream="b.wav") == []
    # b.wav's first window gives 2 rows: not enough for b's ring of 3 once it was emptied
    assert sum(name == "b" for name, _ in calls) == b_before == 3


def test_a_stage_given_the_wrong_size_names_itself() -> None:
    stage = Stage(StageSpec("emb", "stage_2.tflite", 3, 1), lambda x: x, (1, 4, 3))
    with pytest.raises(InputError, match="stage 'emb' needs 12 values"):
        stage.run(np.zeros((3, 3)), _clock)


def _meta(stages: list[dict[str, object]]) -> dict[str, object]:
    spec = TensorSpec("x", (1, 16, 96), "float32")
    base = ModelMetadata("classification", (spec,), (TensorSpec("y", (1, 1), "float32"),))
    return base.to_dict() | {"stages": stages}


def test_metadata_stages_round_trip_and_single_models_omit_them() -> None:
    stages = [
        {"name": "mel", "file": "stage_1.tflite", "window": 1760, "hop": 1280,
         "scale": 32768.0, "offset": 0.0, "input_shape": [1, 1760]},
        {"name": "ww", "file": "model.tflite", "window": 16, "hop": 1, "scale": 1.0,
         "offset": 0.0},
    ]  # fmt: skip
    meta = ModelMetadata.from_dict(_meta(stages))
    assert meta.stages[0].input_shape == (1, 1760)
    assert ModelMetadata.from_json(meta.to_json()) == meta
    assert "stages" not in ModelMetadata.from_dict(_meta([])).to_dict()


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"name": "a", "file": "model.tflite", "window": 1, "hop": 1}], "2-5 stages"),
        (
            [{"name": "a", "file": "stage_2.tflite", "window": 1, "hop": 1},
             {"name": "b", "file": "model.tflite", "window": 1, "hop": 1}],
            r"stages\[0\].file must be 'stage_1.tflite'",
        ),
        (
            [{"name": "a", "file": "stage_1.tflite", "window": 0, "hop": 1},
             {"name": "b", "file": "model.tflite", "window": 1, "hop": 1}],
            r"stages\[0\].window must be an integer",
        ),
        (
            [{"name": "a", "file": "stage_1.tflite", "window": 1, "hop": 1, "rate": 3},
             {"name": "b", "file": "model.tflite", "window": 1, "hop": 1}],
            "unknown key 'rate'",
        ),
    ],
)  # fmt: skip
def test_bad_stage_declarations_are_refused_by_field(
    stages: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(MetadataError, match=message):
        ModelMetadata.from_dict(_meta(stages))
