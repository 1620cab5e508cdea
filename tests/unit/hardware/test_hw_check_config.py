"""check-config: shipped profiles pass; each kind of error is reported with its line; exit codes."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from baodao.check_config import hw
from hardware.em4100 import Em4100Options
from hardware.profiles import ProfileError, default_config_dir
from hardware.registry import discover
from hardware.schema import list_profiles, load_profile

GOOD = "driver: em4100\nbaud: 9600\nport: /dev/ttyUSB0\n"


def run(*args):
    return CliRunner().invoke(hw, ["check-config", *map(str, args)])


def test_shipped_config_passes_and_loads():
    r = run()
    assert r.exit_code == 0, r.output
    profiles = list_profiles()
    assert {p.driver for p in profiles} >= {
        "em4100",
        "serial_line",
        "idcard_sam",
        "camera_qr",
        "keyboard_wedge",
    }
    assert all(p.driver in discover().classes for p in profiles)


def test_shipped_profiles_satisfy_json_schema():
    schema = json.loads((default_config_dir() / "schema/reader-profile.schema.json").read_text())
    for path in sorted((default_config_dir() / "readers").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


@pytest.mark.parametrize(
    "text, line, needle",
    [
        (GOOD + "baudrate: 9600\n", 4, "unknown key 'baudrate'"),
        ("driver: magic\n", 1, "unknown driver"),
        ("port: /dev/x\nbaud: 9600\n", 1, "missing required key 'driver'"),
        (GOOD + "driver: em4100\n", 4, "duplicate key 'driver'"),
        ("driver: em4100\nport: /dev/x\nbaud: 9601\n", 3, "not a standard rate"),
        ("driver: em4100\nport: /dev/x\n", 1, "needs 'baud'"),
        (GOOD + "framing: 8X1\n", 4, "8N1"),
        (GOOD + "setup_commands:\n  - FF00\n  - F0Z\n", 6, "hex"),
        (GOOD + "debounce_ms: fast\n", 4, "integer"),
        (GOOD + "options:\n  uid_bytes: 3\n", 5, "one of 4, 5"),
        (GOOD + "options:\n  colour: red\n", 5, "unknown option 'colour'"),
        ("driver: pcsc\nmatch:\n  reader_name: 'ACR(122'\n", 3, "regular expression"),
        ("driver: camera_qr\noptions:\n  width: 640\n", 3, "options.source"),
        ("driver: em4100\n  baud: [9600\n", 2, "YAML syntax error"),
        (GOOD + "reader_id: Front Door\n", 4, "reader_id"),
    ],
)
def test_each_error_reported_with_line(tmp_path: Path, text, line, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    r = run(f)
    assert r.exit_code == 1
    assert f"{f}:{line}: " in r.output and needle in r.output, r.output
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    assert any(needle in i for i in exc.value.issues)


def test_directory_walk_reports_all_files(tmp_path: Path):
    (tmp_path / "readers").mkdir()
    (tmp_path / "readers/a.yaml").write_text(GOOD)
    (tmp_path / "readers/b.yaml").write_text("driver: nope\n")
    (tmp_path / "other.yaml").write_text("a: [1\n")  # every YAML file is a reader profile
    (tmp_path / "notes.txt").write_text("anything")  # not ours: listed as not checked, no error
    r = run(tmp_path)
    assert r.exit_code == 1
    assert "b.yaml:1:" in r.output and "other.yaml:2:" in r.output and "a.yaml" not in r.output
    assert "not checked: 1" in r.output


def test_good_file_passes_and_loads(tmp_path: Path):
    f = tmp_path / "front-rfid.yaml"
    f.write_text(GOOD + "setup_commands: ['FF 00 40 0D']\noptions: {uid_bytes: 4}\n")
    assert run(f).exit_code == 0
    p = load_profile(f)
    assert (p.name, p.reader_id, p.baud, p.setup_commands, p.options) == (
        "front-rfid",
        "front-rfid",
        9600,
        ["FF00400D"],
        Em4100Options(uid_bytes=4),
    )


def test_missing_path_is_an_error(tmp_path: Path):
    r = run(tmp_path / "nothing.yaml")
    assert r.exit_code == 1 and "nothing.yaml:0:" in r.output
