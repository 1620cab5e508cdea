"""Checking a kiosk configuration file for ``baodao hw check-config``: every problem, with its line.

``config_from_mapping`` in :mod:`kiosk.config` is the one definition of the kiosk file's format. Rather
than keep a second table of its keys and types here (which would drift, as such tables do), the check
runs ``config_from_mapping`` on a mapping that records every key it reads and the default it reads it
with. A key in the file that was never read is unknown; a value whose TOML type differs from its default's
(text where a number belongs, ``"yes"`` for a boolean) is wrong even where ``int()`` or ``bool()`` would
quietly accept it; a value that makes the builder fail is reported at its key, and the check runs again
without it, so one pass reports every problem. Reader profiles the file names are checked too.

TOML parsers give no positions for keys, so :func:`key_lines` finds them in the text (tables, arrays of
tables, dotted keys); a key it cannot place (inside an inline table) is reported at its table's line.
"""

from __future__ import annotations

import copy
import logging
import re
import tomllib
from pathlib import Path
from typing import Any

from hardware.profiles import ProfileError
from hardware.schema import FileIssue, load_profile
from kiosk.config import ConfigError, config_from_mapping

logger = logging.getLogger(__name__)

Path_ = tuple[str | int, ...]
_NO_DEFAULT = object()
_MAX_PASSES = 50


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# -- where keys are in the text ----------------------------------------------------------------------
_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})"
_KEY_LINE = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")
_TABLE = re.compile(rf"^\s*\[\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*\]\s*(?:#.*)?$")
_ARRAY_TABLE = re.compile(rf"^\s*\[\[\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*\]\]\s*(?:#.*)?$")


def _parts(dotted_key: str) -> list[str]:
    parts = re.findall(_KEY, dotted_key)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def key_lines(text: str) -> dict[Path_, int]:
    """Path of each table and key -> its 1-based line (arrays of tables get their index)."""
    lines: dict[Path_, int] = {}
    counts: dict[tuple[str, ...], int] = {}
    table: Path_ = ()
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2:
                in_multiline = None
            continue
        if m := _ARRAY_TABLE.match(line):
            name = tuple(_parts(m.group(1)))
            index = counts.get(name, 0)
            counts[name] = index + 1
            table = (*name, index)
            lines[table] = number
            lines.setdefault(name, number)
            continue
        if m := _TABLE.match(line):
            table = tuple(_parts(m.group(1)))
            lines[table] = number
            continue
        if m := _KEY_LINE.match(line):
            lines[(*table, *_parts(m.group(1)))] = number
            rest = line[m.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2:
                    in_multiline = quote
    return lines


def line_of(lines: dict[Path_, int], path: Path_) -> int:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 0


# -- what config_from_mapping reads ----------------------------------------------------------------------
class _Reads:
    def __init__(self) -> None:
        self.defaults: dict[Path_, object] = {}
        self.order: list[Path_] = []
        self.last: Path_ | None = None

    def record(self, path: Path_, default: object) -> None:
        self.defaults.setdefault(path, default)
        self.order.append(path)
        self.last = path


def _culprit(work: dict[str, Any], order: list[Path_], message: str, base_dir: Path | None) -> Path_ | None:
    """The key whose value made the builder fail: the most recently read one whose removal cures it.

    The builder may read a key well before it converts it (``closes_at``), so "the last key read" is
    not enough; trying without each candidate in turn is cheap (the builder does no I/O).
    """
    for path in reversed(dict.fromkeys(order)):
        found, value = _lookup(work, path)
        if not found or isinstance(value, dict):
            continue
        trial = copy.deepcopy(work)
        _remove(trial, path)
        try:
            config_from_mapping(trial, base_dir)
            return path
        except ConfigError as exc:
            if str(exc) != message:
                return path
    return None


class _Recorder(dict[str, Any]):
    """A mapping that tells :class:`_Reads` which keys were read, with which default."""

    def __init__(self, data: dict[str, Any], path: Path_, reads: _Reads) -> None:
        super().__init__(data)
        self._path = path
        self._reads = reads

    def get(self, key: str, default: Any = None) -> Any:
        self._reads.record((*self._path, key), default)
        return self._wrap(key, super().get(key, default))

    def __getitem__(self, key: str) -> Any:
        self._reads.record((*self._path, key), _NO_DEFAULT)
        return self._wrap(key, super().__getitem__(key))

    def _wrap(self, key: str, value: Any) -> Any:
        path = (*self._path, key)
        if isinstance(value, dict) and not isinstance(value, _Recorder):
            return _Recorder(value, path, self._reads)
        if isinstance(value, list):
            return [
                _Recorder(v, (*path, i), self._reads) if isinstance(v, dict) else v
                for i, v in enumerate(value)
            ]
        return value


def _type_name(value: object) -> tuple[str, str]:
    if isinstance(value, bool):
        return "true/false", "布尔值"
    if isinstance(value, int | float):
        return "a number", "数字"
    if isinstance(value, str):
        return "text", "文本"
    if isinstance(value, list):
        return "a list", "列表"
    if isinstance(value, dict):
        return "a table", "表"
    return type(value).__name__, type(value).__name__


def _fits(value: object, default: object) -> bool:
    """Whether ``value`` has the TOML type the builder expects, judged by the default it reads with."""
    if default is None or default is _NO_DEFAULT:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _lookup(data: Any, path: Path_) -> tuple[bool, Any]:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return False, None
            data = data[part]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return False, None
    return True, data


def _remove(data: Any, path: Path_) -> bool:
    found, parent = _lookup(data, path[:-1])
    if found and isinstance(parent, dict) and path[-1] in parent:
        del parent[path[-1]]
        return True
    return False


def _stand_in(data: Any, path: Path_) -> bool:
    """Give a missing required key an empty value so the next pass gets past it (already reported)."""
    found, parent = _lookup(data, path[:-1])
    if found and isinstance(parent, dict):
        parent[path[-1]] = ""
        return True
    return False


def _walk(data: Any, path: Path_ = ()) -> list[Path_]:
    out: list[Path_] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.append((*path, key))
            out += _walk(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            if isinstance(value, dict):
                out += _walk(value, (*path, i))
    return out


def check_config_text(text: str, file: str, base_dir: Path | None = None) -> list[FileIssue]:
    """Every problem in one kiosk configuration file (TOML), as ``file:line`` issues."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        what = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        return [FileIssue(file, int(m.group(1)) if m else 0, f"not valid TOML: {what} / 不是有效的 TOML")]
    lines = key_lines(text)
    issues: list[FileIssue] = []

    reported: set[Path_] = set()

    def add(path: Path_, message: str) -> None:
        reported.add(path)
        issues.append(FileIssue(file, line_of(lines, path), message))

    work = copy.deepcopy(data)
    reads = _Reads()
    config = None
    for _ in range(_MAX_PASSES):
        reads = _Reads()
        try:
            config = config_from_mapping(_Recorder(work, (), reads), base_dir)
            break
        except ConfigError as exc:
            failed = exc
        last = reads.last or ()
        found, _value = _lookup(work, last)
        if last and not found and reads.defaults.get(last) is _NO_DEFAULT:
            name = dotted(last)
            add(last, f"missing required key '{name}' / 缺少必填字段 '{name}'")
            if not _stand_in(work, last):
                break
            continue
        culprit = _culprit(work, reads.order, str(failed), base_dir)
        if culprit is None or culprit in reported:
            issues.append(FileIssue(file, 0, str(failed)))
            break
        _found, value = _lookup(work, culprit)
        name = dotted(culprit)
        cause = failed.__cause__
        if cause is None or str(cause) not in str(failed):  # our own bilingual message, not library text
            add(culprit, str(failed))
        else:
            add(culprit, f"'{name}': invalid value {value!r} / '{name}' 的取值无效")
        _remove(work, culprit)

    for path, default in reads.defaults.items():
        found, value = _lookup(data, path)
        if found and path not in reported and not _fits(value, default):
            want, got = _type_name(default), _type_name(value)
            name = dotted(path)
            add(path, f"'{name}' must be {want[0]}, not {got[0]} / '{name}' 应为{want[1]}，而不是{got[1]}")

    read_paths = set(reads.defaults)
    unknown: list[Path_] = []
    for path in _walk(data) if config is not None else []:
        if path not in read_paths and not any(path[: len(u)] == u for u in unknown):
            unknown.append(path)
            name = dotted(path)
            add(path, f"unknown key '{name}' / 未知字段 '{name}'")

    if config is not None:
        for i, reader in enumerate(config.readers):
            where: Path_ = ("readers", i, "profile")
            if config.simulate or reader.simulate or where in reported:
                continue  # the kiosk stands a simulator in for a profile it cannot load
            try:
                load_profile(reader.profile)
            except ProfileError as exc:
                detail = "; ".join(exc.issues) or str(exc)
                add(
                    where,
                    f"readers[{i}].profile '{reader.profile}' is not usable / 读卡器配置不可用: {detail}",
                )
    issues.sort(key=lambda i: i.line)
    return issues


def check_config_file(path: str | Path) -> list[FileIssue]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [FileIssue(str(p), 0, f"cannot read file: {exc} / 无法读取文件")]
    return check_config_text(text, str(p), p.resolve().parent)
