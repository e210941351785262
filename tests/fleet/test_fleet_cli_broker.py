"""edge-fleet commands against a real mosquitto: status, push (what lands on the broker), gc.

Device answers here are retained statuses published by a plain paho client; the commands are
checked with the device's own verifier (``open_command``). End-to-end runs with real agents are
in ``tests/fleet/test_fleet_e2e.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.publish as paho_publish
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import RecipientKey, Release, TrustRoot, build_bundle
from agent.bundle.files import read_release_public
from agent.mqtt.messages import ModelRef, StatusMessage, UpdateStatus
from agent.update.commands import open_command
from fleet.bundles import prepare_bundle
from fleet.cli import main
from tests.support.broker import MosquittoBroker, Subscriber

pytestmark = pytest.mark.broker

MODEL = ModelRef("digits", "1", "ab" * 32)


def _status(broker: MosquittoBroker, device: str, **fields: object) -> None:
    status = StatusMessage(ts=1_800_000_000.0, state="running", model=MODEL, **fields)  # type: ignore[arg-type]
    for topic, payload in (
        (f"edge/{device}/status", status.to_json()),
        (f"edge/{device}/availability", b"online"),
    ):
        paho_publish.single(
            topic, payload, qos=1, retain=True, hostname=broker.host, port=broker.port
        )


def _bundle(path: Path) -> Path:
    data = build_bundle(
        Release("digits", 2, 1_800_000_000),
        {"model.tflite": bytes(range(256)) * 600},
        [Ed25519PrivateKey.generate()],
        [RecipientKey("group:lab", X25519PrivateKey.generate().public_key())],
    )
    path.write_bytes(data)
    return path


@pytest.fixture
def fleet_key(tmp_path: Path) -> Path:
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    return tmp_path / "keys" / "fleet.key"


@pytest.fixture
def registry(tmp_path: Path) -> list[str]:
    """``--registry`` of a file that does not exist yet (no registry: wildcard discovery)."""
    return ["--registry", str(tmp_path / "devices.json")]


def test_status_prints_counts_a_table_on_request_and_json_from_retained_topics(
    broker: MosquittoBroker, capsys: pytest.CaptureFixture[str], registry: list[str]
) -> None:
    _status(broker, "pi-1")
    _status(broker, "pi-2", groups=("lab",))
    assert main(["status", "--url", broker.url, *registry]) == 0
    captured = capsys.readouterr()
    view, devices = captured.out.splitlines()[:2]
    assert view.startswith("view      2 device(s) announced (wildcard, ")
    assert view.endswith(" s); no registry, so completeness is unknown")
    assert devices == "devices   2 (online 2)"
    assert "no device registry at" in captured.err
    assert main(["status", "--url", broker.url, "--devices", *registry]) == 0
    lines = capsys.readouterr().out.splitlines()[5:]
    assert lines[0].split() == [
        *["DEVICE", "ONLINE", "STATE", "MODEL", "VERSION", "UPDATE", "LAST", "SEEN"]
    ]
    assert [line.split()[:6] for line in lines[1:]] == [
        ["pi-1", "yes", "running", "digits", "1", "-"],
        ["pi-2", "yes", "running", "digits", "1", "-"],
    ]
    assert main(["status", "--url", broker.url, "--device", "pi-2", "--json", *registry]) == 0
    (row,) = json.loads(capsys.readouterr().out)["devices"]
    assert (row["device"], row["online"], row["status"]["groups"]) == ("pi-2", True, ["lab"])


def test_status_of_an_unknown_device_exits_1(broker: MosquittoBroker, registry: list[str]) -> None:
    assert main(["status", "--url", broker.url, "--device", "nope", *registry]) == 1


def test_push_to_a_group_publishes_the_bundle_and_one_signed_desired_command_per_member(
    broker: MosquittoBroker, tmp_path: Path, fleet_key: Path, registry: list[str]
) -> None:
    _status(broker, "pi-1", groups=("lab",))
    _status(broker, "pi-2", groups=("lab", "north"))
    _status(broker, "pi-3", groups=("north",))
    path = _bundle(tmp_path / "digits-2.edgepkg")
    bundle = prepare_bundle(path.read_bytes())
    args = ["--url", broker.url, "--fleet-key", str(fleet_key), *registry]
    assert main(["push", str(path), "--group", "lab", *args]) == 0

    retained = Subscriber(broker, "edge/#")
    expected = 1 + bundle.offer.blocks + 2 + 3 * 2  # header, blocks, 2 commands, 3 statuses+avail
    retained.wait_for(lambda got: len(got) >= expected)
    got = {m.topic: m.payload for m in retained.messages}
    retained.close()
    assert got[f"edge/bundles/{bundle.bid}/header"] == bundle.header
    assert got[f"edge/bundles/{bundle.bid}/blocks/0"] == bytes(bundle.block(0))
    assert "edge/pi-3/commands/desired" not in got
    trust = TrustRoot.from_keys([read_release_public(fleet_key.with_suffix(".pub"))])
    for device in ("pi-1", "pi-2"):
        signed = open_command(got[f"edge/{device}/commands/desired"], trust, device)
        assert signed.command.bundle == bundle.offer


def test_push_to_an_empty_group_names_it(
    broker: MosquittoBroker,
    tmp_path: Path,
    fleet_key: Path,
    capsys: pytest.CaptureFixture[str],
    registry: list[str],
) -> None:
    path = _bundle(tmp_path / "b.edgepkg")
    args = ["--url", broker.url, "--fleet-key", str(fleet_key), *registry]
    assert main(["push", str(path), "--group", "ghost", *args]) == 2
    assert "no device is registered in or publishes group 'ghost'" in capsys.readouterr().err


def test_push_refuses_an_incomplete_view_with_the_numbers(
    broker: MosquittoBroker, tmp_path: Path, fleet_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pi-2 is registered but the broker never delivers its status in time (read timeout 0
    is not reachable from the CLI, so a registry naming it on a broker that lacks it would
    read as never announced): an unreadable status file stands in as a wildcard read."""
    _status(broker, "pi-1", groups=("lab",))
    registry = tmp_path / "devices.json"
    assert (
        main(["devices", "add", "pi-1", "pi-2", "--group", "lab", "--registry", str(registry)]) == 0
    )
    path = _bundle(tmp_path / "b.edgepkg")
    args = ["--url", broker.url, "--fleet-key", str(fleet_key), "--registry", str(registry)]
    assert main(["push", str(path), "--group", "lab", "--read", "wildcard", *args]) == 1
    assert (
        "the fleet view is incomplete: 1 of 2 registered not read (pi-2) (--allow-incomplete)"
        in capsys.readouterr().err
    )


def test_gc_deletes_a_bundle_whose_devices_all_installed_it(
    broker: MosquittoBroker,
    tmp_path: Path,
    fleet_key: Path,
    capsys: pytest.CaptureFixture[str],
    registry: list[str],
) -> None:
    path = _bundle(tmp_path / "b.edgepkg")
    bundle = prepare_bundle(path.read_bytes())
    _status(broker, "pi-1")
    args = ["--url", broker.url, "--fleet-key", str(fleet_key), *registry]
    assert main(["push", str(path), "--device", "pi-1", *args]) == 0
    assert main(["gc", *args]) == 0
    assert "1 bundle(s) kept, 0 deleted" in capsys.readouterr().out

    _status(broker, "pi-1", update=UpdateStatus(state="installed", bundle=bundle.bid))
    assert main(["gc", *args]) == 0
    assert f"deleting bundle {bundle.bid}" in capsys.readouterr().out
    leftovers = Subscriber(broker, "edge/bundles/#")
    try:
        time.sleep(1.0)  # retained messages arrive right after the SUBACK; none may come
        assert leftovers.messages == []
    finally:
        leftovers.close()


def test_rollback_json_says_what_was_sent_and_who_answered(
    broker: MosquittoBroker,
    fleet_key: Path,
    capsys: pytest.CaptureFixture[str],
    registry: list[str],
) -> None:
    """pi-1 is online (its retained availability) but nothing answers for it: ``--no-wait``
    sends a signed rollback command; waiting reports it under ``no_answer`` and exits 1."""
    _status(broker, "pi-1")
    watcher = Subscriber(broker, "edge/pi-1/commands/rollback")
    args = ["--url", broker.url, "--fleet-key", str(fleet_key), *registry]
    try:
        assert main(["rollback", "--device", "pi-1", "--no-wait", "--json", *args]) == 0
        assert json.loads(capsys.readouterr().out) == {"sent": ["pi-1"]}
        watcher.wait_for(bool, timeout=10)
    finally:
        watcher.close()
    fleet = TrustRoot.from_keys([read_release_public(fleet_key.with_suffix(".pub"))])
    assert open_command(watcher.messages[0].payload, fleet, "pi-1").command.command == "rollback"

    code = main(["rollback", "--device", "pi-1", "--timeout", "1", "--json", *args])
    assert code == 1
    assert json.loads(capsys.readouterr().out) == {
        "devices": 1,
        "rolled_back": [],
        "failed": {},
        "no_answer": ["pi-1"],
        "answers": {},
        "ok": False,
    }


def test_gc_json_lists_kept_and_deleted_bundles_read_from_exact_desired_topics(
    broker: MosquittoBroker,
    tmp_path: Path,
    fleet_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _bundle(tmp_path / "b.edgepkg")
    bundle = prepare_bundle(path.read_bytes())
    _status(broker, "pi-1")
    registry = str(tmp_path / "devices.json")
    assert main(["devices", "add", "pi-1", "pi-2", "--group", "lab", "--registry", registry]) == 0
    args = ["--url", broker.url, "--fleet-key", str(fleet_key), "--registry", registry]
    assert main(["push", str(path), "--device", "pi-1", *args]) == 0
    capsys.readouterr()
    assert main(["gc", "--json", *args]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "dry_run": False,
        "kept": [bundle.bid],
        "deleted": {},
        "desired_read": "exact",
    }
    _status(broker, "pi-1", update=UpdateStatus(state="installed", bundle=bundle.bid))
    assert main(["gc", "--dry-run", "--json", *args]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "dry_run": True,
        "kept": [],
        "deleted": {bundle.bid: bundle.offer.blocks},
        "desired_read": "exact",
    }
