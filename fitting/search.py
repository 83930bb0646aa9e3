"""Architecture search over ConvRNN cells and feedback (Nayebi et al. 2018, section 4) with Optuna.

The paper searched thousands of ConvRNN variants (local cell hyperparameters and long-range feedback) with a
Tree-structured Parzen Estimator (HyperOpt) on ImageNet. Here: Optuna's TPE sampler with a median pruner
(validation accuracy reported after every epoch) over a declarative search space, a journal file as storage on
one machine (``optuna.storages.journal.JournalFileBackend``) or an RDB URL (``sqlite:///...``,
``postgresql://...``) to spread the trials over machines: every worker runs the same command against the same
storage and study name, and stops when the study holds ``trials`` finished (complete or pruned) trials.
``load_if_exists=True`` makes a killed search resume where it stopped. A trial that was running when its process
died would stay RUNNING for ever: every running trial records a heartbeat (user attribute ``heartbeat``, Unix
time, written when it starts and every ``heartbeat_interval`` seconds by a thread), and every start or resume
marks FAIL the RUNNING trials whose last heartbeat is older than ``grace_period`` (default twice the interval,
Optuna's rule for its RDB heartbeat; Optuna's own heartbeat exists for RDB storages only, not for the journal
file, so the search keeps its own for both). Failed trials are not counted as finished, so their work is redone;
trials running elsewhere within the grace period are left alone (listed as ``stale`` in the report). The rule
compares clocks of the machines that share a storage: keep them synchronised (NTP).

Search space (a dict, or a JSON / TOML file with the same keys; :data:`DEFAULT_SPACE`)::

    dataset = "mnist"            # or "digits"; size, n_train, n_valid: the image task (training/valid split)
    size = 14
    n_train = 1000
    n_valid = 300
    epochs = 2                   # per trial; batch_size
    batch_size = 64
    steps = 5                    # unrolled steps; image_steps: the image is shown this long, then gray
    image_steps = 2
    layers = [{channels = 8, pool = 2}, {channels = 16, pool = 2}, {channels = 16, pool = 1}]
    [params]                     # one entry per searched hyperparameter
    cell = {choices = ["rgc", "lstm", "gru", "ugrnn", "intersection", "time_decay", "vanilla"]}
    kernel_size = {choices = [1, 3, 5]}          # of the cells' recurrent convolutions
    depth_separable = {choices = [false, true]}
    bypass = {choices = [false, true]}           # RGC only (ignored for other cells)
    tau_bias = {low = -2.0, high = 2.0}          # RGC gate biases
    gate_bias = {low = -2.0, high = 2.0}
    lr = {low = 0.001, high = 0.01, log = true}
    feedback = {edges = [[1, 0], [2, 0], [2, 1]]}  # each edge is in or out (a boolean per edge)

A parameter is ``{choices = [...]}`` (categorical), ``{low, high[, log][, int]}`` (float or int), or a fixed
value. The objective is the best validation accuracy over the trial's epochs.

Results: :func:`results_table` (one row per trial: number, state, value, parameters, parameter count,
seconds), written as CSV by :func:`write_report` with ``report.json`` and ``best_architectures.png``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neuromodels._figures import new_figure, save_figure
from neuromodels._reports import write_json
from neuromodels.errors import ConfigError

__all__ = [
    "DEFAULT_SPACE",
    "load_space",
    "open_storage",
    "run_search",
    "results_table",
    "write_report",
    "build_model",
    "fail_stale_trials",
    "HEARTBEAT_INTERVAL",
]

HEARTBEAT_INTERVAL = 30.0  # seconds between a running trial's heartbeats

DEFAULT_SPACE: dict[str, Any] = {
    "dataset": "mnist",
    "size": 14,
    "n_train": 1000,
    "n_valid": 300,
    "epochs": 2,
    "batch_size": 64,
    "steps": 5,
    "image_steps": 2,
    "layers": [{"channels": 8, "pool": 2}, {"channels": 16, "pool": 2}, {"channels": 16, "pool": 1}],
    "params": {
        "cell": {"choices": ["rgc", "lstm", "gru", "ugrnn", "intersection", "time_decay", "vanilla"]},
        "kernel_size": {"choices": [1, 3, 5]},
        "depth_separable": {"choices": [False, True]},
        "bypass": {"choices": [False, True]},
        "tau_bias": {"low": -2.0, "high": 2.0},
        "gate_bias": {"low": -2.0, "high": 2.0},
        "lr": {"low": 1e-3, "high": 1e-2, "log": True},
        "feedback": {"edges": [[1, 0], [2, 0], [2, 1]]},
    },
}

_TOP_KEYS = {
    "dataset",
    "size",
    "n_train",
    "n_valid",
    "epochs",
    "batch_size",
    "steps",
    "image_steps",
    "layers",
    "params",
    "data_path",
}


def load_space(space: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """The search space: ``None`` / ``"default"`` (:data:`DEFAULT_SPACE`), a dict, or a ``.json`` / ``.toml``
    file. Missing top-level keys take the defaults; unknown keys raise :class:`ConfigError`."""
    if space is None or space == "default":
        raw: Mapping[str, Any] = {}
    elif isinstance(space, Mapping):
        raw = space
    else:
        path = Path(space)
        if not path.is_file():
            raise ConfigError(f"search space file {str(path)!r} not found (or pass 'default')")
        text = path.read_text()
        try:
            if path.suffix == ".toml":
                import tomllib

                raw = tomllib.loads(text)
            else:
                raw = json.loads(text)
        except Exception as error:  # noqa: BLE001 - any parse error is the user's file
            raise ConfigError(f"search space {str(path)!r} could not be parsed: {error}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown search-space keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    merged = {**DEFAULT_SPACE, **raw}
    merged["params"] = dict(raw.get("params", DEFAULT_SPACE["params"]))
    for name, spec in merged["params"].items():
        if isinstance(spec, Mapping):
            keys = set(spec)
            if name == "feedback":
                if keys != {"edges"}:
                    raise ConfigError("params.feedback must be {edges = [[source, target], ...]}")
                depth = len(merged["layers"])
                for edge in spec["edges"]:
                    if len(edge) != 2 or not 0 <= int(edge[1]) <= int(edge[0]) < depth:
                        raise ConfigError(f"feedback edge {edge!r}: need 0 <= target <= source < {depth}")
            elif not (keys == {"choices"} or {"low", "high"} <= keys <= {"low", "high", "log", "int"}):
                raise ConfigError(
                    f"params.{name} must be {{choices=[...]}} or {{low, high[, log][, int]}}, got {dict(spec)}"
                )
    return merged


def open_storage(storage: str | os.PathLike[str]) -> Any:
    """An Optuna storage: an RDB URL (anything with ``://``) as is, else a journal file at that path."""
    import optuna

    text = str(storage)
    if "://" in text:
        return text
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for name, spec in space["params"].items():
        if not isinstance(spec, Mapping):
            chosen[name] = spec
        elif name == "feedback":
            chosen[name] = [
                [int(s), int(t)]
                for s, t in spec["edges"]
                if trial.suggest_categorical(f"feedback_{int(s)}_{int(t)}", [False, True])
            ]
        elif "choices" in spec:
            chosen[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif spec.get("int"):
            chosen[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            chosen[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return chosen


def build_model(space: Mapping[str, Any], params: Mapping[str, Any]):
    """The :class:`~neuromodels.convrnn.ConvRNN` of one point ``params`` of ``space`` (readout at the last step)."""
    from neuromodels.convrnn import ConvRNN, LayerSpec

    cell = params.get("cell", "rgc")
    options: dict[str, Any] = {}
    for key in ("kernel_size", "depth_separable"):
        if key in params:
            options[key] = params[key]
    if cell == "rgc":
        for key in ("tau_bias", "gate_bias"):
            if key in params:
                options[key] = float(params[key])
    bypass = bool(params.get("bypass", False)) and cell == "rgc"
    layers = [
        LayerSpec(int(spec["channels"]), int(spec.get("kernel_size", 3)), int(spec.get("pool", 1)), bypass=bypass)
        for spec in space["layers"]
    ]
    return ConvRNN(
        layers,
        cell=cell,
        cell_options=options,
        feedback=params.get("feedback", []),
        steps=int(space["steps"]),
        image_steps=int(space["image_steps"]),
        num_classes=10,
    )


_DATA_CACHE: dict[tuple, Any] = {}


def _data(space: Mapping[str, Any]) -> Any:
    from neuromodels.fitting.classification import image_task

    key = (space["dataset"], space.get("size"), space["n_train"], space["n_valid"], str(space.get("data_path")))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = image_task(
            space["dataset"],
            n_train=int(space["n_train"]),
            n_valid=int(space["n_valid"]),
            n_test=1,
            size=space.get("size"),
            seed=0,
            path=space.get("data_path"),
        )
    return _DATA_CACHE[key]


class _Heartbeat:
    """While open, the trial's user attribute ``heartbeat`` holds a recent ``time.time()``: written on entry,
    every ``interval`` seconds by a daemon thread, and on exit."""

    def __init__(self, trial: Any, interval: float) -> None:
        import threading

        self.trial, self.interval = trial, float(interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-trial-{trial.number}", daemon=True)

    def beat(self) -> None:
        self.trial.set_user_attr("heartbeat", time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> _Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.beat()


def fail_stale_trials(study: Any, grace_period: float) -> list[int]:
    """Mark FAIL the RUNNING trials of ``study`` whose last heartbeat (user attribute ``heartbeat``, else the
    trial's start time) is more than ``grace_period`` seconds old; return their numbers."""
    from optuna.trial import TrialState

    now = time.time()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.user_attrs.get("heartbeat")
        if last is None:
            last = trial.datetime_start.timestamp() if trial.datetime_start is not None else now
        if now - float(last) > grace_period:
            # skip_if_finished: another worker may have failed (or finished) it in the meantime
            finished = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            if finished.state == TrialState.FAIL:
                failed.append(trial.number)
    return failed


def _objective(space: dict[str, Any], seed: int, heartbeat_interval: float = HEARTBEAT_INTERVAL):
    import optuna
    import torch

    from neuromodels.convrnn import count_parameters
    from neuromodels.fitting.classification import train_classifier

    data = _data(space)

    def objective(trial: Any) -> float:
        with _Heartbeat(trial, heartbeat_interval):
            return run_trial(trial)

    def run_trial(trial: Any) -> float:
        params = _suggest(trial, space)
        torch.manual_seed(seed + trial.number)
        model = build_model(space, params)
        trial.set_user_attr("parameters", count_parameters(model))
        trial.set_user_attr("feedback", params.get("feedback", []))
        started = time.perf_counter()
        accuracies: list[float] = []

        def report(epoch: int, accuracy: float) -> bool:
            accuracies.append(accuracy)
            trial.report(accuracy, epoch)
            return trial.should_prune()

        train_classifier(
            model,
            data["train"],
            data["valid"],
            epochs=int(space["epochs"]),
            lr=float(params.get("lr", 3e-3)),
            batch_size=int(space["batch_size"]),
            seed=seed + trial.number,
            report=report,
            restore_best=False,
        )
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("epochs_run", len(accuracies))
        if len(accuracies) < int(space["epochs"]):
            raise optuna.TrialPruned(f"pruned after epoch {len(accuracies)} (accuracy {accuracies[-1]:.3f})")
        return max(accuracies)

    return objective


def run_search(
    space: Any = None,
    *,
    trials: int = 20,
    storage: str | os.PathLike[str] = "search.journal",
    study_name: str = "convrnn",
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
    n_startup_trials: int = 5,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    grace_period: float | None = None,
) -> Any:
    """Run (or resume) the search until the study holds ``trials`` finished trials; return the Optuna study.

    ``space``: see :func:`load_space`. ``storage``: a journal file path or an RDB URL. ``seed`` seeds the TPE
    sampler (offset by the number of trials already in the study, so that a resumed run does not redraw the
    points of the first one) and each trial's weights (``seed + trial.number``). ``epochs`` overrides the space.
    Before running, RUNNING trials without a heartbeat for ``grace_period`` seconds (default
    ``2 * heartbeat_interval``) are marked FAIL (module docstring); their numbers are in the study's user
    attribute ``failed_stale``.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    space = load_space(space)
    if epochs is not None:
        space["epochs"] = int(epochs)
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if not heartbeat_interval > 0:
        raise ConfigError(f"heartbeat_interval must be > 0 seconds, got {heartbeat_interval}")
    grace_period = 2.0 * float(heartbeat_interval) if grace_period is None else float(grace_period)
    if not grace_period > heartbeat_interval:
        raise ConfigError(f"grace_period ({grace_period} s) must exceed heartbeat_interval ({heartbeat_interval} s)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(storage)
    # the sampler is created before we know how many trials exist; recreate it with the offset seed
    study = optuna.create_study(study_name=study_name, storage=opened, direction="maximize", load_if_exists=True)
    existing = len(study.get_trials(deepcopy=False))
    sampler = optuna.samplers.TPESampler(seed=int(seed) + existing, n_startup_trials=n_startup_trials)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0)
    study = optuna.create_study(
        study_name=study_name, storage=opened, direction="maximize", sampler=sampler, pruner=pruner, load_if_exists=True
    )
    study.set_user_attr("space", json.dumps(space))
    failed = fail_stale_trials(study, grace_period)
    if failed:
        study.set_user_attr("failed_stale", sorted(set(study.user_attrs.get("failed_stale", [])) | set(failed)))
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done < trials:
        study.optimize(
            _objective(space, int(seed), heartbeat_interval),
            n_trials=trials - done,
            callbacks=[MaxTrialsCallback(trials, states=finished)],
            show_progress_bar=bool(progress),
            catch=(),
        )
    return study


def _describe(row: Mapping[str, Any]) -> str:
    parts = [str(row.get("params_cell", "?"))]
    if "params_kernel_size" in row and row["params_kernel_size"] == row["params_kernel_size"]:
        parts.append(f"k{int(row['params_kernel_size'])}")
    if row.get("params_depth_separable") is True:
        parts.append("ds")
    if row.get("params_bypass") is True and row.get("params_cell") == "rgc":
        parts.append("bypass")
    edges = row.get("user_attrs_feedback")
    if isinstance(edges, list) and edges:
        parts.append("fb " + ",".join(f"{s}>{t}" for s, t in edges))
    return " ".join(parts)


def results_table(study: Any) -> Any:
    """One row per trial (pandas DataFrame): ``number``, ``state``, ``value`` (best validation accuracy),
    ``params_*``, ``user_attrs_parameters`` / ``_seconds`` / ``_feedback``, and a readable ``architecture``."""
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs", "duration"))
    if len(frame):
        frame["architecture"] = [_describe(row) for row in frame.to_dict("records")]
    return frame


def write_report(
    study: Any, out: str | os.PathLike[str], *, elapsed_s: float | None = None, top: int = 10
) -> dict[str, Any]:
    """Write ``trials.csv``, ``report.json`` and ``best_architectures.png`` into ``out`` (atomically).

    Returns the report dict (study name, counts per state, best trial, elapsed seconds, paths)."""
    from optuna.trial import TrialState

    from neuromodels.datasets._io import atomic_path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = results_table(study)
    paths = {"csv": out / "trials.csv", "json": out / "report.json", "png": out / "best_architectures.png"}
    with atomic_path(paths["csv"], suffix=".csv") as tmp:
        frame.drop(columns=[c for c in frame.columns if c == "user_attrs_feedback"]).to_csv(tmp, index=False)
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    complete = frame[frame["state"] == "COMPLETE"].sort_values("value", ascending=False) if len(frame) else frame
    best = None
    if len(complete):
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": b.params, "user_attrs": b.user_attrs}
    report = {
        "study": study.study_name,
        "counts": counts,
        "finished": counts["complete"] + counts["pruned"],
        "stale": counts["running"],
        "failed_stale": list(study.user_attrs.get("failed_stale", [])),
        "best": best,
        "elapsed_s": elapsed_s,
        "space": json.loads(study.user_attrs.get("space", "{}")),
        "files": {k: str(v) for k, v in paths.items()},
    }
    write_json(paths["json"], report)

    fig, ax = new_figure(figsize=(7, 0.35 * max(3, min(top, len(complete))) + 1.2))
    shown = complete.head(top)
    if len(shown):
        labels = [
            f"#{int(n)} {a} ({int(p)} par.)"
            for n, a, p in zip(shown["number"], shown["architecture"], shown["user_attrs_parameters"])
        ]
        ax.barh(range(len(shown))[::-1], shown["value"], color="C0")
        ax.set_yticks(range(len(shown))[::-1], labels, fontsize=7)
        low = max(0.0, float(shown["value"].min()) - 0.1)
        ax.set_xlim(low, min(1.0, float(shown["value"].max()) + 0.02))
    ax.set_xlabel("best validation accuracy")
    ax.set_title(f"study {study.study_name!r}: top {len(shown)} of {report['finished']} finished trials", fontsize=8)
    fig.tight_layout()
    save_figure(fig, paths["png"])
    return report
