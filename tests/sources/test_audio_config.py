"""The audio source keys: what each type takes, what check-config refuses, and what it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.clikit import EXIT_CONFIG
from agent.config import parse_config
from agent.errors import ConfigError
from agent.secrets import FileResolver
from agent.sources.audio_file import AudioFileSource
from agent.sources.audio_pcm import PcmStreamSource
from agent.sources.factory import build_source


def _config(**source: Any) -> dict[str, Any]:
    return {"device_id": "pi-1", "state_dir": "/tmp/x", "source": source}


def _error(**source: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(**source))
    return str(info.value)


def test_pcm_source_takes_its_format_rate_channels_and_windows() -> None:
    config = parse_config(
        _config(
            type="pcm", path="-", sample_format="f32le", sample_rate=48000, channels=2,
            window_s=3.0, hop_s=1.5,
        )
    ).source  # fmt: skip
    assert (config.sample_format, config.sample_rate, config.channels) == ("f32le", 48000, 2)
    assert (config.window_s, config.hop_s) == (3.0, 1.5)


def test_audio_defaults_are_16khz_mono_s16le_and_the_models_own_window() -> None:
    config = parse_config(_config(type="microphone")).source
    assert (config.sample_rate, config.channels, config.sample_format) == (16000, 1, "s16le")
    assert config.window_s is None
    assert config.hop_s is None
    assert config.device is None


def test_hop_longer_than_the_window_is_refused() -> None:
    assert _error(type="audio", path="r.wav", window_s=1.0, hop_s=2.0) == (
        "source.hop_s: must not be longer than window_s (audio would be skipped)"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"type": "pcm", "path": "-", "sample_format": "u8"}, "source.sample_format: must be one"),
        ({"type": "pcm", "path": "-", "sample_rate": 100}, "source.sample_rate: must be between"),
        ({"type": "audio", "path": "r.wav", "window_s": 0}, "source.window_s: must be between"),
        ({"type": "audio", "path": "r.wav", "sample_rate": 8000}, "source.sample_rate: unknown"),
        ({"type": "microphone", "path": "x"}, "source.path: unknown key"),
        ({"type": "microphone", "device": True}, "source.device: must be a PortAudio"),
        ({"type": "pcm"}, "source.path: is required"),
    ],
)
def test_bad_audio_keys_name_the_key(source: dict[str, Any], message: str) -> None:
    assert _error(**source).startswith(message)


def test_check_config_reports_a_missing_recording(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        'device_id = "pi-1"\nstate_dir = "state"\n'
        '[source]\ntype = "audio"\npath = "recordings"\nwindow_s = 3.0\nhop_s = 1.0\n'
    )
    assert main(["check-config", str(path)]) == EXIT_CONFIG
    assert f"source.path: {tmp_path / 'recordings'} does not exist" in capsys.readouterr().err
    (tmp_path / "recordings").mkdir()
    main(["check-config", str(path)])
    assert "source.path" not in capsys.readouterr().err


def test_factory_builds_file_and_pcm_sources_with_blocks_no_longer_than_the_hop(
    tmp_path: Path,
) -> None:
    resolver = FileResolver.from_env(tmp_path / "agent.toml", {})
    (tmp_path / "rec").mkdir()
    folder = parse_config(_config(type="audio", path="rec", hop_s=0.05, poll_s=0.1)).source
    source = build_source(folder, resolver)
    assert isinstance(source, AudioFileSource)
    assert source.block_s == 0.05
    assert source.path == tmp_path / "rec"
    source.close()
    fifo = tmp_path / "in.pcm"
    fifo.touch()
    pcm = parse_config(_config(type="pcm", path="in.pcm", sample_rate=8000)).source
    stream = build_source(pcm, resolver)
    assert isinstance(stream, PcmStreamSource)
    assert (stream.rate, stream.path) == (8000, str(fifo))
    stream.close()
