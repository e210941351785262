"""Windows of sensor readings: length, hop and width checks."""

import numpy as np
import pytest

from agent.pipeline.windowing import Windower, WindowError


def test_windower_emits_length_rows_every_hop() -> None:
    windower = Windower(length=3, features=2, hop=2)
    outs = [windower.push((float(i), float(-i))) for i in range(7)]
    assert [o is not None for o in outs] == [False, False, True, False, True, False, True]
    window = outs[4]
    assert window is not None
    assert window.dtype == np.float32
    assert window.tolist() == [[2.0, -2.0], [3.0, -3.0], [4.0, -4.0]]


def test_windower_without_hop_emits_non_overlapping_windows() -> None:
    windower = Windower(length=2, features=1)
    outs = [windower.push((float(i),)) for i in range(4)]
    assert [None if o is None else o.ravel().tolist() for o in outs] == [
        None,
        [0.0, 1.0],
        None,
        [2.0, 3.0],
    ]


def test_windower_rejects_a_reading_of_the_wrong_width() -> None:
    windower = Windower(length=2, features=3)
    with pytest.raises(WindowError, match="reading has 2 values, window needs 3") as info:
        windower.push((1.0, 2.0))
    assert info.value.kind == "wrong_width"
