"""What the screen shows after a read: :class:`TapOutcome`, with its colour and bilingual text.

The touch UI renders these as they arrive on the event stream; they carry no personal data beyond the
masked name and the unit, the same things the member's own confirmation needs.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


class OutcomeKind(enum.StrEnum):
    IN = "in"
    IN_ELSEWHERE = "in_elsewhere"  # checked in here; the session still open at another centre goes to review
    OUT = "out"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    LOCKED = "locked"  # the kiosk is locked by a remote command; the tap is still recorded
    PIN_WRONG = "pin_wrong"
    PIN_LOCKED = "pin_locked"
    INVALID = "invalid"  # a value that is not a credential (garbled read); nothing recorded
    ERROR = "error"  # could not be recorded (outbox full, disk error); the member is told to see staff
    STAFF = "staff"  # a staff card or PIN opened (or closed) maintenance mode
    BINDING_CAPTURED = "binding_captured"  # binding mode: a new card was read, pick the member
    BOUND = "bound"  # binding saved to the outbox
    QR_REFUSED = "qr_refused"  # a genuine signed QR code refused (expired, replayed, revoked); recorded


COLOURS: dict[OutcomeKind, str] = {
    OutcomeKind.IN: "green",
    OutcomeKind.OUT: "green",
    OutcomeKind.IN_ELSEWHERE: "amber",
    OutcomeKind.DUPLICATE: "amber",
    OutcomeKind.UNKNOWN: "amber",  # recorded for staff to confirm: a warning, not a failure
    OutcomeKind.STAFF: "blue",
    OutcomeKind.BINDING_CAPTURED: "blue",
    OutcomeKind.BOUND: "green",
}


def format_duration(seconds: float | None, language: str) -> str:
    if seconds is None:
        return ""
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    if language == "zh":
        return f"{hours}小时{minutes}分钟" if hours else f"{minutes}分钟"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def messages_for(
    kind: OutcomeKind,
    *,
    duration_s: float | None = None,
    previous: str | None = None,
    retry_s: float = 0,
    elsewhere: str | None = None,
) -> tuple[str, str]:
    """(Chinese, English) text for the confirmation screen; ``elsewhere`` names the other centre."""
    zh_d, en_d = format_duration(duration_s, "zh"), format_duration(duration_s, "en")
    minutes = max(1, int(retry_s // 60 + (1 if retry_s % 60 else 0)))
    table = {
        OutcomeKind.IN: ("签到成功", "Checked in"),
        OutcomeKind.OUT: (f"签退成功，本次服务 {zh_d}", f"Checked out after {en_d}"),
        OutcomeKind.IN_ELSEWHERE: (
            f"签到成功。您在{elsewhere or '其他服务中心'}的签到尚未签退，将交由工作人员审核",
            f"Checked in. Your open session at {elsewhere or 'another centre'} goes to staff review",
        ),
        OutcomeKind.UNKNOWN: (
            "本终端未登记此卡。刷卡已记录，工作人员将核实确认",
            "This card is not registered at this kiosk. The tap is recorded; staff will confirm it",
        ),
        OutcomeKind.REVOKED: (
            "此凭证已停用,请联系工作人员",
            "This card has been withdrawn — please see staff",
        ),
        OutcomeKind.LOCKED: ("终端暂停使用,请联系工作人员", "This kiosk is locked — please see staff"),
        OutcomeKind.PIN_WRONG: ("编号或密码错误", "Wrong member number or PIN"),
        OutcomeKind.PIN_LOCKED: (
            f"尝试次数过多,请 {minutes} 分钟后再试或联系工作人员",
            f"Too many attempts — try again in {minutes} min or see staff",
        ),
        OutcomeKind.INVALID: ("无法识别,请重试", "Could not read — please try again"),
        OutcomeKind.ERROR: ("记录失败,请联系工作人员", "Could not record — please see staff"),
        OutcomeKind.STAFF: ("维护模式", "Maintenance mode"),
        OutcomeKind.BINDING_CAPTURED: ("已读取新卡,请选择党员", "New card read — choose the member"),
        OutcomeKind.BOUND: ("绑定已保存", "Binding saved"),
        OutcomeKind.QR_REFUSED: ("二维码无效,请联系工作人员", "This code cannot be used — please see staff"),
    }
    if kind is OutcomeKind.DUPLICATE:
        if previous == "out":
            return "已签退", "Already checked out"
        return "已签到", "Already checked in"
    return table[kind]


@dataclass(frozen=True, slots=True)
class TapOutcome:
    """One read's result as the screen shows it. ``n`` increases by one per outcome in this process."""

    n: int
    kind: OutcomeKind
    colour: str
    message_zh: str
    message_en: str
    at: dt.datetime
    reader_id: str | None = None
    credential_kind: str | None = None
    member_id: int | None = None
    masked_name: str | None = None
    unit_name: str | None = None
    duration_s: float | None = None
    event_id: str | None = None
    seq: int | None = None
    recorded: bool = False
    latency_ms: float | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["at"] = self.at.isoformat()
        return out


def colour_for(kind: OutcomeKind) -> str:
    return COLOURS.get(kind, "red")
