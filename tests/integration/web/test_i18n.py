"""The staff pages' texts come from the gettext catalogues through Flask-Babel; times show in Asia/Shanghai.

Completeness of the catalogues is tests/unit/test_catalogues.py; here the running app: the locale choice
(session → account → deployment default) through Flask-Babel's ``locale_selector``, ``t`` and Jinja's
``_()`` reading the same catalogue, and the ``.po`` read as it is (nothing compiled).
"""

from __future__ import annotations

from datetime import UTC, datetime

import flask_babel
from babel import Locale
from flask import render_template_string, session

from server.web.i18n import CatalogueDomain, fmt_minutes, has_message, t


def test_translation_and_local_time(app) -> None:
    from server.web.i18n import fmt_dt

    with app.test_request_context():
        assert t("nav.sessions") == "服务记录"
        assert t("nav.sessions", locale="en") == "Sessions"
        assert t("list.total", n=3) == "共 3 条"
        assert t("auth.locked") == "登录失败次数过多，账号已暂时锁定，请稍后再试。"
        assert fmt_dt(datetime(2025, 3, 3, 16, 30, tzinfo=UTC)) == "2025-03-04 00:30"
    assert fmt_minutes(125) == "2:05"


def test_flask_babel_follows_the_session_choice(app) -> None:
    with app.test_request_context():
        assert flask_babel.get_locale() == Locale.parse("zh_CN")
        assert flask_babel.gettext("nav.review") == "待审核"
        assert render_template_string("{{ _('nav.review') }} {{ t('nav.review') }}") == "待审核 待审核"
    with app.test_request_context():
        session["locale"] = "en"
        assert flask_babel.get_locale() == Locale.parse("en")
        assert flask_babel.gettext("nav.review") == "Review"
        assert t("nav.review") == "Review"
    with app.test_request_context(), flask_babel.force_locale("en"):
        assert flask_babel.gettext("nav.review") == "Review"


def test_deployment_default_locale(app) -> None:
    app.config["DEFAULT_LOCALE"] = "en"
    with app.test_request_context():
        assert t("nav.members") == "Members"


def test_unknown_key_shows_itself(app, caplog) -> None:
    with app.test_request_context():
        assert t("nav.no_such_key") == "nav.no_such_key"
        assert not has_message("nav.no_such_key") and has_message("nav.members")
    assert "missing message key" in caplog.text


def test_catalogues_are_read_from_the_po_files(tmp_path) -> None:
    for locale, text in (("zh_CN", "你好，世界"), ("en", "Hello, world")):
        folder = tmp_path / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_text(f'msgid "x.hello"\nmsgstr "{text}"\n', encoding="utf-8")
    domain = CatalogueDomain(tmp_path)
    assert domain.translations("en").gettext("x.hello") == "Hello, world"
    assert domain.translations("fr").gettext("x.hello") == "你好，世界"  # a locale we do not offer
    assert domain.has("x.hello")
