"""JSON for reports and result attributes: one converter from NumPy/xarray values, one atomic writer.

Imports nothing heavy at module level, so command modules can use it at start-up.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["jsonable", "write_json", "print_json"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: mappings (keys as str), sequences, NumPy and xarray arrays and scalars.

    Non-finite floats become ``None`` (JSON has no NaN), paths their string, anything else its ``str``.
    """
    import numpy as np

    if hasattr(value, "dims") and hasattr(value, "values") and not isinstance(value, np.ndarray):
        value = value.values  # an xarray DataArray or Variable
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.item()) if value.ndim == 0 else [jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``jsonable(data)`` as indented JSON to ``path`` atomically; returns the path."""
    import json

    from neuromodels.datasets._io import atomic_path

    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    return Path(path)


def print_json(data: Any) -> None:
    """Print ``jsonable(data)`` as indented JSON to stdout: a command's ``--json`` output, the same JSON its
    ``report.json`` holds (non-finite numbers as ``null``, never a bare ``NaN``)."""
    import json

    print(json.dumps(jsonable(data), indent=2, allow_nan=False))
