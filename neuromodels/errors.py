"""Exceptions raised by neuromodels.

Every error a user can cause derives from :class:`NeuromodelsError`. The command line turns these into
a one-line message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

__all__ = ["NeuromodelsError", "DataFormatError", "UnknownFormatError", "ConfigError"]


class NeuromodelsError(Exception):
    """Base class of the errors neuromodels raises for bad input or bad configuration."""


class DataFormatError(NeuromodelsError, ValueError):
    """A file or in-memory object does not follow the expected data layout.

    The message always names where (``file``), what (``field``), what was ``expected`` and what was ``found``,
    and these are kept as attributes so callers can act on them.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        file: str | PathLike[str] | None = None,
        field: str | None = None,
        expected: Any = None,
        found: Any = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.field = field
        self.expected = expected
        self.found = found
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if field is not None:
            parts.append(f"field '{field}'")
        where = ": ".join(parts)
        detail = []
        if message:
            detail.append(message)
        if expected is not None:
            detail.append(f"expected {expected}")
        if found is not None:
            detail.append(f"found {found}")
        text = "; ".join(detail) if detail else "invalid data"
        super().__init__(f"{where}: {text}" if where else text)


class UnknownFormatError(DataFormatError):
    """The file's format could not be recognised (unknown extension, a directory, no known signature)."""


class ConfigError(NeuromodelsError, ValueError):
    """A parameter or configuration value is invalid."""
