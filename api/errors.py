"""One place that maps library errors to HTTP: a status and a body ``{code, message}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ledger.errors import (
    ChainError,
    ChainUnavailable,
    Conflict,
    ContractRevert,
    CryptoError,
    Forbidden,
    InvalidInput,
    InvalidSignature,
    LedgerError,
    NotFound,
    PayloadTooLarge,
    ReplayedNonce,
    Unauthenticated,
)
from ledger.protocol.codes import CONTRACT_ERROR_STATUS, ErrorCode, status_for


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a stable machine-readable code and a human message."""

    code: str
    message: str


#: Status by error class, for codes outside the protocol's table (contract custom errors).
_STATUS: list[tuple[type[LedgerError], int]] = [
    (Unauthenticated, 401),
    (PayloadTooLarge, 413),
    (ReplayedNonce, 409),
    (InvalidSignature, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (CryptoError, 422),
    (ContractRevert, CONTRACT_ERROR_STATUS),
    (ChainUnavailable, 503),
    (ChainError, 502),
]


_HTTP_CODES = {
    400: ErrorCode.MALFORMED_BODY,
    404: ErrorCode.NO_SUCH_ROUTE,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def status_of(exc: LedgerError) -> int:
    """The protocol's status for the error's code; by class for codes it does not list."""
    known = status_for(exc.code)
    if known is not None:
        return known
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses=`` entries for the listed error statuses."""
    text = {
        400: "Malformed body or signed action",
        401: "Missing or invalid request signature",
        403: "The caller's role or standing does not allow this",
        404: "No such object",
        409: "Conflicts with the current state (or replayed nonce, or the chain refused)",
        413: "Body too large",
        422: "Invalid input",
        503: "Chain unavailable",
    }
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in statuses}


def install(app: FastAPI) -> None:
    """Register the handlers."""

    @app.exception_handler(LedgerError)
    async def ledger_error(_: Request, exc: LedgerError) -> JSONResponse:
        return JSONResponse(
            status_code=status_of(exc),
            content=ErrorBody(code=exc.code, message=exc.message).model_dump(),
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # Raised by the framework itself: unknown path (404), wrong method (405, with Allow),
        # a body that is not JSON (400). Same body shape as every other error.
        return JSONResponse(
            status_code=exc.status_code,
            content=ErrorBody(
                code=_HTTP_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR), message=str(exc.detail)
            ).model_dump(),
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return JSONResponse(
            status_code=422,
            content=ErrorBody(code=ErrorCode.INVALID_REQUEST, message=message).model_dump(),
        )
