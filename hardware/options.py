"""Typed driver options: frozen dataclasses checked field by field, and described as JSON Schema.

Each driver declares its options as a dataclass next to its code (Frigate's detector plugins are the
model). The dataclass is the one definition: the profile validator reads its field types, defaults and
limits, ``ReaderProfile.options`` holds an instance of it, and the JSON Schema under
``firmware-config/schema/`` is generated from it. We use dataclasses and this small checker rather than
pydantic because ``hardware/`` stays free of heavyweight dependencies (DESIGN's table), and because the
checker must report ``file:line`` positions from YAML nodes, which a model library does not know about.

Supported field types are the scalars a profile can hold: ``int``, ``float``, ``bool``, ``str``,
``Literal[...]`` and unions of them with ``None``. Limits and help go in :func:`option`'s metadata.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TYPE_NAMES = {
    int: ("integer", "整数"),
    float: ("number", "数字"),
    bool: ("true/false", "true/false"),
    str: ("text", "文本"),
    type(None): ("null", "空值"),
}
_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", type(None): "null"}


@dataclass(frozen=True, slots=True)
class OptionIssue:
    """One problem with one value; ``line`` is 1-based in the file, 0 when not known."""

    line: int
    message: str


@dataclass(frozen=True)
class DriverOptions:
    """Base of every driver's options class (no fields: a driver without options uses it as is)."""


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    pattern: str | None = None,
    invalid: str = "",
) -> Any:
    """A dataclass field with the limits the validator checks and the schema describes.

    ``invalid`` replaces the generic message for a value outside the choices or the pattern; it may
    name ``{value}``.
    """
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "pattern": pattern, "invalid": invalid}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What a field accepts, resolved once from the dataclass annotations."""

    name: str
    types: tuple[type, ...]  # scalar types accepted (NoneType for None)
    choices: tuple[object, ...] | None  # from Literal[...] or an Enum's values
    enum_type: type[enum.Enum] | None  # values are converted to it
    required: bool
    default: object
    help: str
    minimum: float | None
    maximum: float | None
    pattern: str | None
    invalid: str


def _flatten(annotation: object) -> tuple[tuple[type, ...], tuple[object, ...] | None]:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = tuple(m.value for m in annotation)
        return tuple(dict.fromkeys(type(v) for v in values)), values
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = typing.get_args(annotation)
        return tuple(dict.fromkeys(type(v) for v in values)), values
    if origin in (typing.Union, types.UnionType):
        kinds: list[type] = []
        choices: list[object] | None = None
        for arg in typing.get_args(annotation):
            arg_types, arg_choices = _flatten(arg)
            kinds += arg_types
            if arg_choices is not None:
                choices = [*(choices or []), *arg_choices]
            elif choices is not None and arg is not type(None):
                raise TypeError(f"cannot mix Literal and {arg} in one option")
        if choices is not None and type(None) in kinds:
            choices.append(None)
        return tuple(dict.fromkeys(kinds)), None if choices is None else tuple(choices)
    for kind in _JSON_TYPES:
        if annotation is kind:
            return (kind,), None
    raise TypeError(f"unsupported option type {annotation!r}")


def field_specs(cls: type) -> list[FieldSpec]:
    """The fields of an options (or any flat scalar) dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        kinds, choices = _flatten(hint)
        enum_type = next(
            (t for t in (hint, *typing.get_args(hint)) if isinstance(t, type) and issubclass(t, enum.Enum)),
            None,
        )
        meta = f.metadata
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(
            FieldSpec(
                name=f.name,
                types=kinds,
                choices=choices,
                enum_type=enum_type,
                required=required,
                default=None if required else _plain(f.default),
                help=str(meta.get("help", "")),
                minimum=meta.get("minimum"),
                maximum=meta.get("maximum"),
                pattern=meta.get("pattern"),
                invalid=str(meta.get("invalid", "")),
            )
        )
    return out


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _is(value: object, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _show(value: object) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def check_value(spec: FieldSpec, value: object, what: str) -> str | None:
    """The problem with ``value`` for this field, in English and Chinese, or None."""
    if not any(_is(value, k) for k in spec.types):
        en = " or ".join(_TYPE_NAMES[k][0] for k in spec.types)
        zh = "或".join(_TYPE_NAMES[k][1] for k in spec.types)
        return f"'{what}' must be {en} / '{what}' 类型错误，应为{zh}"
    if value is None:
        return None
    if spec.invalid and (
        (spec.choices is not None and value not in spec.choices)
        or (spec.pattern is not None and isinstance(value, str) and not re.fullmatch(spec.pattern, value))
    ):
        return spec.invalid.format(value=_show(value))
    if spec.choices is not None and value not in spec.choices:
        shown = ", ".join(_show(c) for c in spec.choices if c is not None)
        return f"{what}: must be one of {shown} / {what} 取值须为 {shown} 之一"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            return f"{what}: must be ≥ {_show(spec.minimum)} / {what} 须不小于 {_show(spec.minimum)}"
        if spec.maximum is not None and value > spec.maximum:
            return f"{what}: must be ≤ {_show(spec.maximum)} / {what} 须不大于 {_show(spec.maximum)}"
    if spec.pattern is not None and isinstance(value, str) and not re.fullmatch(spec.pattern, value):
        return f"{what}: '{value}' does not match {spec.pattern} / {what} 格式不符合 {spec.pattern}"
    return None


def build_options(
    cls: type[T], values: Mapping[str, tuple[object, int]], prefix: str = "options.", owner: str = ""
) -> tuple[T | None, list[OptionIssue]]:
    """An instance of ``cls`` from ``name -> (value, line)``; every problem found, not just the first.

    Missing required fields are reported with line 0: the caller knows where the mapping is.
    """
    issues: list[OptionIssue] = []
    specs = {s.name: s for s in field_specs(cls)}
    kwargs: dict[str, object] = {}
    for name, (value, line) in values.items():
        spec = specs.get(name)
        if spec is None:
            en = f"unknown option '{name}'" + (f" for driver '{owner}'" if owner else "")
            zh = (f"驱动 '{owner}' " if owner else "") + f"没有选项 '{name}'"
            issues.append(OptionIssue(line, f"{en} / {zh}"))
            continue
        problem = check_value(spec, value, f"{prefix}{name}")
        if problem:
            issues.append(OptionIssue(line, problem))
        elif spec.enum_type is not None and value is not None:
            kwargs[name] = spec.enum_type(value)
        else:
            kwargs[name] = value
    for spec in specs.values():
        if spec.required and spec.name not in values:
            issues.append(
                OptionIssue(0, f"missing required '{prefix}{spec.name}' / 缺少必填项 '{prefix}{spec.name}'")
            )
    if issues:
        return None, issues
    return cls(**kwargs), []


def json_schema_of(cls: type, *, closed: bool = True) -> dict[str, object]:
    """JSON Schema (2020-12) for a mapping of this dataclass's fields."""
    props: dict[str, object] = {}
    for spec in field_specs(cls):
        prop: dict[str, object] = {}
        if spec.choices is not None:
            prop["enum"] = list(spec.choices)
        else:
            names = [_JSON_TYPES[k] for k in spec.types]
            prop["type"] = names[0] if len(names) == 1 else names
        if spec.minimum is not None:
            prop["minimum"] = spec.minimum
        if spec.maximum is not None:
            prop["maximum"] = spec.maximum
        if spec.pattern is not None:
            prop["pattern"] = f"^(?:{spec.pattern})$"
        if not spec.required:
            prop["default"] = spec.default
        if spec.help:
            prop["description"] = spec.help
        props[spec.name] = prop
    schema: dict[str, object] = {"type": "object", "properties": props}
    if closed:
        schema["additionalProperties"] = False
    required = [s.name for s in field_specs(cls) if s.required]
    if required:
        schema["required"] = required
    return schema
