"""mosquitto as the Debian / Raspberry Pi OS package runs it, with the edge-agent recipe dropped in.

The package's own ``/etc/mosquitto/mosquitto.conf`` (``tests/systemd/data/debian-mosquitto.conf``,
byte for byte from ``mosquitto_2.0.11-1.2+deb12u2``, sha256-pinned) is copied into a temporary
root with only its absolute paths moved under that root; its ``include_dir`` loads
``conf.d/edge-agent.conf``, the recipe file unchanged except for its listener port and the
directory of its key files. mosquitto is started as root with ``-c <main config>``, exactly like
the package's unit, and drops to the ``mosquitto`` user by itself (the stock config sets no
``user``, and mosquitto's default is ``mosquitto``), so the key files must be readable by that
user, as on a real broker. The directories the unit's ``ExecStartPre`` lines make
(``/run/mosquitto``, ``/var/log/mosquitto``) and the package's ``/var/lib/mosquitto`` are made
the same way, owned by ``mosquitto``.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.broker import MosquittoBroker, free_port

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "systemd" / "mosquitto"
STOCK_CONFIG = ROOT / "tests" / "systemd" / "data" / "debian-mosquitto.conf"
STOCK_SHA256 = "0abbc666efc370c72f8a58537254d95f99b0d83a4dae741d22e01f0e259f1a78"
INSTALLED = "/etc/mosquitto/edge-agent/"
# The stock file's absolute paths, each moved under the temporary root.
STOCK_PATHS = ("/run/mosquitto/", "/var/lib/mosquitto/", "/var/log/mosquitto/", "/etc/mosquitto/")
IDENTITIES = ("dev-a", "dev-b", "fleet", "homeassistant")


def stock_config_text() -> str:
    data = STOCK_CONFIG.read_bytes()
    if hashlib.sha256(data).hexdigest() != STOCK_SHA256:
        pytest.fail(f"{STOCK_CONFIG} is not the Debian package's mosquitto.conf (sha256 differs)")
    return data.decode()


def config_keys(text: str) -> set[str]:
    """The option names a mosquitto config file sets (first word of every non-comment line)."""
    return {
        line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")
    }


def mosquitto_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.fail("no 'mosquitto' user: install the Debian mosquitto package (make mosquitto)")


@dataclass
class DebianBroker:
    """A running stock-layout broker; ``certs`` holds the CA and client certificates."""

    root: Path
    certs: Path
    broker: MosquittoBroker

    @property
    def key_file(self) -> Path:
        return self.root / "etc" / "mosquitto" / "edge-agent" / "broker.key"

    @property
    def conf_d(self) -> Path:
        return self.root / "etc" / "mosquitto" / "conf.d"

    def process_uid(self) -> int:
        """The real uid of the running broker process (from /proc)."""
        assert self.broker.pid is not None
        status = Path(f"/proc/{self.broker.pid}/status").read_text()
        found = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
        assert found is not None
        return int(found.group(1))

    def close(self) -> None:
        self.broker.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def _make_certs(certs: Path) -> None:
    script = str(RECIPE / "make-certs.sh")
    _run(script, "ca", str(certs))
    _run(script, "broker", str(certs), "localhost", "127.0.0.1")
    for name in IDENTITIES:
        _run(script, "client", str(certs), name)


def _owned_dir(path: Path, mode: int, account: pwd.struct_passwd) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    os.chown(path, account.pw_uid, account.pw_gid)


def start_debian_broker(recipe_text: str | None = None) -> DebianBroker:
    """Lay out the package's files with the recipe in conf.d and start mosquitto as root."""
    if os.getuid() != 0:
        pytest.fail("the stock-Debian broker test starts mosquitto as root, as its unit does")
    account = mosquitto_account()
    # Not under pytest's tmp_path: that is 0700 root, and mosquitto reads as its own user.
    root = Path(tempfile.mkdtemp(prefix="edge-debian-mosquitto-"))
    root.chmod(0o755)
    etc = root / "etc" / "mosquitto"
    (etc / "conf.d").mkdir(parents=True)
    installed = etc / "edge-agent"
    installed.mkdir()
    _owned_dir(root / "var" / "lib" / "mosquitto", 0o755, account)
    _owned_dir(root / "var" / "log" / "mosquitto", 0o740, account)
    _owned_dir(root / "run" / "mosquitto", 0o740, account)

    certs = root / "workstation"
    _make_certs(certs)
    # As docs/security.md says to install them on the broker.
    for name in ("ca.crt", "broker.crt"):
        _run("install", "-o", "root", "-g", "root", "-m", "0644", str(certs / name), str(installed))
    _run("install", "-m", "0644", str(RECIPE / "acl"), str(installed / "acl"))
    key = str(certs / "broker.key")
    _run("install", "-o", "root", "-g", "mosquitto", "-m", "0640", key, str(installed))

    main = stock_config_text()
    for path in STOCK_PATHS:
        assert main.count(path) >= 1, f"the stock config no longer names {path}"
        main = main.replace(path, f"{root}{path}")
    (etc / "mosquitto.conf").write_text(main)
    port = free_port()
    text = (RECIPE / "edge-agent.conf").read_text() if recipe_text is None else recipe_text
    assert text.count("listener 8883\n") == 1
    text = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    (etc / "conf.d" / "edge-agent.conf").write_text(text.replace(INSTALLED, f"{installed}/"))

    broker = MosquittoBroker(root, port=port, config_file=etc / "mosquitto.conf")
    try:
        broker.start()
    except BaseException:
        log = root / "var" / "log" / "mosquitto" / "mosquitto.log"
        print(log.read_text() if log.exists() else "(no mosquitto.log)")
        shutil.rmtree(root, ignore_errors=True)
        raise
    return DebianBroker(root, certs, broker)
