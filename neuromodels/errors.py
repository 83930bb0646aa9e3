"""Exceptions raised by neuromodels.

Every error a user can cause derives from :class:`NeuromodelsError`. The command line turns these into
a one-line message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from os import PathLike
from typing import Any

__all__ = ["NeuromodelsError", "DataFormatError", "UnknownFormatError", "ConfigError"]


class NeuromodelsError(Exception):
    """Base class of the errors neuromodels raises for bad input or bad configuration."""


# recorded ``attrs['source']`` -> where it was last loaded from, while a command runs (None: not recording)
_LOADED_AS: dict[str, str] | None = None


@contextlib.contextmanager
def naming_loaded_files() -> Iterator[None]:
    """Within the block, a :class:`DataFormatError` that names the ``source`` recorded inside a file the block
    loaded (``sample:ventral``, kept in a converted netCDF file for provenance) names that file instead, the one
    the user passed. The command line runs every command in this block; library code outside it keeps the
    recorded names (one process may hold many objects from one source)."""
    global _LOADED_AS
    previous, _LOADED_AS = _LOADED_AS, {}
    try:
        yield
    finally:
        _LOADED_AS = previous


def note_loaded(recorded_source: Any, path: str | PathLike[str]) -> None:
    """Record (inside :func:`naming_loaded_files`) that the object whose ``attrs['source']`` is
    ``recorded_source`` was loaded from ``path``. The latest load wins; loading the source itself
    (``note_loaded("sample:ventral", "sample:ventral")``) stops the renaming."""
    if _LOADED_AS is not None:
        _LOADED_AS[str(recorded_source)] = str(path)


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
            loaded = None if _LOADED_AS is None else _LOADED_AS.get(self.file)
            if loaded is not None and loaded != self.file:
                # the source recorded inside the file the user passed: name that file
                self.file = loaded
                parts.append(f"{self.file} (recorded source {file})")
            else:
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
