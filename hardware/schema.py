"""Validation of reader profiles with messages that point at a line.

Profiles are edited by hand on site, often over SSH at a kiosk, so a problem must be reported as
``file:line: problem`` (both languages) rather than as a Python traceback. We validate the YAML *node*
tree (from ``yaml.compose``) because only nodes carry marks; values are built afterwards with
``safe_load`` once the tree is known to be sound. The same rules are described for humans and other
tools in ``firmware-config/schema/reader-profile.schema.json``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from hardware.profiles import DRIVER_KEYS

logger = logging.getLogger(__name__)

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
FLOAT = "tag:yaml.org,2002:float"

SERIAL_DRIVERS = ("em4100", "serial_line", "idcard_sam")
STANDARD_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
READER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
FRAMING_RE = re.compile(r"^[5-8][NEOMS][12]$")
HEX_RE = re.compile(r"^([0-9A-Fa-f]{2})+$")


@dataclass(frozen=True)
class ProfileIssue:
    file: str
    line: int  # 1-based; 0 when the problem is the file itself
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# Option keys per driver: key -> (allowed YAML tags, extra check or None). ``None`` for a driver = free.
_Check = Callable[[yaml.Node], str | None]


def _one_of(*values: str) -> _Check:
    def check(node: yaml.Node) -> str | None:
        if node.value not in values:
            return f"must be one of {', '.join(values)} / 取值须为 {', '.join(values)}"
        return None

    return check


def _positive(node: yaml.Node) -> str | None:
    return None if int(node.value) > 0 else "must be > 0 / 须大于 0"


_KINDS = _one_of("card", "qr", "id_card")
OPTION_SPECS: dict[str, dict[str, tuple[tuple[str, ...], _Check | None]] | None] = {
    "pcsc": None,  # owned by the PC/SC driver; any scalar options
    "em4100": {"uid_bytes": ((INT,), _one_of("4", "5"))},
    "serial_line": {
        "kind": ((STR,), _KINDS),
        "max_line": ((INT,), _positive),
        "strip_prefix": ((STR,), None),
        "uppercase": ((BOOL,), None),
        "encoding": ((STR,), None),
    },
    "idcard_sam": {
        "poll_interval_ms": ((INT,), _positive),
        "timeout_ms": ((INT,), _positive),
    },
    "camera_qr": {
        "source": ((STR, INT), None),
        "width": ((INT,), _positive),
        "height": ((INT,), _positive),
        "repeat_suppress_ms": ((INT,), None),
        "decode_every": ((INT,), _positive),
        "loop": ((BOOL,), None),
        "realtime": ((BOOL,), None),
    },
    "keyboard_wedge": {
        "input_format": ((STR,), _one_of("hex", "decimal")),
        "byte_order": ((STR,), _one_of("msb", "lsb")),
        "kind": ((STR,), _KINDS),
        "grab": ((BOOL,), None),
    },
    "simulated": {
        "kind": ((STR,), _KINDS),
        "emulate": ((STR,), _one_of("em4100", "serial_line", "keyboard_wedge", "idcard_sam")),
    },
}

TOP_KEYS = {
    "driver",
    "reader_id",
    "description",
    "port",
    "match",
    "baud",
    "framing",
    "setup_commands",
    "debounce_ms",
    "options",
}


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[ProfileIssue] = []

    def add(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.issues.append(ProfileIssue(self.file, line, message))

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys of a mapping node -> (key node, value node); reports duplicates and non-string keys."""
        if not isinstance(node, yaml.MappingNode):
            self.add(node, f"{what} must be a mapping / {what} 须为键值映射")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != STR:
                self.add(key, f"keys in {what} must be text / {what} 的键须为文本")
                continue
            if key.value in out:
                first = out[key.value][0].start_mark.line + 1
                self.add(key, f"duplicate key '{key.value}' (first on line {first}) / 重复的键")
                continue
            out[key.value] = (key, value)
        return out

    def scalar(self, node: yaml.Node, tags: tuple[str, ...], what: str) -> bool:
        names = {STR: "text", INT: "integer", BOOL: "true/false", NULL: "null", FLOAT: "number"}
        if isinstance(node, yaml.ScalarNode) and node.tag in tags:
            return True
        want = " or ".join(names[t] for t in tags)
        self.add(node, f"'{what}' must be {want} / '{what}' 类型错误，应为 {want}")
        return False


def _check_top(c: _Checker, root: yaml.Node) -> None:
    keys = c.mapping(root, "profile")
    if not keys and isinstance(root, yaml.MappingNode):
        c.add(root, "empty profile / 配置为空")
        return
    for name, (key, _value) in keys.items():
        if name not in TOP_KEYS:
            c.add(key, f"unknown key '{name}' / 未知字段 '{name}'")

    if "driver" not in keys:
        c.add(root, "missing required key 'driver' / 缺少必填字段 'driver'")
        driver = None
    else:
        node = keys["driver"][1]
        driver = node.value if c.scalar(node, (STR,), "driver") else None
        if driver is not None and driver not in DRIVER_KEYS:
            c.add(node, f"unknown driver '{driver}'; known: {', '.join(DRIVER_KEYS)} / 未知驱动 '{driver}'")
            driver = None

    if "reader_id" in keys:
        node = keys["reader_id"][1]
        if c.scalar(node, (STR,), "reader_id") and not READER_ID_RE.match(node.value):
            c.add(
                node,
                "reader_id: lower-case letters, digits, '.', '_' or '-' / reader_id 只能含小写字母、数字、.、_、-",
            )
    if "description" in keys:
        c.scalar(keys["description"][1], (STR,), "description")
    if "port" in keys:
        c.scalar(keys["port"][1], (STR, NULL), "port")
    if "match" in keys:
        for mname, (_k, mval) in c.mapping(keys["match"][1], "match").items():
            if c.scalar(mval, (STR, INT), f"match.{mname}") and mname == "reader_name":
                try:
                    re.compile(mval.value)
                except re.error as exc:
                    c.add(
                        mval, f"match.reader_name is not a valid regular expression ({exc}) / 正则表达式无效"
                    )
    if "baud" in keys:
        node = keys["baud"][1]
        if c.scalar(node, (INT, NULL), "baud") and node.tag == INT and int(node.value) not in STANDARD_BAUDS:
            c.add(node, f"baud {node.value} is not a standard rate / 波特率 {node.value} 不是标准值")
    if "framing" in keys:
        node = keys["framing"][1]
        if c.scalar(node, (STR, NULL), "framing") and node.tag == STR and not FRAMING_RE.match(node.value):
            c.add(node, "framing must look like 8N1 / framing 格式应如 8N1")
    if "setup_commands" in keys:
        node = keys["setup_commands"][1]
        if not isinstance(node, yaml.SequenceNode):
            c.add(
                node, "setup_commands must be a list of hex strings / setup_commands 须为十六进制字符串列表"
            )
        else:
            for item in node.value:
                if c.scalar(item, (STR,), "setup_commands[]") and not HEX_RE.match(
                    item.value.replace(" ", "")
                ):
                    c.add(item, f"'{item.value}' is not whole bytes of hex / 不是完整字节的十六进制")
    if "debounce_ms" in keys:
        node = keys["debounce_ms"][1]
        if c.scalar(node, (INT,), "debounce_ms") and not 0 <= int(node.value) <= 600_000:
            c.add(node, "debounce_ms must be 0..600000 / debounce_ms 须在 0 到 600000 之间")

    options = c.mapping(keys["options"][1], "options") if "options" in keys else {}
    if driver is not None:
        _check_driver(c, root, driver, keys, options)


def _check_driver(
    c: _Checker,
    root: yaml.Node,
    driver: str,
    keys: dict[str, tuple[yaml.Node, yaml.Node]],
    options: dict[str, tuple[yaml.Node, yaml.Node]],
) -> None:
    if driver in SERIAL_DRIVERS:
        baud = keys.get("baud")
        if baud is None or baud[1].tag != INT:
            c.add(
                root if baud is None else baud[1], f"driver '{driver}' needs 'baud' / 串口驱动须设置 'baud'"
            )
    if driver in (*SERIAL_DRIVERS, "keyboard_wedge"):
        port = keys.get("port")
        if (port is None or port[1].tag != STR) and "match" not in keys:
            c.add(
                root, f"driver '{driver}' needs 'port' or 'match' / 驱动 '{driver}' 须设置 'port' 或 'match'"
            )
    if driver == "camera_qr" and "source" not in options:
        c.add(
            keys["options"][1] if "options" in keys else root,
            "camera_qr needs options.source / 摄像头须设置 options.source",
        )

    spec = OPTION_SPECS.get(driver)
    for oname, (okey, oval) in options.items():
        if spec is None:
            c.scalar(oval, (STR, INT, BOOL, FLOAT, NULL), f"options.{oname}")
            continue
        if oname not in spec:
            c.add(
                okey, f"unknown option '{oname}' for driver '{driver}' / 驱动 '{driver}' 没有选项 '{oname}'"
            )
            continue
        tags, check = spec[oname]
        if c.scalar(oval, tags, f"options.{oname}") and check is not None:
            problem = check(oval)
            if problem:
                c.add(oval, f"options.{oname}: {problem}")


def validate_profile_text(
    text: str, file: str = "<profile>"
) -> tuple[dict[str, object] | None, list[ProfileIssue]]:
    """Validate one profile's YAML text; returns (data, issues). ``data`` is None unless issues is empty."""
    c = _Checker(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return None, [ProfileIssue(file, line, f"YAML syntax error: {exc.problem} / YAML 语法错误")]
    except yaml.YAMLError as exc:
        return None, [ProfileIssue(file, 0, f"YAML error: {exc} / YAML 错误")]
    if root is None:
        return None, [ProfileIssue(file, 1, "empty file / 文件为空")]
    _check_top(c, root)
    if c.issues:
        return None, c.issues
    data = yaml.safe_load(text)
    return data, []


def validate_profile_file(path: str | Path) -> tuple[dict[str, object] | None, list[ProfileIssue]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ProfileIssue(str(p), 0, f"cannot read file: {exc} / 无法读取文件")]
    return validate_profile_text(text, str(p))


def check_yaml_syntax(path: str | Path) -> list[ProfileIssue]:
    """For non-profile YAML under firmware-config/: only that it parses (other owners define meaning)."""
    p = Path(path)
    try:
        yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return [
            ProfileIssue(
                str(p), mark.line + 1 if mark else 0, f"YAML syntax error: {exc.problem} / YAML 语法错误"
            )
        ]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [ProfileIssue(str(p), 0, f"cannot read YAML: {exc} / 无法读取 YAML")]
    return []
