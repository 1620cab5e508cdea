"""CSV and XLSX downloads of every report and list, built from the same scoped queries as the pages.

CSV is written as UTF-8 *with* a byte-order mark: without it Excel on a Chinese Windows opens the file as
GBK and turns every name into mojibake, while LibreOffice and Python ignore the mark. XLSX is written with
openpyxl in write-only mode (rows streamed, constant memory), so a city-wide list is not held twice.
Cells that start with ``= + - @`` are prefixed with an apostrophe: a member name must never become a
formula in someone's spreadsheet (CSV injection).

Lists (sessions, members, review queue) are exported here at ``/export/<list>?format=csv|xlsx`` with the
list's own filters; reports and the fleet page answer ``?format=`` on their own URLs via :func:`send_table`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, request
from sqlalchemy.orm import aliased

from server.models import Member, ServiceSession, TapEvent

from .common import db
from .i18n import fmt_dt, t
from .members import filtered_members
from .reasons import export_text, merged_flags, session_reason
from .scope import current_scope

logger = logging.getLogger(__name__)
bp = Blueprint("web_exports", __name__, url_prefix="/export")

FORMATS = ("csv", "xlsx")
MAX_ROWS = 1_000_000  # Excel's sheet limit is 1,048,576 rows
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (CSV/XLSX injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_format() -> str | None:
    """``csv`` or ``xlsx`` from ``?format=``; None for the HTML page; 400 for anything else."""
    fmt = request.args.get("format", "").strip().lower()
    if not fmt:
        return None
    if fmt not in FORMATS:
        abort(400)
    return fmt


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if v is None else _safe(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def xlsx_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]], sheet: str = "baodao") -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet[:31])
    bold = Font(bold=True)
    header_cells = []
    for h in headers:
        cell = WriteOnlyCell(ws, value=h)
        cell.font = bold
        header_cells.append(cell)
    ws.append(header_cells)
    for row in rows:
        ws.append([_safe(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def send_table(fmt: str, name: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A download of ``rows`` as ``name``-<date>.csv/.xlsx (ASCII file name, so every browser keeps it)."""
    stamp = datetime.now().strftime("%Y%m%d")
    filename = f"{name}-{stamp}.{fmt}"
    if fmt == "csv":
        body, mime = csv_bytes(headers, rows), "text/csv; charset=utf-8"
    else:
        body, mime = xlsx_bytes(headers, rows, sheet=name), XLSX_MIME
    logger.info("export %s (%d bytes)", filename, len(body))
    return Response(
        body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _fmt_or_csv() -> str:
    return export_format() or "csv"


@bp.get("/sessions")
def sessions() -> Response:
    """The sessions list as filtered on ``/sessions`` (same query-string filters), all pages."""
    from .sessions_view import apply_filters, session_rows

    scope = current_scope()
    stmt = apply_filters(session_rows(scope)).order_by(ServiceSession.started_at, ServiceSession.id)
    return _session_table("sessions", stmt)


@bp.get("/review")
def review() -> Response:
    """The review queue as filtered on ``/review``."""
    from .review import queue_clause
    from .sessions_view import apply_filters, session_rows

    scope = current_scope()
    stmt = apply_filters(session_rows(scope).where(queue_clause())).order_by(ServiceSession.started_at)
    return _session_table("review", stmt)


def _session_table(name: str, stmt: Any) -> Response:
    """Sessions as rows a person reads: status, reason and the flags of the session's two taps as text.

    The taps are joined by primary key (outer: a session may have no check-out, a manual one no tap), so
    a reviewer's spreadsheet says why a session was doubtful without a second export of tap events.
    """
    tap_in, tap_out = aliased(TapEvent), aliased(TapEvent)
    stmt = (
        stmt.add_columns(tap_in.flags, tap_out.flags)
        .outerjoin(tap_in, tap_in.event_id == ServiceSession.check_in_event_id)
        .outerjoin(tap_out, tap_out.event_id == ServiceSession.check_out_event_id)
    )
    headers = [
        t(f"export.col.{k}")
        for k in (
            "member_no",
            "name",
            "unit",
            "centre",
            "started",
            "ended",
            "minutes",
            "status",
            "reason",
            "flags",
            "source",
        )
    ]

    def rows() -> Iterable[list[Any]]:
        for row, member, unit_name, centre_name, flags_in, flags_out in db().execute(stmt.limit(MAX_ROWS)):
            yield [
                member.member_no,
                member.name,
                unit_name,
                centre_name,
                fmt_dt(row.started_at),
                fmt_dt(row.ended_at),
                row.credited_minutes,
                t(f"status.{row.status}"),
                export_text([session_reason(row.reason)]),
                export_text(merged_flags((flags_in, flags_out))),
                row.source,
            ]

    return send_table(_fmt_or_csv(), name, headers, rows())


@bp.get("/members")
def members() -> Response:
    """The members list with its filters (``q``, ``unit_id``, ``status``); phone numbers stay masked."""
    from protocol.masking import mask_phone

    scope = current_scope()
    stmt = filtered_members(scope)
    headers = [t(f"export.col.{k}") for k in ("member_no", "name", "unit", "community", "phone", "status")]
    rows = (
        [m.member_no, m.name, unit_name, community_name, mask_phone(m.phone) if m.phone else "", m.status]
        for m, unit_name, community_name in db().execute(stmt.order_by(Member.member_no).limit(MAX_ROWS))
    )
    return send_table(_fmt_or_csv(), "members", headers, rows)
