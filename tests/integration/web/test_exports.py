"""CSV (UTF-8 with BOM) and XLSX exports of lists and reports, within the user's scope."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from tests.factories import make_member, web_session


def _csv(response) -> list[list[str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/csv"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read Chinese as UTF-8"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def _xlsx(response) -> list[tuple]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
    return list(book.worksheets[0].iter_rows(values_only=True))


def test_sessions_export_respects_scope_and_filters(client, world) -> None:
    web_session(client, world.users["staff_a"])
    rows = _csv(client.get("/export/sessions"))
    assert rows[0][:2] == ["党员编号", "姓名"]
    assert {r[1] for r in rows[1:]} == {"甲方党员"} and len(rows) == 3
    assert not any("乙方" in cell for row in rows for cell in row)
    only_closed = _csv(client.get("/export/sessions?status=closed"))
    assert len(only_closed) == 2 and only_closed[1][6] == "120"
    queue = _xlsx(client.get("/export/review?format=xlsx"))
    assert len(queue) == 2 and queue[1][1] == "甲方党员"


def test_admin_export_has_both_sides_in_xlsx(client, world) -> None:
    web_session(client, world.users["admin"])
    rows = _xlsx(client.get("/export/sessions?format=xlsx"))
    assert {r[1] for r in rows[1:]} == {"甲方党员", "乙方党员"}


def test_members_export_masks_phones_and_defuses_formulas(client, db_session, world) -> None:
    make_member(db_session, world.a.unit, world.a.community, name="=HYPERLINK(1)")
    db_session.commit()
    web_session(client, world.users["staff_a"])
    rows = _csv(client.get("/export/members"))
    names = {r[1] for r in rows[1:]}
    assert "'=HYPERLINK(1)" in names and "=HYPERLINK(1)" not in names
    phones = {r[4] for r in rows[1:] if r[4]}
    assert phones and all("13812345678" not in p for p in phones)
    assert not any("乙方" in cell for row in rows for cell in row)


def test_report_exports(client, world) -> None:
    web_session(client, world.users["staff_a"])
    hours = _csv(client.get("/reports/hours?group=unit&year=2025&month=3&format=csv"))
    assert hours[1][:2] == [world.a.unit.code, "甲方单位"] and hours[1][3] == "120"
    assert len(hours) == 2
    grid = _xlsx(client.get("/reports/activity?date_from=2025-03-01&date_to=2025-03-31&format=xlsx"))
    assert grid[1][0] == "周一" and grid[1][1 + 9] == 1 and grid[2][1 + 9] == 1
    idle = _csv(client.get("/reports/idle?format=csv"))
    assert idle[0][2] == "党员编号"
    fleet = _csv(client.get("/fleet/?format=csv"))
    assert len(fleet) == 2 and fleet[1][0] == world.a.kiosk.name


def test_unknown_format_is_refused(client, world) -> None:
    web_session(client, world.users["admin"])
    assert client.get("/export/sessions?format=exe").status_code == 400
    assert client.get("/reports/hours?format=pdf").status_code == 400


def test_english_headers_follow_the_locale(client, world) -> None:
    web_session(client, world.users["admin"])
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    rows = _csv(client.get("/export/members"))
    assert rows[0][:2] == ["Member no.", "Name"]
