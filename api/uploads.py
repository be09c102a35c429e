"""Uploaded files as DEEPaaS hands them over, and the removal of DEEPaaS's own temp copies.

DEEPaaS 2.6.0 copies an HTTP upload with ``tempfile.mkstemp()`` (and ``deepaas-cli`` a file
argument with ``tempfile.NamedTemporaryFile()``) into the temp folder, under tempfile's own
name pattern (``tmp`` + 8 random characters, no suffix), passes that path as
``UploadedFile.filename`` with the client's name in ``original_filename``, and never deletes
it. An in-process caller (the published tests, ``deepaas-execute``) passes its own file in
``filename``. Only a file that is positively one of DEEPaaS's copies is removed; a caller's
file is never touched, wherever it lies.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.errors import InvalidInputError

log = logging.getLogger(__name__)

#: ``tempfile``'s random names: "tmp" + 8 characters of ``tempfile._RandomNameSequence``.
_TEMP_NAME = re.compile(r"tmp[a-z0-9_]{8}")


def upload_path(upload: Any, name: str) -> Path:
    """The file behind an ``UploadedFile`` (its ``filename``: a string or a path)."""
    filename = getattr(upload, "filename", None)
    if not isinstance(filename, (str, os.PathLike)) or not os.fspath(filename):
        raise InvalidInputError(f"{name} must be an uploaded file")
    return Path(filename)


def is_deepaas_temp_copy(upload: Any) -> bool:
    """Whether ``upload.filename`` is a temp copy DEEPaaS made of another file.

    All of: it lies directly in the temp folder, carries tempfile's random name, is a plain
    file (not a link) with one name, owned by this user, and the upload names a different
    original file (``original_filename``).
    """
    filename = getattr(upload, "filename", None)
    original = getattr(upload, "original_filename", None)
    if not isinstance(filename, (str, os.PathLike)) or not original:
        return False
    path = Path(filename)
    if not _TEMP_NAME.fullmatch(path.name):
        return False
    if re.split(r"[\\/]", str(original))[-1] == path.name:
        return False  # the caller uploads a file of exactly this name: it is theirs
    try:
        if path.parent.resolve() != Path(tempfile.gettempdir()).resolve():
            return False
        info = path.lstat()
    except OSError:
        return False
    import stat

    return (stat.S_ISREG(info.st_mode) and info.st_nlink == 1
            and info.st_uid == os.geteuid())


def remove_temp_copy(upload: Any) -> None:
    """Delete ``upload``'s file if it is a temp copy made by DEEPaaS; otherwise do nothing."""
    if upload is None or not is_deepaas_temp_copy(upload):
        return
    path = Path(upload.filename)
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove temp upload %s: %s", path, exc)
