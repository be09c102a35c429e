"""Responses of the DEEPaaS adapter: one formatter per accept type, and HTTP errors.

Formatters take the :class:`~thermal_anomaly_segmenter.predict.files.FrameResult` of this request:
its in-memory report and the files it lists only, so a response never mixes in earlier
predictions.
JSON answers are dicts (DEEPaaS wraps them as ``{"status": "OK", "predictions": ...}``);
the other types are raw bytes in an :class:`io.BytesIO`, which DEEPaaS sends as they are and
``deepaas-cli --deepaas_method_output`` writes to a file.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import re
import zipfile
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from marshmallow import ValidationError

from thermal_anomaly_segmenter.errors import (
    DatasetError,
    DatasetNotFoundError,
    InvalidInputError,
    ModelNotFoundError,
    OutputError,
    TasegError,
)

from .config import PathNotAllowedError
from .schemas import validation_message

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.predict.files import FrameResult

log = logging.getLogger(__name__)

_REASON_MAX = 200


class ApiError(web.HTTPError):
    """An HTTP error with a JSON body ``{"status": "error", "code": N, "message": ...}``.

    Raised inside DEEPaaS's worker process, it travels back to the server by pickling
    (aiohttp's own exceptions cannot be unpickled, which would hang the worker pool) and is
    then answered by aiohttp as it is: the status, the reason and the JSON body.
    """

    def __init__(self, status: int, message: str) -> None:
        # aiohttp reads the status from ``status_code``; an instance value selects it.
        self.status_code = int(status)
        self.message = str(message)
        body = {"status": "error", "code": self.status_code, "message": self.message}
        super().__init__(
            reason=_reason(self.message),
            text=json.dumps(body),
            content_type="application/json",
        )

    def __reduce__(self) -> tuple[type, tuple[int, str]]:
        return type(self), (self.status_code, self.message)

    def __str__(self) -> str:
        return self.message


def _reason(message: str) -> str:
    # The reason phrase goes into the status line: one line of printable ASCII.
    text = re.sub(r"[^\x20-\x7e]", "?", " ".join(message.split()))
    return text[:_REASON_MAX] or "error"


class UploadTooLargeError(InvalidInputError):
    """An upload is larger than ``TASEG_MAX_UPLOAD_MB`` (HTTP 413)."""


def error_for(exc: BaseException) -> ApiError:
    """The HTTP error a client gets for ``exc`` (4xx for its own mistakes, else 5xx)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return ApiError(422, validation_message(exc))
    if isinstance(exc, UploadTooLargeError):
        return ApiError(413, str(exc))
    if isinstance(exc, PathNotAllowedError):
        return ApiError(403, str(exc))
    if isinstance(exc, (ModelNotFoundError, DatasetNotFoundError)):
        return ApiError(404, str(exc))
    if isinstance(exc, (InvalidInputError, DatasetError)):
        return ApiError(400, str(exc))
    if isinstance(exc, OutputError):
        full = getattr(exc.__cause__, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        return ApiError(507 if full else 500, str(exc))
    if isinstance(exc, TasegError):
        return ApiError(400, str(exc))
    log.error("internal error", exc_info=exc)
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}")


@web.middleware
async def malformed_request_as_json(request: web.Request, handler: Callable[..., Any]) -> Any:
    """Answer a request aiohttp cannot parse (a broken multipart body, a NUL byte in a part
    header) with a JSON 400 naming the problem; DEEPaaS 2.6 parses arguments outside any
    error handling and would answer a bare 500."""
    try:
        return await handler(request)
    except HttpProcessingError as exc:
        status = exc.code if 400 <= (exc.code or 0) < 500 else 400
        message = f"malformed request: {_reason(exc.message or type(exc).__name__)}"
        log.warning("%s %s answered %d: %s", request.method, request.path, status, message)
        body = {"status": "error", "code": status, "message": message}
        return web.json_response(body, status=status)


def _parser_error(exc: BaseException | None, status: int) -> tuple[int, str]:
    """The status and reason of a request aiohttp's HTTP parser (or its server) refused."""
    if isinstance(exc, LineTooLong):  # args: (the line, the limit, ...)
        limit = exc.args[1] if len(exc.args) > 1 else "8190"
        return 431, (f"request header fields too large: a header (or the request line) is "
                     f"longer than {limit} bytes")
    if isinstance(exc, HttpProcessingError) and 400 <= status < 500:
        return status, f"malformed request: {_reason(exc.message or type(exc).__name__)}"
    try:
        return status, HTTPStatus(status).phrase.lower()
    except ValueError:
        return status, "error"


def _json_handle_error(self: web.RequestHandler, request: web.BaseRequest, status: int = 500,
                       exc: BaseException | None = None,
                       message: str | None = None) -> web.StreamResponse:
    # aiohttp's own handle_error logs, and refuses (ConnectionError) once an answer has
    # started; its plain-text answer is then replaced by the same status in JSON.
    plain = _AIOHTTP_HANDLE_ERROR(self, request, status, exc, message)
    code, reason = _parser_error(exc, plain.status)
    response = web.json_response({"status": "error", "code": code, "message": reason},
                                 status=code)
    response.force_close()  # as aiohttp's: the connection's state is unknown
    return response


_AIOHTTP_HANDLE_ERROR = getattr(web.RequestHandler, "handle_error", None)


def answer_protocol_errors_as_json() -> bool:
    """Make the server answer what its HTTP parser refuses in JSON, not plain text.

    aiohttp's parser refuses a header field over ``max_field_size`` (8190 bytes), more than
    ``max_headers`` (128) headers or a broken request line before any middleware runs, and
    ``web.RequestHandler.handle_error`` answers it in plain text. This replaces that method
    (public, but not documented as a hook) in this process, so such a request gets 431 (a
    header or line too long) or 400 with a JSON reason; the limits themselves stay aiohttp's.
    Returns False (and logs) if aiohttp no longer has the method: the HTTP tests then fail.
    """
    if _AIOHTTP_HANDLE_ERROR is None:
        log.warning("aiohttp has no RequestHandler.handle_error: parser errors stay plain text")
        return False
    web.RequestHandler.handle_error = _json_handle_error  # type: ignore[method-assign]
    return True


def frame_error(result: FrameResult) -> ApiError:
    """The HTTP error of a frame that failed inside the prediction pipeline."""
    text = result.error or "prediction failed"
    if result.error_kind == "input":
        return ApiError(400, text)
    full = "No space left" in text or "quota exceeded" in text.lower()
    return ApiError(507 if full else 500, text)


# --------------------------------------------------------------------------- formatters


def json_response(result: FrameResult) -> dict[str, Any]:
    """The anomaly report of this frame, with ``result`` (the overlay PNG, as published)
    and ``outputs`` (every file written for this request)."""
    if result.report is not None:  # the same document as the file, built in this request
        report = dict(result.report)
    else:
        report = json.loads(result.outputs["json"].read_text(encoding="utf-8"))
    report["result"] = str(result.outputs["overlay"])
    report["outputs"] = {kind: str(path) for kind, path in result.outputs.items()}
    return report


def png_response(result: FrameResult) -> io.BytesIO:
    """The overlay PNG of this frame."""
    return io.BytesIO(result.outputs["overlay"].read_bytes())


def zip_response(result: FrameResult) -> io.BytesIO:
    """A zip of every output file of this frame (PNG members stored, text deflated)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in result.outputs.values():
            kind = zipfile.ZIP_STORED if path.suffix == ".png" else zipfile.ZIP_DEFLATED
            archive.write(path, arcname=path.name, compress_type=kind)
    buffer.seek(0)
    return buffer


def geojson_response(result: FrameResult) -> io.BytesIO:
    """The GeoJSON FeatureCollection of this frame's anomalies."""
    return io.BytesIO(result.outputs["geojson"].read_bytes())


#: Accept type -> formatter. ``*/*`` (curl's default) gets the JSON answer.
CONTENT_TYPES: dict[str, Callable[[FrameResult], Any]] = {
    "application/json": json_response,
    "*/*": json_response,
    "image/png": png_response,
    "application/zip": zip_response,
    "application/geo+json": geojson_response,
}


def formatter_for(accept: str) -> Callable[[FrameResult], Any]:
    """The formatter of ``accept``; an unknown type is a client error (406)."""
    try:
        return CONTENT_TYPES[accept]
    except KeyError:
        raise ApiError(406, f"cannot answer {accept!r}; accept one of "
                       f"{', '.join(CONTENT_TYPES)}") from None
