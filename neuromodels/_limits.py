"""Sizes checked before allocating: how much memory a request needs, said before it fails.

Light on imports (no NumPy): the data adapters and the spiking configuration use it while checking arguments.
"""

from __future__ import annotations

import os

from neuromodels.errors import ConfigError

__all__ = ["available_memory", "format_bytes", "check_allocation"]


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo, else physical memory),
    or None where the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes as ``"3.2 GiB"`` / ``"512.0 MiB"`` (GiB from 1 GiB up)."""
    if n >= 2**30:
        return f"{n / 2**30:,.1f} GiB"
    return f"{n / 2**20:,.1f} MiB"


def check_allocation(nbytes: float, what: str, *, error: type[Exception] = ConfigError) -> None:
    """Raise ``error`` when ``nbytes`` exceed the memory available: "``what`` needs about X GiB of memory, more
    than the Y GiB available". ``what`` names the parameter that decides the size."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise error(
            f"{what} needs about {format_bytes(nbytes)} of memory, more than the "
            f"{format_bytes(available)} available; choose a smaller size"
        )
