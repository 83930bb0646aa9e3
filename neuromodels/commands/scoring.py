"""``neuromodels ceiling`` and ``neuromodels score``: noise ceilings and neural predictivity with a report folder.

Both commands load the neural assembly through :func:`neuromodels.datasets.load`, split it by its ``region``
coordinate when it holds several regions, and write ``report.json`` (every number and parameter) and PNG figures
into a report folder (``--out``, default ``./reports/<command>-<timestamp>``) whose files appear only once all
are written (the report-folder rule of :mod:`neuromodels._outputs`).
Heavy modules (xarray back ends, dask, matplotlib, torch) load inside the handlers, so ``neuromodels --help``
stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from neuromodels._reports import jsonable

CEILING_METHODS = ("split_half", "cc_max", "fev", "oracle")
REGRESSIONS = ("pls", "ridge", "linear")
PLS_MODES = ("brainscore", "converged")  # neuromodels.analysis.predictivity.PLS_MODES (not imported: --help stays fast)
CEILED = ("r2_over_ceiling", "r_over_ceiling_squared", "r_over_ceiling")


def register(sub: argparse._SubParsersAction) -> None:
    ceiling = sub.add_parser(
        "ceiling",
        help="noise ceiling of a neural assembly (per neuroid and aggregate)",
        description="Compute the noise ceiling of NEURAL (an assembly with repeated presentations) and write a "
        "report folder (report.json, figures).",
    )
    ceiling.add_argument("neural", help="assembly file (.nc, or any format neuromodels data inspect reads)")
    ceiling.add_argument(
        "--method",
        choices=CEILING_METHODS,
        default="split_half",
        help="split_half: Brain-Score's split-half with Spearman-Brown (default); cc_max: Schoppe et "
        "al. 2016; fev: fraction of explainable variance; oracle: leave-one-out correlation",
    )
    _common(ceiling)
    ceiling.set_defaults(handler=_ceiling)

    score = sub.add_parser(
        "score",
        help="neural predictivity of model features (cross-validated regression, per-neuroid r)",
        description="Score model features (one netCDF file per layer, dims (presentation, feature[, time_step]) with "
        "stimulus_id) against a neural assembly, Brain-Score style, and write a report folder.",
    )
    score.add_argument(
        "--features",
        nargs="+",
        required=True,
        metavar="F.nc",
        help="features file(s), e.g. written by extract_features(out=...): one layer each",
    )
    score.add_argument("--neural", required=True, metavar="N.nc", help="assembly (presentation, neuroid[, time_bin])")
    score.add_argument(
        "--regression",
        choices=REGRESSIONS,
        default="pls",
        help="pls (Brain-Score: 25 components, scale=False; default), ridge (CV alpha), linear",
    )
    score.add_argument(
        "--pls",
        choices=PLS_MODES,
        default="brainscore",
        help="PLS weights: brainscore = scikit-learn's NIPALS with its defaults (tol 1e-6, 500 "
        "iterations), Brain-Score's numbers (default); converged = the same iteration run to "
        "convergence (exact singular vectors)",
    )
    score.add_argument(
        "--ceiling",
        choices=("split_half", "none"),
        default="split_half",
        help="noise ceiling to divide by (default split_half); none reports raw r only",
    )
    score.add_argument(
        "--ceiled",
        choices=CEILED,
        default="r2_over_ceiling",
        help="ceiled score convention (default r**2 / ceiling, Brain-Score since 2026)",
    )
    score.add_argument("--splits", type=int, default=10, metavar="N", help="cross-validation splits (default 10)")
    score.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run the layer x region jobs on a local dask cluster of N worker processes",
    )
    score.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the jobs on an existing dask.distributed scheduler (tcp://host:8786)",
    )
    _common(score)
    score.set_defaults(handler=_score)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="report folder (default ./reports/<command>-<timestamp>)"
    )


# ------------------------------------------------------------------------------------------------- inputs


def _load_assembly(path: str) -> Any:
    import xarray as xr

    from neuromodels.datasets import load
    from neuromodels.errors import DataFormatError

    obj = load(path)
    if not isinstance(obj, xr.DataArray):
        raise DataFormatError(
            file=path,
            field="<object>",
            expected="an assembly (presentation, neuroid[, time_bin])",
            found="a continuous recording (xarray.Dataset); scoring needs presentations of images",
        )
    return obj


def _split_regions(neural: Any, path: str) -> dict[str, Any]:
    """``region -> assembly`` by :func:`neuromodels.analysis.split_regions` (the API's rule: one aggregate per
    region); an assembly without a ``region`` coordinate is named by the file."""
    from neuromodels.analysis.ceilings import split_regions

    if "region" not in neural.coords or neural["region"].dims != ("neuroid",):
        return {Path(path).stem: neural}
    return split_regions(neural)


def _read_features(path: str) -> Any:
    """One layer's features from a netCDF file, checked: ``(presentation, feature[, time_step])`` with ``stimulus_id``."""
    import numpy as np
    import xarray as xr

    from neuromodels.datasets._io import existing_file
    from neuromodels.errors import DataFormatError

    p = existing_file(path)
    try:
        ds = xr.open_dataset(p)
    except Exception as err:  # noqa: BLE001 - netCDF4/HDF5 raise OSError, ValueError, RuntimeError on foreign files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataFormatError(file=p, field="<file>", expected="a netCDF file of model features", found=first) from None
    names = list(ds.data_vars)
    if len(names) == 1:
        da = ds[names[0]]
    elif "features" in names:
        da = ds["features"]
    else:
        raise DataFormatError(
            file=p, field="<variables>", expected="one data variable (or one named 'features')", found=names or "none"
        )
    dims = da.dims
    if (
        dims[:2] != ("presentation", "feature")
        or len(dims) not in (2, 3)
        or (len(dims) == 3 and dims[2] != "time_step")
    ):
        raise DataFormatError(
            file=p, field="<dims>", expected="('presentation', 'feature'[, 'time_step'])", found=str(dims)
        )
    if "stimulus_id" not in da.coords or da["stimulus_id"].dims != ("presentation",):
        raise DataFormatError(file=p, field="stimulus_id", expected="a coordinate on 'presentation'", found="none")
    if not np.issubdtype(da.dtype, np.number):
        raise DataFormatError(file=p, field=str(da.name), expected="numeric features", found=f"dtype {da.dtype}")
    layer = da.attrs.get("layer")
    if layer is None and "layer" in da.coords and da["layer"].ndim == 0:
        layer = da["layer"].item()
    da = da.load()
    ds.close()
    da.attrs["source"] = str(p)
    da.attrs["layer"] = str(layer) if layer not in (None, "") else p.stem
    return da


def _features_by_layer(paths: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    features: dict[str, Any] = {}
    files: dict[str, str] = {}
    for path in paths:
        da = _read_features(path)
        name = da.attrs["layer"]
        if name in features:  # two files of the same layer name (e.g. two models): keep both, told apart by file
            name = f"{name} ({Path(path).stem})"
        features[name] = da
        files[name] = str(path)
    return features, files


# ------------------------------------------------------------------------------------------------- report


def _out_folder(out: str | None, command: str) -> Path:
    """The report folder: ``--out`` checked before any work (:func:`neuromodels._outputs.check_out_folder`), or a
    new ``reports/<command>-<timestamp>``."""
    from neuromodels._outputs import check_out_folder

    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path("reports") / f"{command}-{stamp}"
        folder, n = base, 1
        while folder.exists():
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
        return check_out_folder(folder)
    return check_out_folder(out)


def _write_report(folder: Path, report: dict[str, Any], figures: Mapping[str, Any]) -> None:
    """Write ``report.json`` and the figures into ``folder`` by the report-folder rule of
    :class:`neuromodels._outputs.ReportFolder`: each file replaced atomically once all are written, files of an
    earlier report that this one does not write removed, nothing else in the folder touched."""
    from neuromodels._outputs import ReportFolder
    from neuromodels._reports import write_json

    with ReportFolder(folder, str(report.get("command", "report"))) as out:
        for name, fig in figures.items():
            fig.savefig(out.path(name), dpi=120)
        report["figures"] = sorted(figures)
        write_json(out.path("report.json"), report)


def _time_bins(da: Any) -> dict[str, Any] | None:
    if "time_bin" not in da.dims:
        return None
    return {
        "time_bin_start_ms": jsonable(da["time_bin_start"].values) if "time_bin_start" in da.coords else None,
        "time_bin_end_ms": jsonable(da["time_bin_end"].values) if "time_bin_end" in da.coords else None,
    }


class _Warnings:
    """Collects the warnings of a computation (deduplicated) for the report, and echoes them as one line each."""

    def __enter__(self) -> list[str]:
        import warnings

        self._context = warnings.catch_warnings(record=True)
        self._records = self._context.__enter__()
        warnings.simplefilter("always")
        self.messages: list[str] = []
        return self.messages

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)
        for record in self._records:
            text = f"{record.category.__name__}: {record.message}"
            if text not in self.messages:
                self.messages.append(text)
        for text in self.messages:
            print(f"neuromodels: warning: {text}", file=sys.stderr)


def _emit(report: dict[str, Any], folder: Path, as_json: bool, lines: list[str]) -> None:
    if as_json:
        json.dump(report, sys.stdout, indent=2, allow_nan=False)
        print()
    else:
        for line in lines:
            print(line)
        print(f"report: {folder}")


def _header(command: str) -> dict[str, Any]:
    from neuromodels import __version__

    return {
        "command": command,
        "neuromodels_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _fmt(x: Any) -> str:
    """A number to 4 decimals; per-time-bin values as a list (or their maximum when there are many)."""
    value = jsonable(x)
    if isinstance(value, list):
        if len(value) <= 8:
            return "[" + ", ".join("NaN" if v is None else f"{v:.3f}" for v in value) + "]"
        finite = [v for v in value if v is not None]
        return f"{len(value)} time bins, max {max(finite):.4f}" if finite else "NaN"
    return "NaN" if value is None else f"{value:.4f}"


# ------------------------------------------------------------------------------------------------ ceiling


def _ceiling_summary(result: Any) -> dict[str, Any]:
    per = result["ceiling_per_neuroid"]
    summary = {
        "ceiling": jsonable(result["ceiling"]),
        "error": jsonable(result["error"]) if "error" in result else None,
        "neuroid_id": jsonable(per["neuroid_id"].values) if "neuroid_id" in per.coords else None,
        "ceiling_per_neuroid": jsonable(per),
        "settings": jsonable(dict(result.attrs)),
    }
    bins = _time_bins(per)
    if bins:
        summary.update(bins)
    return summary


def _ceiling(args: argparse.Namespace) -> int:
    from neuromodels.analysis.ceilings import noise_ceiling
    from neuromodels.analysis.plots_predictivity import panel_figure, plot_ceiling_distribution

    folder = _out_folder(args.out, "ceiling")
    neural = _load_assembly(args.neural)
    regions = _split_regions(neural, args.neural)
    with _Warnings() as caught:
        results = {region: noise_ceiling(da, method=args.method) for region, da in regions.items()}

    report = _header("ceiling")
    report.update(
        {
            "inputs": {"neural": str(args.neural)},
            "parameters": {"method": args.method},
            "regions": {
                region: {"n_neuroids": int(regions[region].sizes["neuroid"]), **_ceiling_summary(res)}
                for region, res in results.items()
            },
            "warnings": caught,
        }
    )
    fig, axes = panel_figure(len(results))
    for ax, (region, res) in zip(axes, results.items()):
        plot_ceiling_distribution(res["ceiling_per_neuroid"], ax=ax, title=f"{region}: {args.method}")
    _write_report(folder, report, {"ceiling_distribution.png": fig})
    lines = [
        f"{region}: ceiling ({args.method}) {_fmt(res['ceiling'])}"
        + (f" ± {_fmt(res['error'])}" if "error" in res else "")
        for region, res in results.items()
    ]
    _emit(report, folder, args.json, lines)
    return 0


# -------------------------------------------------------------------------------------------------- score


def _score(args: argparse.Namespace) -> int:
    from neuromodels.analysis.scale import combine_scores

    _check_score_args(args)
    folder = _out_folder(args.out, "score")
    features, files = _features_by_layer(args.features)
    neural = _load_assembly(args.neural)
    regions = _split_regions(neural, args.neural)
    ceilings, results, caught = _score_all(args, features, regions)
    order = {"layer": list(features), "region": list(regions)}
    combined = combine_scores(results, ("layer", "region"), order)
    report = _score_report(args, files, features, regions, ceilings, results, caught)
    figures = _score_figures(args, combined, features, regions, ceilings, results)
    _write_report(folder, report, figures)
    _emit(report, folder, args.json, _score_lines(features, regions, results))
    return 0


def _check_score_args(args: argparse.Namespace) -> None:
    from neuromodels.errors import ConfigError

    if args.splits < 2:
        raise ConfigError(f"--splits must be at least 2, got {args.splits}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise ConfigError("give --workers (a new local cluster) or --scheduler ADDRESS (an existing one), not both")


def _score_all(
    args: argparse.Namespace, features: dict[str, Any], regions: dict[str, Any]
) -> tuple[dict[str, Any], Any, list[str]]:
    """The noise ceiling of each region (unless ``--ceiling none``), then every (layer, region) predictivity job."""
    from neuromodels.analysis.scale import score_jobs

    ceilings: dict[str, Any] = {}
    with _Warnings() as caught:
        if args.ceiling != "none":
            from neuromodels.analysis.ceilings import noise_ceiling

            ceilings = {region: noise_ceiling(da, method=args.ceiling) for region, da in regions.items()}
        # the ceiling of each region is computed once, here, and shared by all its layers' jobs
        region_options = (
            {region: {"ceiling": ceilings[region], "ceiled": args.ceiled} for region in regions} if ceilings else None
        )
        results = score_jobs(
            features,
            regions,
            scheduler=args.scheduler,
            workers=args.workers,
            progress=not args.json,
            region_options=region_options,
            regression=args.regression,
            pls=args.pls,
            n_splits=args.splits,
            ceiling=None,
        )
    return ceilings, results, caught


def _score_report(
    args: argparse.Namespace,
    files: dict[str, str],
    features: dict[str, Any],
    regions: dict[str, Any],
    ceilings: dict[str, Any],
    results: Mapping[Any, Any],
    caught: list[str],
) -> dict[str, Any]:
    report = _header("score")
    report.update(
        {
            "inputs": {"features": files, "neural": str(args.neural)},
            "parameters": {
                "regression": args.regression,
                "pls": args.pls if args.regression == "pls" else None,
                "ceiling": args.ceiling,
                "ceiled": args.ceiled if ceilings else None,
                "n_splits": args.splits,
                "workers": args.workers,
                "scheduler": args.scheduler,
            },
            "settings": _common_settings(results),
            "regions": {},
            "warnings": caught,
        }
    )
    for region, da in regions.items():
        entry: dict[str, Any] = {
            "n_neuroids": int(da.sizes["neuroid"]),
            "neuroid_id": jsonable(da["neuroid_id"].values),
            "ceiling": _ceiling_summary(ceilings[region]) if ceilings else None,
            "layers": {},
        }
        bins = _time_bins(da)
        if bins:
            entry.update(bins)
        for layer in features:
            entry["layers"][layer] = _layer_entry(
                results[(layer, region)], files[layer], features[layer], report["settings"]
            )
        report["regions"][region] = entry
    return report


def _layer_entry(res: Any, file: str, layer_features: Any, shared: dict[str, Any]) -> dict[str, Any]:
    """One layer's scores in one region; ``settings`` keeps only what differs from the shared settings."""
    layer_entry = {
        "file": file,
        "n_features": int(layer_features.sizes["feature"]),
        "score": jsonable(res["score"]),
        "error": jsonable(res["error"]),
        "r_per_neuroid": jsonable(res["r_per_neuroid"]),
        "r_per_split": jsonable(res["r"]),
    }
    if "ceiled_score" in res:
        layer_entry["ceiled_score"] = jsonable(res["ceiled_score"])
        layer_entry["ceiled_error"] = jsonable(res["ceiled_error"])
    layer_entry["settings"] = {k: v for k, v in jsonable(dict(res.attrs)).items() if k not in shared or shared[k] != v}
    return layer_entry


def _score_figures(
    args: argparse.Namespace,
    combined: Any,
    features: dict[str, Any],
    regions: dict[str, Any],
    ceilings: dict[str, Any],
    results: Mapping[Any, Any],
) -> dict[str, Any]:
    from neuromodels.analysis.plots_predictivity import (
        panel_figure,
        plot_ceiling_distribution,
        plot_r_vs_ceiling,
        plot_scores,
    )

    figures: dict[str, Any] = {}
    fig, (ax,) = panel_figure(1, panel_size=(max(4.5, 0.7 * len(features) * len(regions) + 2.5), 3.8))
    plot_scores(combined, ax=ax, title=f"{args.regression} predictivity")
    figures["scores.png"] = fig
    if "ceiled_score" in combined:
        fig, (ax,) = panel_figure(1, panel_size=(max(4.5, 0.7 * len(features) * len(regions) + 2.5), 3.8))
        plot_scores(combined, variable="ceiled_score", ax=ax, title=f"ceiled ({args.ceiled})")
        figures["ceiled_scores.png"] = fig
    if ceilings:
        fig, axes = panel_figure(len(regions))
        for ax, region in zip(axes, regions):
            best = _best_layer(combined, region)
            plot_r_vs_ceiling(
                results[(best, region)]["r_per_neuroid"],
                ceilings[region],
                ax=ax,
                title=f"{region}: {best} (best layer)",
            )
        figures["r_vs_ceiling.png"] = fig
        fig, axes = panel_figure(len(regions))
        for ax, region in zip(axes, regions):
            plot_ceiling_distribution(ceilings[region]["ceiling_per_neuroid"], ax=ax, title=f"{region}: {args.ceiling}")
        figures["ceiling_distribution.png"] = fig
    return figures


def _score_lines(features: dict[str, Any], regions: dict[str, Any], results: Mapping[Any, Any]) -> list[str]:
    lines = []
    for region in regions:
        for layer in features:
            res = results[(layer, region)]
            text = f"{region} {layer}: r {_fmt(res['score'])} ± {_fmt(res['error'])}"
            if "ceiled_score" in res:
                text += f", ceiled {_fmt(res['ceiled_score'])}"
            lines.append(text)
    return lines


def _common_settings(results: Mapping[Any, Any]) -> dict[str, Any]:
    """The predictivity settings shared by every job (per-layer differences go into each layer's entry)."""
    all_attrs = [jsonable(dict(res.attrs)) for res in results.values()]
    first = all_attrs[0]
    return {k: v for k, v in first.items() if all(a.get(k) == v for a in all_attrs[1:])}


def _best_layer(combined: Any, region: str) -> str:
    import numpy as np

    score = combined["score"].sel(region=region)
    extra = [d for d in score.dims if d != "layer"]
    if extra:
        score = score.max(extra, skipna=True)
    values = np.asarray(score.values, dtype=float)
    if not np.isfinite(values).any():
        return str(combined["layer"].values[0])
    return str(combined["layer"].values[int(np.nanargmax(values))])
