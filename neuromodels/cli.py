"""The ``neuromodels`` command: a thin layer over the Python API.

Subcommands are registered per area by ``register(subparsers)`` functions listed in :data:`COMMANDS`;
each handler returns an exit code. Errors derived from :class:`~neuromodels.errors.NeuromodelsError` are
printed as one line on stderr with exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from neuromodels import __version__
from neuromodels.errors import NeuromodelsError

# module path -> its register(subparsers) function; each area adds its line here.
COMMANDS: tuple[str, ...] = (
    "neuromodels.commands.data",
    "neuromodels.commands.scoring",
    "neuromodels.commands.fit",
    "neuromodels.commands.convrnn",
    "neuromodels.commands.theory",
    "neuromodels.commands.spiking",
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
    try:
        return int(args.handler(args) or 0)
    except NeuromodelsError as err:
        print(f"neuromodels: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuromodels: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
