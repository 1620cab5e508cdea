"""Validation of reader profiles with messages that point at a line, and the profile JSON Schema.

Profiles are edited by hand on site, often over SSH at a kiosk, so a problem must be reported as
``file:line: problem`` (both languages) rather than as a Python traceback. We validate the YAML *node*
tree (from ``yaml.compose``) because only nodes carry marks. The rules come from declarations, not from
tables kept here: the scalar top-level keys are the fields of :class:`ProfileFields`, the driver keys and
each driver's options come from :mod:`hardware.registry` (``driver_key``, ``Options``, ``needs_baud``,
``needs_device`` on the driver classes). ``firmware-config/schema/reader-profile.schema.json`` is
generated from the same declarations (``python -m hardware.schema --write``; a test checks it is current).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from hardware.options import DriverOptions, build_options, field_specs, json_schema_of, option
from hardware.profiles import ProfileError, ReaderProfile, default_config_dir, default_profiles_dir
from hardware.registry import Drivers, discover

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path("schema") / "reader-profile.schema.json"  # under firmware-config/

Baud = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600]
STANDARD_BAUDS: tuple[int, ...] = typing.get_args(Baud)
HEX_RE = re.compile(r"^([0-9A-Fa-f]{2})+$")


@dataclass(frozen=True)
class ProfileFields:
    """The scalar top-level keys of a profile (``driver``, ``match``, ``setup_commands`` and ``options``
    have structure and are checked below)."""

    reader_id: str | None = option(
        None,
        pattern=r"[a-z0-9][a-z0-9._-]{0,63}",
        invalid="reader_id: lower-case letters, digits, '.', '_' or '-' / reader_id 只能含小写字母、数字、.、_、-",
        help="Id in reads and health; defaults to the profile name.",
    )
    description: str = option("", help="What the reader is, for people.")
    port: str | None = option(None, help="Device path, ideally a /dev/baodao/… udev link.")
    baud: Baud | None = option(
        None,
        invalid="baud {value} is not a standard rate / 波特率 {value} 不是标准值",
        help="Serial line speed.",
    )
    framing: str | None = option(
        None, pattern=r"[5-8][NEOMS][12]", invalid="framing must look like 8N1 / framing 格式应如 8N1"
    )
    debounce_ms: int = option(
        0, minimum=0, maximum=600_000, help="Repeats of one card within this are dropped."
    )


STRUCTURED_KEYS = ("driver", "match", "setup_commands", "options")


@dataclass(frozen=True)
class FileIssue:
    """One problem of a checked file (a reader profile, a kiosk configuration), as ``file:line: message``."""

    file: str
    line: int  # 1-based; 0 when the problem is the file itself
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# -- one representation for YAML nodes and plain mappings --------------------------------------------
@dataclass
class Loc:
    """A value with the line it was on (0 for values that did not come from a file).

    Mappings hold ``dict[str, Loc]`` (``key_line`` on each child), sequences ``list[Loc]``.
    """

    value: object
    line: int
    shape: Literal["map", "seq", "scalar"]
    key_line: int = 0


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[FileIssue] = []

    def add(self, line: int, message: str) -> None:
        self.issues.append(FileIssue(self.file, line, message))

    def from_node(self, node: yaml.Node, constructor: yaml.constructor.SafeConstructor) -> Loc:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Loc] = {}
            for key, value in node.value:
                key_line = key.start_mark.line + 1
                if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                    self.add(key_line, "keys must be text / 键须为文本")
                    continue
                if key.value in out:
                    first = out[key.value].key_line
                    self.add(key_line, f"duplicate key '{key.value}' (first on line {first}) / 重复的键")
                    continue
                child = self.from_node(value, constructor)
                child.key_line = key_line
                out[key.value] = child
            return Loc(out, line, "map")
        if isinstance(node, yaml.SequenceNode):
            return Loc([self.from_node(n, constructor) for n in node.value], line, "seq")
        return Loc(constructor.construct_object(node), line, "scalar")

    def from_data(self, data: object) -> Loc:
        if isinstance(data, dict):
            out: dict[str, Loc] = {}
            for key, value in data.items():
                if not isinstance(key, str):
                    self.add(0, f"keys must be text, got {key!r} / 键须为文本")
                    continue
                out[key] = self.from_data(value)
            return Loc(out, 0, "map")
        if isinstance(data, list | tuple):
            return Loc([self.from_data(v) for v in data], 0, "seq")
        return Loc(data, 0, "scalar")

    def mapping(self, loc: Loc, what: str) -> dict[str, Loc]:
        if loc.shape != "map":
            self.add(loc.line, f"{what} must be a mapping / {what} 须为键值映射")
            return {}
        return typing.cast(dict[str, Loc], loc.value)

    def scalars(self, items: dict[str, Loc], what: str) -> dict[str, tuple[object, int]]:
        """name -> (value, line) for scalar children; a list or mapping where a value belongs is an error."""
        out: dict[str, tuple[object, int]] = {}
        for name, loc in items.items():
            if loc.shape != "scalar":
                self.add(loc.line, f"'{what}{name}' must be a single value / '{what}{name}' 须为单个值")
            else:
                out[name] = (loc.value, loc.line)
        return out


# -- the rules -----------------------------------------------------------------------------------------
def _check(c: _Checker, root: Loc, name: str, drivers: Drivers) -> ReaderProfile | None:
    keys = c.mapping(root, "profile")
    if root.shape == "map" and not keys and not c.issues:
        c.add(root.line, "empty profile / 配置为空")
        return None
    if root.shape != "map":
        return None
    scalar_names = {s.name for s in field_specs(ProfileFields)}
    for key, loc in keys.items():
        if key not in scalar_names and key not in STRUCTURED_KEYS:
            c.add(loc.key_line, f"unknown key '{key}' / 未知字段 '{key}'")

    driver_cls = None
    if "driver" not in keys:
        c.add(root.line, "missing required key 'driver' / 缺少必填字段 'driver'")
    else:
        loc = keys["driver"]
        if loc.shape != "scalar" or not isinstance(loc.value, str):
            c.add(loc.line, "'driver' must be text / 'driver' 类型错误，应为文本")
        elif loc.value not in drivers.classes:
            known = ", ".join(drivers.keys)
            c.add(
                loc.line,
                f"unknown driver '{loc.value}'; known: {known} / 未知驱动 '{loc.value}'{drivers.unavailable_note()}",
            )
        else:
            driver_cls = drivers.classes[loc.value]

    given = {k: v for k, v in keys.items() if k in scalar_names}
    fields, problems = build_options(ProfileFields, c.scalars(given, ""), prefix="")
    for p in problems:
        c.add(p.line, p.message)

    match: dict[str, str] = {}
    if "match" in keys:
        for mname, (mval, mline) in c.scalars(c.mapping(keys["match"], "match"), "match.").items():
            if isinstance(mval, bool) or not isinstance(mval, str | int):
                c.add(mline, f"'match.{mname}' must be text or integer / 'match.{mname}' 应为文本或整数")
                continue
            if mname == "reader_name":
                try:
                    re.compile(str(mval))
                except re.error as exc:
                    c.add(
                        mline, f"match.reader_name is not a valid regular expression ({exc}) / 正则表达式无效"
                    )
            match[mname] = str(mval)

    setup: list[str] = []
    if "setup_commands" in keys:
        loc = keys["setup_commands"]
        if loc.shape != "seq":
            c.add(
                loc.line,
                "setup_commands must be a list of hex strings / setup_commands 须为十六进制字符串列表",
            )
        else:
            for item in typing.cast(list[Loc], loc.value):
                text = item.value if item.shape == "scalar" else None
                if not isinstance(text, str):
                    c.add(
                        item.line, "'setup_commands[]' must be text / 'setup_commands[]' 类型错误，应为文本"
                    )
                elif not HEX_RE.match(text.replace(" ", "")):
                    c.add(item.line, f"'{text}' is not whole bytes of hex / 不是完整字节的十六进制")
                else:
                    setup.append(text.replace(" ", "").upper())

    options_loc = keys.get("options")
    option_items = c.mapping(options_loc, "options") if options_loc is not None else {}
    options: DriverOptions | None = None
    if driver_cls is not None:
        key = driver_cls.driver_key
        baud = keys.get("baud")
        if driver_cls.needs_baud and (baud is None or _scalar(baud) is None):
            c.add(
                root.line if baud is None else baud.line,
                f"driver '{key}' needs 'baud' / 串口驱动须设置 'baud'",
            )
        if driver_cls.needs_device and not isinstance(_scalar(keys.get("port")), str) and "match" not in keys:
            c.add(
                root.line, f"driver '{key}' needs 'port' or 'match' / 驱动 '{key}' 须设置 'port' 或 'match'"
            )
        options, problems = build_options(driver_cls.Options, c.scalars(option_items, "options."), owner=key)
        where = options_loc.line if options_loc is not None else root.line
        for p in problems:
            c.add(p.line or where, p.message)

    if c.issues or fields is None or driver_cls is None or options is None:
        return None
    return ReaderProfile(
        name=name,
        driver=driver_cls.driver_key,
        reader_id=fields.reader_id or name,
        description=fields.description,
        port=fields.port,
        match=match,
        baud=fields.baud,
        framing=fields.framing,
        setup_commands=setup,
        debounce_ms=fields.debounce_ms,
        options=options,
    )


def _scalar(loc: Loc | None) -> object:
    return loc.value if loc is not None and loc.shape == "scalar" else None


def validate_profile_text(
    text: str, file: str = "<profile>", name: str | None = None
) -> tuple[ReaderProfile | None, list[FileIssue]]:
    """Validate one profile's YAML text; returns (profile, issues). ``profile`` is None unless issues is empty."""
    c = _Checker(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None, [FileIssue(file, 1, "empty file / 文件为空")]
        root = c.from_node(node, yaml.SafeLoader(""))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return None, [FileIssue(file, line, f"YAML syntax error: {exc.problem} / YAML 语法错误")]
    except yaml.YAMLError as exc:
        return None, [FileIssue(file, 0, f"YAML error: {exc} / YAML 错误")]
    profile = _check(c, root, name or Path(file).stem, discover())
    return (profile, []) if profile is not None and not c.issues else (None, c.issues)


def validate_profile_file(path: str | Path) -> tuple[ReaderProfile | None, list[FileIssue]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [FileIssue(str(p), 0, f"cannot read file: {exc} / 无法读取文件")]
    return validate_profile_text(text, str(p), p.stem)


def profile_from_data(name: str, data: object, file: str) -> ReaderProfile:
    """A profile from an in-memory mapping, by the same rules as a file; raises ProfileError."""

    c = _Checker(file)
    profile = _check(c, c.from_data(data), name, discover())
    if profile is None or c.issues:
        lines = [str(i) for i in c.issues]
        raise ProfileError(f"invalid reader profile / 读卡器配置无效: {name}\n" + "\n".join(lines), lines)
    return profile


# -- the JSON Schema, generated --------------------------------------------------------------------------
def json_schema(drivers: Drivers | None = None) -> dict[str, object]:
    """The profile format as JSON Schema 2020-12, derived from the same declarations as the validator."""
    drivers = drivers or discover()
    scalar = typing.cast(dict[str, object], json_schema_of(ProfileFields)["properties"])
    properties: dict[str, object] = {
        "driver": {"enum": list(drivers.keys), "description": "Driver key: a Reader subclass's driver_key."},
        **scalar,
        "match": {
            "type": "object",
            "description": "How to find the device: vid/pid (hex), serial_number, manufacturer, product, "
            "description (regexes); reader_name (regex) for PC/SC.",
            "additionalProperties": {"type": ["string", "integer"]},
        },
        "setup_commands": {
            "type": "array",
            "items": {"type": "string", "pattern": "^([0-9A-Fa-f]{2} ?)+$"},
            "description": "Hex commands sent after opening (e.g. PC/SC buzzer/LED APDUs).",
        },
        "options": {"type": "object", "description": "Driver-specific; see the rule for each driver."},
    }
    rules: list[object] = []
    for key in drivers.keys:
        cls = drivers.classes[key]
        props: dict[str, object] = {"options": json_schema_of(cls.Options)}
        then: dict[str, object] = {"properties": props}
        required = []
        if cls.needs_baud:
            required.append("baud")
            props["baud"] = {"type": "integer"}
        if any(s.required for s in field_specs(cls.Options)):
            required.append("options")
        if required:
            then["required"] = required
        if cls.needs_device:
            then["anyOf"] = [
                {"required": ["port"], "properties": {"port": {"type": "string"}}},
                {"required": ["match"]},
            ]
        doc = (cls.__doc__ or "").strip().splitlines()
        rule: dict[str, object] = {
            "if": {"required": ["driver"], "properties": {"driver": {"const": key}}},
            "then": then,
        }
        if doc:
            rule["description"] = f"{key}: {doc[0]}"
        rules.append(rule)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://baodao.example/firmware-config/reader-profile.schema.json",
        "title": "baodao reader profile / 读卡器配置",
        "description": "GENERATED by `python -m hardware.schema --write` from the drivers' declarations; "
        "do not edit. One YAML file per reader model under firmware-config/readers/; the file stem is the "
        "profile name. Enforced (with line numbers) by `baodao hw check-config`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["driver"],
        "properties": properties,
        "allOf": rules,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print (or --write) the reader-profile JSON Schema.")
    parser.add_argument("--write", action="store_true", help="write it under firmware-config/schema/")
    args = parser.parse_args(argv)
    if args.write:
        path = default_config_dir() / SCHEMA_PATH
        path.write_text(schema_text(), encoding="utf-8")
        print(path, file=sys.stderr)
    else:
        sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def profile_from_mapping(name: str, data: dict[str, object]) -> ReaderProfile:
    """A profile from a mapping shaped like the YAML file (tests, the simulator, the kiosk's stand-ins).

    Checked by the same rules as a file; raises :class:`ProfileError` listing every problem.
    """
    return profile_from_data(name, data, f"<{name}>")


def load_profile(name_or_path: str | os.PathLike[str]) -> ReaderProfile:
    """Load a profile by name (file stem under ``firmware-config/readers/``) or by path.

    Raises :class:`ProfileError` listing every problem (a kiosk must not start a half-understood reader).
    """
    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix in (".yaml", ".yml") or os.sep in text or path.exists()):
        path = default_profiles_dir() / f"{text}.yaml"
    if not path.is_file():
        raise ProfileError(
            f"reader profile not found / 找不到读卡器配置: {name_or_path} ({path})",
            [f"{path}:0: file not found / 文件不存在"],
        )
    profile, issues = validate_profile_file(path)
    if issues or profile is None:
        lines = [str(i) for i in issues]
        raise ProfileError(
            f"invalid reader profile / 读卡器配置无效: {path}\n" + "\n".join(lines),
            lines,
        )
    return profile


def list_profiles(directory: str | os.PathLike[str] | None = None) -> list[ReaderProfile]:
    """All valid profiles in the directory, sorted by name; invalid ones are logged and left out."""
    root = Path(directory) if directory is not None else default_profiles_dir()
    out: list[ReaderProfile] = []
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        try:
            out.append(load_profile(path))
        except ProfileError as exc:
            logger.error("skipping reader profile %s: %s", path, "; ".join(exc.issues) or exc)
    return out
