"""Model features from any torch module: forward hooks on named layers, optional PCA, optional on-disk output.

>>> from neuromodels.analysis.features import extract_features
>>> feats = extract_features(model, images, layers=["layer3", "layer4"])   # dict layer -> DataArray
>>> feats["layer4"].dims
('presentation', 'feature')

Conventions (docs/data-model.md, "Model features"): each layer gives an ``xr.DataArray`` with dims
``(presentation, feature[, time_step])``, the ``stimulus_id`` coordinate (and every other per-stimulus
coordinate of the input, e.g. ``object_name``) on ``presentation``, a scalar ``layer`` coordinate, and attrs
naming the layer, the model class, the per-stimulus shape of the layer output before flattening
(``feature_shape``) and the PCA settings. Activations are flattened in C order (``output.reshape(batch, -1)``),
so ``feature`` indexes ``(channel, y, x)`` of a conv layer row-major. Values are float32.

Layers are named as in ``dict(model.named_modules())`` (``""`` is the whole model). Their outputs are captured
by forward hooks that are always removed afterwards, also when the forward pass raises. A module whose
output is a tuple or list (``nn.LSTM`` returns ``(output, (h, c))``) contributes its first element.

Recurrent models call the same module once per time step. Without ``time_steps`` the output of the last call
in each forward pass is kept (the state after the final step); with ``time_steps`` the outputs of several calls
are kept and stacked on a ``time_step`` dimension whose coordinate is the index of the call.

The model runs under ``torch.no_grad()`` in eval mode (its previous mode is restored afterwards), on
``device``; the module is moved there with ``model.to(device)``. Results are deterministic for deterministic
modules: stimuli are visited in order, in batches of ``batch_size``.

On-disk output (``out=``) is netCDF-4 written batch by batch with the netCDF4 library (HDF5 underneath, chunked
by ``batch_size`` stimuli), rather than raw h5py, so that the file reopens lazily with ``xarray.open_dataarray``
(dask-backed, picklable for a Dask cluster) and is read as is by ``neuromodels score --features``.

PCA (Brain-Score's ``LayerPCA``): the projection of each layer is fitted on the activations to a separate
image set (Brain-Score uses 1,000 ImageNet validation images) and applied batch by batch to the stimuli, so
the full-size activations to the scored stimuli are never held at once. Layers with no more features than
``n_components`` are left as they are, as in Brain-Score. The fit is an exact eigendecomposition in float64
(of the Gram matrix ``Xc Xc^T`` when there are fewer images than features, else of ``Xc^T Xc``), equal to
scikit-learn's ``PCA(svd_solver="full")`` including its sign convention (the largest-magnitude entry of every
component is positive). Brain-Score's default solver may pick a randomized SVD for some shapes, which is an
approximation of this; the scores do not depend on component signs. Components beyond the numerical rank of
the fitting set (centering removes one dimension, so ``n_images`` images span at most ``n_images - 1``) have no
defined direction: they are returned as zeros, i.e. constant features, with a warning unless the only ones are
those lost to centring (``n_components >= n_images``, as in Brain-Score's 1,000 components of 1,000 images).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["LayerPCA", "extract_features", "fit_pca"]

_IMAGE_DIMS = ("channel", "y", "x")


# --------------------------------------------------------------------------------------------------- stimuli


@dataclass
class _Stimuli:
    """Stimuli as an indexable source of float32 batches, with their ids and per-stimulus coordinates."""

    n: int
    stimulus_id: np.ndarray  # (n,) object array of str
    coords: dict[str, np.ndarray]  # other per-stimulus coordinates
    batch: Callable[[int, int], np.ndarray]  # (start, stop) -> array (stop - start, ...)


def _as_stimuli(stimuli: Any, stimulus_ids: Sequence[Any] | None) -> _Stimuli:
    if isinstance(stimuli, xr.DataArray):
        return _stimuli_from_dataarray(stimuli)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(stimuli, torch.Tensor):
        values: Any = stimuli.detach().cpu()
        to_numpy: Callable[[Any], np.ndarray] = lambda t: t.numpy()  # noqa: E731
    elif isinstance(stimuli, np.ndarray):
        values, to_numpy = stimuli, np.asarray
    else:
        raise DataFormatError(
            field="stimuli",
            expected="an xarray.DataArray with a stimulus_id coordinate, a torch.Tensor or a numpy array",
            found=type(stimuli).__name__,
        )
    if stimulus_ids is None:
        raise DataFormatError(
            "pass stimulus_ids=... with a tensor or array of stimuli",
            field="stimulus_id",
            expected="one id per stimulus",
            found="none",
        )
    ids = np.asarray([str(s) for s in stimulus_ids], dtype=object)
    if values.ndim < 2 or len(ids) != values.shape[0]:
        raise DataFormatError(
            field="stimulus_id",
            expected=f"{values.shape[0] if values.ndim else 0} ids (one per stimulus on the first axis)",
            found=f"{len(ids)} ids",
        )
    _check_unique_ids(ids)
    if len(ids) == 0:
        raise DataFormatError(field="stimulus_id", expected="at least one stimulus", found="0")
    return _Stimuli(len(ids), ids, {}, lambda a, b: np.asarray(to_numpy(values[a:b]), dtype=np.float32))


def _stimuli_from_dataarray(da: xr.DataArray) -> _Stimuli:
    source = da.attrs.get("source")
    if da.ndim < 2 or da.dims[0] not in ("stimulus", "presentation"):
        raise DataFormatError(
            file=source,
            field="<dims>",
            expected="('stimulus' or 'presentation', ...) with stimuli on the first dim",
            found=str(da.dims),
        )
    first = da.dims[0]
    if "stimulus_id" not in da.coords or da["stimulus_id"].dims != (first,):
        raise DataFormatError(file=source, field="stimulus_id", expected=f"a coordinate on '{first}'", found="none")
    if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.complexfloating):
        raise DataFormatError(
            file=source, field="<values>", expected="real numeric pixel values", found=f"dtype {da.dtype}"
        )
    rest = da.dims[1:]
    if {"y", "x"} <= set(rest) and set(rest) <= set(_IMAGE_DIMS):
        # images go to the model as (batch, channel, y, x), whatever their stored order
        da = da.transpose(first, *[d for d in _IMAGE_DIMS if d in rest])
        add_channel = "channel" not in rest
    else:
        add_channel = False
    ids = np.asarray([str(s) for s in da["stimulus_id"].values], dtype=object)
    _check_unique_ids(ids, source)
    if len(ids) == 0:
        raise DataFormatError(file=source, field="stimulus_id", expected="at least one stimulus", found="0")
    coords = {
        name: np.asarray(coord.values)
        for name, coord in da.coords.items()
        if coord.dims == (first,) and name not in ("stimulus_id", first)
    }

    def batch(a: int, b: int) -> np.ndarray:
        values = np.asarray(da.isel({first: slice(a, b)}).values, dtype=np.float32)
        return values[:, None] if add_channel else values

    return _Stimuli(len(ids), ids, coords, batch)


def _check_unique_ids(ids: np.ndarray, source: Any = None) -> None:
    index = pd.Index(ids)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise DataFormatError(
            file=source, field="stimulus_id", expected="unique ids, one per stimulus", found=f"duplicates {dup}"
        )


# ---------------------------------------------------------------------------------------------------- hooks


def _check_model(model: Any) -> Any:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _resolve_layers(model: Any, layers: str | Sequence[str]) -> list[str]:
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ConfigError("layers is empty: name at least one module of the model")
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        available = [repr(n) for n in modules]
        shown = ", ".join(available[:60]) + (f", ... ({len(available)} in all)" if len(available) > 60 else "")
        raise ConfigError(f"unknown layer(s) {unknown} in {type(model).__name__}; available module names: {shown}")
    if len(set(names)) != len(names):
        raise ConfigError(f"layers lists a name twice: {names}")
    return names


def _first_tensor(output: Any, layer: str) -> Any:
    import torch

    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ConfigError(
            f"layer {layer!r} returned {type(output).__name__}, not a tensor (or a tuple starting with one)"
        )
    return output


class _Recorder:
    """Forward hooks that keep each layer's outputs of one forward pass (only the last when ``keep_all`` is False)."""

    def __init__(self, model: Any, layers: list[str], keep_all: bool) -> None:
        self.layers = layers
        self.keep_all = keep_all
        self.calls: dict[str, list[Any]] = {name: [] for name in layers}
        self.counts: dict[str, int] = {name: 0 for name in layers}
        self._handles: list[Any] = []
        modules = dict(model.named_modules())
        try:
            for name in layers:
                self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output, name).detach()
            self.counts[name] += 1
            if self.keep_all:
                self.calls[name].append(tensor)
            else:
                self.calls[name] = [tensor]

        return hook

    def reset(self) -> None:
        for name in self.layers:
            self.calls[name] = []
            self.counts[name] = 0

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()


def _select_calls(
    calls: list[Any], count: int, layer: str, time_steps: int | Sequence[int] | None
) -> tuple[list[Any], list[int]]:
    if count == 0:
        raise ConfigError(f"layer {layer!r} was not called during the forward pass, so it has no output to record")
    if time_steps is None:
        return calls[-1:], [count - 1]
    if isinstance(time_steps, (int, np.integer)):
        if count != int(time_steps):
            raise ConfigError(
                f"time_steps={int(time_steps)} but layer {layer!r} was called {count} times per forward pass; "
                f"pass time_steps={count}, or a list of call indices"
            )
        return calls, list(range(count))
    steps = [int(s) for s in time_steps]
    if not steps:
        raise ConfigError("time_steps is an empty list")
    try:
        chosen = [calls[s] for s in steps]
    except IndexError:
        raise ConfigError(
            f"time_steps {steps} out of range: layer {layer!r} was called {count} times per forward pass"
        ) from None
    return chosen, [s % count for s in steps]


def _iterate(
    model: Any,
    stim: _Stimuli,
    layers: list[str],
    *,
    time_steps: int | Sequence[int] | None,
    batch_size: int,
    device: Any,
    progress: bool,
    desc: str,
) -> Iterator[tuple[int, int, dict[str, np.ndarray], dict[str, tuple[int, ...]], list[int]]]:
    """Run the model over the stimuli in batches; yield ``(start, stop, {layer: (b, F[, T]) float32}, shapes, steps)``.

    Hooks are removed and the model's training mode is restored when the generator finishes, fails, or is closed.
    """
    import torch
    from tqdm.auto import tqdm

    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    was_training = model.training
    model.to(device)
    model.eval()
    recorder = _Recorder(model, layers, keep_all=time_steps is not None)
    bar = tqdm(total=stim.n, unit="stimulus", desc=desc, disable=not progress, file=sys.stderr, leave=False)
    try:
        with torch.no_grad():
            for start in range(0, stim.n, int(batch_size)):
                stop = min(start + int(batch_size), stim.n)
                x = torch.from_numpy(stim.batch(start, stop)).to(device)
                recorder.reset()
                model(x)
                out: dict[str, np.ndarray] = {}
                shapes: dict[str, tuple[int, ...]] = {}
                steps: list[int] = []
                for name in layers:
                    chosen, steps = _select_calls(recorder.calls[name], recorder.counts[name], name, time_steps)
                    flat = [t.reshape(t.shape[0], -1) for t in chosen]
                    sizes = {f.shape[1] for f in flat}
                    if len(sizes) != 1:
                        raise ConfigError(
                            f"layer {name!r} has outputs of different sizes at different time steps: {sorted(sizes)}"
                        )
                    if flat[0].shape[0] != stop - start:
                        raise ConfigError(
                            f"layer {name!r} output has batch size {flat[0].shape[0]} for {stop - start} stimuli; "
                            "features need the batch on the first axis"
                        )
                    shapes[name] = tuple(int(s) for s in chosen[0].shape[1:])
                    stacked = torch.stack(flat, dim=-1) if time_steps is not None else flat[0]
                    out[name] = stacked.to(torch.float32).cpu().numpy()
                recorder.reset()
                yield start, stop, out, shapes, steps
                bar.update(stop - start)
    finally:
        bar.close()
        recorder.remove()
        model.train(was_training)


# ------------------------------------------------------------------------------------------------------ PCA


@dataclass(frozen=True)
class LayerPCA:
    """A fitted PCA projection of one layer's flattened activations.

    ``mean`` is ``(feature,)``, ``components`` ``(n_components, feature)`` with orthonormal rows (zero rows beyond
    the numerical rank of the fitting set), ``explained_variance`` ``(n_components,)`` (variance along each
    component, ``ddof=1`` as in scikit-learn), ``explained_variance_ratio`` the fraction of the total variance.
    """

    layer: str
    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    n_images: int
    time_pooled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def transform(self, activations: np.ndarray) -> np.ndarray:
        """``(batch, feature[, time_step]) -> (batch, n_components[, time_step])``: ``(x - mean) @ components.T``."""
        x = np.asarray(activations, dtype=np.float32)
        if x.ndim == 3:
            moved = np.moveaxis(x, 2, 1)  # (batch, time, feature)
            return np.moveaxis((moved - self.mean) @ self.components.T, 1, 2)
        return (x - self.mean) @ self.components.T


def _rank_tolerance(eigval: np.ndarray, n: int, f: int) -> float:
    # eigenvalues of X^T X (or X X^T) below this are rounding noise of the float64 products: no direction there
    return float(eigval[0]) * max(n, f) * np.finfo(np.float64).eps * 100 if eigval.size else 0.0


def _fit_layer_pca(layer: str, activations: np.ndarray, n_components: int, *, time_pooled: bool) -> LayerPCA:
    """Exact PCA of ``activations (n_images, feature)`` via an eigendecomposition in float64 (see module docstring)."""
    x = np.asarray(activations, dtype=np.float32)
    n, f = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    chunk = max(1, int(2**26 // max(n, 1)))  # ~0.5 GB of float64 per chunk of features
    if n < f:
        gram = np.zeros((n, n))
        for a in range(0, f, chunk):
            xc = x[:, a : a + chunk].astype(np.float64) - mean[a : a + chunk]
            gram += xc @ xc.T
        eigval, eigvec = np.linalg.eigh(gram)
        total = float(np.trace(gram)) / max(n - 1, 1)
        order = np.argsort(eigval)[::-1][:n_components]
        eigval, u = np.clip(eigval[order], 0.0, None), eigvec[:, order]
        singular = np.sqrt(eigval)
        components = np.zeros((n_components, f), dtype=np.float32)  # k x F can be GBs: float32 as the features
        keep = eigval > _rank_tolerance(eigval, n, f)
        for a in range(0, f, chunk):
            xc = x[:, a : a + chunk].astype(np.float64) - mean[a : a + chunk]
            components[keep, a : a + chunk] = (u[:, keep].T @ xc) / singular[keep, None]
    else:
        cov = np.zeros((f, f))
        for a in range(0, n, chunk):
            xc = x[a : a + chunk].astype(np.float64) - mean
            cov += xc.T @ xc
        eigval, eigvec = np.linalg.eigh(cov)
        total = float(np.trace(cov)) / max(n - 1, 1)
        order = np.argsort(eigval)[::-1][:n_components]
        eigval = np.clip(eigval[order], 0.0, None)
        components = eigvec[:, order].T.copy()
        singular = np.sqrt(eigval)
        keep = eigval > _rank_tolerance(eigval, n, f)
        components[~keep] = 0.0
    # scikit-learn's convention (svd_flip with u_based_decision=False): largest |entry| of each component positive
    pick = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(components.shape[0]), pick])
    signs[signs == 0] = 1.0
    components *= signs[:, None].astype(components.dtype)
    dropped = int((~keep).sum())
    # centring leaves n - 1 dimensions, so with n_components >= n (Brain-Score: 1,000 of 1,000) some are always empty
    if dropped > max(0, n_components - (n - 1)):
        warnings.warn(
            f"PCA of layer {layer!r}: {dropped} of {n_components} components lie beyond the rank of the {n} fitting "
            "samples and are returned as zero (constant) features; fit on more images or ask for fewer components",
            RuntimeWarning,
            stacklevel=3,
        )
    explained = eigval / max(n - 1, 1)
    ratio = explained / total if total > 0 else np.zeros_like(explained)
    return LayerPCA(
        layer=layer,
        mean=mean.astype(np.float32),
        components=components.astype(np.float32),
        explained_variance=explained,
        explained_variance_ratio=ratio,
        n_images=n,
        time_pooled=time_pooled,
    )


def fit_pca(
    model: Any,
    pca_stimuli: Any,
    *,
    layers: str | Sequence[str],
    n_components: int = 1000,
    time_steps: int | Sequence[int] | None = None,
    batch_size: int = 64,
    device: Any = "cpu",
    stimulus_ids: Sequence[Any] | None = None,
    progress: bool = True,
) -> dict[str, LayerPCA | None]:
    """Fit one PCA per layer on the activations to ``pca_stimuli``; ``None`` for layers already small enough.

    As Brain-Score's ``LayerPCA``: a layer with at most ``n_components`` features is not projected. With
    ``time_steps``, the activations of all kept time steps are pooled as samples, so that every time step is
    projected on the same components. The result can be passed as ``pca=`` to :func:`extract_features` to
    reuse the projections for several stimulus sets.
    """
    model = _check_model(model)
    names = _resolve_layers(model, layers)
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ConfigError(f"n_components must be a positive integer, got {n_components!r}")
    stim = _as_stimuli(pca_stimuli, stimulus_ids)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for _, _, out, _, _ in _iterate(
        model,
        stim,
        names,
        time_steps=time_steps,
        batch_size=batch_size,
        device=device,
        progress=progress,
        desc="PCA images",
    ):
        for name in names:
            values = out[name]
            if values.ndim == 3:
                values = np.moveaxis(values, 2, 1).reshape(-1, values.shape[1])
            chunks[name].append(values)
    fitted: dict[str, LayerPCA | None] = {}
    for name in names:
        activations = np.concatenate(chunks.pop(name), axis=0)
        if activations.shape[1] <= n_components:
            fitted[name] = None
            continue
        if activations.shape[0] < n_components:
            raise ConfigError(
                f"PCA of layer {name!r} to {n_components} components needs at least {n_components} fitting samples, "
                f"got {activations.shape[0]}; pass more pca_stimuli or a smaller n_components"
            )
        fitted[name] = _fit_layer_pca(name, activations, int(n_components), time_pooled=time_steps is not None)
    return fitted


# ------------------------------------------------------------------------------------------------- writing


def _attrs(
    model: Any,
    layer: str,
    shape: tuple[int, ...],
    steps: list[int] | None,
    pca: LayerPCA | None,
    pca_requested: bool,
    n_components: int | None,
) -> dict[str, Any]:
    # netCDF attributes hold strings, numbers and numeric lists only: no None, no bool
    attrs: dict[str, Any] = {
        "layer": layer,
        "model": type(model).__name__,
        "feature_shape": list(shape) or [1],  # a per-stimulus scalar output is one feature
        "flattening": "C order over feature_shape",
        "time_steps": "last call" if steps is None else "calls of the module per forward pass",
        "extractor": "neuromodels.analysis.features.extract_features",
    }
    if pca is not None:
        attrs.update(
            {
                "pca": "fitted on pca_stimuli (exact eigendecomposition, float64)",
                "pca_n_components": pca.n_components,
                "pca_n_images": pca.n_images,
                "pca_explained_variance_ratio": float(np.sum(pca.explained_variance_ratio)),
                "pca_time_pooled": int(pca.time_pooled),
            }
        )
    elif pca_requested:
        limit = "" if n_components is None else f"={n_components}"
        attrs["pca"] = f"not applied: the layer has no more features than n_components{limit}"
    else:
        attrs["pca"] = "none"
    return attrs


class _MemorySink:
    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def write(self, start: int, stop: int, values: np.ndarray) -> None:
        self.parts.append(values)

    def finish(self, stim: _Stimuli, layer: str, steps: list[int] | None, attrs: dict[str, Any]) -> xr.DataArray:
        values = np.concatenate(self.parts, axis=0)
        self.parts = []
        return _dataarray(values, stim, layer, steps, attrs)


def _dataarray(values: Any, stim: _Stimuli, layer: str, steps: list[int] | None, attrs: dict[str, Any]) -> xr.DataArray:
    dims: tuple[str, ...] = ("presentation", "feature") + (("time_step",) if steps is not None else ())
    coords: dict[str, Any] = {
        "stimulus_id": ("presentation", stim.stimulus_id),
        **{name: ("presentation", vals) for name, vals in stim.coords.items()},
        "feature": ("feature", np.arange(values.shape[1], dtype=np.int64)),
        "layer": layer,
    }
    if steps is not None:
        coords["time_step"] = ("time_step", np.asarray(steps, dtype=np.int64))
    return xr.DataArray(values, dims=dims, coords=coords, attrs=attrs, name="features")


class _NetCDFSink:
    """Writes one layer's features into a netCDF-4 file batch by batch; the file appears only when complete."""

    def __init__(self, target: Path, stim: _Stimuli, batch_size: int) -> None:
        from neuromodels.datasets._io import atomic_path

        self.target = target
        self.stim = stim
        self.batch_size = batch_size
        self._atomic = atomic_path(target, suffix=".nc")
        self.tmp = self._atomic.__enter__()
        self.ds: Any = None
        self.var: Any = None
        self.done = False

    def _create(self, values: np.ndarray) -> None:
        import netCDF4

        ds = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        self.ds = ds
        ds.createDimension("presentation", self.stim.n)
        ds.createDimension("feature", values.shape[1])
        dims = ["presentation", "feature"]
        chunks = [min(self.batch_size, self.stim.n), values.shape[1]]
        if values.ndim == 3:
            ds.createDimension("time_step", values.shape[2])
            dims.append("time_step")
            chunks.append(values.shape[2])
        # HDF5 chunks must stay under 4 GiB: fewer rows per chunk for very wide layers
        row_bytes = 4 * int(np.prod(chunks[1:]))
        chunks[0] = max(1, min(chunks[0], (2**31) // max(row_bytes, 1)))
        self.var = ds.createVariable("features", "f4", tuple(dims), chunksizes=tuple(chunks))
        self.var.set_auto_maskandscale(False)

    def write(self, start: int, stop: int, values: np.ndarray) -> None:
        if self.ds is None:
            self._create(values)
        self.var[start:stop] = values

    def finish(self, stim: _Stimuli, layer: str, steps: list[int] | None, attrs: dict[str, Any]) -> xr.DataArray:
        ds, var = self.ds, self.var
        names = ["stimulus_id"]
        sid = ds.createVariable("stimulus_id", str, ("presentation",))
        sid[:] = stim.stimulus_id
        for name, values in stim.coords.items():
            if values.dtype.kind in "OUS":
                v = ds.createVariable(name, str, ("presentation",))
                v[:] = np.asarray([str(s) for s in values], dtype=object)
            elif values.dtype.kind in "iuf":
                v = ds.createVariable(name, values.dtype, ("presentation",))
                v[:] = values
            else:
                continue  # bools, datetimes: not needed for scoring, and netCDF-4 has no native type for them
            names.append(name)
        feature = ds.createVariable("feature", "i8", ("feature",))
        feature[:] = np.arange(len(ds.dimensions["feature"]), dtype=np.int64)
        if steps is not None:
            ts = ds.createVariable("time_step", "i8", ("time_step",))
            ts[:] = np.asarray(steps, dtype=np.int64)
        var.setncattr("coordinates", " ".join(names))
        for key, value in attrs.items():
            var.setncattr(key, value)
        ds.close()
        self.ds = None
        self._atomic.__exit__(None, None, None)
        self.done = True
        opened = xr.open_dataarray(self.target, chunks={"presentation": self.batch_size})
        # coordinates are small: read them now, so that selecting by stimulus_id needs no dask compute
        eager = {name: coord.compute() for name, coord in opened.coords.items() if name not in opened.indexes}
        return opened.assign_coords(eager).assign_coords(layer=layer)

    def abort(self, exc: BaseException) -> None:
        if self.done:
            return
        if self.ds is not None:
            try:
                self.ds.close()
            except Exception:  # noqa: BLE001 - the file is being discarded anyway: any close error is moot
                pass
            self.ds = None
        try:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException:  # noqa: BLE001 - atomic_path re-raises the error it was given; ours is raised by the caller
            pass


def _out_paths(out: str | os.PathLike[str], names: list[str], single: bool) -> dict[str, Path]:
    path = Path(out)
    if path.suffix == ".nc":
        if not single:
            raise ConfigError(
                f"out={str(path)!r} names one .nc file but {len(names)} layers were asked for; pass a folder"
            )
        return {names[0]: path}
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out={str(path)!r} exists and is not a folder")
    return {name: path / f"{name or 'model'}.nc" for name in names}


# -------------------------------------------------------------------------------------------------- public


def extract_features(
    model: Any,
    stimuli: Any,
    *,
    layers: str | Sequence[str],
    time_steps: int | Sequence[int] | None = None,
    batch_size: int = 64,
    device: Any = "cpu",
    pca: bool | Mapping[str, LayerPCA | None] | None = None,
    pca_stimuli: Any = None,
    n_components: int = 1000,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    stimulus_ids: Sequence[Any] | None = None,
    pca_stimulus_ids: Sequence[Any] | None = None,
) -> xr.DataArray | dict[str, xr.DataArray]:
    """Activations of ``layers`` of a torch ``model`` to ``stimuli``, one ``(presentation, feature[, time_step])`` array per layer.

    Parameters
    ----------
    model
        any ``torch.nn.Module`` taking a batch of stimuli ``(batch, ...)``; moved to ``device``.
    stimuli
        an ``xr.DataArray`` with stimuli on its first dim (``stimulus`` or ``presentation``) and a ``stimulus_id``
        coordinate there. Images ``(stimulus, y, x[, channel])`` in any order of ``y, x, channel`` reach the model
        as ``(batch, channel, y, x)`` float32 (a channel axis of 1 is added when absent); other layouts are passed
        in their stored order. A dask-backed array is read batch by batch. Alternatively a ``torch.Tensor`` or
        numpy array ``(stimulus, ...)`` passed as is, with ``stimulus_ids``.
    layers
        module names (``dict(model.named_modules())``). A single string returns one DataArray; a list returns a
        dict ``layer -> DataArray``.
    time_steps
        ``None``: each layer's output at its last call in a forward pass. An int ``T``: the layer must be called
        exactly ``T`` times per forward pass (recurrent cells); all calls are kept. A list of call indices (negative
        allowed): those calls. Either way the result gains a ``time_step`` dimension (the call index).
    batch_size
        stimuli per forward pass.
    pca, pca_stimuli, n_components
        ``pca=True`` (or ``None`` with ``pca_stimuli`` given) fits a PCA to ``n_components`` per layer on the
        activations to ``pca_stimuli`` (Brain-Score: 1,000 ImageNet images, ``n_components=1000``) and returns the
        projected features; a mapping from :func:`fit_pca` reuses fitted projections; ``False`` disables PCA.
    out
        ``None``: features in memory. A folder: each layer is written to ``out/<layer>.nc`` batch by batch (netCDF-4,
        so features need not fit in memory; the file appears only once complete) and returned opened lazily
        (dask-backed, chunked by ``batch_size``). A path ending in ``.nc`` is allowed for a single layer.
    progress
        show a progress bar on stderr.

    Raises
    ------
    ConfigError
        unknown layer names (the message lists the model's module names), a layer never called, a time-step count
        that does not match, PCA asked for without fitting images.
    DataFormatError
        stimuli without ``stimulus_id`` (or with duplicate ids), non-numeric stimuli.
    """
    model = _check_model(model)
    names = _resolve_layers(model, layers)
    single = isinstance(layers, str)
    stim = _as_stimuli(stimuli, stimulus_ids)

    fitted: Mapping[str, LayerPCA | None] | None
    if isinstance(pca, Mapping):
        missing = [n for n in names if n not in pca]
        if missing:
            raise ConfigError(f"pca has no fitted projection for layer(s) {missing}; it has {sorted(pca)}")
        fitted = pca
    elif pca is True or (pca is None and pca_stimuli is not None):
        if pca_stimuli is None:
            raise ConfigError("pca=True needs pca_stimuli: the separate images the projection is fitted on")
        fitted = fit_pca(
            model,
            pca_stimuli,
            layers=names,
            n_components=n_components,
            time_steps=time_steps,
            batch_size=batch_size,
            device=device,
            stimulus_ids=pca_stimulus_ids,
            progress=progress,
        )
    elif pca in (None, False):
        fitted = None
    else:
        raise ConfigError(f"pca must be True, False, None or a mapping from fit_pca, got {type(pca).__name__}")

    paths = _out_paths(out, names, single) if out is not None else None
    sinks: dict[str, Any] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    steps: list[int] | None = None
    try:
        for name in names:
            sinks[name] = _MemorySink() if paths is None else _NetCDFSink(paths[name], stim, int(batch_size))
        for start, stop, batch, batch_shapes, batch_steps in _iterate(
            model,
            stim,
            names,
            time_steps=time_steps,
            batch_size=batch_size,
            device=device,
            progress=progress,
            desc=f"features {type(model).__name__}",
        ):
            shapes = batch_shapes
            steps = batch_steps if time_steps is not None else None
            for name in names:
                projection = fitted.get(name) if fitted is not None else None
                values = batch[name] if projection is None else projection.transform(batch[name])
                sinks[name].write(start, stop, values)
        result = {}
        for name in names:
            attrs = _attrs(
                model,
                name,
                shapes[name],
                steps,
                fitted.get(name) if fitted else None,
                fitted is not None,
                None if isinstance(pca, Mapping) else n_components,
            )
            result[name] = sinks[name].finish(stim, name, steps, attrs)
    except BaseException as exc:
        for sink in sinks.values():
            if isinstance(sink, _NetCDFSink):
                sink.abort(exc)
        raise
    return result[names[0]] if single else result
