"""The review queue reads the one flag vocabulary: exactly the sessions with a configured flag are queued,
``REVIEW_FLAGS`` changes which, and every page and export shows a flag's words, never its stored code."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import select

from protocol.flags import DEFAULT_REVIEW_FLAGS, TapFlag
from server import create_app
from server.models import ServiceSession, utcnow
from server.sessions.store import recompute_sessions
from tests.factories import make_member, make_tap, utc, web_session

QUEUED_ROW = 'data-session="{}"'


def _flagged_sessions(db_session: Any, world: Any, flags: list[str | None]) -> dict[str | None, int]:
    """One closed session per value of ``flags`` (the value on its check-in tap), each on its own day,
    for a new member of side A; returns value → session id."""
    member = make_member(db_session, world.a.unit, world.a.community, name="标记党员")
    for day, value in enumerate(flags, start=1):
        make_tap(db_session, world.a.kiosk, member, utc(2025, 5, day, 1, 0), direction="in", flags=value)
        make_tap(db_session, world.a.kiosk, member, utc(2025, 5, day, 2, 0), direction="out")
    recompute_sessions(db_session, [member.id], now=utcnow())
    db_session.commit()
    rows = db_session.scalars(
        select(ServiceSession)
        .where(ServiceSession.member_id == member.id)
        .order_by(ServiceSession.started_at)
    ).all()
    assert [r.status for r in rows] == ["closed"] * len(flags)
    return {value: row.id for value, row in zip(flags, rows, strict=True)}


def _queued(client: Any, ids: dict[str | None, int]) -> set[str | None]:
    page = client.get("/review?member=标记党员").get_data(as_text=True)
    return {value for value, sid in ids.items() if QUEUED_ROW.format(sid) in page}


VALUES: list[str | None] = [
    *(f.value for f in TapFlag),
    "unknown_member:4711",  # a flag with its detail
    "future_time,gap",  # two flags on one tap
    "reader_retry",  # not in the vocabulary: shown, never queued
    "hash-mismatch",  # would match hash_mismatch if "_" were left a LIKE wildcard
    None,
]


def test_queue_holds_exactly_the_sessions_with_a_configured_flag(client, db_session, world) -> None:
    ids = _flagged_sessions(db_session, world, VALUES)
    web_session(client, world.users["staff_a"])
    expected = {f.value for f in DEFAULT_REVIEW_FLAGS} | {"future_time,gap"}
    assert _queued(client, ids) == expected
    # hash_mismatch is queued, and its name inside prev_hash_mismatch does not make it match by accident
    assert {"hash_mismatch", "prev_hash_mismatch"} <= expected


def test_changing_review_flags_changes_the_queue(app_config, db_session, world) -> None:
    ids = _flagged_sessions(db_session, world, VALUES)
    narrow = create_app({**app_config, "REVIEW_FLAGS": ["hash_mismatch", "unknown_member"]})
    try:
        client = narrow.test_client()
        web_session(client, world.users["staff_a"])
        assert _queued(client, ids) == {"hash_mismatch", "unknown_member", "unknown_member:4711"}
        page = client.get("/review").get_data(as_text=True)
        # sessions queued by their status stay in the queue whatever the flags
        assert QUEUED_ROW.format(world.a.auto_closed_session_id) in page
    finally:
        narrow.extensions["baodao_db"].dispose()
    none = create_app({**app_config, "REVIEW_FLAGS": []})
    try:
        client = none.test_client()
        web_session(client, world.users["staff_a"])
        assert _queued(client, ids) == set()
    finally:
        none.extensions["baodao_db"].dispose()


def test_an_unknown_review_flag_stops_start_up_naming_it(app_config) -> None:
    from server.config import ConfigError

    with pytest.raises(ConfigError, match="chain_gap") as caught:
        create_app({**app_config, "REVIEW_FLAGS": ["gap", "chain_gap"]})
    assert "REVIEW_FLAGS" in str(caught.value)
    assert "不是已知的刷卡标记" in str(caught.value) and "unknown tap flag" in str(caught.value)


def test_queue_row_shows_labels_and_explanations_not_codes(client, db_session, world) -> None:
    ids = _flagged_sessions(db_session, world, ["gap", "qr_replayed", "reader_retry,outside_roster"])
    web_session(client, world.users["staff_a"])
    page = client.get("/review?member=标记党员").get_data(as_text=True)
    assert TapFlag.GAP.label_zh in page and TapFlag.GAP.explain_zh in page
    assert TapFlag.QR_REPLAYED.label_zh in page and TapFlag.QR_REPLAYED.explain_zh in page
    assert f'title="{TapFlag.GAP.explain_zh}"' in page
    # the raw codes appear only as data attributes, never as text a person reads
    assert ">gap<" not in page and ">qr_replayed<" not in page
    # an unknown stored value is shown as it is, marked unknown (its session is queued by its other flag)
    assert QUEUED_ROW.format(ids["reader_retry,outside_roster"]) in page
    assert "未知标记：reader_retry" in page and 'data-code="reader_retry" data-known="false"' in page
    full = client.get("/review").get_data(as_text=True)
    assert "超过闭馆时间" in full  # the auto-closed session's reason, with its sentence
    assert "服务中心闭馆时仍未签退" in full

    with client.session_transaction() as sess:
        sess["locale"] = "en"
    english = client.get("/review?member=标记党员").get_data(as_text=True)
    assert TapFlag.GAP.label_en in english and str(escape(TapFlag.GAP.explain_en)) in english
    assert "Unknown flag: reader_retry" in english and TapFlag.GAP.label_zh not in english


def test_detail_and_timeline_show_flag_labels(client, db_session, world) -> None:
    ids = _flagged_sessions(db_session, world, ["hash_mismatch", "unknown_member:4711"])
    web_session(client, world.users["staff_a"])
    detail = client.get(f"/review/{ids['hash_mismatch']}").get_data(as_text=True)
    assert TapFlag.HASH_MISMATCH.label_zh in detail and TapFlag.HASH_MISMATCH.explain_zh in detail
    assert ">hash_mismatch<" not in detail
    row = db_session.get(ServiceSession, ids["hash_mismatch"])
    timeline = client.get(f"/members/{row.member_id}/timeline").get_data(as_text=True)
    assert TapFlag.HASH_MISMATCH.label_zh in timeline
    assert f"{TapFlag.UNKNOWN_MEMBER.label_zh}（4711）" in timeline
    assert f'title="{TapFlag.HASH_MISMATCH.explain_zh}"' in timeline
    side_a = client.get(f"/members/{world.a.member.id}/timeline").get_data(as_text=True)
    assert TapFlag.CLOCK_DRIFT.label_zh in side_a and "超过闭馆时间" in side_a


def _csv_rows(response: Any) -> list[list[str]]:
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_exports_name_flags_and_reasons_in_words(client, db_session, world) -> None:
    _flagged_sessions(db_session, world, ["future_time,gap", "reader_retry"])
    web_session(client, world.users["staff_a"])
    rows = _csv_rows(client.get("/export/sessions?member=标记党员"))
    header = rows[0]
    flags_col, reason_col = header.index("刷卡标记"), header.index("原因")
    assert [r[flags_col] for r in rows[1:]] == [
        f"{TapFlag.FUTURE_TIME.label_zh}；{TapFlag.GAP.label_zh}",
        "未知标记：reader_retry",
    ]
    queue = _csv_rows(client.get("/export/review"))
    by_reason = {r[reason_col] for r in queue[1:]}
    assert "超过闭馆时间" in by_reason and "closing_time" not in by_reason
    assert TapFlag.CLOCK_DRIFT.label_zh in {r[flags_col] for r in queue[1:]}

    from openpyxl import load_workbook

    with client.session_transaction() as sess:
        sess["locale"] = "en"
    response = client.get("/export/review?format=xlsx")
    book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
    sheet = list(book.worksheets[0].iter_rows(values_only=True))
    col = sheet[0].index("Tap flags")
    assert f"{TapFlag.FUTURE_TIME.label_en}；{TapFlag.GAP.label_en}" in {r[col] for r in sheet[1:]}
    assert "Past closing time" in {r[sheet[0].index("Reason")] for r in sheet[1:]}
