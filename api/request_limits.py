"""Request bodies read with bounded memory and disk, before DEEPaaS sees them.

DEEPaaS 2.6 runs aiohttp with ``client_max_size=0`` (no limit), so aiohttp would buffer a
whole body, and a non-file form field entirely in memory, before any check of ours could run.
:func:`bounded_body` is a middleware on DEEPaaS's app: it refuses a declared
``Content-Length`` above the limit before reading a byte, then parses a multipart body itself
with a running count (files spooled to disk, other fields capped at :data:`FIELD_MAX_BYTES`)
and hands the result to aiohttp's ``request.post()`` cache, where DEEPaaS reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from tempfile import SpooledTemporaryFile
from typing import Any

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.multipart import parse_content_disposition
from multidict import MultiDict, MultiDictProxy

from thermal_anomaly_segmenter.config import get_settings

log = logging.getLogger(__name__)

#: Largest non-file form field (arguments are short strings; 64 KiB leaves ample room).
FIELD_MAX_BYTES = 64 * 1024
#: Most parts one multipart body may hold (the predict and train forms have ~25 fields).
MAX_PARTS = 64
#: Uploads up to this size stay in memory while they are read; larger ones spool to disk.
_SPOOL_BYTES = 1024 * 1024
_CHUNK = 256 * 1024


class _TooLarge(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def body_limit() -> int:
    """Largest request body: two uploads (frame and corridor) plus the form fields."""
    return 2 * get_settings().max_upload_bytes + MAX_PARTS * FIELD_MAX_BYTES


def _upload_name(raw: str) -> str:
    """The client's file name, or ``upload`` when it names nothing ('', '/', '\\')."""
    name = raw.replace("\\", "/").rstrip("/").rpartition("/")[2]
    return name if name.strip(" .") else "upload"


async def _read_multipart(request: web.Request) -> MultiDictProxy[Any]:
    limit = get_settings().max_upload_bytes
    total_limit = body_limit()
    reader = await request.multipart()
    out: MultiDict[Any] = MultiDict()
    total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise _TooLarge(400, "nested multipart bodies are not accepted")
        if len(out) >= MAX_PARTS:
            raise _TooLarge(413, f"more than {MAX_PARTS} form fields")
        if not part.name:
            raise _TooLarge(400, "a multipart part has no field name")
        # A filename parameter, even an empty one, makes the part a file (aiohttp would
        # read an empty-named binary upload as a text field and fail on it).
        _, params = parse_content_disposition(part.headers.get(hdrs.CONTENT_DISPOSITION))
        is_file = part.filename is not None or "filename" in params or "filename*" in params
        cap = limit if is_file else FIELD_MAX_BYTES
        what = (f"upload {part.name!r} is larger than {limit // 2**20} MiB (TASEG_MAX_UPLOAD_MB)"
                if is_file else
                f"form field {part.name!r} is larger than {FIELD_MAX_BYTES // 1024} KiB")
        # The spooled file outlives this function: DEEPaaS reads it, then it is collected.
        sink: Any = SpooledTemporaryFile(_SPOOL_BYTES) if is_file else bytearray()  # noqa: SIM115
        size = 0
        try:
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                total += len(chunk)
                if size > cap:
                    raise _TooLarge(413, what)
                if total > total_limit:
                    raise _TooLarge(413, f"request body is larger than {total_limit // 2**20} MiB")
                async for piece in part.decode_iter(chunk):
                    sink.write(piece) if is_file else sink.extend(piece)
        except BaseException:
            if is_file:
                sink.close()
            raise
        content_type = part.headers.get(hdrs.CONTENT_TYPE)
        if is_file:
            sink.seek(0)
            out.add(part.name, web.FileField(
                part.name, _upload_name(part.filename or ""), sink,
                content_type or "application/octet-stream", part.headers))
        else:
            try:
                out.add(part.name, bytes(sink).decode(part.get_charset(default="utf-8")))
            except (UnicodeDecodeError, LookupError):
                raise _TooLarge(400, f"form field {part.name!r} is not text; "
                                "send files with a filename") from None
    return MultiDictProxy(out)


@web.middleware
async def bounded_body(request: web.Request, handler: Callable[..., Any]) -> Any:
    """Refuse oversized bodies while they stream in (413 with a JSON reason)."""
    try:
        if request.method in ("POST", "PUT", "PATCH") and request.body_exists:
            limit = body_limit()
            length = request.content_length
            if length is not None and length > limit:
                raise _TooLarge(413, f"request body of {length:,} bytes is larger than "
                                f"{limit // 2**20} MiB (TASEG_MAX_UPLOAD_MB)")
            if request.content_type == "multipart/form-data":
                # aiohttp's post() returns this cache as it is: DEEPaaS reads our parse.
                request._post = await _read_multipart(request)  # noqa: SLF001
            else:
                request._client_max_size = limit  # noqa: SLF001 (aiohttp then counts too)
    except _TooLarge as exc:
        log.warning("%s %s answered %d: %s", request.method, request.path, exc.status,
                    exc.message)
        body = {"status": "error", "code": exc.status, "message": exc.message}
        # aiohttp then discards the unread rest of the body (lingering, not buffering), so
        # the client can read this answer once it has sent its body.
        return web.json_response(body, status=exc.status)
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:  # a non-multipart body, counted by aiohttp
        message = f"request body is larger than {body_limit() // 2**20} MiB (TASEG_MAX_UPLOAD_MB)"
        return web.json_response({"status": "error", "code": 413, "message": message},
                                 status=413)
