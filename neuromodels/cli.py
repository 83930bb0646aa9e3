"""The ``neuromodels`` command: a thin layer over the Python API.

Subcommands are registered per area by ``register(subparsers)`` functions listed in :data:`COMMANDS`;
each handler returns an exit code. Errors derived from :class:`~neuromodels.errors.NeuromodelsError`, failures
of the environment (``OSError`` for permissions, a full disk, a read-only file system, a missing path) and
``MemoryError`` are printed as one line on stderr with exit code 2, without a traceback; a closed stdout pipe
(``--json | head``) ends the command quietly with 141. Output folders and sizes are checked by the handlers
before any work (:mod:`neuromodels._outputs`, :mod:`neuromodels._limits`), so these are the last resort.
:func:`main` selects matplotlib's Agg backend once for every subcommand's figures.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from neuromodels import __version__
from neuromodels.errors import NeuromodelsError, naming_loaded_files

# module path -> its register(subparsers) function; each area adds its line here.
COMMANDS: tuple[str, ...] = (
    "neuromodels.commands.data",
    "neuromodels.commands.scoring",
    "neuromodels.commands.fit",
    "neuromodels.commands.convrnn",
    "neuromodels.commands.theory",
    "neuromodels.commands.spiking",
    "neuromodels.commands.continual",
    "neuromodels.commands.walkback",
    "neuromodels.commands.robustness",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuromodels",
        description="Fit models to neural recordings, score them against noise ceilings, simulate spiking circuits.",
    )
    parser.add_argument("--version", action="version", version=f"neuromodels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _use_agg()
    try:
        with naming_loaded_files():  # errors name the file the user passed, not a source recorded inside it
            code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except NeuromodelsError as err:
        print(f"neuromodels: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuromodels: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `neuromodels ... --json | head`: the reader left, as any Unix tool we stop quietly
        _discard_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool the closed pipe stopped
    except MemoryError:
        print(
            "neuromodels: error: out of memory; use smaller sizes (bins, durations, widths, batch sizes)",
            file=sys.stderr,
        )
        return 2
    except OSError as err:
        if err.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"neuromodels: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


# Failures of the environment (a full disk, a read-only file system, permissions), not of the code: one line.
_ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EACCES",
        "EPERM",
        "EROFS",
        "ENOSPC",
        "EDQUOT",
        "EEXIST",
        "ENOTDIR",
        "EISDIR",
        "ENOENT",
        "ENAMETOOLONG",
        "EFBIG",
    )
    if hasattr(errno, name)
)


def _use_agg() -> None:
    """The command line writes its figures to files: matplotlib's non-interactive Agg backend, set here once
    (after parsing, so that ``--help`` does not import matplotlib). The library never switches the backend."""
    import matplotlib

    matplotlib.use("Agg")


def _discard_stdout() -> None:
    """Point stdout at /dev/null so that the flush at exit does not raise again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced by an object without a file (tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
