"""Every message key a template or view uses exists in both languages; times show in Asia/Shanghai."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from server.web import messages
from server.web.i18n import fmt_minutes, t

WEB = Path(__file__).resolve().parents[3] / "server" / "web"
KEY_RE = re.compile(r"""\bt\(\s*['"]([a-z_]+\.[a-z0-9_]+)['"]""")


def test_every_used_key_has_chinese_and_english() -> None:
    from server.web import _blueprints

    _blueprints()  # feature modules add their keys with register_messages() when imported
    used = set()
    for path in [*WEB.rglob("*.html"), *WEB.glob("*.py")]:
        used |= set(KEY_RE.findall(path.read_text(encoding="utf-8")))
    assert len(used) > 100
    missing = sorted(k for k in used if k not in messages.MESSAGES)
    assert missing == []
    for key, (zh, en) in messages.MESSAGES.items():
        assert zh.strip() and en.strip(), key


def test_translation_and_local_time(app) -> None:
    from server.web.i18n import fmt_dt

    with app.test_request_context():
        assert t("nav.sessions") == "服务记录"
        assert t("nav.sessions", locale="en") == "Sessions"
        assert t("list.total", n=3) == "共 3 条"
        assert fmt_dt(datetime(2025, 3, 3, 16, 30, tzinfo=UTC)) == "2025-03-04 00:30"
    assert fmt_minutes(125) == "2:05"
