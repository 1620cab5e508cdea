"""Printable member badges: one A4 sheet per unit (multi-page PDF, or one page as PNG) with a QR code each.

The QR text is the signed badge token (``server.qr.badges``): ``badge_token`` reprints an existing
badge, ``issue_badge`` makes one for a member who has none (a separate, audited POST — printing never
creates credentials behind anyone's back). Sheets are drawn with Pillow: names need a CJK font, so we use
Debian's ``fonts-noto-cjk`` (Noto Sans CJK SC) and fall back to Pillow's default font with a warning if it
is missing. Pages are produced one by one and reported through ``progress`` (logged on the server), so a
unit of several hundred members is a few seconds of work, not a hung request without a trace.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import qrcode
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.config import key_bytes
from server.models import Credential, Member, QrBadge, Unit

from . import audit
from .common import db
from .i18n import t
from .scope import current_scope, require_write

logger = logging.getLogger(__name__)
bp = Blueprint("web_badges", __name__)

CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
CJK_FONT_INDEX = 2  # Noto Sans CJK SC inside the collection
DPI = 150
PAGE = (1240, 1754)  # A4 at 150 dpi
COLUMNS, ROWS = 2, 4
MARGIN = 60


@dataclass(frozen=True)
class BadgeCard:
    """One badge on a sheet: what is printed (the token becomes the QR code)."""

    name: str
    member_no: str
    unit: str
    serial: str
    token: str


@lru_cache(maxsize=8)
def _font(size: int) -> Any:
    try:
        return ImageFont.truetype(CJK_FONT, size, index=CJK_FONT_INDEX)
    except OSError:
        logger.warning("CJK font %s missing (apt-get install fonts-noto-cjk): names print as boxes", CJK_FONT)
        return ImageFont.load_default()


def _qr_image(text: str, size: int) -> Image.Image:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, box_size=10)
    code.add_data(text)
    code.make(fit=True)
    return (
        code.make_image(fill_color="black", back_color="white")
        .get_image()
        .convert("L")
        .resize((size, size), Image.Resampling.NEAREST)
    )


def _fit(text: str, size: int, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels at ``size``."""
    font = _font(size)
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _draw_badge(page: Image.Image, card: BadgeCard, x: int, y: int, w: int, h: int) -> None:
    """Text on the left, the QR code (with its quiet zone) on the right: nothing overlaps the code."""
    draw = ImageDraw.Draw(page)
    draw.rounded_rectangle((x + 8, y + 8, x + w - 8, y + h - 8), radius=18, outline=(179, 38, 30), width=4)
    qr_size = min(h - 60, w // 2 + 20)
    qr_x = x + w - qr_size - 20
    text_x = x + 32
    text_w = qr_x - text_x - 8
    size = 44 if _font(44).getlength(card.name) <= text_w else 34  # long names: smaller before shortening
    draw.text((text_x, y + 48), _fit(card.name, size, text_w), font=_font(size), fill="black")
    draw.text((text_x, y + 118), _fit(card.member_no, 28, text_w), font=_font(28), fill=(60, 60, 60))
    draw.text((text_x, y + 164), _fit(card.unit, 24, text_w), font=_font(24), fill=(60, 60, 60))
    draw.text((text_x, y + h - 76), f"No. {card.serial}", font=_font(20), fill=(100, 100, 100))
    page.paste(_qr_image(card.token, qr_size).convert("RGB"), (qr_x, y + (h - qr_size) // 2))


def render_pages(
    cards: Sequence[BadgeCard], progress: Callable[[int, int], None] | None = None
) -> list[Image.Image]:
    """A4 pages of ``COLUMNS × ROWS`` badges each; ``progress(done_pages, total_pages)`` after each page."""
    per_page = COLUMNS * ROWS
    total = max(1, -(-len(cards) // per_page))
    cell_w, cell_h = (PAGE[0] - 2 * MARGIN) // COLUMNS, (PAGE[1] - 2 * MARGIN) // ROWS
    pages = []
    for p in range(total):
        page = Image.new("RGB", PAGE, "white")
        for i, card in enumerate(cards[p * per_page : (p + 1) * per_page]):
            col, row = i % COLUMNS, i // COLUMNS
            _draw_badge(page, card, MARGIN + col * cell_w, MARGIN + row * cell_h, cell_w, cell_h)
        pages.append(page)
        if progress:
            progress(p + 1, total)
    return pages


def sheet_bytes(
    cards: Sequence[BadgeCard], fmt: str, page: int = 1, progress: Callable[[int, int], None] | None = None
) -> bytes:
    """The sheet as a multi-page PDF, or one page (1-based ``page``) as PNG."""
    out = io.BytesIO()
    if fmt == "pdf":
        pages = render_pages(cards, progress)
        pages[0].save(out, "PDF", resolution=DPI, save_all=True, append_images=pages[1:])
    else:
        per_page = COLUMNS * ROWS
        chunk = list(cards[(page - 1) * per_page : page * per_page])
        render_pages(chunk, progress)[0].save(out, "PNG", optimize=True)
    return out.getvalue()


def _seal() -> bytes:
    from server.qr.keys import sealing_key

    return sealing_key(current_app.config)


def _unit_members(s: Session, unit: Unit) -> list[Member]:
    scope = current_scope()
    return list(
        s.scalars(
            select(Member)
            .where(Member.unit_id == unit.id, Member.status == "active", scope.clause(Member))
            .order_by(Member.member_no)
        )
    )


def _active_badges(s: Session, member_ids: list[int]) -> dict[int, str]:
    """member id → serial of their newest active badge."""
    rows = s.execute(
        select(QrBadge.member_id, QrBadge.serial)
        .join(Credential, Credential.id == QrBadge.credential_id)
        .where(QrBadge.member_id.in_(member_ids), Credential.status == "active")
        .order_by(QrBadge.id)
    )
    return {member_id: serial for member_id, serial in rows}


def unit_cards(s: Session, unit: Unit) -> tuple[list[BadgeCard], list[Member]]:
    """Printable badges of the unit's members in scope, and the members who have no badge yet."""
    from server.qr.badges import BadgeError, badge_token

    members = _unit_members(s, unit)
    serials = _active_badges(s, [m.id for m in members])
    seal = _seal()
    cards, missing = [], []
    for m in members:
        serial = serials.get(m.id)
        if serial is None:
            missing.append(m)
            continue
        try:
            token = badge_token(s, serial, seal=seal)
        except BadgeError as exc:  # signed with a retired key: it needs a new badge
            logger.info("badge %s not printable: %s", serial, exc)
            missing.append(m)
            continue
        cards.append(BadgeCard(m.name, m.member_no, unit.name, serial, token))
    return cards, missing


@bp.get("/units/<int:unit_id>/badges")
def page(unit_id: int) -> Any:
    scope = current_scope()
    s = db()
    unit = scope.get_or_404(s, Unit, unit_id)
    cards, missing = unit_cards(s, unit)
    pages = max(1, -(-len(cards) // (COLUMNS * ROWS)))
    return render_template(
        "cards/badges.html", unit=unit, cards=cards, missing=missing, pages=pages, can_write=scope.can_write
    )


@bp.get("/units/<int:unit_id>/badges/sheet")
def sheet(unit_id: int) -> Any:
    """``?format=pdf`` (default, every member) or ``?format=png&page=N``."""
    scope = current_scope()
    s = db()
    unit = scope.get_or_404(s, Unit, unit_id)
    fmt = request.args.get("format", "pdf")
    if fmt not in ("pdf", "png"):
        abort(400)
    cards, _missing = unit_cards(s, unit)
    if not cards:
        flash(t("badges.none"), "warn")
        return redirect(url_for("web_badges.page", unit_id=unit.id))
    page_no = max(1, request.args.get("page", 1, type=int) or 1)

    def progress(done: int, total: int) -> None:
        if total > 1:
            logger.info("badge sheet for unit %s: page %d/%d", unit.code, done, total)

    body = sheet_bytes(cards, fmt, page=page_no, progress=progress)
    mime = "application/pdf" if fmt == "pdf" else "image/png"
    name = f"badges-{unit.code}" + (f"-p{page_no}" if fmt == "png" else "") + f".{fmt}"
    return Response(body, mimetype=mime, headers={"Content-Disposition": f'inline; filename="{name}"'})


@bp.post("/units/<int:unit_id>/badges/issue")
def issue(unit_id: int) -> Any:
    """Issue a badge to every active member of the unit (in scope) who has none; audited per badge."""
    from server.qr.badges import issue_badge
    from server.qr.keys import NoSigningKey, ensure_signing_key

    scope = require_write()
    s = db()
    unit = scope.get_or_404(s, Unit, unit_id)
    _cards, missing = unit_cards(s, unit)
    seal = _seal()
    try:
        ensure_signing_key(s, seal)
        for member in missing:
            issued = issue_badge(
                s, member, seal=seal, credential_key=key_bytes(current_app.config, "CREDENTIAL_KEY"),
                issued_by=g.user.id,
            )  # fmt: skip
            audit.record(
                s,
                action="badge.issue",
                object_type="credential",
                object_id=issued.credential.id,
                after={"member_id": member.id, "serial": issued.badge.serial, "kind": "badge_qr"},
                community_id=member.community_id,
            )
    except NoSigningKey as exc:
        s.rollback()
        flash(t("badges.key_error", error=str(exc)), "error")
        return redirect(url_for("web_badges.page", unit_id=unit.id))
    s.commit()
    flash(t("badges.issued", n=len(missing)), "ok")
    return redirect(url_for("web_badges.page", unit_id=unit.id))
