"""The agent configuration: closed to typos, errors name the dotted key, no I/O in validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.cli import main
from agent.clikit import EXIT_CONFIG
from agent.config import SCHEMA_KEYS, parse_config, parse_toml
from agent.errors import ConfigError
from agent.secrets import FileResolver, check_files, read_secret

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"device_id": "pi-1", "state_dir": "/tmp/x", "source": {"type": "video", "path": "v.mp4"}}


def _error(raw: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"
    assert config.mqtt.qos == 1
    assert config.model.accelerator == "cpu"
    assert config.output.policy == "every"
    assert config.source.path == "v.mp4"


def test_shipped_example_config_is_valid() -> None:
    config = parse_toml((ROOT / "systemd" / "edge-agent.toml").read_bytes())
    assert config.mqtt.tls
    assert config.mqtt.port == 8883
    assert config.source.type == "camera"


def test_unknown_top_level_key_is_named() -> None:
    assert _error({**MINIMAL, "devce_id": "x"}).key == "devce_id"


def test_unknown_nested_key_is_named_with_its_table() -> None:
    raw = {**MINIMAL, "mqtt": {"url": "mqtt://h", "qso": 1}}
    assert _error(raw).key == "mqtt.qso"


def test_key_of_another_source_type_is_rejected() -> None:
    raw = {**MINIMAL, "source": {"type": "video", "path": "v.mp4", "baud": 9600}}
    error = _error(raw)
    assert error.key == "source.baud"
    assert "unknown key" in str(error)


def test_out_of_range_value_names_key_and_range() -> None:
    error = _error({**MINIMAL, "mqtt": {"qos": 2}})
    assert str(error) == "mqtt.qos: must be between 0 and 1; got 2"


def test_wrong_type_is_rejected() -> None:
    assert _error({**MINIMAL, "model": {"threads": "4"}}).key == "model.threads"
    assert _error({**MINIMAL, "source": {"type": "video", "path": "v", "loop": 1}}).key == (
        "source.loop"
    )


@pytest.mark.parametrize(
    "url",
    ["http://broker:1883", "mqtt://", "mqtt://user:pw@broker", "mqtt://broker:99999"],
)
def test_bad_mqtt_urls_are_rejected(url: str) -> None:
    assert _error({**MINIMAL, "mqtt": {"url": url}}).key == "mqtt.url"


def test_device_id_must_not_contain_topic_wildcards() -> None:
    for bad in ("a/b", "a+b", "a#", "", "x" * 65):
        assert _error({**MINIMAL, "device_id": bad}).key == "device_id"


def test_tls_files_need_mqtts() -> None:
    raw = {**MINIMAL, "mqtt": {"url": "mqtt://h", "ca_file": "ca.crt"}}
    assert _error(raw).key == "mqtt.url"


def test_client_certificate_needs_its_key() -> None:
    raw = {**MINIMAL, "mqtt": {"url": "mqtts://h", "cert_file": "c.crt"}}
    assert _error(raw).key == "mqtt.cert_file"


def test_threshold_cannot_exceed_trusted_keys() -> None:
    raw = {**MINIMAL, "keys": {"trusted_keys": ["a.pub"], "threshold": 2}}
    assert _error(raw).key == "keys.threshold"


def test_csv_sensor_needs_field_names() -> None:
    raw = {**MINIMAL, "source": {"type": "sensor", "path": "/dev/ttyUSB0", "format": "csv"}}
    assert _error(raw).key == "source.fields"


def test_camera_device_must_be_index_or_dev_path() -> None:
    assert parse_config({**MINIMAL, "source": {"type": "camera", "device": 0}}).source.device == "0"
    raw = {**MINIMAL, "source": {"type": "camera", "device": "video0"}}
    assert _error(raw).key == "source.device"


def test_missing_source_is_an_error() -> None:
    raw = {"device_id": "pi-1", "state_dir": "/tmp/x"}
    assert _error(raw).key == "source"


def test_invalid_toml_and_oversize_files_are_rejected() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_toml(b"device_id = ")
    with pytest.raises(ConfigError, match="more than"):
        parse_toml(b"#" * (300 * 1024))


def test_every_schema_key_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", doc, flags=re.MULTILINE))
    for table, keys in SCHEMA_KEYS.items():
        for key in keys:
            assert key in documented, f"{table}.{key} is missing from docs/configuration.md"


def test_bare_secret_name_is_found_in_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "device.key").write_bytes(b"secret")
    (creds / "device.key").chmod(0o600)
    resolver = FileResolver(tmp_path / "etc", creds)
    assert read_secret(resolver, "keys.device_key", "device.key") == b"secret"
    assert resolver.path("sub/x.key") == tmp_path / "etc" / "sub" / "x.key"


def test_missing_secret_names_the_key(tmp_path: Path) -> None:
    resolver = FileResolver(tmp_path, None)
    with pytest.raises(ConfigError) as info:
        read_secret(resolver, "mqtt.password_file", "nope")
    assert info.value.key == "mqtt.password_file"


def test_check_files_lists_every_missing_file(tmp_path: Path) -> None:
    config = parse_config(
        {
            **MINIMAL,
            "keys": {"trust_file": "trust.json"},
            "model": {"bundle": "m.edgepkg"},
        }
    )
    problems = check_files(config, FileResolver(tmp_path, None))
    keys = [p.split(":")[0] for p in problems]
    assert keys == ["keys.trust_file", "keys.device_key", "model.bundle", "source.path"]


def test_check_config_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('device_id = "pi-1"\nstate_dir = "s"\n[source]\ntype = "camera"\ndevice = 0\n')
    (tmp_path / "device.key").write_bytes(b"k")
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('device_id = "pi-1"\nstate_dir = "s"\n[source]\ntype = "camera"\n')
    assert main(["check-config", str(bad)]) == EXIT_CONFIG
    assert "source.device" in capsys.readouterr().err


def test_check_config_warns_when_max_raw_values_cannot_fit_a_result() -> None:
    from agent.commands.check_config import config_warnings

    assert config_warnings(parse_config(MINIMAL)) == []
    big = parse_config({**MINIMAL, "output": {"max_raw_values": 1 << 20}})
    (warning,) = config_warnings(big)
    assert warning.startswith("output.max_raw_values = 1048576: raw tensors over 10321 values")
    assert "counted in status errors.result_truncated" in warning


def test_update_settings_groups_and_fleet_keys_are_parsed() -> None:
    config = parse_config(
        {
            **MINIMAL,
            "groups": ["lab", "north-1"],
            "keys": {"trusted_keys": ["r.pub"], "fleet_keys": ["fleet.pub"]},
            "update": {"window": 4, "watch_s": 2.5, "min_bytes_per_s": 0},
        }
    )
    assert config.groups == ("lab", "north-1")
    assert config.keys.fleet_keys == ("fleet.pub",)
    assert (config.update.window, config.update.watch_s, config.update.min_bytes_per_s) == (
        4,
        2.5,
        0.0,
    )
    assert config.update.deadline_s == 3600.0


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"update": {"window": 0}}, "update.window", "between 1 and 64"),
        ({"update": {"retry_min_s": 10, "retry_max_s": 5}}, "update.retry_max_s", "smaller"),
        ({"update": {"windw": 4}}, "update.windw", "unknown key"),
        ({"groups": ["a/b"]}, "groups", "letters, digits"),
        ({"groups": ["a", "a"]}, "groups", "distinct"),
    ],
)
def test_bad_update_settings_and_groups_name_the_key(
    raw: dict[str, object], key: str, message: str
) -> None:
    error = _error({**MINIMAL, **raw})
    assert error.key == key
    assert message in str(error)


def test_check_files_covers_fleet_keys(tmp_path: Path) -> None:
    config = parse_config({**MINIMAL, "keys": {"trusted_keys": [], "fleet_keys": ["f.pub"]}})
    problems = check_files(config, FileResolver(tmp_path, None))
    assert "keys.fleet_keys[0]" in [p.split(":")[0] for p in problems]


def test_group_keys_map_recipient_ids_to_key_files() -> None:
    raw = {**MINIMAL, "keys": {"group_keys": {"group:lab": "lab.key"}}}
    assert parse_config(raw).keys.group_keys == (("group:lab", "lab.key"),)
    bad = {**MINIMAL, "keys": {"group_keys": {"group/lab": "lab.key"}}}
    assert _error(bad).key == "keys.group_keys"
    assert _error({**MINIMAL, "keys": {"group_keys": ["lab.key"]}}).key == "keys.group_keys"


def test_a_fleet_threshold_above_the_number_of_fleet_keys_is_refused() -> None:
    keys = {"trusted_keys": ["r.pub"], "fleet_keys": ["a.pub", "b.pub"], "fleet_threshold": 3}
    with pytest.raises(ConfigError, match=r"keys\.fleet_threshold: is larger than the number"):
        parse_config({**MINIMAL, "keys": keys})


def test_root_file_replaces_the_key_lists() -> None:
    keys = {"root_file": "root-1.json", "fleet_keys": ["a.pub"]}
    with pytest.raises(ConfigError, match=r"keys\.root_file: replaces trust_file"):
        parse_config({**MINIMAL, "keys": keys})
    config = parse_config({**MINIMAL, "keys": {"root_file": "root-1.json"}})
    assert config.keys.root_file == "root-1.json"


def test_store_group_commit_and_coalescing_are_parsed() -> None:
    config = parse_config(
        {**MINIMAL, "store": {"commit_ms": 0, "commit_max": 1, "coalesce": False}}
    )
    assert (config.store.commit_ms, config.store.commit_max, config.store.coalesce) == (
        0.0,
        1,
        False,
    )
    default = parse_config(MINIMAL).store
    assert (default.commit_ms, default.commit_max, default.coalesce) == (5.0, 256, True)


@pytest.mark.parametrize(
    ("store", "key", "message"),
    [
        ({"commit_ms": -1}, "store.commit_ms", "between 0"),
        ({"commit_ms": 5000}, "store.commit_ms", "between 0"),
        ({"commit_max": 0}, "store.commit_max", "between 1 and 10000"),
        ({"coalesce": "yes"}, "store.coalesce", ""),
    ],
)
def test_bad_store_batching_settings_name_the_key(
    store: dict[str, object], key: str, message: str
) -> None:
    error = _error({**MINIMAL, "store": store})
    assert error.key == key
    assert message in str(error)
