"""``neuromodels theory``: mean-field phase diagrams, depth scales, Jacobian spectra, trajectory length.

    neuromodels theory phase-diagram --phi tanh --out reports/theory
    neuromodels theory depth-scales --phi tanh --sigma-w2 1.5 --sigma-b2 0.05 --json
    neuromodels theory spectrum --phi tanh --depth 16 --q-star 0.01 --weights orthogonal
    neuromodels theory trajectory --phi tanh --depth 10 --sigma-w2 4

``phase-diagram`` writes ``phase_diagram.nc`` (xarray: q*, c*, chi_1, chi_c, xi_q, xi_c, xi_grad over
``(sigma_w2, sigma_b2)``), ``chi_1.png``, ``xi_c.png``, ``xi_q.png`` and ``report.json`` under ``--out``;
``depth-scales`` writes ``depth_scales.nc``, ``depth_scales.png`` and ``report.json`` and prints the table (one
row per ``sigma_w2``: is the network ordered, critical or chaotic, and its depth scales). ``spectrum`` writes
``spectrum.nc``, ``spectrum.png`` and ``report.json`` (:func:`spectrum_command`, on
:mod:`neuromodels.analysis.theory.spectra`); ``trajectory`` writes ``trajectory.nc``, ``trajectory.png`` and
``report.json`` (:func:`trajectory_command`, on :mod:`neuromodels.analysis.theory.expressivity`). The library
returns datasets and figures; these handlers check the options, write the report folders and print. Grids are ``START:STOP:NUM`` (inclusive, like ``numpy.linspace``), a comma list, or one number.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from neuromodels._outputs import ReportFolder, check_out_folder
from neuromodels._reports import jsonable, print_json, write_json
from neuromodels.errors import ConfigError

PHI_CHOICES = ("tanh", "erf", "relu", "hard_tanh", "sigmoid", "linear")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "theory",
        help="deep-network theory: order/chaos phase diagram, depth scales, Jacobian spectra, expressivity",
        description="Mean-field theory of deep random networks (Schoenholz et al. 2017), Jacobian spectra by free "
        "probability (Pennington et al. 2017/2018) and trajectory length (Raghu et al. 2017).",
    )
    theory_sub = parser.add_subparsers(dest="theory_command", metavar="SUBCOMMAND")
    theory_sub.required = True

    def common(p: argparse.ArgumentParser, default_out: str) -> None:
        p.add_argument("--phi", default="tanh", choices=PHI_CHOICES, help="nonlinearity (default tanh)")
        p.add_argument("--out", default=default_out, help=f"report folder (default {default_out})")
        p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")

    p = theory_sub.add_parser(
        "phase-diagram", help="chi_1, depth scales and the critical line over (sigma_w2, sigma_b2)"
    )
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

    p = theory_sub.add_parser(
        "spectrum", help="singular values of the input-output Jacobian: free probability vs random networks"
    )
    common(p, "reports/theory/spectrum")
    p.add_argument("--depth", type=int, default=16, help="number of layers (default 16)")
    p.add_argument("--sigma-w2", type=float, default=None, help="weight variance (default: critical for --q-star)")
    p.add_argument("--sigma-b2", type=float, default=None, help="bias variance (default: critical for --q-star)")
    p.add_argument("--q-star", type=float, default=None, help="fixed point q* selecting the critical point")
    p.add_argument("--weights", default="orthogonal", choices=("orthogonal", "gaussian"))
    p.add_argument("--width", type=int, default=400, help="width of the sampled networks (default 400)")
    p.add_argument("--points", type=int, default=1000, help="points of the density (default 1000)")
    p.add_argument(
        "--draws", type=int, default=2, help="random networks sampled for the empirical spectrum (default 2)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=spectrum_command)

    p = theory_sub.add_parser("trajectory", help="trajectory length of a circle through random networks vs depth")
    common(p, "reports/theory/trajectory")
    p.add_argument("--depth", type=int, default=10, help="number of layers (default 10)")
    p.add_argument("--sigma-w2", type=float, default=None, help="weight variance")
    p.add_argument("--sigma-b2", type=float, default=None, help="bias variance")
    p.add_argument("--width", type=int, default=100, help="width (default 100)")
    p.add_argument("--points", type=int, default=20000, help="points along the circle (default 20000)")
    p.add_argument("--weights", default="gaussian", choices=("gaussian", "orthogonal"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=trajectory_command)


def parse_grid(text: str, name: str) -> Any:
    """``START:STOP:NUM`` (inclusive), ``a,b,c`` or ``x`` -> 1-D float array; ConfigError naming ``name``."""
    import numpy as np

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
        raise ConfigError(
            f"{name} must be START:STOP:NUM (NUM >= 1, STOP >= START), a comma list or a number, got {text!r}"
        ) from None
    if values is None:
        from neuromodels._limits import check_allocation

        check_allocation(64.0 * num, f"{name} with {num:,} points")  # the grid and the curves along it
        values = np.linspace(start, stop, num)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ConfigError(f"{name} must hold finite numbers, got {text!r}")
    return values


def _check_rho(rho: float) -> None:

    if not 0 < rho <= 1:
        raise ConfigError(f"--rho (dropout keep probability) must be in (0, 1], got {rho}")


def _clean(value: Any) -> Any:
    """Floats to JSON-safe values (``inf``/``nan`` as strings), recursively."""
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

    from neuromodels._figures import save_figure
    from neuromodels.analysis.theory.meanfield import phase_diagram
    from neuromodels.analysis.theory.plots import plot_phase_diagram
    from neuromodels.datasets._io import write_netcdf_atomic

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
        "arguments": _arguments(args),
        "grid": {
            "sigma_w2": [float(sw[0]), float(sw[-1]), int(sw.size)],
            "sigma_b2": [float(sb[0]), float(sb[-1]), int(sb.size)],
        },
        "seconds": seconds,
        "critical_line": {"sigma_b2": sb.tolist(), "sigma_w2": line.tolist()},
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
        print(
            f"{args.phi}: {sw.size} x {sb.size} phase diagram in {seconds:.2f} s "
            f"({100 * report['fraction_chaotic']:.0f}% chaotic)"
        )
        print("critical line (sigma_b2 -> sigma_w2):")
        for i in np.unique(np.linspace(0, sb.size - 1, min(sb.size, 6)).astype(int)):
            print(f"  {sb[i]:8.4f}  {line[i]:10.5f}")
        print(f"report: {out / 'report.json'}")
    return 0


def _depth_scales(args: argparse.Namespace) -> int:
    import numpy as np
    import xarray as xr

    from neuromodels._figures import save_figure
    from neuromodels.analysis.theory.meanfield import depth_scales
    from neuromodels.analysis.theory.plots import plot_depth_scales
    from neuromodels.datasets._io import write_netcdf_atomic
    from neuromodels.fixed_points import critical_sigma_w2

    sw = parse_grid(args.sigma_w2, "--sigma-w2")
    _check_rho(args.rho)
    if np.any(sw <= 0) or not args.sigma_b2 >= 0:
        raise ConfigError("--sigma-w2 values must be > 0 and --sigma-b2 >= 0")
    out = check_out_folder(args.out)
    scales = depth_scales(sw, args.sigma_b2, args.phi, rho=args.rho)
    critical = float(critical_sigma_w2(args.sigma_b2, args.phi, rho=args.rho))
    ds = xr.Dataset(
        {k: ("sigma_w2", np.atleast_1d(np.asarray(v, float))) for k, v in scales.items()},
        coords={"sigma_w2": sw, "sigma_b2": float(args.sigma_b2), "critical_sigma_w2": critical},
        attrs={
            "phi": args.phi,
            "rho": float(args.rho),
            "command": "neuromodels theory depth-scales " + json.dumps(_arguments(args), default=str),
            "reference": "Schoenholz et al. 2017, arXiv:1611.01232, eqs. 6-9",
        },
    )
    files = ["depth_scales.nc", *(["depth_scales.png"] if sw.size > 1 else [])]

    def phase(chi: float) -> str:
        if not np.isfinite(chi):
            return "unbounded"
        return "critical" if abs(chi - 1) < 1e-3 else ("ordered" if chi < 1 else "chaotic")

    rows = [
        {
            "sigma_w2": float(s),
            **{k: float(np.atleast_1d(v)[i]) for k, v in scales.items()},
            "phase": phase(float(np.atleast_1d(scales["chi_1"])[i])),
        }
        for i, s in enumerate(sw)
    ]
    report = _clean(
        {
            "arguments": _arguments(args),
            "sigma_b2": float(args.sigma_b2),
            "critical_sigma_w2": critical,
            "rows": rows,
            "files": [*files, "report.json"],
        }
    )
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
            print(
                f"{row['sigma_w2']:9.4f} {row['q_star']:9.4f} {row['c_star']:7.4f} {row['chi_1']:8.4f} "
                f"{row['xi_q']:8.2f} {row['xi_c']:9.2f} {row['xi_grad']:9.2f}  {row['phase']}"
            )
        print(f"report: {out / 'report.json'}")
    return 0


def _spectrum_options(args: argparse.Namespace) -> tuple[int, int]:
    """``(depth, points)`` after checking every numeric option of ``theory spectrum``."""
    depth = int(args.depth)
    if depth < 1:
        raise ConfigError(f"--depth must be a positive integer, got {depth}")
    points = 1000 if getattr(args, "points", None) is None else int(args.points)
    if points < 2:
        raise ConfigError(f"--points must be >= 2, got {points}")
    if getattr(args, "width", None) is not None and int(args.width) < 0:
        raise ConfigError(f"--width must be >= 0 (0: theory only), got {args.width}")
    if getattr(args, "draws", None) is not None and int(args.draws) < 1:
        raise ConfigError(f"--draws must be >= 1, got {args.draws}")
    if int(getattr(args, "seed", 0) or 0) < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    return depth, points


def _spectrum_report(args: argparse.Namespace, spectrum: Any, depth: int, points: int) -> dict[str, Any]:
    """The report's parameters and theory: closed-form moments, atoms, continuous part, represented moments."""
    from neuromodels.analysis.theory.spectra import spectrum_atoms, spectrum_moment

    a = spectrum.attrs
    return {
        "command": "theory spectrum",
        "parameters": {
            "phi": a["phi"],
            "depth": depth,
            "weights": a["weights"],
            "sigma_w2": a["sigma_w2"],
            "sigma_b2": a["sigma_b2"],
            "q_star": a["q_star"],
            "points": points,
            "width": getattr(args, "width", None),
            "draws": getattr(args, "draws", 2),
            "seed": getattr(args, "seed", 0),
        },
        "theory": {
            "mean": a["mean"],
            "variance": a["variance"],
            "chi": a["chi"],
            "edge": a["edge"],
            "atoms": spectrum_atoms(spectrum),
            "continuous_mass": a["continuous_mass"],
            "continuous_edge": a["continuous_edge"],
            "mass_below_grid": a["mass_below_grid"],
            "mean_from_spectrum": spectrum_moment(spectrum, 1),
            "variance_from_spectrum": spectrum_moment(spectrum, 2) - spectrum_moment(spectrum, 1) ** 2,
            "singular_value_max": math.sqrt(a["edge"]),
        },
    }


def _spectrum_empirical(args: argparse.Namespace, spectrum: Any, depth: int, n_atoms: int) -> tuple[Any, dict]:
    """Sampled eigenvalues of ``J J^T`` (``--width``, ``--draws``, ``--seed``) and the report's ``empirical``."""
    import numpy as np

    from neuromodels.analysis.theory.spectra import atom_membership, empirical_jjt_eigenvalues, ks_distance

    a = spectrum.attrs
    eigenvalues = empirical_jjt_eigenvalues(
        args.phi,
        depth,
        int(args.width),
        a["sigma_w2"],
        a["sigma_b2"],
        a["q_star"],
        a["weights"],
        draws=int(getattr(args, "draws", 2) or 2),
        seed=int(getattr(args, "seed", 0) or 0),
    )
    membership = atom_membership(eigenvalues, spectrum)
    return eigenvalues, {
        "count": int(len(eigenvalues)),
        "mean": float(eigenvalues.mean()),
        "variance": float(eigenvalues.var()),
        "max": float(eigenvalues.max()),
        "atom_fractions": [float(np.mean(membership == i)) for i in range(n_atoms)],
        "ks_distance": ks_distance(eigenvalues, spectrum),
    }


def _print_spectrum(report: dict[str, Any], spectrum: Any, depth: int, out: Any) -> None:
    a = spectrum.attrs
    t = report["theory"]
    print(
        f"{a['phi']} {a['weights']} depth {depth}: sigma_w2={a['sigma_w2']:.6g} sigma_b2={a['sigma_b2']:.6g} "
        f"q*={a['q_star']:.6g} chi={t['chi']:.6g}"
    )
    print(f"  J J^T eigenvalues: mean {t['mean']:.6g}  variance {t['variance']:.6g}  max (edge) {t['edge']:.6g}")
    measured = report.get("empirical", {}).get("atom_fractions")
    for i, atom in enumerate(t["atoms"]):
        print(
            f"  atom at {atom['eigenvalue']:.6g}: mass {atom['mass']:.6g}"
            + (f" (empirical {measured[i]:.4f})" if measured else "")
        )
    if t["atoms"] and math.isnan(t["continuous_edge"]):
        print(
            f"  continuous part: mass {t['continuous_mass']:.3g}"
            + (" (not resolved)" if t["continuous_mass"] > 0 else "")
        )
    elif t["atoms"]:
        print(f"  continuous part: mass {t['continuous_mass']:.6g}, right edge {t['continuous_edge']:.6g}")
    if "empirical" in report:
        e = report["empirical"]
        print(
            f"  empirical (width {report['parameters']['width']}, {e['count']} values): mean {e['mean']:.6g} "
            f"variance {e['variance']:.6g} max {e['max']:.6g}  KS distance {e['ks_distance']:.4f}"
        )
    if out:
        print(f"  wrote {out}/spectrum.nc, spectrum.png, report.json")


def spectrum_command(args: argparse.Namespace) -> int:
    """``neuromodels theory spectrum``: free-probability Jacobian spectrum and, with ``--width``, an empirical check.

    Namespace fields: ``phi``, ``depth``, ``sigma_w2``, ``sigma_b2``, ``q_star`` (None: the length-map fixed point;
    with ``sigma_w2`` None: the critical point for that q*), ``weights``, ``width`` (0/None: theory only),
    ``points``, ``out`` (folder or None), ``json``. Optional: ``draws`` (networks pooled, default 2), ``seed``.
    Writes ``spectrum.nc``, ``spectrum.png``, ``report.json`` under ``out``. The report's ``theory`` holds the
    closed-form moments, the atoms (eigenvalue, mass), the continuous part's mass and edge, ``mass_below_grid``
    and the moments of the represented law (``mean_from_spectrum``: atoms + density, a check on the closed
    forms); ``empirical`` the sampled moments, the fraction of samples at each atom and the KS distance.
    """
    from neuromodels.analysis.theory.spectra import jacobian_spectrum, plot_spectrum
    from neuromodels.datasets._io import write_netcdf_atomic

    depth, points = _spectrum_options(args)
    out = getattr(args, "out", None)
    out = check_out_folder(out) if out else None
    spectrum = jacobian_spectrum(
        args.phi,
        depth,
        getattr(args, "sigma_w2", None),
        getattr(args, "sigma_b2", None),
        getattr(args, "q_star", None),
        args.weights,
        points=points,
    )
    report = _spectrum_report(args, spectrum, depth, points)
    eigenvalues = None
    if getattr(args, "width", None):
        eigenvalues, report["empirical"] = _spectrum_empirical(args, spectrum, depth, len(report["theory"]["atoms"]))
    if out:
        spectrum.attrs["parameters_json"] = json.dumps(jsonable(report["parameters"]))
        report["files"] = {
            "netcdf": str(out / "spectrum.nc"),
            "figure": str(out / "spectrum.png"),
            "report": str(out / "report.json"),
        }
        with ReportFolder(out, "theory spectrum") as folder:
            write_netcdf_atomic(spectrum, folder.path("spectrum.nc"))
            plot_spectrum(spectrum, eigenvalues, folder.path("spectrum.png"))
            write_json(folder.path("report.json"), report)
    if getattr(args, "json", False):
        print_json(report)
    else:
        _print_spectrum(report, spectrum, depth, out)
    return 0


def _print_trajectory(report: dict[str, Any], stats: Any, out: Any) -> None:
    a = stats.attrs
    print(
        f"{a['phi']} width {a['width']} sigma_w2={a['sigma_w2']:g} sigma_b2={a['sigma_b2']:g}, "
        f"{a['points']} points on the circle"
    )
    print(
        f"  length growth per layer: measured {report['measured_growth_factor']:.4f}, mean field "
        f"{report['mean_field_growth_factor']:.4f}, Raghu bound factor {a['raghu_factor']:.4f}"
    )
    print("  depth  length        transitions  patterns")
    for d in stats["depth"].values:
        print(
            f"  {d:5d}  {stats['length'].values[d]:12.5g}  {stats['transitions'].values[d]:11d}  "
            f"{stats['patterns'].values[d]:8d}"
        )
    if report["resolution_ratio"] < 0.98:
        print(
            f"  note: the deepest curve is not resolved (length on every other point / length = "
            f"{report['resolution_ratio']:.3f}); raise --points for exact lengths at depth"
        )
    if out:
        print(f"  wrote {out}/trajectory.nc, trajectory.png, report.json")


def trajectory_command(args: argparse.Namespace) -> int:
    """``neuromodels theory trajectory``: trajectory length, transitions and patterns vs depth.

    Namespace fields: ``phi``, ``depth``, ``sigma_w2``, ``sigma_b2``, ``width``, ``points``, ``out``, ``json``;
    optional ``weights`` (default gaussian, as Raghu et al.), ``seed``, ``q`` (default 1).
    Writes ``trajectory.nc``, ``trajectory.png``, ``report.json`` under ``out``.
    """
    from neuromodels.analysis.theory.expressivity import growth_rate, plot_trajectory, trajectory_statistics
    from neuromodels.datasets._io import write_netcdf_atomic

    sigma_w2 = 4.0 if getattr(args, "sigma_w2", None) is None else float(args.sigma_w2)
    sigma_b2 = 0.0 if getattr(args, "sigma_b2", None) is None else float(args.sigma_b2)
    width = 100 if getattr(args, "width", None) is None else int(args.width)
    points = 20_000 if getattr(args, "points", None) is None else int(args.points)
    if width < 2:  # trajectory_statistics' own bounds, named by their options
        raise ConfigError(f"--width must be >= 2, got {width}")
    if points < 8:
        raise ConfigError(f"--points must be >= 8, got {points}")
    if int(getattr(args, "seed", 0) or 0) < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    out = getattr(args, "out", None)
    out = check_out_folder(out) if out else None
    stats = trajectory_statistics(
        args.phi,
        int(args.depth),
        width,
        sigma_w2,
        sigma_b2,
        points,
        q=float(getattr(args, "q", None) or 1.0),
        weights=getattr(args, "weights", None) or "gaussian",
        seed=int(getattr(args, "seed", 0) or 0),
    )
    a = stats.attrs
    report: dict[str, Any] = {
        "command": "theory trajectory",
        "parameters": {
            k: a[k] for k in ("phi", "width", "sigma_w2", "sigma_b2", "points", "q", "weights", "regions", "seed")
        }
        | {"depth": int(args.depth)},
        "bound": {"form": a["bound_form"], "factor": a["raghu_factor"]},
        "measured_growth_factor": growth_rate(stats["length"].values),
        "resolution_ratio": float(stats["length_half"].values[-1] / stats["length"].values[-1]),
        "mean_field_growth_factor": growth_rate(stats["mean_field_length"].values),
        "per_depth": {
            name: stats[name].values.tolist()
            for name in (
                "length",
                "mean_field_length",
                "bound",
                "transitions",
                "patterns",
                "pattern_changes",
                "length_half",
            )
        },
    }
    if out:
        stats.attrs["parameters_json"] = json.dumps(jsonable(report["parameters"]))
        report["files"] = {
            "netcdf": str(out / "trajectory.nc"),
            "figure": str(out / "trajectory.png"),
            "report": str(out / "report.json"),
        }
        with ReportFolder(out, "theory trajectory") as folder:
            write_netcdf_atomic(stats, folder.path("trajectory.nc"))
            plot_trajectory(stats, folder.path("trajectory.png"))
            write_json(folder.path("report.json"), report)
    if getattr(args, "json", False):
        print_json(report)
    else:
        _print_trajectory(report, stats, out)
    return 0
