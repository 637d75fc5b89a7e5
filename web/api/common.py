"""Small helpers shared by the API's modules."""

from __future__ import annotations

from typing import Any

from flask import Response

from engine.directory import Actor

from ..auth import engine, require_actor
from .spec import json_response

__all__ = ["Response", "actor", "created", "engine", "listing", "paged"]


def actor() -> Actor:
    return require_actor()


def paged(page: int | None, per_page: int | None) -> tuple[int, int, int, int]:
    """(page, per_page, limit, offset) from the query's paging parameters."""
    p = page or 1
    n = per_page or 50
    return p, n, n, (p - 1) * n


def listing(items: list[Any], total: int, page_no: int, per_page: int) -> Response:
    return json_response({"items": items, "total": total, "page": page_no, "per_page": per_page})


def created(payload: Any, location: str) -> Response:
    return json_response(payload, 201, {"Location": location})
