"""What every tool promises a script: --version, one exit-code table, results on stdout only.

The tools run as the installed entry points (the console scripts pip made), as a user runs them.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import agent
from agent.clikit import EXIT_CODES, EXIT_CONFIG, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOOLS = ("edge-agent", "edge-convert", "edge-fleet")
# A camera without its device: the problem is reported at the [source] table's line.
BAD_CONFIG = """device_id = "pi-1"
state_dir = "state"
[mqtt]
url = "mqtt://127.0.0.1:1"
[source]
type = "camera"
"""


def _tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_prints_the_package_version(tool: str) -> None:
    result = _tool(tool, "--version")
    assert result.returncode == 0
    assert result.stdout == f"{tool} {importlib.metadata.version('edge-agent')}\n"


def test_the_package_version_is_one_number() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert agent.__version__ == project["version"] == importlib.metadata.version("edge-agent")


def test_docs_cli_md_lists_exactly_the_exit_code_table() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    rows = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", text, re.MULTILINE))
    assert {int(code): meaning for code, meaning in rows.items()} == EXIT_CODES


def test_the_same_bad_config_exits_with_the_same_code_from_check_config_and_run(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(BAD_CONFIG)
    check = _tool("edge-agent", "check-config", "--schema-only", str(config))
    run = _tool("edge-agent", "run", "--config", str(config))
    assert (check.returncode, run.returncode) == (EXIT_CONFIG, EXIT_CONFIG)
    assert (check.stdout, run.stdout) == ("", "")
    assert f"{config}:5: source.device: " in check.stderr
    assert f"{config}:5: source.device: " in run.stderr


def test_check_config_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(BAD_CONFIG)
    result = _tool("edge-agent", "check-config", "--schema-only", "--json", str(config))
    assert result.returncode == EXIT_CONFIG
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [(p["key"], p["line"]) for p in document["problems"]] == [("source.device", 5)]
    good = tmp_path / "good.toml"
    good.write_text(BAD_CONFIG + "device = 0\n")
    result = _tool("edge-agent", "check-config", "--schema-only", "--json", str(good))
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "config": str(good),
        "device_id": "pi-1",
        "ok": True,
        "problems": [],
        "source": "camera",
        "warnings": [],
    }


def test_a_failing_json_command_still_prints_one_document_on_stdout(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.edgepkg"
    key = tmp_path / "k"
    result = _tool("edge-agent", "verify", str(missing), "--json", "--trusted-key", str(key),
                   "--device-key", str(key))  # fmt: skip
    assert result.returncode == EXIT_USAGE
    document = json.loads(result.stdout)
    assert (document["ok"], document["exit_code"]) == (False, EXIT_USAGE)
    assert document["error"]["kind"] == "InputError"
    assert str(missing) in document["error"]["message"]
    assert "edge-agent: error:" in result.stderr
