"""The one JSON error envelope of the kiosk API (``protocol.messages.ErrorResponse``).

Every failure under ``/api/`` — our own rejections, Werkzeug's 404/405/413, a malformed body, an
unexpected exception — answers with ``{"code", "message", "message_zh", "server_time"?, "details"?}``, so
a kiosk never has to parse an HTML error page and a person reading a log gets Chinese and English.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from protocol.messages import ErrorResponse

logger = logging.getLogger(__name__)

API_ROOT = "/api/"
M = TypeVar("M", bound=BaseModel)  # protocol messages, and the server-defined ones (bindings)

_HTTP_ZH = {
    400: "请求格式错误",
    401: "未授权",
    403: "禁止访问",
    404: "接口不存在",
    405: "不支持的请求方法",
    409: "请求冲突",
    410: "资源已失效",
    413: "请求体过大",
    415: "不支持的内容类型",
    422: "请求内容校验失败",
    429: "请求过于频繁",
    500: "服务器内部错误",
    503: "服务暂不可用",
}


class ApiError(Exception):
    """A rejection with a stable ``code`` (for programs) and messages in English and Chinese (for people)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        message_zh: str,
        *,
        server_time: datetime | None = None,
        details: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.message_zh = message_zh
        self.server_time = server_time
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    message_zh: str,
    *,
    server_time: datetime | None = None,
    details: list[str] | None = None,
) -> Response:
    body = ErrorResponse(
        code=code,
        message=message[:500] or code,
        message_zh=message_zh[:500] or code,
        server_time=server_time,
        details=[d[:300] for d in details[:20]] if details else None,
    )
    return Response(body.model_dump_json(exclude_none=True), status=status, mimetype="application/json")


def validation_error(exc: ValidationError) -> ApiError:
    """A pydantic error as a 422 with one line per problem (location and message, never the input)."""
    details = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:20]]
    return ApiError(
        422, "validation_error", "request body failed validation", "请求内容校验失败", details=details
    )


def _is_api() -> bool:
    return request.path.startswith(API_ROOT)


def attach_blueprint_handlers(bp: Blueprint) -> None:
    """Errors raised inside the API's views (called once, when the blueprint is defined)."""

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        if exc.status >= 500:
            logger.error("kiosk API error %s: %s", exc.code, exc.message)
        return error_response(
            exc.status,
            exc.code,
            exc.message,
            exc.message_zh,
            server_time=exc.server_time,
            details=exc.details,
        )

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):  # Werkzeug errors go to the app handler below
            return _http_error(exc)
        logger.exception("unhandled error in kiosk API")
        return error_response(500, "internal_error", "internal server error", _HTTP_ZH[500])


def _http_error(exc: HTTPException) -> Any:
    if not _is_api():
        return exc
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(status, code, exc.description or exc.name, _HTTP_ZH.get(status, "请求失败"))


def register_app_handlers(app: Flask) -> None:
    """Werkzeug's HTTP errors (404 for an unknown path, 405, 413) are raised before a blueprint is chosen,
    so that handler is the app's; it answers JSON only for paths under ``/api/``."""
    app.register_error_handler(HTTPException, _http_error)


_NUL_ESCAPES = (b"\\u0000", b"\x00")


def parse_body(model: type[M]) -> M:
    """The request body as ``model``, or a 422 ApiError.

    NUL characters are refused here, whatever the field: PostgreSQL cannot store them in text or JSONB,
    and no legitimate kiosk value contains one (schemathesis found this).
    """
    raw = request.get_data(cache=True)
    if any(escape in raw for escape in _NUL_ESCAPES):
        raise ApiError(422, "validation_error", "text must not contain NUL characters", "文本不能包含空字符")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None
