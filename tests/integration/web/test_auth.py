"""Sign-in with argon2, lockout and per-address rate limit in the database, CSRF, password change, logout."""

from __future__ import annotations

from sqlalchemy import func, select

from server.models import AuditRecord, RateLimitHit, User
from server.passwords import verify_password
from tests.factories import TEST_PASSWORD, make_user, web_csrf, web_login


def test_login_sets_hardened_cookie_and_logout_ends_session(app, client, db_session) -> None:
    make_user(db_session, "admin", username="alice")
    db_session.commit()
    assert client.get("/sessions").status_code == 302  # not signed in → login page
    response = web_login(client, "alice")
    assert response.status_code == 302 and response.headers["Location"].endswith("/sessions")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/sessions")
    assert page.status_code == 200 and "服务记录" in page.get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": web_csrf(client)}).status_code == 302
    assert client.get("/sessions").status_code == 302


def test_secure_cookie_when_configured(app_config) -> None:
    from server import create_app

    secure = create_app({**app_config, "SESSION_COOKIE_SECURE": True})
    try:
        with secure.app_context():
            from server.db import get_db
            from tests.factories import make_user as mk

            with get_db(secure).begin() as s:
                mk(s, "admin", username="bob")
        response = web_login(secure.test_client(), "bob")
        assert "Secure" in response.headers["Set-Cookie"]
    finally:
        secure.extensions["baodao_db"].dispose()


def test_wrong_password_then_lockout_survives_correct_password(app, client, db_session) -> None:
    user = make_user(db_session, "admin", username="carol")
    db_session.commit()
    threshold = app.config["LOGIN_LOCKOUT_THRESHOLD"]
    for _ in range(threshold - 1):
        assert web_login(client, "carol", "wrong password!").status_code == 401
    db_session.expire_all()
    assert db_session.get(User, user.id).failed_logins == threshold - 1
    locked = web_login(client, "carol", "wrong password!")
    assert locked.status_code == 401 and "锁定" in locked.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(User, user.id).locked_until is not None
    # the right password no longer helps while locked
    again = web_login(client, "carol", TEST_PASSWORD)
    assert again.status_code == 403
    assert client.get("/sessions").status_code == 302


def test_per_address_rate_limit_is_shared_through_the_database(app, app_config, client, db_session) -> None:
    make_user(db_session, "admin", username="dave")
    db_session.commit()
    app.config["LOGIN_MAX_PER_IP"] = 3
    for _ in range(3):
        assert web_login(client, "nobody", "x" * 12).status_code == 401
    hits = db_session.scalar(
        select(func.count()).select_from(RateLimitHit).where(RateLimitHit.key.like("login-ip:%"))
    )
    assert hits == 3
    # a second app instance (another worker) on the same database sees the same counts
    from server import create_app

    other = create_app({**app_config, "LOGIN_MAX_PER_IP": 3})
    try:
        blocked = web_login(other.test_client(), "dave", TEST_PASSWORD)
        assert blocked.status_code == 429
    finally:
        other.extensions["baodao_db"].dispose()


def test_post_without_or_with_wrong_csrf_token_is_rejected(app, client, db_session) -> None:
    make_user(db_session, "admin", username="erin")
    db_session.commit()
    client.get("/login")
    no_token = client.post("/login", data={"username": "erin", "password": TEST_PASSWORD})
    assert no_token.status_code == 400
    wrong = client.post(
        "/login", data={"username": "erin", "password": TEST_PASSWORD, "csrf_token": "forged"}
    )
    assert wrong.status_code == 400
    assert web_login(client, "erin").status_code == 302
    forged = client.post("/communities/new", data={"code": "X1", "name": "伪造", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert db_session.scalar(select(func.count()).select_from(AuditRecord)) == 0


def test_password_change_requires_current_and_signs_out_other_browsers(app, client, db_session) -> None:
    user = make_user(db_session, "admin", username="frank")
    db_session.commit()
    other_browser = app.test_client()
    web_login(client, "frank")
    web_login(other_browser, "frank")
    token = web_csrf(client)
    bad = client.post(
        "/account/password",
        data={
            "current_password": "nope",
            "new_password": "a new secret 1",
            "confirm_password": "a new secret 1",
            "csrf_token": token,
        },
    )
    assert bad.status_code == 400
    short = client.post(
        "/account/password",
        data={
            "current_password": TEST_PASSWORD,
            "new_password": "short",
            "confirm_password": "short",
            "csrf_token": token,
        },
    )
    assert short.status_code == 400
    ok = client.post(
        "/account/password",
        data={
            "current_password": TEST_PASSWORD,
            "new_password": "a new secret 1",
            "confirm_password": "a new secret 1",
            "csrf_token": token,
        },
    )
    assert ok.status_code == 302
    db_session.expire_all()
    stored = db_session.get(User, user.id)
    assert verify_password(stored.password_hash, "a new secret 1")
    assert client.get("/sessions").status_code == 200  # this browser stays signed in
    assert other_browser.get("/sessions").status_code == 302  # the other one is signed out
    record = db_session.scalar(select(AuditRecord).where(AuditRecord.action == "user.password_change"))
    assert record is not None and record.user_id == user.id
    assert "new secret" not in str(record.after) + str(record.before)


def test_language_switch_to_english_and_back(app, client, db_session) -> None:
    make_user(db_session, "admin", username="gina")
    db_session.commit()
    web_login(client, "gina")
    client.post("/language", data={"locale": "en", "next": "/sessions", "csrf_token": web_csrf(client)})
    assert "Sessions" in client.get("/sessions").get_data(as_text=True)
    client.post("/language", data={"locale": "zh_CN", "next": "/sessions", "csrf_token": web_csrf(client)})
    assert "服务记录" in client.get("/sessions").get_data(as_text=True)
