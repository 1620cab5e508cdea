"""The kiosk provisioning files in firmware-config/kiosk/: what can be checked without a kiosk machine.

``systemd-analyze verify`` runs against a throw-away root holding the host's system units, our units and
stub executables at the paths they name (cage and the venv do not exist on a build machine); any
complaint about our units fails. The Chromium launcher runs for real under ``sh`` against a live
``/healthz`` with a stub browser that records its arguments.
"""

from __future__ import annotations

import configparser
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.config import load_config
from tests.conftest import require_service

REPO = Path(__file__).resolve().parents[3]
KIOSK_DIR = REPO / "firmware-config" / "kiosk"
UNITS = ("baodao-kiosk.service", "baodao-kiosk-screen.service")
SYSTEM_UNITS = Path("/lib/systemd/system")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(KIOSK_DIR / name, encoding="utf-8")
    return parser


def _exec_paths(name: str) -> list[str]:
    return [
        line.split("=", 1)[1].split()[0]
        for line in (KIOSK_DIR / name).read_text().splitlines()
        if line.startswith("ExecStart=")
    ]


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None or not SYSTEM_UNITS.is_dir():
        require_service("systemd-analyze", "systemd is not installed (apt-get install systemd)")
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in UNITS:
        shutil.copy(KIOSK_DIR / name, root / "etc/systemd/system" / name)
        for exe in _exec_paths(name):
            stub = root / exe.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", *UNITS], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "baodao" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt value is reported."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None or not SYSTEM_UNITS.is_dir():
        require_service("systemd-analyze", "systemd is not installed (apt-get install systemd)")
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    text = (KIOSK_DIR / UNITS[0]).read_text().replace("Restart=always", "Restart=alwayz")
    (root / "etc/systemd/system" / UNITS[0]).write_text(text)
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", UNITS[0]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "alwayz" in result.stdout + result.stderr


@pytest.mark.parametrize("name", UNITS)
def test_units_restart_for_ever(name: str) -> None:
    unit = _unit(name)
    assert unit["Service"]["Restart"] == "always"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"


def test_kiosk_service_runs_the_cli_with_the_installed_config() -> None:
    unit = _unit("baodao-kiosk.service")
    assert unit["Service"]["ExecStart"].endswith("baodao kiosk --config /etc/baodao/kiosk.toml")
    assert unit["Service"]["User"] == "baodao"


def test_example_config_loads_and_binds_the_ui_to_localhost() -> None:
    config = load_config(KIOSK_DIR / "kiosk.example.toml")
    assert config.ui_host == "127.0.0.1" and config.ui_port == 8100
    assert not config.simulate and config.language == "zh"
    for reader in config.readers:
        assert (REPO / "firmware-config" / "readers" / f"{reader.profile}.yaml").exists()


def test_logind_ignores_lid_and_power_keys() -> None:
    conf = configparser.ConfigParser()
    conf.optionxform = str  # type: ignore[assignment,method-assign]
    conf.read(KIOSK_DIR / "logind.conf.d" / "90-baodao-kiosk.conf")
    login = conf["Login"]
    for key in (
        "HandlePowerKey",
        "HandleSuspendKey",
        "HandleLidSwitch",
        "HandleLidSwitchExternalPower",
        "IdleAction",
    ):
        assert login[key] == "ignore", key


def test_chromium_policy_allows_only_the_local_kiosk() -> None:
    policy = json.loads((KIOSK_DIR / "chromium-policies" / "baodao-kiosk.json").read_text())
    assert policy["URLBlocklist"] == ["*"]
    assert policy["URLAllowlist"] == ["http://127.0.0.1:8100/*"]
    assert policy["DeveloperToolsAvailability"] == 2


def test_install_guide_refers_only_to_files_that_exist() -> None:
    text = (KIOSK_DIR / "INSTALL.md").read_text()
    paths = set(re.findall(r"firmware-config/[\w./-]+[\w]", text))
    assert "firmware-config/udev/99-baodao-readers.rules" in paths
    missing = [p for p in paths if not (REPO / p).exists()]
    assert missing == []


@pytest.fixture
def healthz_url(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "healthz").write_text('{"status": "ok"}')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_browser_launcher_starts_chromium_locked_down(tmp_path: Path, healthz_url: str) -> None:
    args_file = tmp_path / "args.txt"
    stub = tmp_path / "chromium"
    stub.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {args_file}\n')
    stub.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "CHROMIUM": str(stub),
        "BAODAO_KIOSK_URL": healthz_url,
        "BAODAO_BROWSER_PROFILE": str(tmp_path / "profile"),
    }
    subprocess.run(["sh", str(KIOSK_DIR / "kiosk-browser.sh")], env=env, check=True, timeout=60)
    args = args_file.read_text().splitlines()
    assert args[:2] == ["--kiosk", healthz_url]
    for flag in (
        "--no-first-run",
        "--noerrdialogs",
        "--disable-session-crashed-bubble",
        "--disable-translate",
        "--disable-pinch",
        "--overscroll-history-navigation=0",
        "--check-for-update-interval=31536000",
        "--autoplay-policy=no-user-gesture-required",
    ):
        assert flag in args, flag
    assert (tmp_path / "profile").is_dir()
