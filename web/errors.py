"""The one place where the engine's errors become HTTP: status codes and RFC 9457 problem documents.

API requests (``/api/…``) get ``application/problem+json`` with the error's machine code and,
for input errors, every bad field. Pages get the same facts rendered in Russian.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from engine.errors import (
    AggloError,
    AttachmentCorrupt,
    BadInput,
    ConcurrencyConflict,
    DefinitionInvalid,
    ExpressionError,
    FormInvalid,
    InvalidState,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    StaleVersion,
    StepFailed,
    TooLarge,
    TooManyAttempts,
    UnsupportedType,
)

from .api.spec import PROBLEM, json_response

log = logging.getLogger("agglo.web")

# Most specific first: the first class in an error's MRO found here decides.
STATUS: dict[type[AggloError], int] = {
    NotAuthenticated: 401,
    NotPermitted: 403,
    NotFound: 404,
    StaleVersion: 412,
    ConcurrencyConflict: 409,
    InvalidState: 409,
    TooLarge: 413,
    UnsupportedType: 415,
    FormInvalid: 422,
    DefinitionInvalid: 422,
    ExpressionError: 422,
    StepFailed: 422,
    TooManyAttempts: 429,
    BadInput: 400,
    AttachmentCorrupt: 500,
}

TITLES = {
    400: "Некорректный запрос",
    401: "Требуется вход",
    403: "Недостаточно прав",
    404: "Не найдено",
    405: "Метод не поддерживается",
    409: "Конфликт",
    412: "Данные устарели",
    413: "Слишком большой запрос",
    415: "Неподдерживаемый тип данных",
    422: "Данные не приняты",
    429: "Слишком много попыток",
    500: "Внутренняя ошибка",
}


def status_for(error: AggloError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def problem(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"/problems/{code}",
        "title": TITLES.get(status, "Ошибка"),
        "status": status,
        "detail": detail,
        "instance": request.path,
        "code": code,
        **extra,
    }


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = json_response(body, status, headers)
    response.mimetype = PROBLEM
    return response


def wants_problem() -> bool:
    return request.path.startswith(("/api/", "/webhooks/in/"))


def error_body(error: AggloError, status: int) -> dict[str, Any]:
    details = error.details()
    if isinstance(error, BadInput) and "errors" not in details and error.field:
        details = {**details, "errors": [{"field": error.field, "code": error.code, "message": error.message}]}
    if isinstance(error, DefinitionInvalid):
        details = {
            **details,
            "errors": [
                {"field": p.element_id, "code": error.code, "message": p.reason, "file": p.file, "line": p.line}
                for p in error.problems
            ],
        }
    return problem(status, error.code, error.message, **details)


def html_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    try:
        html = render_template("error.html", status=status, problem=body)
    except Exception:
        log.exception("the error page itself failed")
        html = f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{body.get('detail', '')}</p>"
    return Response(html, status=status, headers=headers, mimetype="text/html")


def install(app: Flask) -> None:
    @app.errorhandler(AggloError)
    def on_agglo_error(error: AggloError) -> Any:
        status = status_for(error)
        if status >= 500:
            log.error("%s on %s %s: %s", error.code, request.method, request.path, error)
        headers: dict[str, str] = {}
        if isinstance(error, TooManyAttempts):
            headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, NotAuthenticated) and wants_problem():
            headers["WWW-Authenticate"] = 'Bearer realm="agglo"'
        body = error_body(error, status)
        if wants_problem():
            return problem_response(status, body, headers)
        if isinstance(error, NotAuthenticated):
            from .auth import login_redirect

            return login_redirect()
        return html_error(status, body, headers)

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException) -> Any:
        status = error.code or 500
        code = {413: "too_large", 405: "method_not_allowed", 404: "not_found"}.get(status, "http_error")
        detail = error.description or TITLES.get(status, "")
        if status == 404:
            detail = f"no such address: {request.path}"
        body = problem(status, code, detail)
        if wants_problem():
            response = problem_response(status, body)
            if status == 405 and error.get_response().headers.get("Allow"):
                response.headers["Allow"] = error.get_response().headers["Allow"]
            return response
        return html_error(status, body)

    @app.errorhandler(Exception)
    def on_unexpected(error: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = problem(500, "internal", "an unexpected error occurred; it has been logged")
        if wants_problem():
            return problem_response(500, body)
        return html_error(500, body)
