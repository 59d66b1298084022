"""JSON error answers: a message, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from streamforge.errors import (
    ConfigError,
    ConflictError,
    CredentialError,
    GuideError,
    InvalidInput,
    NotFoundError,
    ProviderError,
    StreamForgeError,
)

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[StreamForgeError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInput, 422),
    (ConfigError, 400),
    (GuideError, 422),
    (ProviderError, 502),
    (CredentialError, 500),
)


def status_for(exc: StreamForgeError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(
            {"error": f"{where}: {first.get('msg', 'invalid request')}".strip(": ")},
            status_code=422,
        )

    @app.exception_handler(StreamForgeError)
    async def _ours(_request: Request, exc: StreamForgeError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this handler runs, so nothing is swallowed;
        # the client just never sees a traceback.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error"}, status_code=500)
