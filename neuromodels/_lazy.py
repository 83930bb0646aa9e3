"""Lazy attribute access for packages: public names import their defining module on first use.

A package lists ``{name: module}`` and gets module-level ``__getattr__`` and ``__dir__`` (PEP 562), so that
``import neuromodels.fitting`` does not import torch until ``fitting.fit`` is touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` resolving each of ``names`` from its module.

    ``names`` maps a public name to the module that defines it: absolute (``"neuromodels.retina"``) or
    relative to the package (``"loop"``). Resolved values are cached in the package's namespace.
    """
    module_globals = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module __getattr__ of PEP 562
        if name in names:
            where = names[name]
            module = importlib.import_module(where if where.startswith("neuromodels") else f"{package}.{where}")
            value = getattr(module, name)
            module_globals[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807 - the module __dir__ of PEP 562
        return sorted(set(module_globals) | set(names))

    return __getattr__, __dir__
