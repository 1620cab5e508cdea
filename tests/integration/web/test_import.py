"""CSV import: encodings, line-numbered errors, a dry run that changes nothing, 13,000 members in bulk."""

from __future__ import annotations

import io
import re
import secrets

from sqlalchemy import func, select

from server.models import AuditRecord, Member, Unit, UnitCommunity
from tests.factories import web_csrf, web_session

HEADER = "党员编号,姓名,单位编码,社区编码,手机号,身份证号,状态\n"
VALID_ID = "11010519491231002X"  # a well-formed number with a correct check digit


def _upload(client, data: bytes, kind: str = "members"):  # type: ignore[no-untyped-def]
    return client.post(
        "/import",
        data={"kind": kind, "csrf_token": web_csrf(client), "file": (io.BytesIO(data), "党员.csv")},
        content_type="multipart/form-data",
    )


def _apply(client, page: str):  # type: ignore[no-untyped-def]
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    return client.post("/import/apply", data={"token": token, "csrf_token": web_csrf(client)})


def _members(s) -> int:  # type: ignore[no-untyped-def]
    return s.scalar(select(func.count()).select_from(Member))


def test_utf8_bom_dry_run_changes_nothing_then_apply(app, client, db_session, world, tmp_path) -> None:
    app.config["IMPORT_DIR"] = str(tmp_path / "imports")
    web_session(client, world.users["staff_a"])
    a = world.a
    text = HEADER + f"N0001,李新,{a.unit.code},{a.community.code},13900001111,{VALID_ID},正常\n"
    text += f"{a.member.member_no},甲方党员改名,{a.unit.code},,,,\n"
    before = _members(db_session)
    dry = _upload(client, b"\xef\xbb\xbf" + text.encode())
    page = dry.get_data(as_text=True)
    assert dry.status_code == 200 and "新增 1 条" in page and "更新 1 条" in page and "错误 0 条" in page
    db_session.expire_all()
    assert _members(db_session) == before and db_session.get(Member, a.member.id).name == "甲方党员"
    stored = "".join(p.read_text() for p in (tmp_path / "imports").iterdir())
    assert VALID_ID not in stored  # the raw ID number is not even in the waiting dry-run file
    done = _apply(client, page).get_data(as_text=True)
    assert "导入完成" in done and "已处理 2 / 2" in done
    db_session.expire_all()
    new = db_session.scalar(select(Member).where(Member.member_no == "N0001"))
    assert (
        new.community_id == a.community.id and new.national_id_hash and VALID_ID not in new.national_id_hash
    )
    assert db_session.get(Member, a.member.id).name == "甲方党员改名"
    record = db_session.scalar(select(AuditRecord).where(AuditRecord.action == "import.members"))
    assert record.after["created"] == 1 and VALID_ID not in str(record.after)


def test_gb18030_and_line_numbered_errors(app, client, db_session, world, tmp_path) -> None:
    app.config["IMPORT_DIR"] = str(tmp_path / "imports")
    web_session(client, world.users["staff_a"])
    a, b = world.a, world.b
    text = HEADER
    text += f"G0001,王芳,{a.unit.code},,,,\n"  # line 2: fine
    text += "G0002,赵强,NOUNIT,,,,\n"  # line 3: unknown unit
    text += f"G0003,钱多,{a.unit.code},,,110105194912310021,\n"  # line 4: bad check digit
    text += f"G0001,重复,{a.unit.code},,,,\n"  # line 5: duplicate of line 2
    text += f"G0005,孙越,{a.unit.code},{b.community.code},,,\n"  # line 6: another community
    response = _upload(client, text.encode("gb18030"))
    page = response.get_data(as_text=True)
    assert "错误 4 条" in page and 'name="token"' not in page
    errors = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td></tr>", page)
    assert [int(line) for line, _ in errors] == [3, 4, 5, 6]
    assert "NOUNIT" in errors[0][1] and "第 2 行" in errors[2][1]
    assert _members(db_session) == 2


def test_units_import_with_pairings(app, client, db_session, world, tmp_path) -> None:
    app.config["IMPORT_DIR"] = str(tmp_path / "imports")
    web_session(client, world.users["admin"])
    text = f"单位编码,单位名称,报到社区\nUX1,新单位,{world.a.community.code};{world.b.community.code}\n{world.a.unit.code},甲方单位,\n"
    page = _upload(client, text.encode(), kind="units").get_data(as_text=True)
    assert "新增 1 条" in page and "新增报到关系 2 条" in page and "无变化 1 条" in page
    assert "导入完成" in _apply(client, page).get_data(as_text=True)
    unit = db_session.scalar(select(Unit).where(Unit.code == "UX1"))
    pairs = db_session.scalar(
        select(func.count()).select_from(UnitCommunity).where(UnitCommunity.unit_id == unit.id)
    )
    assert pairs == 2
    staff = client.application.test_client()
    web_session(staff, world.users["staff_a"])
    refused = _upload(staff, text.encode(), kind="units").get_data(as_text=True)
    assert "只有管理员可以导入单位" in refused


def test_thirteen_thousand_members(app, client, db_session, world, tmp_path) -> None:
    app.config["IMPORT_DIR"] = str(tmp_path / "imports")
    web_session(client, world.users["admin"])
    a = world.a
    rows = [HEADER]
    for i in range(13_000):
        rows.append(f"B{i:06d},党员{i},{a.unit.code},{a.community.code},139{i:08d},,\n")
    page = _upload(client, "".join(rows).encode()).get_data(as_text=True)
    assert "新增 13000 条" in page
    done = _apply(client, page).get_data(as_text=True)
    assert "已处理 13000 / 13000" in done and "已处理 1000 / 13000" in done
    assert _members(db_session) == 13_002
    # a second run of the same file changes nothing
    again = _upload(client, "".join(rows).encode()).get_data(as_text=True)
    assert "无变化 13000 条" in again and 'name="token"' not in again


def test_apply_token_is_bound_to_its_user(app, client, db_session, world, tmp_path) -> None:
    app.config["IMPORT_DIR"] = str(tmp_path / "imports")
    web_session(client, world.users["admin"])
    page = _upload(
        client,
        (
            HEADER + f"T{secrets.randbelow(9999)},某,{world.a.unit.code},{world.a.community.code},,,\n"
        ).encode(),
    )
    other = client.application.test_client()
    web_session(other, world.users["staff_a"])
    assert _apply(other, page.get_data(as_text=True)).status_code == 404
    assert _members(db_session) == 2
