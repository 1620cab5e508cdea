"""The kiosk's local web app on 127.0.0.1:8100: health, state, the event stream, and simulated reads.

Routes (JSON unless noted):

* ``GET /healthz`` — status, outbox stats, readers, roster size, locked (503 only if the service is gone)
* ``GET /api/state`` — the screen state, the last outcome and the recent ones
* ``GET /events`` — ``text/event-stream``: ``event: state`` at once, then ``tap`` and ``state`` events
* ``POST /api/pin`` ``{"member_no", "pin"}`` — keypad check-in; the outcome
* ``POST /api/maintenance/exit``, ``POST /api/binding/start``, ``POST /api/binding/confirm``
  ``{"member_id"}``, ``GET /api/members?q=`` — the staff screens (they act only in maintenance mode)
* ``POST /sim/read`` ``{"kind", "value", "reader_id"?}`` — simulation mode only (404 otherwise): the read
  goes into a simulated reader, so it takes the same path as a real one; answers with *that read's*
  outcome (found by its ``read_id``, also in the answer), however many reads overlap.

The app never touches a device library or the databases directly: everything goes through
:class:`kiosk.service.KioskService` (CONVENTIONS.md: the web layer never touches a device library).
"""

from __future__ import annotations

import json
import logging
import queue
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, jsonify, request

from kiosk.service import KioskService, SimulationError
from kiosk.ui import register_ui

logger = logging.getLogger(__name__)

SSE_KEEPALIVE_S = 15.0
SSE_QUEUE_MAX = 256
SIM_WAIT_S = 5.0


def _error(status: int, code: str, en: str, zh: str) -> tuple[Response, int]:
    return jsonify({"code": code, "message": en, "message_zh": zh}), status


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def create_app(service: KioskService) -> Flask:
    app = Flask(__name__)
    app.extensions["kiosk_service"] = service

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(service.health())

    @app.get("/api/state")
    def api_state() -> Any:
        last = service.last_outcome()
        return jsonify(
            {
                "state": service.state(),
                "last_outcome": None if last is None else last.as_dict(),
                "recent": [o.as_dict() for o in service.recent_outcomes()],
            }
        )

    @app.get("/events")
    def events() -> Response:
        q: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(maxsize=SSE_QUEUE_MAX)

        def push(kind: str, payload: dict[str, Any]) -> None:
            try:
                q.put_nowait((kind, payload))
            except queue.Full:  # a stalled browser must not hold up reads; the outbox has the taps
                logger.warning("SSE client too slow, dropping a %s event", kind)

        unsubscribe = service.subscribe(push)

        def stream() -> Iterator[str]:
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        kind, payload = q.get(timeout=SSE_KEEPALIVE_S)
                    except queue.Empty:
                        yield ": keepalive\n\n"
                        continue
                    yield f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n"
            finally:
                unsubscribe()

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Response(stream(), mimetype="text/event-stream", headers=headers)

    @app.post("/api/pin")
    def api_pin() -> Any:
        body = _body()
        member_no, pin = body.get("member_no"), body.get("pin")
        if not isinstance(member_no, str) or not isinstance(pin, str):
            return _error(400, "bad_request", "member_no and pin are required", "需要党员编号和密码")
        return jsonify(service.enter_pin(member_no, pin).as_dict())

    @app.post("/api/maintenance/exit")
    def maintenance_exit() -> Any:
        service.exit_maintenance()
        return jsonify(service.state())

    @app.post("/api/binding/start")
    def binding_start() -> Any:
        try:
            service.start_binding()
        except PermissionError as exc:
            return _error(403, "not_in_maintenance", str(exc), str(exc))
        return jsonify(service.state())

    @app.get("/api/members")
    def members() -> Any:
        if service.state()["mode"] == "idle":
            return _error(403, "not_in_maintenance", "maintenance mode only", "仅限维护模式")
        return jsonify({"members": service.search_members(request.args.get("q", ""))})

    @app.post("/api/binding/confirm")
    def binding_confirm() -> Any:
        member_id = _body().get("member_id")
        if not isinstance(member_id, int) or isinstance(member_id, bool):
            return _error(400, "bad_request", "member_id (integer) is required", "需要党员编号（整数）")
        try:
            outcome = service.confirm_binding(member_id)
        except PermissionError as exc:
            return _error(409, "no_card_captured", str(exc), str(exc))
        except LookupError as exc:
            return _error(404, "unknown_member", str(exc), str(exc))
        return jsonify(outcome.as_dict())

    @app.post("/sim/read")
    def sim_read() -> Any:
        if not service.config.simulate:
            return _error(404, "not_found", "simulation mode is off", "未开启模拟模式")
        body = _body()
        kind, value, reader_id = body.get("kind"), body.get("value"), body.get("reader_id")
        if not isinstance(kind, str) or not isinstance(value, str) or not value:
            return _error(400, "bad_request", "kind and value are required", "需要 kind 与 value")
        if kind not in ("card", "id_card", "qr"):
            return _error(
                400, "bad_kind", "kind must be card, id_card or qr", "kind 只能是 card、id_card 或 qr"
            )
        read_id = uuid.uuid4().hex  # the answer is this read's own outcome, whatever else is read meanwhile
        try:
            used = service.simulate_read(
                kind, value, reader_id if isinstance(reader_id, str) else None, read_id=read_id
            )
        except SimulationError as exc:
            return _error(409, "no_simulator", str(exc), str(exc))
        outcome = service.wait_read(read_id, SIM_WAIT_S)
        if outcome is None:
            return jsonify({"queued": True, "reader_id": used, "read_id": read_id}), 202
        return jsonify({**outcome.as_dict(), "read_id": read_id})

    register_ui(app)
    return app
