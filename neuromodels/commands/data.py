"""``neuromodels data inspect|convert``: look at a recording, convert it to validated netCDF."""

from __future__ import annotations

import argparse
import ast
from typing import Any

from neuromodels._reports import print_json
from neuromodels.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="inspect and convert recordings", description="Inspect and convert recordings.")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    inspect = dsub.add_parser(
        "inspect",
        help="summarise a recording (format, dims, cells, repeats, duration, problems)",
        description="Load PATH (any supported format, or sample:NAME) and summarise it.",
    )
    inspect.add_argument("path", help="file, openretina folder, or sample:retina / sample:ventral")
    inspect.add_argument("--bin-size", type=float, default=None, help="bin width in seconds for spike-time sources")
    inspect.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the format's reader, e.g. -o by=time -o 'window=(-0.5, 1.0)'",
    )
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.set_defaults(handler=_inspect)

    convert = dsub.add_parser(
        "convert",
        help="convert any supported input into validated netCDF",
        description="Load PATH, validate it and write it to OUT (netCDF). The file is written atomically.",
    )
    convert.add_argument("path")
    convert.add_argument("out", help="output .nc file")
    convert.add_argument("--bin-size", type=float, default=None, help="bin width in seconds for spike-time sources")
    convert.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the format's reader, e.g. -o by=time -o table=encoding_table",
    )
    convert.add_argument("--json", action="store_true", help="print the summary of what was written as JSON")
    convert.set_defaults(handler=_convert)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Reader options: ``--bin-size`` and every ``-o KEY=VALUE`` (VALUE read as a Python literal, else text)."""
    options: dict[str, Any] = {} if args.bin_size is None else {"bin_size": args.bin_size}
    for item in args.option:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"option {item!r}: expected KEY=VALUE with KEY a name, e.g. by=time")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        options[key.strip()] = value
    return options


def _print_summary(info: dict[str, Any]) -> None:
    print(f"{info['source']}  [{info['format']}, {info['kind']}]")
    if "trials_table" in info:
        print(f"  trials from: {info['trials_table']}")
    print("  dims: " + ", ".join(f"{k}={v}" for k, v in info["dims"].items()))
    if info["kind"] == "recording":
        print(f"  cells: {info['n_cells']}  ({', '.join(info['cells'][:8])}{', ...' if info['n_cells'] > 8 else ''})")
        rate = info.get("frame_rate_hz")
        print(f"  duration: {info['duration_s']:.3f} s" + (f" at {rate:g} Hz" if rate else ""))
        for name, part in info.get("splits", {}).items():
            print(f"    {name}: {part['n_bins']} bins, {part['duration_s']:.3f} s")
        print(f"  repeats: {info['repeats'] or 'none'}")
        if "stimulus_shape" in info:
            print(f"  stimulus: {' x '.join(map(str, info['stimulus_shape']))} (time, y, x)")
    elif info["kind"] == "features":
        steps = f"  time steps: {info['n_time_steps']}" if "n_time_steps" in info else ""
        print(f"  layer: {info['layer']}  features: {info['n_features']}  stimuli: {info['n_stimuli']}{steps}")
    else:
        print(
            f"  neuroids: {info['n_neuroids']}  stimuli: {info['n_stimuli']}  presentations: {info['n_presentations']}"
        )
        print(f"  repeats per stimulus: {info['repeats']['min']}-{info['repeats']['max']}")
        if "duration_s" in info:
            print(f"  time bins: {info['time_bins_ms'][0]:g}-{info['time_bins_ms'][1]:g} ms")
        for key in ("region", "animal"):
            if key in info:
                print(f"  {key}: {', '.join(info[key][:8])}")
    if info["problems"]:
        print("  problems:")
        for p in info["problems"]:
            print(f"    - {p}")
    else:
        print("  problems: none")


def _inspect(args: argparse.Namespace) -> int:
    from neuromodels.datasets import describe, load

    info = describe(load(args.path, **_options(args)))
    if args.json:
        print_json(info)
    else:
        _print_summary(info)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from neuromodels._outputs import check_out_file
    from neuromodels.datasets import describe, load, write_netcdf
    from neuromodels.datasets._io import atomic_path
    from neuromodels.datasets._validate import check_lazy_values

    check_out_file(args.out, suffixes=(".nc", ".nc4", ".netcdf"))
    obj = load(args.path, **_options(args))
    check_lazy_values(obj, file=args.path)  # what load left on disk is read once here, before anything is written
    with atomic_path(args.out, suffix=".nc") as tmp:  # OUT appears only once the written file reads back valid
        write_netcdf(obj, tmp)
        written = load(tmp)
        info = describe(written)
        written.close()
    if args.json:
        print_json({"written": args.out, **info})
    else:
        print(f"wrote {args.out}")
        _print_summary(info)
    return 0
