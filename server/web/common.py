"""Helpers every staff page uses: the request's database session, role checks, paging, form parsing."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, current_app, g, request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from server.db import get_db

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
PAGE_SIZE = 50


def db() -> Session:
    """The request-scoped SQLAlchemy session (removed at the end of the request)."""
    database = get_db(current_app)
    assert database.session is not None
    return database.session()  # type: ignore[return-value]


def public(view: F) -> F:
    """Mark a view of a ``web_*`` blueprint as reachable without signing in (login page, language)."""
    view.baodao_public = True  # type: ignore[attr-defined]
    return view


def require_role(*roles: str) -> Callable[[F], F]:
    """Allow only the named roles (others get 403). Sign-in itself is enforced for all ``web_*`` views."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if user is None:
                abort(401)
            if user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass
class Page:
    """One page of a list, with what the pager needs."""

    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def paginate(
    session: Session,
    stmt: Select[Any],
    per_page: int = PAGE_SIZE,
    scalars: bool = True,
    count: Callable[[], int] | None = None,
) -> Page:
    """Run ``stmt`` for the page in ``?page=`` (1-based), counting the total with the same filters.

    ``count`` replaces the generic ``count(*)`` over ``stmt`` when a list knows a cheaper exact count:
    the generic one wraps the whole statement (joins, ``OR``s and all), which the database may only be
    able to answer with a scan of the table (the review queue: see ``review.queue_count``).
    """
    page = max(1, arg_int("page") or 1)
    if count is not None:
        total = count()
    else:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    query = stmt.limit(per_page).offset((page - 1) * per_page)
    rows = list(session.scalars(query)) if scalars else list(session.execute(query))
    return Page(items=rows, page=page, per_page=per_page, total=total)


def arg_int(name: str) -> int | None:
    """An integer query-string argument, or None when absent or not a number."""
    raw = request.args.get(name, "").strip()
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def form_int(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def url_args(**changes: Any) -> dict[str, Any]:
    """The current query arguments with ``changes`` applied (for pager and sort links)."""
    args = {k: v for k, v in request.args.items() if v != ""}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return args
