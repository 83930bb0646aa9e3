"""Scoring many models x layers x regions as Dask tasks: in-process, on a local cluster, or on a running one.

>>> from neuromodels.analysis.scale import score_many
>>> result = score_many({"alexnet": alexnet}, {"alexnet": ["features.10", "classifier.2"]},
...                     {"IT": it_assembly, "V4": v4_assembly}, images, workers=4)
>>> result["score"].sel(model="alexnet", region="IT")

Each model's features are extracted once (one task per model) and shared by all the scoring tasks of that model,
one per (layer, region), each a call of :func:`neuromodels.analysis.predictivity.predictivity`. The graph is
plain ``dask.delayed``; where it runs is the ``scheduler`` argument:

* ``None`` (default): synchronously in this process, or on a new local ``dask.distributed`` cluster of
  ``workers`` single-threaded worker processes when ``workers`` is given (closed afterwards);
* ``"synchronous"``, ``"threads"``, ``"processes"``: dask's local schedulers (``workers`` threads/processes);
* an address such as ``"tcp://10.0.0.5:8786"``: an existing ``dask.distributed`` scheduler (the cluster's
  workers need neuromodels installed);
* a ``distributed.Client``: used as is and left open.

A ceiling named by method (``ceiling="split_half"``) is computed once per region, as its own task, and shared by
all the scoring tasks of that region. Every task computes the same numbers wherever it runs (cross-validation
splits are seeded), up to floating-point rounding: BLAS and torch may sum in another order on other threads or
another CPU (scores then differ by ~1e-7, tested to 1e-6). The result does not depend on the scheduler, which is
therefore not recorded in it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["score_many", "score_features", "score_jobs", "combine_scores"]

_LOCAL_SCHEDULERS = {
    "synchronous": "synchronous",
    "sync": "synchronous",
    "single-threaded": "synchronous",
    "threads": "threads",
    "processes": "processes",
}
_PER_NEUROID_DIMS = {"split", "neuroid"}


class _Box:
    """Carries an object through a dask graph untouched (a dask-backed DataArray would otherwise be computed)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


# ------------------------------------------------------------------------------------------------- tasks
# Module-level functions, so that worker processes can unpickle them by reference.


def _extract_task(model: Any, stimuli: _Box, layers: list[str], extraction: dict[str, Any]) -> dict[str, xr.DataArray]:
    import torch

    from neuromodels.analysis.features import extract_features

    module = model if isinstance(model, torch.nn.Module) else model()
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(f"a model factory returned {type(module).__name__}, not a torch.nn.Module")
    features = extract_features(module, stimuli.value, layers=list(layers), **extraction)
    return {name: _Box(da) for name, da in features.items()}  # type: ignore[misc]


def _pick(features: dict[str, _Box], layer: str) -> _Box:
    return features[layer]


def _ceiling_task(neural: _Box, method: str) -> xr.Dataset:
    from neuromodels.analysis.ceilings import noise_ceiling

    return noise_ceiling(neural.value, method=method)


def _score_task(features: _Box, neural: _Box, options: dict[str, Any]) -> xr.Dataset:
    import dask

    from neuromodels.analysis.predictivity import predictivity

    # lazy (on-disk) inputs are read here, in this task, never by a nested dask computation on the cluster
    with dask.config.set(scheduler="synchronous"):
        feats = features.value.load()
        assembly = neural.value.load()
    return predictivity(feats, assembly, **options)


# ------------------------------------------------------------------------------------------------ runner


def _is_client(obj: Any) -> bool:
    distributed = sys.modules.get("distributed")  # a Client exists only if distributed was imported
    return distributed is not None and isinstance(obj, distributed.Client)


class _Runner:
    """Where the graph runs: dask's local schedulers or a ``distributed.Client`` (ours or the caller's)."""

    def __init__(self, scheduler: Any, workers: int | None) -> None:
        if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        self.workers = None if workers is None else int(workers)
        self.local: str | None = None
        self.client: Any = None
        self._owned: list[Any] = []
        if scheduler is None:
            if self.workers is None:
                self.local = "synchronous"
            else:
                self._start_local_cluster()
        elif isinstance(scheduler, str) and scheduler in _LOCAL_SCHEDULERS:
            self.local = _LOCAL_SCHEDULERS[scheduler]
        elif isinstance(scheduler, str) and ("://" in scheduler or re.fullmatch(r"[\w.\-\[\]:]+:\d+", scheduler)):
            self._connect(scheduler)
        elif _is_client(scheduler):
            self.client = scheduler
        else:
            raise ConfigError(
                f"scheduler must be None, 'synchronous', 'threads', 'processes', a scheduler address "
                f"('tcp://host:8786') or a distributed.Client; got {scheduler!r}"
            )

    @staticmethod
    def _distributed() -> Any:
        try:
            import distributed
        except ImportError:
            raise ConfigError(
                "a dask.distributed cluster needs the 'distributed' package: pip install 'neuromodels[distributed]'"
            ) from None
        return distributed

    def _start_local_cluster(self) -> None:
        distributed = self._distributed()
        cluster = distributed.LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self._owned.append(cluster)
        self.client = distributed.Client(cluster)
        self._owned.insert(0, self.client)

    def _connect(self, address: str) -> None:
        distributed = self._distributed()
        try:
            self.client = distributed.Client(address, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise ConfigError(f"could not connect to the dask scheduler at {address!r}: {err}") from None
        self._owned.append(self.client)

    def close(self) -> None:
        while self._owned:
            self._owned.pop(0).close()

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def share(self, value: Any) -> Any:
        """A graph input used by many tasks: sent to the cluster once (scatter), or embedded once locally."""
        import dask

        box = _Box(value)
        if self.client is not None:
            return self.client.scatter(box, broadcast=False, hash=False)
        return dask.delayed(box, pure=False)

    def compute(self, tasks: list[Any], *, progress: bool, desc: str) -> list[Any]:
        import dask
        from tqdm.auto import tqdm

        if self.client is not None:
            from distributed import as_completed

            futures = self.client.compute(tasks)
            try:
                with tqdm(total=len(futures), desc=desc, unit="job", disable=not progress, file=sys.stderr) as bar:
                    for _ in as_completed(futures):
                        bar.update(1)
                return self.client.gather(futures)
            except BaseException:
                self.client.cancel(futures)  # a failed job (or Ctrl-C) stops the rest on the cluster too
                raise
        kwargs: dict[str, Any] = {"scheduler": self.local}
        if self.local != "synchronous" and self.workers is not None:
            kwargs["num_workers"] = self.workers
        with _task_bar(desc=desc, disable=not progress):
            return list(dask.compute(*tasks, **kwargs))


def _task_bar(*, desc: str, disable: bool) -> Any:
    """A dask local-scheduler callback that shows a tqdm bar over the graph's tasks (stderr)."""
    from dask.callbacks import Callback
    from tqdm.auto import tqdm

    class TaskBar(Callback):
        bar: Any = None

        def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
            total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
            self.bar = tqdm(total=total, desc=desc, unit="task", disable=disable, file=sys.stderr)

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            self.bar.update(1)

        def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
            if self.bar is not None:
                self.bar.close()

    return TaskBar()


# ------------------------------------------------------------------------------------------------ inputs


def _regions(neural: Mapping[str, xr.DataArray] | xr.DataArray) -> dict[str, xr.DataArray]:
    """``region -> assembly``; one assembly of several regions is split by them (one score per region, the rule
    of :func:`~neuromodels.analysis.ceilings.split_regions`)."""
    if isinstance(neural, xr.DataArray):
        from neuromodels.analysis.ceilings import split_regions

        parts = split_regions(neural)
        if len(parts) > 1:
            return parts
        region = neural.attrs.get("region")
        if region is None and "region" in neural.coords:
            region = next(iter(parts))
        neural = {str(region or "neural"): neural}
    if not isinstance(neural, Mapping) or not neural:
        raise ConfigError("neural must be a non-empty mapping region -> assembly (or one assembly)")
    for region, da in neural.items():
        if not isinstance(da, xr.DataArray):
            raise DataFormatError(
                field=f"neural[{region!r}]", expected="an xarray.DataArray assembly", found=type(da).__name__
            )
    return {str(k): v for k, v in neural.items()}


def _aggregate(result: xr.Dataset) -> xr.Dataset:
    """The variables of a predictivity result that are not per split or per neuroid (score, error, ...)."""
    keep = [name for name, var in result.data_vars.items() if not _PER_NEUROID_DIMS & set(var.dims)]
    part = result[keep]
    drop = [name for name, coord in part.coords.items() if _PER_NEUROID_DIMS & set(coord.dims)]
    return part.drop_vars(drop)


def combine_scores(
    results: Mapping[tuple[str, ...], xr.Dataset], dims: tuple[str, ...], order: Mapping[str, list[str]]
) -> xr.Dataset:
    """One ``xr.Dataset`` over ``dims`` from per-key predictivity results (e.g. those of :func:`score_jobs`).

    ``results`` maps a key with one label per dimension of ``dims`` (e.g. ``(layer, region)``) to a result of
    :func:`~neuromodels.analysis.predictivity.predictivity`; the variables that are not per split or per neuroid
    (``score``, ``error``, ...) are stacked, labelled in the order ``order[dim]``, and missing pairs are NaN.
    """
    parts = []
    for key, result in results.items():
        part = _aggregate(result)
        parts.append(part.expand_dims({dim: [value] for dim, value in zip(dims, key)}))
    combined = xr.merge(parts, join="outer", compat="no_conflicts", combine_attrs="drop_conflicts")
    combined = combined.reindex({dim: order[dim] for dim in dims})
    return combined.transpose(*dims, ...)


def _options(predictivity_kwargs: dict[str, Any]) -> dict[str, Any]:
    options = dict(predictivity_kwargs)
    options["progress"] = False  # one bar for the whole graph, not one per task
    return options


def _with_shared_ceiling(options: dict[str, Any], shared_neural: Any) -> dict[str, Any]:
    """A ceiling named by method is computed once per region (one task) and reused by all its scoring tasks."""
    import dask

    ceiling = options.get("ceiling")
    if not isinstance(ceiling, str):
        return options
    return {**options, "ceiling": dask.delayed(_ceiling_task, pure=True)(shared_neural, ceiling)}


def score_jobs(
    features: Mapping[str, xr.DataArray],
    neural: Mapping[str, xr.DataArray] | xr.DataArray,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
    region_options: Mapping[str, Mapping[str, Any]] | None = None,
    **predictivity_kwargs: Any,
) -> dict[tuple[str, str], xr.Dataset]:
    """Full predictivity results (per split, per neuroid) for every ``(layer, region)`` pair, run as dask tasks.

    ``region_options`` (region -> keyword arguments) override ``predictivity_kwargs`` for one region, e.g. a
    precomputed ``ceiling`` per region.
    """
    regions = _regions(neural)
    if not features:
        raise ConfigError("features is empty: pass at least one layer's features")
    options = _options(predictivity_kwargs)
    per_region = {region: {**options, **dict((region_options or {}).get(region, {}))} for region in regions}
    import dask

    score = dask.delayed(_score_task, pure=True)
    with _Runner(scheduler, workers) as runner:
        shared_neural = {region: runner.share(da) for region, da in regions.items()}
        per_region = {region: _with_shared_ceiling(per_region[region], shared_neural[region]) for region in regions}
        keys, tasks = [], []
        for layer, da in features.items():
            shared = runner.share(da)
            for region in regions:
                keys.append((str(layer), region))
                tasks.append(score(shared, shared_neural[region], per_region[region]))
        values = runner.compute(tasks, progress=progress, desc="scoring")
    return dict(zip(keys, values))


def score_features(
    features: Mapping[str, xr.DataArray],
    neural: Mapping[str, xr.DataArray] | xr.DataArray,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
    **predictivity_kwargs: Any,
) -> xr.Dataset:
    """Score precomputed features (layer -> ``(presentation, feature)`` array) against regions; dims ``(layer, region)``.

    The aggregate variables of :func:`~neuromodels.analysis.predictivity.predictivity` (``score``, ``error``,
    ``ceiled_score`` when a ceiling is asked for, with ``time_bin`` for time-resolved data) are stacked; pairs that
    were not scored hold NaN. ``scheduler``/``workers`` as in :func:`score_many`.
    """
    results = score_jobs(
        features, neural, scheduler=scheduler, workers=workers, progress=progress, **predictivity_kwargs
    )
    order = {"layer": [str(k) for k in features], "region": list(_regions(neural))}
    return combine_scores(results, ("layer", "region"), order)


def score_many(
    models: Mapping[str, Any],
    layers: Mapping[str, Sequence[str]] | Sequence[str],
    neural: Mapping[str, xr.DataArray] | xr.DataArray,
    stimuli: Any,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
    extraction: Mapping[str, Any] | None = None,
    **predictivity_kwargs: Any,
) -> xr.Dataset:
    """Predictivity of every (model, layer, region), each scoring job a Dask task; dims ``(model, layer, region)``.

    Parameters
    ----------
    models
        name -> ``torch.nn.Module``, or a callable returning one (built where the task runs: cheaper to ship to a
        cluster than the weights).
    layers
        model name -> module names to score; a plain list applies to every model.
    neural
        region -> assembly ``(presentation, neuroid[, time_bin])`` with ``stimulus_id``; one assembly is one region.
    stimuli
        what :func:`~neuromodels.analysis.features.extract_features` takes (a DataArray with ``stimulus_id``).
    scheduler, workers
        where the tasks run (module docstring). Default: synchronously in this process.
    extraction
        keyword arguments of :func:`~neuromodels.analysis.features.extract_features` (``batch_size``, ``device``,
        ``pca``, ``pca_stimuli``, ``n_components``, ``time_steps``, ``stimulus_ids``). With ``out``, each model's
        features go to ``out/<model>/<layer>.nc``.
    predictivity_kwargs
        passed to :func:`~neuromodels.analysis.predictivity.predictivity` (``regression``, ``n_splits``,
        ``ceiling``, ...).

    Returns
    -------
    xr.Dataset
        ``score``, ``error`` (and ``ceiled_score`` with a ceiling) over ``(model, layer, region[, time_bin])``; a layer
        that a model does not have is NaN there. Attrs are the predictivity settings.
    """
    if not isinstance(models, Mapping) or not models:
        raise ConfigError("models must be a non-empty mapping name -> torch module (or a callable returning one)")
    if isinstance(layers, Mapping):
        missing = [m for m in models if m not in layers]
        if missing:
            raise ConfigError(f"layers has no entry for model(s) {missing}")
        per_model = {
            str(m): [str(x) for x in ([layers[m]] if isinstance(layers[m], str) else layers[m])] for m in models
        }
    else:
        names = [layers] if isinstance(layers, str) else [str(x) for x in layers]
        per_model = {str(m): list(names) for m in models}
    for name, model in models.items():
        if not callable(model):
            raise ConfigError(
                f"model {name!r} is a {type(model).__name__}, not a torch module or a callable returning one"
            )
    regions = _regions(neural)
    extract_options = dict(extraction or {})
    extract_options.setdefault("progress", False)
    base_out = extract_options.pop("out", None)
    options = _options(predictivity_kwargs)

    import dask

    extract = dask.delayed(_extract_task, pure=True)
    pick = dask.delayed(_pick, pure=True)
    score = dask.delayed(_score_task, pure=True)
    with _Runner(scheduler, workers) as runner:
        shared_stimuli = runner.share(stimuli)
        shared_neural = {region: runner.share(da) for region, da in regions.items()}
        per_region = {region: _with_shared_ceiling(options, shared_neural[region]) for region in regions}
        keys, tasks = [], []
        for name, model in models.items():
            model_options = dict(extract_options)
            if base_out is not None:
                model_options["out"] = os.path.join(os.fspath(base_out), str(name))
            features = extract(model, shared_stimuli, per_model[str(name)], model_options)
            for layer in per_model[str(name)]:
                layer_features = pick(features, layer)
                for region in regions:
                    keys.append((str(name), layer, region))
                    tasks.append(score(layer_features, shared_neural[region], per_region[region]))
        values = runner.compute(tasks, progress=progress, desc="scoring")
    layer_order: list[str] = []
    for names in per_model.values():
        layer_order += [x for x in names if x not in layer_order]
    order = {"model": [str(m) for m in models], "layer": layer_order, "region": list(regions)}
    return combine_scores(dict(zip(keys, values)), ("model", "layer", "region"), order)
