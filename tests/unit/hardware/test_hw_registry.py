"""Drivers declare their key and typed options; the registry and the profile schema come from that."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import hardware
from hardware.base import CredentialKind, ReadCallback, Reader
from hardware.camera import CameraQrOptions
from hardware.keyboard_wedge import KeyboardWedgeOptions
from hardware.options import DriverOptions
from hardware.pcsc import PcscOptions
from hardware.profiles import ProfileError, ReaderProfile
from hardware.registry import DriverUnavailable, create_reader, discover, driver_class
from hardware.schema import json_schema, profile_from_mapping

HARDWARE = Path(hardware.__file__).parent


def test_every_declared_driver_is_registered_under_its_modules_key():
    drivers = discover()
    assert drivers.unavailable == {}
    assert set(drivers.keys) == {
        "pcsc",
        "em4100",
        "serial_line",
        "idcard_sam",
        "camera_qr",
        "keyboard_wedge",
        "simulated",
    }
    for key, cls in drivers.classes.items():
        module = sys.modules[cls.__module__]
        assert module.DRIVER_KEY == key == cls.driver_key  # the key sits beside the code, once
        assert issubclass(cls.Options, DriverOptions) and dataclasses.is_dataclass(cls.Options)
        assert cls.Options.__module__ == cls.__module__  # options declared in the driver's own file
        assert cls.Options.__dataclass_params__.frozen


def test_no_type_ignore_left_in_the_hardware_package():
    offenders = [
        f"{p.name}:{n}"
        for p in sorted(HARDWARE.glob("*.py"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore" in line
    ]
    assert offenders == []


def test_a_reader_defined_outside_the_package_is_not_a_driver():
    class Double(Reader):
        driver_key = "double"

        @classmethod
        def from_profile(cls, profile: ReaderProfile, callback: ReadCallback, port: str | None) -> Reader:
            return cls(profile.reader_id, callback)

        def _run(self) -> None:
            self._stop.wait()

    assert "double" not in discover().classes
    with pytest.raises(DriverUnavailable, match="未知驱动"):
        driver_class("double")


def test_profiles_carry_the_drivers_typed_options():
    p = profile_from_mapping(
        "w", {"driver": "keyboard_wedge", "port": "/dev/x", "options": {"kind": "qr", "grab": False}}
    )
    assert p.options == KeyboardWedgeOptions(kind=CredentialKind.QR, grab=False)
    assert p.options.kind is CredentialKind.QR  # converted to the enum, not left as text
    assert profile_from_mapping("c", {"driver": "pcsc"}).options == PcscOptions()


@pytest.mark.parametrize(
    "mapping, needle",
    [
        ({"driver": "pcsc", "options": {"uid_retries": "2"}}, "'options.uid_retries' must be integer"),
        ({"driver": "pcsc", "options": {"poll_timeout_ms": 0}}, "options.poll_timeout_ms: must be ≥ 1"),
        ({"driver": "pcsc", "options": {"colour": "red"}}, "unknown option 'colour' for driver 'pcsc'"),
        ({"driver": "camera_qr", "options": {}}, "missing required 'options.source'"),
        ({"driver": "camera_qr", "options": {"source": True}}, "'options.source' must be text or integer"),
        ({"driver": "simulated", "options": {"emulate": "pcsc"}}, "options.emulate: must be one of"),
        (
            {"driver": "keyboard_wedge", "options": {"kind": "badge"}},
            "options.kind: must be one of card, id_card, qr",
        ),
        ({"driver": "em4100", "port": "/dev/x"}, "needs 'baud'"),
        ({"driver": "serial_line", "baud": 9600}, "needs 'port' or 'match'"),
        ({"driver": "simulated", "options": {"kind": ["card"]}}, "must be a single value"),
    ],
)
def test_wrong_options_are_refused_in_both_languages(mapping, needle):
    with pytest.raises(ProfileError) as exc:
        profile_from_mapping("p", mapping)
    assert any(needle in i and " / " in i for i in exc.value.issues), exc.value.issues


def test_schema_is_derived_from_the_declarations():
    schema = json_schema()
    assert schema["properties"]["driver"]["enum"] == list(discover().keys)
    rules = {r["if"]["properties"]["driver"]["const"]: r["then"] for r in schema["allOf"]}
    camera = rules["camera_qr"]["properties"]["options"]
    assert camera["required"] == ["source"]
    assert set(camera["properties"]) == {f.name for f in dataclasses.fields(CameraQrOptions)}
    assert rules["keyboard_wedge"]["properties"]["options"]["properties"]["kind"]["enum"] == [
        k.value for k in CredentialKind
    ]
    ok = {"driver": "em4100", "baud": 9600, "port": "/dev/x", "options": {"uid_bytes": 4}}
    jsonschema.validate(ok, schema)
    for bad in (
        {**ok, "options": {"uid_bytes": 3}},
        {**ok, "options": {"colour": "red"}},
        {"driver": "em4100", "port": "/dev/x"},  # no baud
        {"driver": "camera_qr"},  # no options.source
        {"driver": "pcsc", "options": {"free": 1}},  # PC/SC options are typed too now
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_missing_library_disables_only_its_driver(tmp_path: Path):
    """cv2 made unimportable (as on a kiosk without it): an error is logged, the rest still starts."""
    code = """
import logging, queue, sys
sys.modules["cv2"] = None  # Python's own way to make an import fail
logging.basicConfig(level=logging.ERROR, format="LOG %(name)s %(message)s")
from hardware.registry import create_reader, discover
from hardware.profiles import ProfileError
from hardware.schema import load_profile
drivers = discover()
print("UNAVAILABLE", sorted(drivers.unavailable))
print("KEYS", ",".join(drivers.keys))
try:
    load_profile("usb-camera")
except ProfileError as exc:
    print("CAMERA", exc.issues[0])
from kiosk.config import config_from_mapping
from kiosk.readers import ReaderSet
reads = queue.Queue()
kiosk_readers = ReaderSet(
    config_from_mapping({"readers": [{"profile": "usb-camera"}, {"profile": "simulator"}]}), reads.put
)
kiosk_readers.start()  # the kiosk starts with what it can run
for h in kiosk_readers.health():
    print("HEALTH", h["reader_id"], h["state"])
kiosk_readers.simulator_for("card").inject("card", "04A1")
print("READ", reads.get(timeout=10).value)
kiosk_readers.stop()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "UNAVAILABLE ['hardware.camera', 'hardware.qr']" in out.stdout
    assert "camera_qr" not in out.stdout.split("KEYS ")[1].splitlines()[0]
    assert "unknown driver 'camera_qr'" in out.stdout and "本机未能加载" in out.stdout
    assert "HEALTH usb-camera error" in out.stdout and "HEALTH sim " in out.stdout
    assert "READ 04A1" in out.stdout
    assert "LOG hardware.registry hardware module hardware.camera unavailable" in out.stderr


def test_committed_schema_parses_and_is_json():
    from hardware.profiles import default_config_dir
    from hardware.schema import SCHEMA_PATH

    schema = json.loads((default_config_dir() / SCHEMA_PATH).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)


def test_create_reader_uses_the_typed_options():
    p = profile_from_mapping(
        "s", {"driver": "simulated", "options": {"kind": "qr", "emulate": "serial_line"}}
    )
    reader = create_reader(p, lambda r: None)
    assert (reader.kind, reader.emulate) == (CredentialKind.QR, "serial_line")
