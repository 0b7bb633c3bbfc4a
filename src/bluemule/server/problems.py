"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error the API reports as a problem document."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


class NotFoundError(ProblemError):
    """The resource does not exist."""

    def __init__(self, detail: str) -> None:
        super().__init__(404, detail)


class ConflictError(ProblemError):
    """The resource exists already."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


class InvalidContentError(ProblemError):
    """Well-formed request, unusable content (a bad bundle or module)."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail)


class UnauthorizedError(ProblemError):
    """Missing or wrong bearer token."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": "Bearer"})


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem response."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def install_handlers(app: FastAPI) -> None:
    """Make every error a problem document."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem(request, exc.status, exc.detail, headers=exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return problem(request, exc.status_code, str(exc.detail), headers=headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(request, 400, "the request body is not valid JSON")
        messages = [f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
        simple = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in errors
        ]
        return problem(request, 422, "; ".join(messages) or "invalid request", errors=simple)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem(request, 500, "internal server error")

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
