"""The touch screen's blueprint: the page, its static files and sounds, and the few JSON helpers the
maintenance screen and the demo simulator need beyond :mod:`kiosk.app`'s API.

Why a blueprint of its own: :mod:`kiosk.app` is the service's API (state, events, PIN, binding,
``/sim/read``) and stays usable headless; the screen is one consumer of it. Everything here reads the
:class:`kiosk.service.KioskService` stored in ``app.extensions["kiosk_service"]`` and never touches a
device or a database (CONVENTIONS.md: the web layer never touches a device library).

Routes:

* ``GET /`` — the single-page kiosk screen (idle, confirmation, keypad, maintenance, binding, locked)
* ``GET /ui/static/…`` — our CSS and JS; ``GET /ui/sounds/<ok|warn|error>.wav`` — synthesised tones
* ``GET /ui/api/maintenance`` — health for the staff screen (maintenance or binding mode only)
* ``POST /ui/api/sync-now`` — wake the uploader and the heartbeat (maintenance or binding mode only)
* ``POST /ui/api/binding/cancel`` — from binding back to maintenance (maintenance or binding mode only)
* ``GET /ui/api/demo`` — the simulator panel's demo credentials (simulation mode only)
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template

from kiosk.i18n import catalogue, texts
from kiosk.ui.sounds import SOUNDS, wav_bytes

logger = logging.getLogger(__name__)

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)


def register_ui(app: Flask) -> Flask:
    """Attach the touch screen to the kiosk app. Idempotent, so callers need not know who did it first."""
    if "ui" not in app.blueprints:
        app.register_blueprint(bp)
    return app


def _service() -> Any:
    service = current_app.extensions.get("kiosk_service")
    if service is None:  # pragma: no cover - a wiring mistake, not a runtime condition
        abort(503)
    return service


def _error(status: int, code: str) -> tuple[Response, int]:
    """The kiosk API's error envelope; its texts are the catalogue's ``error.<code>``."""
    zh, en = texts(f"error.{code}")
    return jsonify({"code": code, "message": en, "message_zh": zh}), status


def _staff_only() -> tuple[Response, int] | None:
    if _service().state()["mode"] == "idle":
        return _error(403, "not_in_maintenance")
    return None


def _config_version(service: Any) -> dict[str, Any]:
    """The pushed config version (heartbeat) and a digest of the local file, so staff can compare."""
    heartbeat = getattr(getattr(service, "sync_agent", None), "heartbeat", None)
    pushed = getattr(heartbeat, "applied_config_version", None)
    source: Path | None = service.config.source
    digest = None
    if source is not None:
        try:
            digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        except OSError:
            logger.warning("config file %s unreadable for its digest", source)
    return {"pushed": pushed, "file_digest": digest, "file": None if source is None else source.name}


@bp.get("/")
def index() -> str:
    service = _service()
    return render_template(
        "kiosk.html",
        language=service.config.language,
        simulate=service.config.simulate,
        sounds=sorted(SOUNDS),
        screen_texts=catalogue().screen(),
    )


@bp.get("/ui/sounds/<name>.wav")
def sound(name: str) -> Response:
    if name not in SOUNDS:
        abort(404)
    resp = Response(wav_bytes(name), mimetype="audio/wav")
    resp.headers["Cache-Control"] = "public, max-age=86400"
    return resp


@bp.get("/ui/api/maintenance")
def maintenance() -> Any:
    denied = _staff_only()
    if denied:
        return denied
    service = _service()
    health = service.health()
    readers = health["readers"]
    sync = health.get("sync") or {}
    return jsonify(
        {
            "readers": [r for r in readers if r.get("driver") != "camera"],
            "cameras": [r for r in readers if r.get("driver") == "camera"],
            "outbox": health["outbox"],
            "online": bool(sync.get("online")),
            "last_sync": sync.get("last_sync"),
            "last_error": sync.get("last_error"),
            "enrolled": health["enrolled"],
            "kiosk_id": health["kiosk_id"],
            "clock_offset_ms": health["clock_offset_ms"],
            "software_version": health["software_version"],
            "config_version": _config_version(service),
            "roster_size": health["roster_size"],
            "open_sessions": health["open_sessions"],
            "status": health["status"],
        }
    )


@bp.post("/ui/api/sync-now")
def sync_now() -> Any:
    denied = _staff_only()
    if denied:
        return denied
    agent = getattr(_service(), "sync_agent", None)
    if agent is None:
        return _error(409, "not_enrolled")
    woken = []
    for part in ("uploader", "heartbeat"):
        wake = getattr(getattr(agent, part, None), "wake", None)
        if wake is not None:
            wake()
            woken.append(part)
    logger.info("staff asked for a sync now (%s)", ", ".join(woken))
    return jsonify({"requested": woken})


@bp.post("/ui/api/binding/cancel")
def binding_cancel() -> Any:
    """Leave binding mode back to the maintenance screen (kiosk.app's exit goes all the way to idle)."""
    denied = _staff_only()
    if denied:
        return denied
    service = _service()
    service.enter_maintenance()
    return jsonify(service.state())


def _demo_entries(source: Path | None) -> list[dict[str, str]]:
    """``[[demo.cards]]`` / ``[[demo.qr]]`` tables from the kiosk config file (ignored by kiosk.config)."""
    if source is None:
        return []
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        logger.warning("demo entries unreadable from %s: %s", source, exc)
        return []
    demo = data.get("demo", {})
    out: list[dict[str, str]] = []
    for kind_key, kind in (("cards", "card"), ("id_cards", "id_card"), ("qr", "qr")):
        for item in demo.get(kind_key, []) if isinstance(demo, dict) else []:
            if isinstance(item, dict) and item.get("value"):
                out.append(
                    {
                        "kind": str(item.get("kind", kind)),
                        "value": str(item["value"]),
                        "label": str(item.get("label", item["value"])),
                    }
                )
    return out


@bp.get("/ui/api/demo")
def demo() -> Any:
    service = _service()
    if not service.config.simulate:
        return _error(404, "not_found")
    entries = _demo_entries(service.config.source)
    entries += [
        {"kind": "card", "value": uid, "label": "工作人员卡 Staff card"} for uid in service.config.staff_cards
    ]
    return jsonify({"entries": entries})
