"""check-config on kiosk files and files it cannot validate; the generated profile schema stays current."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from baodao.check_config import hw
from hardware.profiles import default_config_dir
from hardware.schema import SCHEMA_PATH, schema_text

GARBAGE = """\
server_url = "http://127.0.0.1:8000"
simulat = true
language = "fr"

[centre]
timezone = "Mars/Olympus"

[[readers]]
profile = "no-such-reader"

[[readers]]
prof = "rdm6300"

[rules]
debounce_s = "sixty"
closes_at = "25:99"
max_session_h = true

[ui]
port = "8100"

[garbage]
x = 1
"""


def run(*args):
    return CliRunner().invoke(hw, ["check-config", *map(str, args)])


def test_garbage_kiosk_file_is_refused_with_every_problem_on_its_line(tmp_path: Path):
    f = tmp_path / "kiosk.toml"
    f.write_text(GARBAGE, encoding="utf-8")
    r = run(f)
    assert r.exit_code == 1
    expected = [
        (2, "unknown key 'simulat'"),
        (3, "language must be zh or en"),
        (6, "'centre.timezone': invalid value"),
        (9, "readers[0].profile 'no-such-reader' is not usable"),
        (11, "missing required key 'readers[1].profile'"),
        (12, "unknown key 'readers[1].prof'"),
        (15, "'rules.debounce_s': invalid value 'sixty'"),
        (16, "rules.closes_at must be HH:MM"),
        (17, "'rules.max_session_h' must be a number, not true/false"),
        (20, "'ui.port' must be a number, not text"),
        (22, "unknown key 'garbage'"),
    ]
    for line, needle in expected:
        assert any(ln.startswith(f"{f}:{line}: ") and needle in ln for ln in r.output.splitlines()), (
            line,
            needle,
            r.output,
        )
    assert "garbage.x" not in r.output  # inside an unknown table: said once, at the table
    assert "11 problem(s)" in r.output
    assert "Traceback" not in r.output and "invalid literal" not in r.output  # no raw library text


def test_chinese_and_english_in_every_kiosk_message(tmp_path: Path):
    f = tmp_path / "kiosk.toml"
    f.write_text(GARBAGE, encoding="utf-8")
    problems = [ln for ln in run(f).output.splitlines() if ln.startswith(str(f))]
    assert problems and all(" / " in ln and any("\u4e00" <= ch <= "\u9fff" for ch in ln) for ln in problems)


def test_text_that_is_not_toml_is_refused_at_its_line(tmp_path: Path):
    f = tmp_path / "kiosk.toml"
    f.write_text('server_url = "x"\nthis is not toml\n')
    r = run(f)
    assert r.exit_code == 1 and f"{f}:2: not valid TOML" in r.output


def test_a_good_kiosk_file_passes(tmp_path: Path):
    profile = tmp_path / "front.yaml"
    profile.write_text("driver: em4100\nbaud: 9600\nport: /dev/ttyUSB0\n")
    f = tmp_path / "kiosk.toml"
    f.write_text(
        f'server_url = "https://example.org"\nlanguage = "en"\n\n[[readers]]\nprofile = "{profile}"\n'
        '\n[[readers]]\nprofile = "acr122u"\n\n[rules]\ndebounce_s = 30\ncloses_at = "21:00"\n'
    )
    r = run(f)
    assert r.exit_code == 0, r.output
    assert "ok: 1 file(s) validated" in r.output


def test_simulated_reader_may_name_a_missing_profile(tmp_path: Path):
    f = tmp_path / "kiosk.toml"
    f.write_text('[[readers]]\nprofile = "front-desk"\nsimulate = true\n')
    assert run(f).exit_code == 0


def test_shipped_kiosk_example_is_validated():
    example = default_config_dir() / "kiosk" / "kiosk.example.toml"
    r = run(example)
    assert r.exit_code == 0, r.output
    assert "1 file(s) validated" in r.output


@pytest.mark.parametrize("name", ["99-baodao-readers.rules", "notes.txt", "policies.json"])
def test_a_named_file_it_cannot_validate_is_refused(tmp_path: Path, name: str):
    f = tmp_path / name
    f.write_text("{}\n")
    r = run(f)
    assert r.exit_code == 1 and f"{f}:0: cannot validate this file" in r.output
    assert "无法校验此文件" in r.output


def test_committed_profile_schema_is_the_generated_one():
    committed = (default_config_dir() / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == schema_text(), "run: python -m hardware.schema --write"


def test_stale_schema_file_is_reported(tmp_path: Path):
    f = tmp_path / SCHEMA_PATH.name
    f.write_text(schema_text().replace('"pcsc",', ""), encoding="utf-8")
    r = run(f)
    assert r.exit_code == 1 and f"{f}:1: out of date" in r.output
