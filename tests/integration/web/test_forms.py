"""The WTForms forms of the staff pages: every error next to its field as well as in the summary, in
Chinese or English, what was typed kept, and no English text of WTForms' own on a Chinese page."""

from __future__ import annotations

import re
from html import unescape

from tests.factories import web_csrf, web_session

#: Texts WTForms writes itself (its defaults): none may reach a person on a Chinese page.
WTFORMS_ENGLISH = (
    "This field is required",
    "Not a valid",
    "Field must be",
    "Invalid input",
    "Invalid value",
)


def field_errors(body: str, name: str, form_id: str | None = None) -> list[str]:
    """The messages shown under the input named ``name`` (inside its ``<label class="field">``)."""
    if form_id is not None:
        found = re.search(rf'id="{form_id}">(.*?)</form>', body, re.S)
        assert found is not None, form_id
        body = found.group(1)
    label = re.search(rf'<label class="field[^"]*">(?:(?!</label>).)*?name="{name}".*?</label>', body, re.S)
    assert label is not None, name
    return [unescape(m) for m in re.findall(r'<small class="error">(.*?)</small>', label.group(0), re.S)]


def marked(body: str, name: str, form_id: str) -> bool:
    found = re.search(rf'id="{form_id}">(.*?)</form>', body, re.S)
    assert found is not None
    label = re.search(rf'<label class="field([^"]*)">(?:(?!</label>).)*?name="{name}"', found.group(1), re.S)
    assert label is not None, name
    return "has-error" in label.group(1)


def assert_no_wtforms_english(body: str) -> None:
    for text in WTFORMS_ENGLISH:
        assert text not in body, text


def test_adjust_errors_stand_next_to_their_fields(client, world) -> None:
    web_session(client, world.users["staff_a"])
    response = client.post(
        f"/review/{world.a.closed_session_id}/adjust",
        data={
            "started_at": "2025-03-03T09:00",
            "ended_at": "2027-03-03T11:00",
            "minutes": "abc",
            "reason": "",
            "csrf_token": web_csrf(client),
        },
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_errors(body, "minutes", "adjust-form") == ["计入分钟须为不小于 0 的整数。"]
    assert field_errors(body, "reason", "adjust-form") == ["请填写理由。"]
    ended = field_errors(body, "ended_at", "adjust-form")
    assert any(e.startswith("签退时间不能晚于 2025-03-03 23:00") for e in ended)
    assert any(e.startswith("时间不能晚于现在") for e in ended)
    assert marked(body, "started_at", "adjust-form")  # a span problem marks both times
    assert not marked(body, "reason", "reject-form")  # the other forms stay clean
    assert field_errors(body, "reason", "reject-form") == []
    assert_no_wtforms_english(body)


def test_adjust_errors_in_english_next_to_fields(client, world) -> None:
    web_session(client, world.users["staff_a"])
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    response = client.post(
        f"/review/{world.a.closed_session_id}/adjust",
        data={
            "started_at": "yesterday",
            "ended_at": "2025-03-03T10:00",
            "minutes": "-3",
            "reason": "x" * 501,
            "csrf_token": web_csrf(client),
        },
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_errors(body, "started_at", "adjust-form") == ["The check-in time is not valid."]
    assert field_errors(body, "reason", "adjust-form") == ["The reason must be at most 500 characters."]
    assert field_errors(body, "minutes", "adjust-form")[0].startswith("Minutes")
    assert 'value="yesterday"' in body and 'value="-3"' in body


def test_manual_entry_errors_next_to_fields_in_both_languages(client, world) -> None:
    web_session(client, world.users["staff_a"])
    form = {
        "member_no": "NO-SUCH-1",
        "centre_id": str(world.a.centre.id),
        "started_at": "",
        "ended_at": "not a time",
        "reason": "",
        "csrf_token": web_csrf(client),
    }
    body = client.post("/review/manual", data=form).get_data(as_text=True)
    assert field_errors(body, "member_no") == ["找不到该党员编号或卡号。"]
    assert field_errors(body, "started_at") == ["请填写签到时间。"]
    assert field_errors(body, "ended_at") == ["签退时间格式不正确。"]
    assert field_errors(body, "reason") == ["请填写理由。"]
    assert 'value="NO-SUCH-1"' in body and 'value="not a time"' in body
    assert_no_wtforms_english(body)
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    body = client.post("/review/manual", data=form).get_data(as_text=True)
    assert field_errors(body, "member_no") == ["No member with this number or card."]
    assert field_errors(body, "started_at") == ["Give the check-in time."]
    assert field_errors(body, "reason") == ["A reason is required."]


# ---- members ---------------------------------------------------------------------------------------


def _member_form(world, **changes: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    form = {
        "member_no": "M-9001",
        "name": "新党员",
        "unit_id": str(world.a.unit.id),
        "phone": "13912345678",
        "national_id": "",
        "status": "active",
    }
    return {**form, **changes}


def test_member_form_shows_every_error_with_the_typed_values(client, db_session, world) -> None:
    from sqlalchemy import func, select

    from server.models import Member

    web_session(client, world.users["staff_a"])
    count = db_session.scalar(select(func.count()).select_from(Member))
    data = _member_form(
        world,
        member_no="bad no!",
        name="",
        phone="23912345678",
        national_id="110105194912310021",  # wrong check digit
        status="gone",
        csrf_token=web_csrf(client),
    )
    response = client.post("/members/new", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_errors(body, "member_no") == ["党员编号应为 1-32 位字母、数字、- 或 _。"]
    assert field_errors(body, "name") == ["名称为空或过长。"]
    assert field_errors(body, "phone") == ["手机号应为 11 位中国大陆手机号码（以 13–19 开头）。"]
    assert field_errors(body, "national_id") == ["身份证号格式或校验位不正确。"]
    summary = re.search(r'id="member-errors">(.*?)</div>', body, re.S)
    assert summary is not None and len(re.findall(r'<li class="error">', summary.group(1))) == 5
    assert 'value="bad no!"' in body and 'value="23912345678"' in body
    assert "110105194912310021" not in body  # the national ID typed is never sent back
    assert_no_wtforms_english(body)
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(Member)) == count


def test_member_form_errors_in_english(client, world) -> None:
    web_session(client, world.users["staff_a"])
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    data = _member_form(
        world,
        member_no=world.a.member.member_no,  # taken
        phone="1391234567",  # ten digits
        unit_id=str(world.b.unit.id),  # outside the scope
        csrf_token=web_csrf(client),
    )
    body = client.post("/members/new", data=data).get_data(as_text=True)
    assert field_errors(body, "member_no") == ["This member number is taken."]
    assert field_errors(body, "phone") == [
        "The phone must be an 11-digit mainland China mobile number (starting 13–19)."
    ]
    summary = re.search(r'id="member-errors">(.*?)</div>', body, re.S)
    assert summary is not None and "Choose a unit." in summary.group(1)


def test_member_form_saves_a_normalised_mobile_number(client, db_session, world) -> None:
    from sqlalchemy import select

    from server.models import Member

    web_session(client, world.users["staff_a"])
    data = _member_form(world, phone="+86 139-1234-5678", csrf_token=web_csrf(client))
    response = client.post("/members/new", data=data)
    assert response.status_code == 302
    db_session.expire_all()
    member = db_session.scalar(select(Member).where(Member.member_no == "M-9001"))
    assert member is not None and member.phone == "13912345678"
    assert member.community_id == world.a.community.id  # staff add to their own community only
    edit = client.get(f"/members/{member.id}/edit").get_data(as_text=True)
    assert 'value="M-9001"' in edit and 'value="13912345678"' in edit


# ---- sign-in, password change, the phone page's PIN login ------------------------------------------


def test_sign_in_needs_both_fields_in_either_language(client) -> None:
    token = web_csrf(client)
    body = client.post("/login", data={"username": " ", "password": "", "csrf_token": token})
    assert body.status_code == 400
    text = body.get_data(as_text=True)
    assert field_errors(text, "username") == ["请填写用户名。"]
    assert field_errors(text, "password") == ["请填写密码。"]
    assert_no_wtforms_english(text)
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    text = client.post("/login", data={"username": "zoe", "password": "", "csrf_token": token}).get_data(
        as_text=True
    )
    assert field_errors(text, "username") == [] and 'value="zoe"' in text
    assert field_errors(text, "password") == ["Give your password."]


def test_password_change_lists_every_problem(client, db_session) -> None:
    from tests.factories import make_user, web_login

    make_user(db_session, "admin", username="henry")
    db_session.commit()
    web_login(client, "henry")
    response = client.post(
        "/account/password",
        data={
            "current_password": "not it",
            "new_password": "short",
            "confirm_password": "shorter",
            "csrf_token": web_csrf(client),
        },
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_errors(text, "current_password") == ["当前密码不正确。"]
    assert field_errors(text, "new_password") == ["新密码至少 10 位。"]
    assert field_errors(text, "confirm_password") == ["两次输入的新密码不一致。"]
    assert "not it" not in text and 'value="short"' not in text  # passwords are never sent back
    assert_no_wtforms_english(text)


def test_phone_pin_login_errors_in_the_pages_language(client) -> None:
    client.get("/m/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/m/").get_data(as_text=True))
    assert token is not None
    data = {"member_no": "", "pin": "", "csrf_token": token.group(1)}
    zh = client.post("/m/login", data=data)
    assert zh.status_code == 400
    text = zh.get_data(as_text=True)
    assert "请填写党员编号。" in text and "请填写密码（PIN）。" in text
    assert_no_wtforms_english(text)
    client.get("/m/?lang=en")
    en = client.post("/m/login", data={**data, "member_no": "M-1"}).get_data(as_text=True)
    assert "Give your PIN." in en and "Give your member number." not in en and 'value="M-1"' in en


# ---- units and communities ---------------------------------------------------------------------------


def test_unit_and_community_forms_show_every_error(client, world) -> None:
    web_session(client, world.users["admin"])
    token = web_csrf(client)
    unit = client.post(
        "/units/new",
        data={
            "code": world.a.unit.code,
            "name": "",
            "community_id": str(world.a.community.id),
            "csrf_token": token,
        },
    )
    text = unit.get_data(as_text=True)
    assert unit.status_code == 400
    assert field_errors(text, "code") == ["编码已被使用。"]
    assert field_errors(text, "name") == ["名称为空或过长。"]
    assert f'name="community_id" value="{world.a.community.id}" checked' in text  # the ticks are kept
    assert_no_wtforms_english(text)
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    community = client.post(
        "/communities/new",
        data={"code": "bad code", "name": "新社区", "district": "x" * 101, "csrf_token": token},
    )
    text = community.get_data(as_text=True)
    assert community.status_code == 400
    assert field_errors(text, "code") == ["Code must be 1-32 letters, digits, - or _."]
    assert field_errors(text, "district") == ["Name is empty or too long."]
    assert 'value="新社区"' in text and 'value="bad code"' in text
    saved = client.post("/communities/new", data={"code": "C-NEW", "name": "新社区", "csrf_token": token})
    assert saved.status_code == 302


# ---- cards -------------------------------------------------------------------------------------------


def test_card_forms_show_errors_beside_the_fields(client, world) -> None:
    web_session(client, world.users["staff_a"])
    url = f"/members/{world.a.member.id}/cards"
    token = web_csrf(client)
    bad = client.post(url, data={"uid": "zz-12", "reason": "x" * 201, "csrf_token": token})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert field_errors(text, "uid", "bind-form") == ["卡号必须是 4-64 位十六进制数字。"]
    assert field_errors(text, "reason", "bind-form") == ["原因不能超过 200 字。"]
    assert 'value="zz-12"' in text
    assert_no_wtforms_english(text)
    assert client.post(url, data={"uid": "04A1B2C3", "csrf_token": token}).status_code == 302
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    page = client.get(url).get_data(as_text=True)
    credential = re.search(r'id="revoke-(\d+)"', page)
    assert credential is not None
    refused = client.post(f"{url}/{credential.group(1)}/revoke", data={"reason": " ", "csrf_token": token})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert field_errors(text, "reason", f"revoke-{credential.group(1)}") == ["A reason is required."]


# ---- fleet (admin) -----------------------------------------------------------------------------------


def test_fleet_forms_say_what_is_wrong_without_parser_text(client, world) -> None:
    web_session(client, world.users["admin"])
    token = web_csrf(client)
    url = f"/fleet/{world.a.kiosk.id}"
    typed = '{"debounce_seconds": 30,'
    broken = client.post(f"{url}/config", data={"body": typed, "csrf_token": token}, follow_redirects=True)
    text = broken.get_data(as_text=True)
    assert "配置不是有效的 JSON（第 1 行第 25 列有误）。" in text
    assert "Expecting" not in text  # the JSON parser's own words never reach the page
    assert unescape(text).count(typed) == 1  # what was typed is back in the box
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    listed = client.post(f"{url}/config", data={"body": "[1, 2]", "csrf_token": token}, follow_redirects=True)
    assert "The config must be a JSON object (key–value pairs in braces)." in unescape(
        listed.get_data(as_text=True)
    )
    command = client.post(
        f"{url}/command",
        data={"name": "show_message", "text": "", "csrf_token": token},
        follow_redirects=True,
    )
    assert "Give the text to show." in command.get_data(as_text=True)
    unknown = client.post(
        f"{url}/command", data={"name": "format_disk", "csrf_token": token}, follow_redirects=True
    )
    assert "Choose a command." in unknown.get_data(as_text=True)


# ---- CSV import upload -------------------------------------------------------------------------------


def test_import_upload_errors_stand_by_the_file_field(client, world) -> None:
    import io

    web_session(client, world.users["staff_a"])
    token = web_csrf(client)
    none = client.post(
        "/import", data={"kind": "members", "csrf_token": token}, content_type="multipart/form-data"
    )
    assert none.status_code == 400
    assert field_errors(none.get_data(as_text=True), "file") == ["请选择文件。"]
    assert_no_wtforms_english(none.get_data(as_text=True))
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    odd = client.post(
        "/import",
        data={"kind": "pets", "csrf_token": token, "file": (io.BytesIO(b"a,b\n"), "x.csv")},
        content_type="multipart/form-data",
    )
    text = odd.get_data(as_text=True)
    assert odd.status_code == 400 and "Unknown import kind." in text
