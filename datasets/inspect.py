"""A plain-data summary of a recording or assembly, for ``neuromodels data inspect``."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["describe"]


def _count_problems_recording(ds: xr.Dataset) -> list[str]:
    problems: list[str] = []
    resp = ds["response"]
    if resp.size and resp.size * resp.dtype.itemsize <= 512 * 2**20:
        totals = np.asarray(resp.sum("time").values)
        silent = [str(c) for c, n in zip(ds["cell"].values, totals) if n == 0]
        if silent:
            problems.append(f"{len(silent)} cell(s) with no spikes: {silent[:10]}")
    dropped = ds.attrs.get("n_spikes_outside")
    if dropped is not None and int(np.sum(dropped)):
        problems.append(f"{int(np.sum(dropped))} spike(s) outside the binning window were dropped")
    if "trials" in ds and ds.sizes.get("repeat", 0) < 2:
        problems.append("fewer than 2 repeats: no noise ceiling can be computed")
    return problems


def _kind(obj: xr.Dataset | xr.DataArray) -> str:
    if isinstance(obj, xr.Dataset):
        return "recording"
    return "features" if "feature" in obj.dims else "assembly"


def describe(obj: xr.Dataset | xr.DataArray) -> dict[str, Any]:
    """Format, dims, sizes, cells/neuroids, repeats, duration and problems of a loaded object."""
    info: dict[str, Any] = {
        "source": obj.attrs.get("source"),
        "format": obj.attrs.get("format"),
        "kind": _kind(obj),
        "dims": {str(k): int(v) for k, v in obj.sizes.items()},
    }
    for key in ("trials_table", "neo_io"):
        if key in obj.attrs:
            info[key] = str(obj.attrs[key])
    if isinstance(obj, xr.Dataset):
        time = np.asarray(obj["time"].values, dtype=float)
        rate = obj.attrs.get("frame_rate_hz")
        dt = 1.0 / float(rate) if rate else (float(np.median(np.diff(time))) if time.size > 1 else 0.0)
        info["variables"] = {str(k): list(map(str, v.dims)) for k, v in obj.data_vars.items()}
        info["cells"] = [str(c) for c in obj["cell"].values]
        info["n_cells"] = len(info["cells"])
        info["frame_rate_hz"] = None if not rate else float(rate)
        if "split" in obj.coords:
            labels, counts = np.unique(np.asarray(obj["split"].values).astype(str), return_counts=True)
            info["splits"] = {str(k): {"n_bins": int(n), "duration_s": float(n * dt)} for k, n in zip(labels, counts)}
        t0, t1 = obj.attrs.get("t_start_s"), obj.attrs.get("t_stop_s")
        # The recorded span when the adapter knows it; else the bins (whose last one may run past the end).
        info["duration_s"] = float(t1 - t0) if t0 is not None and t1 is not None else float(time.size * dt)
        info["repeats"] = int(obj.sizes.get("repeat", 0))
        if "stimulus" in obj:
            info["stimulus_shape"] = [int(s) for s in obj["stimulus"].shape]
        info["problems"] = _count_problems_recording(obj)
    elif info["kind"] == "features":
        info["name"] = obj.name
        info["layer"] = str(obj["layer"].values) if "layer" in obj.coords else str(obj.attrs.get("layer"))
        info["n_features"] = int(obj.sizes["feature"])
        info["n_stimuli"] = int(obj.sizes["presentation"])
        if "time_step" in obj.dims:
            info["n_time_steps"] = int(obj.sizes["time_step"])
        values = np.asarray(obj.values) if obj.size * obj.dtype.itemsize <= 512 * 2**20 else None
        problems = []
        if values is not None and np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            problems.append(f"{int((~np.isfinite(values)).sum())} non-finite feature values")
        info["problems"] = problems
    else:
        info["name"] = obj.name
        neuroids = [str(n) for n in obj["neuroid_id"].values]
        info["n_neuroids"] = len(neuroids)
        info["neuroids"] = neuroids[:50]
        stim = np.asarray(obj["stimulus_id"].values).astype(str)
        info["n_stimuli"] = int(np.unique(stim).size)
        info["n_presentations"] = int(obj.sizes["presentation"])
        if "repetition" in obj.coords:
            _, per = np.unique(stim, return_counts=True)
            info["repeats"] = {"min": int(per.min()), "max": int(per.max())} if per.size else {"min": 0, "max": 0}
        else:
            info["repeats"] = {"min": 1, "max": 1}
        if "time_bin" in obj.dims:
            start = np.asarray(obj["time_bin_start"].values, dtype=float)
            end = np.asarray(obj["time_bin_end"].values, dtype=float)
            info["time_bins_ms"] = [float(start.min()), float(end.max())]
            info["duration_s"] = float((end.max() - start.min()) / 1000.0)
        for key in ("region", "animal"):
            if key in obj.coords:
                info[key] = sorted(map(str, np.unique(np.asarray(obj[key].values).astype(str))))
        problems: list[str] = []
        values = np.asarray(obj.values) if obj.size * obj.dtype.itemsize <= 512 * 2**20 else None
        if values is not None and np.issubdtype(values.dtype, np.floating):
            n_nan = int(np.isnan(values).sum())
            if n_nan:
                reason = obj.attrs.get("padding") or "missing repetitions or padded time bins"
                problems.append(f"{n_nan} missing (NaN) values: {reason}")
        if isinstance(info["repeats"], dict) and info["repeats"]["min"] != info["repeats"]["max"]:
            problems.append("unequal numbers of repetitions across stimuli")
        if info["repeats"]["max"] < 2:
            problems.append("no repetitions: no noise ceiling can be computed")
        info["problems"] = problems
    info["attrs"] = {
        str(k): (v.tolist() if isinstance(v, np.ndarray) else v)
        for k, v in obj.attrs.items()
        if isinstance(v, (str, int, float, bool, np.ndarray, list))
    }
    return info
