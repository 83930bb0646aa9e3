"""``neuromodels theory``: mean-field phase diagrams, depth scales, Jacobian spectra, trajectory length.

    neuromodels theory phase-diagram --phi tanh --out reports/theory
    neuromodels theory depth-scales --phi tanh --sigma-w2 1.5 --sigma-b2 0.05 --json
    neuromodels theory spectrum --phi tanh --depth 16 --q-star 0.01 --weights orthogonal
    neuromodels theory trajectory --phi tanh --depth 10 --sigma-w2 4

``phase-diagram`` writes ``phase_diagram.nc`` (xarray: q*, c*, chi_1, chi_c, xi_q, xi_c, xi_grad over
``(sigma_w2, sigma_b2)``), ``chi_1.png``, ``xi_c.png``, ``xi_q.png`` and ``report.json`` under ``--out``;
``depth-scales`` writes ``depth_scales.nc``, ``depth_scales.png`` and ``report.json`` and prints the table (one
row per ``sigma_w2``: is the network ordered, critical or chaotic, and its depth scales). ``spectrum`` and
``trajectory`` are implemented in :mod:`neuromodels.analysis.theory.spectra` and
:mod:`neuromodels.analysis.theory.expressivity` (``spectrum_command(args)``, ``trajectory_command(args)``).
Grids are ``START:STOP:NUM`` (inclusive, like ``numpy.linspace``), a comma list, or one number.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from neuromodels._outputs import ReportFolder, check_out_folder
from neuromodels._reports import print_json, write_json

PHI_CHOICES = ("tanh", "erf", "relu", "hard_tanh", "sigmoid", "linear")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "theory", help="deep-network theory: order/chaos phase diagram, depth scales, Jacobian spectra, expressivity",
        description="Mean-field theory of deep random networks (Schoenholz et al. 2017), Jacobian spectra by free "
                    "probability (Pennington et al. 2017/2018) and trajectory length (Raghu et al. 2017).",
    )
    theory_sub = parser.add_subparsers(dest="theory_command", metavar="SUBCOMMAND")
    theory_sub.required = True

    def common(p: argparse.ArgumentParser, default_out: str) -> None:
        p.add_argument("--phi", default="tanh", choices=PHI_CHOICES, help="nonlinearity (default tanh)")
        p.add_argument("--out", default=default_out, help=f"report folder (default {default_out})")
        p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")

    p = theory_sub.add_parser("phase-diagram", help="chi_1, depth scales and the critical line over (sigma_w2, sigma_b2)")
    common(p, "reports/theory/phase-diagram")
    p.add_argument("--sigma-w2", default="1:4:200", help="grid of sigma_w^2 (default 1:4:200)")
    p.add_argument("--sigma-b2", default="0:0.3:200", help="grid of sigma_b^2 (default 0:0.3:200)")
    p.add_argument("--rho", type=float, default=1.0, help="dropout keep probability (default 1: no dropout)")
    p.set_defaults(handler=_phase_diagram)

    p = theory_sub.add_parser("depth-scales", help="q*, c*, chi_1, xi_q, xi_c, xi_grad along sigma_w2 at one sigma_b2")
    common(p, "reports/theory/depth-scales")
    p.add_argument("--sigma-w2", default="1:4:301", help="sigma_w^2: one value or a grid (default 1:4:301)")
    p.add_argument("--sigma-b2", type=float, default=0.05, help="sigma_b^2 (default 0.05)")
    p.add_argument("--rho", type=float, default=1.0, help="dropout keep probability (default 1: no dropout)")
    p.set_defaults(handler=_depth_scales)

    p = theory_sub.add_parser("spectrum", help="singular values of the input-output Jacobian: free probability vs "
                                               "random networks")
    common(p, "reports/theory/spectrum")
    p.add_argument("--depth", type=int, default=16, help="number of layers (default 16)")
    p.add_argument("--sigma-w2", type=float, default=None, help="weight variance (default: critical for --q-star)")
    p.add_argument("--sigma-b2", type=float, default=None, help="bias variance (default: critical for --q-star)")
    p.add_argument("--q-star", type=float, default=None, help="fixed point q* selecting the critical point")
    p.add_argument("--weights", default="orthogonal", choices=("orthogonal", "gaussian"))
    p.add_argument("--width", type=int, default=400, help="width of the sampled networks (default 400)")
    p.add_argument("--points", type=int, default=1000, help="points of the density (default 1000)")
    p.add_argument("--draws", type=int, default=2, help="random networks sampled for the empirical spectrum (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_delegate("spectra", "spectrum_command"))

    p = theory_sub.add_parser("trajectory", help="trajectory length of a circle through random networks vs depth")
    common(p, "reports/theory/trajectory")
    p.add_argument("--depth", type=int, default=10, help="number of layers (default 10)")
    p.add_argument("--sigma-w2", type=float, default=None, help="weight variance")
    p.add_argument("--sigma-b2", type=float, default=None, help="bias variance")
    p.add_argument("--width", type=int, default=100, help="width (default 100)")
    p.add_argument("--points", type=int, default=20000, help="points along the circle (default 20000)")
    p.add_argument("--weights", default="gaussian", choices=("gaussian", "orthogonal"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_delegate("expressivity", "trajectory_command"))


def _delegate(module: str, function: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        import importlib

        from neuromodels.errors import ConfigError

        try:
            target = importlib.import_module(f"neuromodels.analysis.theory.{module}")
        except ModuleNotFoundError as err:
            if err.name and err.name.endswith(module):
                raise ConfigError(f"'theory {args.theory_command}' needs neuromodels.analysis.theory.{module}, "
                                  "which this installation lacks") from None
            raise
        return int(getattr(target, function)(args) or 0)

    return handler


def parse_grid(text: str, name: str) -> Any:
    """``START:STOP:NUM`` (inclusive), ``a,b,c`` or ``x`` -> 1-D float array; ConfigError naming ``name``."""
    import numpy as np

    from neuromodels.errors import ConfigError

    text = str(text).strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            if num < 1 or stop < start:
                raise ValueError
            values = None
        else:
            values = np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError:
        raise ConfigError(f"{name} must be START:STOP:NUM (NUM >= 1, STOP >= START), a comma list or a number, "
                          f"got {text!r}") from None
    if values is None:
        from neuromodels._limits import check_allocation

        check_allocation(64.0 * num, f"{name} with {num:,} points")  # the grid and the curves along it
        values = np.linspace(start, stop, num)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ConfigError(f"{name} must hold finite numbers, got {text!r}")
    return values


def _check_rho(rho: float) -> None:
    from neuromodels.errors import ConfigError

    if not 0 < rho <= 1:
        raise ConfigError(f"--rho (dropout keep probability) must be in (0, 1], got {rho}")


def _clean(value: Any) -> Any:
    """Floats to JSON-safe values (``inf``/``nan`` as strings), recursively."""
    import math

    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return value


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("handler", "command", "theory_command")}


def _phase_diagram(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from neuromodels.analysis.theory.meanfield import phase_diagram
    from neuromodels.analysis.theory.plots import plot_phase_diagram, save_figure
    from neuromodels.datasets._io import write_netcdf_atomic
    from neuromodels.errors import ConfigError

    sw = parse_grid(args.sigma_w2, "--sigma-w2")
    sb = parse_grid(args.sigma_b2, "--sigma-b2")
    _check_rho(args.rho)
    if np.any(sw <= 0) or np.any(sb < 0):
        raise ConfigError("--sigma-w2 values must be > 0 and --sigma-b2 values >= 0")
    from neuromodels._limits import check_allocation

    check_allocation(8.0 * 12 * sw.size * sb.size, f"--sigma-w2 x --sigma-b2 grid of {sw.size:,} x {sb.size:,} points")
    out = check_out_folder(args.out)
    started = time.perf_counter()
    ds = phase_diagram(sw, sb, args.phi, rho=args.rho)
    seconds = time.perf_counter() - started
    ds.attrs["command"] = "neuromodels theory phase-diagram " + json.dumps(_arguments(args), default=str)
    figures = [f"{variable}.png" for variable in ("chi_1", "xi_c", "xi_q")] if sw.size > 1 and sb.size > 1 else []
    line = ds["critical_sigma_w2"].values
    report = {
        "arguments": _arguments(args), "grid": {"sigma_w2": [float(sw[0]), float(sw[-1]), int(sw.size)],
                                                "sigma_b2": [float(sb[0]), float(sb[-1]), int(sb.size)]},
        "seconds": seconds, "critical_line": {"sigma_b2": sb.tolist(), "sigma_w2": line.tolist()},
        "fraction_chaotic": float((ds["chi_1"].values > 1).mean()),
        "max_xi_c_finite": float(np.nanmax(np.where(np.isfinite(ds["xi_c"].values), ds["xi_c"].values, np.nan))),
        "files": ["phase_diagram.nc", *figures, "report.json"],
    }
    report = _clean(report)
    with ReportFolder(out, "theory phase-diagram") as folder:
        write_netcdf_atomic(ds, folder.path("phase_diagram.nc"))
        for name in figures:
            save_figure(plot_phase_diagram(ds, name.removesuffix(".png")), folder.path(name))
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        print(f"{args.phi}: {sw.size} x {sb.size} phase diagram in {seconds:.2f} s "
              f"({100 * report['fraction_chaotic']:.0f}% chaotic)")
        print("critical line (sigma_b2 -> sigma_w2):")
        for i in np.unique(np.linspace(0, sb.size - 1, min(sb.size, 6)).astype(int)):
            print(f"  {sb[i]:8.4f}  {line[i]:10.5f}")
        print(f"report: {out / 'report.json'}")
    return 0


def _depth_scales(args: argparse.Namespace) -> int:
    import numpy as np
    import xarray as xr

    from neuromodels.analysis.theory.meanfield import critical_sigma_w2, depth_scales
    from neuromodels.analysis.theory.plots import plot_depth_scales, save_figure
    from neuromodels.datasets._io import write_netcdf_atomic
    from neuromodels.errors import ConfigError

    sw = parse_grid(args.sigma_w2, "--sigma-w2")
    _check_rho(args.rho)
    if np.any(sw <= 0) or not args.sigma_b2 >= 0:
        raise ConfigError("--sigma-w2 values must be > 0 and --sigma-b2 >= 0")
    out = check_out_folder(args.out)
    scales = depth_scales(sw, args.sigma_b2, args.phi, rho=args.rho)
    critical = float(critical_sigma_w2(args.sigma_b2, args.phi, rho=args.rho))
    ds = xr.Dataset({k: ("sigma_w2", np.atleast_1d(np.asarray(v, float))) for k, v in scales.items()},
                    coords={"sigma_w2": sw, "sigma_b2": float(args.sigma_b2), "critical_sigma_w2": critical},
                    attrs={"phi": args.phi, "rho": float(args.rho),
                           "command": "neuromodels theory depth-scales " + json.dumps(_arguments(args), default=str),
                           "reference": "Schoenholz et al. 2017, arXiv:1611.01232, eqs. 6-9"})
    files = ["depth_scales.nc", *(["depth_scales.png"] if sw.size > 1 else [])]

    def phase(chi: float) -> str:
        if not np.isfinite(chi):
            return "unbounded"
        return "critical" if abs(chi - 1) < 1e-3 else ("ordered" if chi < 1 else "chaotic")

    rows = [{"sigma_w2": float(s), **{k: float(np.atleast_1d(v)[i]) for k, v in scales.items()},
             "phase": phase(float(np.atleast_1d(scales["chi_1"])[i]))} for i, s in enumerate(sw)]
    report = _clean({"arguments": _arguments(args), "sigma_b2": float(args.sigma_b2), "critical_sigma_w2": critical,
                     "rows": rows, "files": [*files, "report.json"]})
    with ReportFolder(out, "theory depth-scales") as folder:
        write_netcdf_atomic(ds, folder.path("depth_scales.nc"))
        if sw.size > 1:
            save_figure(plot_depth_scales(ds), folder.path("depth_scales.png"))
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        print(f"{args.phi}, sigma_b2 = {args.sigma_b2:g}, rho = {args.rho:g}: critical sigma_w2 = {critical:.5f}")
        header = f"{'sigma_w2':>9} {'q*':>9} {'c*':>7} {'chi_1':>8} {'xi_q':>8} {'xi_c':>9} {'xi_grad':>9}  phase"
        print(header)
        print("-" * len(header))
        step = max(1, len(rows) // 12)
        for row in rows[::step]:
            print(f"{row['sigma_w2']:9.4f} {row['q_star']:9.4f} {row['c_star']:7.4f} {row['chi_1']:8.4f} "
                  f"{row['xi_q']:8.2f} {row['xi_c']:9.2f} {row['xi_grad']:9.2f}  {row['phase']}")
        print(f"report: {out / 'report.json'}")
    return 0
