"""The one vocabulary of tap flags: what can be doubtful about a stored tap, and what a reviewer reads.

A flag is written on a ``tap_events`` row when it is stored (the rows are append-only, so the flag is
decided before the insert) and read by the review queue, the timeline and the exports. Every writer and
every reader uses :class:`TapFlag`; a flag that is not a member here is a bug, not a new flag.

Stored form: a comma-separated text of flag values, each optionally followed by ``:detail`` (for example
``unknown_member:4711``). :func:`join_flags` writes it and :func:`parse_flags` reads it.

The chain flags have the values of :class:`protocol.chain.BreakReason` (a test keeps every break
reason a flag), because a chain break is the commonest doubt and the kiosk's acknowledgement names it on
the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

#: Longest stored flags text (the column is ``String(200)``).
FLAGS_MAX_LEN = 200


class TapFlag(enum.StrEnum):
    """Why a stored tap is doubtful. Values are stored in the database and shown in exports."""

    GAP = "gap"
    SEQ_REGRESSION = "seq_regression"
    PREV_HASH_MISMATCH = "prev_hash_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    MALFORMED = "malformed"
    FUTURE_TIME = "future_time"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    CLOCK_OFFSET_OUT_OF_RANGE = "clock_offset_out_of_range"
    CLOCK_DRIFT = "clock_drift"
    CLOCK_JUMP = "clock_jump"
    QR_REPLAYED = "qr_replayed"
    BADGE_ELSEWHERE = "badge_elsewhere"
    UNKNOWN_MEMBER = "unknown_member"
    OUTSIDE_ROSTER = "outside_roster"

    @property
    def label_zh(self) -> str:
        return _TEXTS[self].label_zh

    @property
    def label_en(self) -> str:
        return _TEXTS[self].label_en

    @property
    def explain_zh(self) -> str:
        return _TEXTS[self].explain_zh

    @property
    def explain_en(self) -> str:
        return _TEXTS[self].explain_en

    def label(self, locale: str) -> str:
        """The short label in ``locale`` (``zh…`` → Chinese, anything else → English)."""
        return self.label_zh if locale.lower().startswith("zh") else self.label_en

    def explain(self, locale: str) -> str:
        """The sentence a reviewer reads, in ``locale``."""
        return self.explain_zh if locale.lower().startswith("zh") else self.explain_en


@dataclass(frozen=True, slots=True)
class _Text:
    label_zh: str
    label_en: str
    explain_zh: str
    explain_en: str


_TEXTS: dict[TapFlag, _Text] = {
    TapFlag.GAP: _Text(
        "记录缺失",
        "Missing records",
        "该终端在此之前的若干条刷卡记录没有送达服务器，中间可能有记录丢失或被删除。",
        "Some of this kiosk's earlier taps never reached the server: records may be missing or deleted.",
    ),
    TapFlag.SEQ_REGRESSION: _Text(
        "序号倒退",
        "Sequence went back",
        "该记录的序号已被同一终端的另一条记录占用，终端的历史可能被复制或回滚。",
        "Another tap of this kiosk already holds this sequence number: its history may be cloned or "
        "rolled back.",
    ),
    TapFlag.PREV_HASH_MISMATCH: _Text(
        "链条断开",
        "Chain broken",
        "该记录没有接上同一终端的上一条记录，中间的记录可能被改动、重排或删除。",
        "This tap does not link to the kiosk's previous one: records in between may be edited, "
        "reordered or deleted.",
    ),
    TapFlag.HASH_MISMATCH: _Text(
        "记录被改动",
        "Record edited",
        "该记录的内容与它的校验值不符，上传前或上传后被改动过；以服务器最早保存的内容为准。",
        "The tap's content does not match its hash: it was edited; the copy the server stored first stands.",
    ),
    TapFlag.MALFORMED: _Text(
        "记录不完整",
        "Malformed record",
        "该记录缺少校验所需的字段，无法证明其完整性。",
        "The tap lacks a field the chain needs, so its integrity cannot be proven.",
    ),
    TapFlag.FUTURE_TIME: _Text(
        "时间在未来",
        "Time in the future",
        "终端记录的时间比服务器收到它的时间还晚，终端时钟可能不准。",
        "The tap's time lies after the moment the server received it: the kiosk's clock may be wrong.",
    ),
    TapFlag.TIME_OUT_OF_RANGE: _Text(
        "时间不可能",
        "Impossible time",
        "终端记录的时间不在 2000—2100 年之间，不计入服务时长。",
        "The tap's time is outside 2000–2100; it is kept but not counted as service.",
    ),
    TapFlag.CLOCK_OFFSET_OUT_OF_RANGE: _Text(
        "时钟偏差无法换算",
        "Clock offset unusable",
        "终端报告的时钟偏差大到无法换算成有效时间，已按终端自身时间保存。",
        "The kiosk's reported clock offset cannot be applied; the kiosk's own time was stored.",
    ),
    TapFlag.CLOCK_DRIFT: _Text(
        "终端时钟偏差大",
        "Kiosk clock drifting",
        "刷卡时终端时钟与服务器相差超过允许范围，记录的时间以服务器校正后的时间为准，请核对。",
        "At the tap the kiosk's clock differed from the server's by more than the allowed bound; the "
        "time shown is corrected, please check it.",
    ),
    TapFlag.CLOCK_JUMP: _Text(
        "终端时钟跳变",
        "Kiosk clock jumped",
        "终端测得的时钟偏差与前一次相比突然大幅变化，校正后的时间可能有误。",
        "The kiosk's measured clock offset changed abruptly since its previous tap; the corrected time "
        "may be wrong.",
    ),
    TapFlag.QR_REPLAYED: _Text(
        "二维码重复使用",
        "QR code reused",
        "同一个手机二维码在另一台终端也被使用过，可能是截图转发。",
        "The same phone QR code was also used at another kiosk: possibly a forwarded screenshot.",
    ),
    TapFlag.BADGE_ELSEWHERE: _Text(
        "胸卡异地使用",
        "Badge used elsewhere",
        "同一张二维码胸卡几分钟内在另一台终端也被使用过，可能被复印或借用。",
        "The same QR badge was used at another kiosk within minutes: possibly copied or lent.",
    ),
    TapFlag.UNKNOWN_MEMBER: _Text(
        "党员不存在",
        "Unknown member",
        "终端记录的党员编号在服务器上不存在，该记录未计入任何人。",
        "The member id the kiosk recorded does not exist on the server; the tap is credited to nobody.",
    ),
    TapFlag.OUTSIDE_ROSTER: _Text(
        "非本社区名册",
        "Outside the roster",
        "刷卡人不在该终端的名册中，服务器根据凭证认出了此人，请确认其确实在此服务。",
        "The member was not in this kiosk's roster; the server recognised the credential. Please "
        "confirm they served here.",
    ),
}


@dataclass(frozen=True, slots=True)
class FlagEntry:
    """One stored flag: the known flag (``None`` for a value not in the vocabulary) and its detail."""

    raw: str
    flag: TapFlag | None
    detail: str | None


def flag_text(flag: TapFlag, detail: object | None = None) -> str:
    """One flag as it is stored: ``value`` or ``value:detail``."""
    return flag.value if detail is None else f"{flag.value}:{detail}"


def join_flags(parts: Iterable[str]) -> str | None:
    """The stored column value of flag texts (from :func:`flag_text`), ``None`` when there are none."""
    return ",".join(p for p in parts if p)[:FLAGS_MAX_LEN] or None


def parse_flags(stored: str | None) -> list[FlagEntry]:
    """The flags of a stored column value, in stored order; unknown values are kept with ``flag=None``."""
    entries: list[FlagEntry] = []
    for raw in (stored or "").split(","):
        raw = raw.strip()
        if not raw:
            continue
        name, _, detail = raw.partition(":")
        try:
            flag: TapFlag | None = TapFlag(name)
        except ValueError:
            flag = None
        entries.append(FlagEntry(raw, flag, detail or None))
    return entries


#: Flags that send a tap's session to staff review unless configured otherwise (server ``REVIEW_FLAGS``).
#: ``time_out_of_range`` taps never form a session and ``unknown_member`` taps belong to nobody, so they
#: are listed on the timeline and in exports but have no session to review.
DEFAULT_REVIEW_FLAGS: frozenset[TapFlag] = frozenset(TapFlag) - {
    TapFlag.TIME_OUT_OF_RANGE,
    TapFlag.UNKNOWN_MEMBER,
}
