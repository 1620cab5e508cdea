"""The member's phone page: PIN login with lockout, one-time links, and the rotating tokens it serves."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest

from kiosk.qr import QrVerifier
from protocol.qrtoken import step_at
from server.db import get_db
from server.passwords import hash_password
from server.qr import login
from server.qr.phone import AHEAD_STEPS
from server.qr.roster import qr_roster_material
from tests.factories import make_member

PIN = "246810"


@pytest.fixture
def member(db_session):  # type: ignore[no-untyped-def]
    m = make_member(db_session, pin_hash=hash_password(PIN))
    db_session.commit()
    return m


def csrf(client, path: str = "/m/") -> str:  # type: ignore[no-untyped-def]
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def pin_login(client, member_no: str, pin: str):  # type: ignore[no-untyped-def]
    return client.post("/m/login", data={"member_no": member_no, "pin": pin, "csrf_token": csrf(client)})


def test_login_page_is_chinese_by_default_and_english_on_request(client):  # type: ignore[no-untyped-def]
    zh = client.get("/m/").get_data(as_text=True)
    assert "党员编号" in zh and 'lang="zh-CN"' in zh and "width=device-width" in zh
    en = client.get("/m/?lang=en").get_data(as_text=True)
    assert "Member number" in en
    assert "Member number" in client.get("/m/").get_data(as_text=True)  # kept in the session


def test_post_without_csrf_token_is_refused(client, member):  # type: ignore[no-untyped-def]
    assert client.post("/m/login", data={"member_no": member.member_no, "pin": PIN}).status_code == 400


def test_pin_login_shows_codes_that_a_kiosk_accepts(app, client, member, db_session, tmp_path):  # type: ignore[no-untyped-def]
    response = pin_login(client, member.member_no, PIN)
    assert response.status_code == 302
    page = client.get("/m/").get_data(as_text=True)
    assert "<svg" in page and "张" in page and "*" in page  # masked name
    assert member.name not in page
    data = client.get("/m/tokens.json").get_json()
    steps = [s["step"] for s in data["steps"]]
    now_step = step_at(time.time())
    assert steps == list(range(steps[0], steps[0] + AHEAD_STEPS + 1)) and steps[0] in (now_step, now_step - 1)
    keys, revoked = qr_roster_material(db_session)
    kiosk = QrVerifier.in_state_dir(tmp_path)
    kiosk.apply_qr_material(keys, revoked)
    first = kiosk.verify_scanned(data["steps"][0]["token"], now=data["steps"][0]["step"] * 30 + 1)
    assert first.accepted and first.member_id == member.id and first.trust == "high"
    last = data["steps"][-1]
    assert kiosk.verify_scanned(last["token"], now=last["step"] * 30 + 1).accepted
    # The pre-fetched window is bounded: the last code is refused once its step is two behind.
    assert kiosk.verify_scanned(last["token"], now=(last["step"] + 2) * 30 + 1).code == "qr_expired"
    kiosk.close()


def test_tokens_need_a_login_and_logout_ends_it(client, member):  # type: ignore[no-untyped-def]
    assert client.get("/m/tokens.json").status_code == 401
    pin_login(client, member.member_no, PIN)
    assert client.get("/m/tokens.json").status_code == 200
    client.post("/m/logout", data={"csrf_token": csrf(client)})
    assert client.get("/m/tokens.json").status_code == 401


def test_wrong_pins_lock_the_member_number_even_for_the_right_pin(client, member):  # type: ignore[no-untyped-def]
    for _ in range(login.DEFAULTS["QR_LOGIN_MAX_FAILURES"] - 1):
        response = pin_login(client, member.member_no, "000000")
        assert response.status_code == 401 and "编号或密码错误" in response.get_data(as_text=True)
    locked = pin_login(client, member.member_no, "000000")
    assert locked.status_code == 429 and "分钟后再试" in locked.get_data(as_text=True)
    right = pin_login(client, member.member_no, PIN)
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    assert client.get("/m/tokens.json").status_code == 401


def test_lockout_ends_after_the_window(app, member):  # type: ignore[no-untyped-def]
    config = app.config
    with app.app_context():
        db = get_db(app).session()
        t0 = login.utcnow()
        for _ in range(config["QR_LOGIN_MAX_FAILURES"]):
            login.pin_login(db, member.member_no, "000000", "1.2.3.4", config, now=t0)
        assert login.pin_login(db, member.member_no, PIN, "1.2.3.4", config, now=t0).result == "locked"
        after = t0 + timedelta(seconds=config["QR_LOGIN_WINDOW_S"] + 1)
        assert login.pin_login(db, member.member_no, PIN, "1.2.3.4", config, now=after).result == "ok"


def test_unknown_member_and_member_without_pin_are_just_wrong(client, db_session):  # type: ignore[no-untyped-def]
    nopin = make_member(db_session)
    db_session.commit()
    assert pin_login(client, "NOSUCH", PIN).status_code == 401
    assert pin_login(client, nopin.member_no, PIN).status_code == 401
    # an empty PIN is a form error (the same for every member number), not a login attempt
    empty = pin_login(client, nopin.member_no, "")
    assert empty.status_code == 400 and "请填写密码（PIN）。" in empty.get_data(as_text=True)


def test_one_time_link_works_once(app, client, member):  # type: ignore[no-untyped-def]
    with app.app_context():
        db = get_db(app).session()
        token = login.create_login_link(db, member, app.config["SECRET_KEY"], app.config)
        db.commit()
    page = client.get(f"/m/link/{token}")
    assert page.status_code == 200 and "进入我的报到码" in page.get_data(as_text=True)
    assert client.get(f"/m/link/{token}").status_code == 200  # a link preview does not use it up
    token_csrf = csrf(client, f"/m/link/{token}")
    assert client.post("/m/link", data={"token": token, "csrf_token": token_csrf}).status_code == 302
    assert client.get("/m/tokens.json").status_code == 200
    other = app.test_client()
    assert other.get(f"/m/link/{token}").status_code == 410
    again = other.post("/m/link", data={"token": token, "csrf_token": csrf(other)})
    assert again.status_code == 410 and "已使用" in again.get_data(as_text=True)
    assert other.get("/m/tokens.json").status_code == 401


def test_expired_or_tampered_link_is_refused(app, client, member):  # type: ignore[no-untyped-def]
    with app.app_context():
        db = get_db(app).session()
        past = login.utcnow() - timedelta(days=2)
        old = login.create_login_link(db, member, app.config["SECRET_KEY"], app.config, now=past)
        fresh = login.create_login_link(db, member, app.config["SECRET_KEY"], app.config)
        db.commit()
    assert client.get(f"/m/link/{old}").status_code == 410
    assert client.get(f"/m/link/{fresh[:-2]}xx").status_code == 410
    assert client.post("/m/link", data={"token": old, "csrf_token": csrf(client)}).status_code == 410
