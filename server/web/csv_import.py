"""CSV import of units and members: decode, validate line by line, plan the changes, apply in bulk.

Three steps so a dry run and the real run cannot disagree:

1. :func:`parse` turns the file into normalised rows and line-numbered format errors. Encodings: UTF-8
   with or without BOM, else GB18030 (what Excel on a Chinese Windows writes). A national ID number is
   checked and replaced by its keyed hash *here*; the raw number goes no further — not into the plan, the
   stored upload, the database or a log line.
2. :func:`plan` compares the rows with the database (codes that do not exist, rows outside the user's
   scope, duplicates) and lists what would be created, updated or left unchanged.
3. :func:`apply` writes the plan in chunks of :data:`CHUNK` rows with multi-row INSERT and
   primary-key-batched UPDATE, yielding progress after each chunk — 13,000 members take seconds.

The dry run stores the parsed rows (hashes, no raw IDs) under a random token; applying re-plans them
against the database as it is then, so a change made in between is not overwritten blindly.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from protocol.hashing import CredentialValueError, id_number_check_digit_ok, national_id_hash
from server.models import Community, Member, Unit, UnitCommunity

from .i18n import t
from .scope import Scope

logger = logging.getLogger(__name__)

CHUNK = 1000
MAX_ERRORS_SHOWN = 200
KINDS = ("members", "units")

# Accepted headers (Chinese first, English aliases) → field name.
MEMBER_HEADERS = {
    "党员编号": "member_no",
    "编号": "member_no",
    "member_no": "member_no",
    "姓名": "name",
    "name": "name",
    "单位编码": "unit_code",
    "unit_code": "unit_code",
    "社区编码": "community_code",
    "报到社区编码": "community_code",
    "community_code": "community_code",
    "手机号": "phone",
    "手机": "phone",
    "联系电话": "phone",
    "phone": "phone",
    "身份证号": "national_id",
    "身份证号码": "national_id",
    "national_id": "national_id",
    "状态": "status",
    "status": "status",
}
UNIT_HEADERS = {
    "单位编码": "code",
    "code": "code",
    "单位名称": "name",
    "name": "name",
    "报到社区": "communities",
    "报到社区编码": "communities",
    "communities": "communities",
}
REQUIRED = {"members": ("member_no", "name", "unit_code"), "units": ("code", "name")}
STATUS_WORDS = {
    "active": "active",
    "正常": "active",
    "在职": "active",
    "inactive": "inactive",
    "停用": "inactive",
}
CODE_RE = re.compile(r"[0-9A-Za-z_\-]{1,32}")
#: A mainland China mobile number: 11 digits starting 13–19 (what members' phones are; the form and the
#: import both read a phone with :func:`normalise_mobile`).
MOBILE_RE = re.compile(r"1[3-9][0-9]{9}")
LIST_SPLIT = re.compile(r"[;,;,、\s]+")


def normalise_mobile(text: str) -> str:
    """A typed phone without spaces, hyphens and a ``+86``/``86`` country prefix (``138 1234-5678``,
    ``+86 13812345678`` → ``13812345678``); anything else is returned as it is, to be refused."""
    compact = re.sub(r"[\s\-]", "", text)
    for prefix in ("+86", "0086", "86"):
        if compact.startswith(prefix) and len(compact) == len(prefix) + 11:
            return compact[len(prefix) :]
    return compact


MEMBER_FIELDS = ("name", "unit_id", "community_id", "phone", "national_id_hash", "status")


class ImportError_(ValueError):
    """The file as a whole cannot be read (encoding, headers); the message is shown to the person."""


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped) or, failing that, GB18030."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise ImportError_(t("import.bad_encoding")) from exc


@dataclass
class Parsed:
    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def parse(data: bytes, kind: str, national_id_key: bytes) -> Parsed:
    """Rows with their file line numbers (header = line 1) and format errors; see the module docstring."""
    if kind not in KINDS:
        raise ImportError_(t("import.bad_kind"))
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise ImportError_(t("import.empty")) from exc
    names = MEMBER_HEADERS if kind == "members" else UNIT_HEADERS
    columns = [names.get(h.strip().lower() if h.strip().isascii() else h.strip()) for h in header]
    missing = [f for f in REQUIRED[kind] if f not in columns]
    if missing:
        raise ImportError_(t("import.missing_columns", columns=", ".join(missing)))
    parsed = Parsed(kind=kind)
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        raw = {col: v.strip() for col, v in zip(columns, values, strict=False) if col}
        row, error = (_member_row if kind == "members" else _unit_row)(raw, national_id_key)
        if error:
            parsed.errors.append((line, error))
        else:
            row["line"] = line
            parsed.rows.append(row)
    return parsed


def _member_row(raw: dict[str, str], key: bytes) -> tuple[dict[str, Any], str | None]:
    member_no, name = raw.get("member_no", ""), raw.get("name", "")
    if not CODE_RE.fullmatch(member_no):
        return {}, t("import.bad_member_no")
    if not name or len(name) > 100:
        return {}, t("import.bad_name")
    unit_code = raw.get("unit_code", "")
    if not unit_code:
        return {}, t("import.missing_unit")
    phone = normalise_mobile(raw.get("phone") or "") or None
    if phone and not MOBILE_RE.fullmatch(phone):
        return {}, t("forms.bad_mobile")
    status_word = raw.get("status", "")
    status = (
        STATUS_WORDS.get(status_word.lower() if status_word.isascii() else status_word)
        if status_word
        else None
    )
    if status_word and status is None:
        return {}, t("import.bad_status")
    id_hash = None
    if raw.get("national_id"):
        try:
            if not id_number_check_digit_ok(raw["national_id"]):
                return {}, t("import.bad_national_id")
            id_hash = national_id_hash(key, raw["national_id"])
        except CredentialValueError:
            return {}, t("import.bad_national_id")
    row = {
        "member_no": member_no,
        "name": name,
        "unit_code": unit_code,
        "community_code": raw.get("community_code") or None,
        "phone": phone,
        "national_id_hash": id_hash,
        "status": status,
    }
    return row, None


def _unit_row(raw: dict[str, str], _key: bytes) -> tuple[dict[str, Any], str | None]:
    code, name = raw.get("code", ""), raw.get("name", "")
    if not CODE_RE.fullmatch(code):
        return {}, t("import.bad_code")
    if not name or len(name) > 200:
        return {}, t("import.bad_name")
    communities = [c for c in LIST_SPLIT.split(raw.get("communities", "")) if c]
    return {"code": code, "name": name, "communities": communities}, None


@dataclass
class Plan:
    kind: str
    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # {"id", "line", "changes", "before"}
    pairings: list[tuple[int | str, int]] = field(default_factory=list)  # (unit id or new code, community)
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def total_changes(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.pairings)


def plan(s: Session, parsed: Parsed, scope: Scope) -> Plan:
    """What applying ``parsed`` would change, plus errors that depend on the database."""
    result = Plan(kind=parsed.kind, errors=list(parsed.errors))
    if parsed.kind == "members":
        _plan_members(s, parsed.rows, scope, result)
    else:
        _plan_units(s, parsed.rows, scope, result)
    result.errors.sort()
    return result


def _plan_members(s: Session, rows: list[dict[str, Any]], scope: Scope, out: Plan) -> None:
    communities = dict(s.execute(select(Community.code, Community.id)).tuples().all())
    units = dict(s.execute(select(Unit.code, Unit.id)).tuples().all())
    scoped_units = set(s.scalars(select(Unit.id).where(scope.clause(Unit))))
    existing = {
        m.member_no: m
        for m in s.execute(
            select(Member.id, Member.member_no, *(getattr(Member, f) for f in MEMBER_FIELDS))
        ).mappings()
    }
    id_owner = {m["national_id_hash"]: no for no, m in existing.items() if m["national_id_hash"]}
    seen: dict[str, int] = {}
    for row in rows:
        line, member_no = row["line"], row["member_no"]
        if member_no in seen:
            out.errors.append((line, t("import.duplicate_in_file", line=seen[member_no])))
            continue
        seen[member_no] = line
        unit_id = units.get(row["unit_code"])
        if unit_id is None or unit_id not in scoped_units:
            out.errors.append((line, t("import.unknown_unit", code=row["unit_code"])))
            continue
        code = row["community_code"]
        if code is None and scope.role == "community_staff":
            community_id = scope.community_id
        else:
            community_id = communities.get(code or "")
        if community_id is None:
            out.errors.append((line, t("import.unknown_community", code=code or "")))
            continue
        if not scope.sees_all and community_id != scope.community_id:
            out.errors.append((line, t("import.community_out_of_scope", code=code or "")))
            continue
        id_hash = row["national_id_hash"]
        owner = id_owner.get(id_hash) if id_hash else None
        if owner is not None and owner != member_no:
            out.errors.append((line, t("import.national_id_taken")))
            continue
        if id_hash:
            id_owner[id_hash] = member_no
        wanted = {
            "name": row["name"],
            "unit_id": unit_id,
            "community_id": community_id,
            "phone": row["phone"],
            "status": row["status"] or "active",
        }
        if id_hash:
            wanted["national_id_hash"] = id_hash
        current = existing.get(member_no)
        if current is None:
            out.creates.append({"line": line, "member_no": member_no, **wanted})
            continue
        if not scope.sees_all and current["community_id"] != scope.community_id:
            out.errors.append((line, t("import.member_out_of_scope")))
            continue
        if row["status"] is None:
            wanted.pop("status")
        changes = {k: v for k, v in wanted.items() if current[k] != v}
        if changes:
            before = {k: current[k] for k in changes}
            out.updates.append(
                {"id": current["id"], "line": line, "key": member_no, "changes": changes, "before": before}
            )
        else:
            out.unchanged += 1


def _plan_units(s: Session, rows: list[dict[str, Any]], scope: Scope, out: Plan) -> None:
    if scope.role != "admin":
        out.errors.append((1, t("import.units_admin_only")))
        return
    communities = dict(s.execute(select(Community.code, Community.id)).tuples().all())
    existing = {u.code: u for u in s.execute(select(Unit.id, Unit.code, Unit.name)).mappings()}
    pairs = set(s.execute(select(UnitCommunity.unit_id, UnitCommunity.community_id)).tuples())
    seen: dict[str, int] = {}
    for row in rows:
        line, code = row["line"], row["code"]
        if code in seen:
            out.errors.append((line, t("import.duplicate_in_file", line=seen[code])))
            continue
        seen[code] = line
        unknown = [c for c in row["communities"] if c not in communities]
        if unknown:
            out.errors.append((line, t("import.unknown_community", code=", ".join(unknown))))
            continue
        current = existing.get(code)
        if current is None:
            out.creates.append({"line": line, "code": code, "name": row["name"]})
            unit_ref: int | str = code
        else:
            unit_ref = current["id"]
            if current["name"] != row["name"]:
                out.updates.append(
                    {
                        "id": current["id"],
                        "line": line,
                        "key": code,
                        "changes": {"name": row["name"]},
                        "before": {"name": current["name"]},
                    }
                )
            else:
                out.unchanged += 1
        for c in row["communities"]:
            if (unit_ref, communities[c]) not in pairs:
                pairs.add((unit_ref, communities[c]))  # type: ignore[arg-type]
                out.pairings.append((unit_ref, communities[c]))


def apply(s: Session, result: Plan) -> Iterator[tuple[int, int]]:
    """Write ``result`` (which must have no errors) in chunks, yielding ``(done, total)`` after each.

    The caller owns the transaction: nothing is committed here, so a failure half-way leaves nothing.
    """
    if result.errors:
        raise ValueError("a plan with errors cannot be applied")
    total = result.total_changes
    done = 0
    model = Member if result.kind == "members" else Unit
    for start in range(0, len(result.creates), CHUNK):
        chunk = [
            {k: v for k, v in row.items() if k != "line"} for row in result.creates[start : start + CHUNK]
        ]
        s.execute(insert(model), chunk)
        done += len(chunk)
        yield done, total
    for start in range(0, len(result.updates), CHUNK):
        chunk = [{"id": u["id"], **u["changes"]} for u in result.updates[start : start + CHUNK]]
        s.execute(update(model), chunk)
        done += len(chunk)
        yield done, total
    if result.pairings:
        new_ids = dict(
            s.execute(select(Unit.code, Unit.id).where(Unit.code.in_([c["code"] for c in result.creates])))
            .tuples()
            .all()
        )
        rows = [
            {"unit_id": new_ids[ref] if isinstance(ref, str) else ref, "community_id": cid}
            for ref, cid in result.pairings
        ]
        for start in range(0, len(rows), CHUNK):
            s.execute(insert(UnitCommunity), rows[start : start + CHUNK])
            done += len(rows[start : start + CHUNK])
            yield done, total
