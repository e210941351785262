"""Device-signed reports end to end: a real agent process on a real mosquitto signs its report
with the key ``edge-agent keygen`` made; ``edge-fleet status`` shows the verified version, and
flags a report forged with another key and a replayed older one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli import main as agent_cli
from agent.update.report import Report, read_unverified, sign_report
from fleet.cli import main as fleet
from tests.support.agent_env import AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import ModelFactory
from tests.update.harness import BASE, DEVICE_ID, Publisher, wait_results

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


def _status(broker: MosquittoBroker, registry: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    fleet(["status", "--url", broker.url, "--registry", str(registry), "--json"])
    return capsys.readouterr().out


def _report(out: str) -> dict[str, object]:
    document = json.loads(out)
    found: dict[str, object] = document["reports"][DEVICE_ID]
    return found


def test_edge_fleet_status_verifies_the_device_report_and_flags_forged_and_replayed_ones(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    device = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20)
    assert agent_cli(["keygen", "--out", str(device.root), "--device-id", DEVICE_ID,
                      "--name", "signer"]) == 0  # fmt: skip
    registry = tmp_path / "fleet" / "devices.json"
    public = str(device.root / "signer-report.pub")
    assert fleet(["devices", "add", DEVICE_ID, "--report-key", public,
                  "--registry", str(registry)]) == 0  # fmt: skip
    config = device.write_config(
        tables={"keys": {"report_key": "signer-report.key"}},
        source={"type": "video", "path": str(device.video), "loop": True},
    )
    watcher = Subscriber(broker, f"{BASE}/results")
    reports = Subscriber(broker, f"{BASE}/report")
    publisher = Publisher(broker)
    agent = AgentProcess(config, tmp_path / "agent.log")
    try:
        wait_results(watcher, lambda got: len(got) >= 3, agent)
        reports.wait_for(lambda got: len(got) >= 1, timeout=60)
        first = reports.messages[0].payload
        assert read_unverified(first).counter == 1

        capsys.readouterr()
        fleet(["status", "--url", broker.url, "--registry", str(registry)])
        text = capsys.readouterr().out
        assert "signed reports: 1 verified, 0 flagged" in text
        assert f"  {DEVICE_ID}  verified v1 #1" in text
        verified = _report(_status(broker, registry, capsys))
        report = verified["report"]
        assert isinstance(report, dict)
        assert (verified["state"], report["release"], report["root_version"]) == (
            "verified", 1, None,
        )  # fmt: skip
        assert report["bundle"] is not None

        assert agent.terminate() == 0  # a restart publishes report 2
        agent = AgentProcess(config, tmp_path / "again.log")
        reports.wait_for(lambda got: len(got) >= 2, timeout=60)
        assert read_unverified(reports.messages[-1].payload).counter == 2
        assert _report(_status(broker, registry, capsys))["state"] == "verified"

        publisher.publish(f"{BASE}/report", first)  # the genuine report 1, replayed
        replayed = _report(_status(broker, registry, capsys))
        assert (replayed["state"], replayed["detail"]) == (
            "older", "counter 1 is below 2 already verified (replayed)",
        )  # fmt: skip

        said = read_unverified(first)
        forged = Report(DEVICE_ID, 99, said.time, said.bundle, said.name, said.release,
                        said.sha256, None, None)  # fmt: skip
        publisher.publish(f"{BASE}/report", sign_report(forged, Ed25519PrivateKey.generate()))
        capsys.readouterr()
        fleet(["status", "--url", broker.url, "--registry", str(registry)])
        text = capsys.readouterr().out
        assert "signed reports: 0 verified, 1 flagged" in text
        assert f"  {DEVICE_ID}  FLAGGED invalid: signature_invalid: " in text
        assert agent.terminate() == 0
    finally:
        agent.close()
        for client in (publisher, watcher, reports):
            client.close()
