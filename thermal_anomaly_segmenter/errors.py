"""Exceptions of TASeg.

Every error a user can cause derives from :class:`TasegError`. Adapters map them:
the CLI prints one line and exits with code 2, the API answers HTTP 4xx with the message.
Each also derives from the matching builtin so generic handlers keep working.
"""

from __future__ import annotations


class TasegError(Exception):
    """Base class of all errors raised on purpose by TASeg."""


class InvalidInputError(TasegError, ValueError):
    """A frame, mask or argument is unusable; the message says what is wrong and how to fix it."""


class ModelNotFoundError(TasegError, FileNotFoundError):
    """A model folder does not exist or lacks ``train_config.json``."""


class DatasetError(TasegError, ValueError):
    """A dataset folder does not follow the TASeg layout."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No dataset folder was found where one was expected."""


class OutputError(TasegError, OSError):
    """Outputs cannot be written (read-only or full folder, name clash)."""


class DatasetExistsError(OutputError, FileExistsError):
    """A dataset folder to be written already holds files; nothing was overwritten."""
