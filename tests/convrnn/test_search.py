"""Architecture search: space files, tiny trials on digits, kill-and-resume from a journal file."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuromodels.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "dataset": "digits",
    "size": 8,
    "n_train": 400,
    "n_valid": 200,
    "epochs": 2,
    "batch_size": 32,
    "steps": 3,
    "image_steps": 2,
    "layers": [{"channels": 4, "pool": 2}, {"channels": 8, "pool": 1}],
    "params": {
        "cell": {"choices": ["rgc", "lstm", "time_decay"]},
        "kernel_size": {"choices": [1, 3]},
        "bypass": {"choices": [False, True]},
        "tau_bias": {"low": -1.0, "high": 1.0},
        "lr": {"low": 0.003, "high": 0.03, "log": True},
        "feedback": {"edges": [[1, 0]]},
    },
}

TOML = """
dataset = "digits"
size = 8
steps = 3
image_steps = 2
layers = [{channels = 4, pool = 2}, {channels = 8}]
[params]
cell = {choices = ["rgc", "vanilla"]}
gate_bias = {low = -2.0, high = 2.0}
depth_separable = true
feedback = {edges = [[1, 0], [1, 1]]}
"""


def _cli(args: list[str]) -> int:
    from neuromodels.commands import convrnn

    parser = argparse.ArgumentParser()
    convrnn.register(parser.add_subparsers())
    parsed = parser.parse_args(["search", *args])
    return parsed.handler(parsed)


def test_space_from_toml_and_bad_spaces(tmp_path):
    from neuromodels.fitting.search import DEFAULT_SPACE, build_model, load_space

    path = tmp_path / "space.toml"
    path.write_text(TOML)
    space = load_space(path)
    assert space["params"]["cell"] == {"choices": ["rgc", "vanilla"]} and space["n_train"] == DEFAULT_SPACE["n_train"]
    model = build_model(
        space, {"cell": "rgc", "gate_bias": 1.5, "depth_separable": True, "feedback": [[1, 1]], "bypass": True}
    )
    assert model.feedback_edges == [(1, 1)] and model.layers[0].bypass
    assert float(model.layers[1].cell.gate_bias.detach()[0]) == 1.5
    assert load_space("default")["params"] == DEFAULT_SPACE["params"]
    with pytest.raises(ConfigError, match="unknown search-space keys"):
        load_space({"layer": []})
    with pytest.raises(ConfigError, match="feedback edge"):
        load_space({"params": {"feedback": {"edges": [[0, 3]]}}})
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path / "missing.toml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_space(tmp_path / "bad.json")


def test_cli_runs_trials_and_writes_the_report(tmp_path, capsys):
    space = tmp_path / "tiny.json"
    space.write_text(json.dumps(TINY))
    out = tmp_path / "out"
    assert _cli(["--space", str(space), "--trials", "4", "--out", str(out), "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["finished"] == 4 and report["best"]["value"] > 0.1
    assert {"trials.csv", "report.json", "best_architectures.png", "search.journal"} <= {p.name for p in out.iterdir()}
    import pandas as pd

    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 4 and {"value", "params_cell", "architecture", "user_attrs_parameters"} <= set(table.columns)
    # asking again for 4 trials runs nothing new; asking for 5 runs exactly one more
    assert _cli(["--space", str(space), "--trials", "5", "--out", str(out), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["finished"] == 5


def _finished(storage: Path) -> dict[int, tuple]:
    import optuna
    from optuna.trial import TrialState

    from neuromodels.fitting.search import open_storage

    if not storage.exists():
        return {}
    try:
        study = optuna.load_study(study_name="convrnn", storage=open_storage(storage))
    except KeyError:
        return {}
    return {t.number: (t.value, t.params) for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))}


def test_search_resumes_after_being_killed(tmp_path):
    space = dict(TINY, n_train=400, epochs=2)
    (tmp_path / "tiny.json").write_text(json.dumps(space))
    storage = tmp_path / "study.journal"
    script = (
        "import sys, argparse, torch; torch.set_num_threads(1); from neuromodels.commands import convrnn; "
        "p = argparse.ArgumentParser(); convrnn.register(p.add_subparsers()); "
        "a = p.parse_args(['search'] + sys.argv[1:]); sys.exit(a.handler(a))"
    )
    args = [
        "--space",
        str(tmp_path / "tiny.json"),
        "--trials",
        "8",
        "--storage",
        str(storage),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while len(_finished(storage)) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = _finished(storage)
    assert 2 <= len(before) < 8, (len(before), process.stderr.read().decode()[-2000:])
    done = subprocess.run(
        [sys.executable, "-c", script, *args, "--json"], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout)
    after = _finished(storage)
    assert len(after) == report["finished"] == 8
    for number, (value, params) in before.items():  # the earlier trials are kept as they were
        assert after[number] == (value, params)


def test_rdb_url_storage_resumes(tmp_path):
    from neuromodels.fitting.search import run_search

    url = f"sqlite:///{tmp_path / 'search.db'}"
    space = dict(TINY, n_train=200, epochs=1)
    first = run_search(space, trials=2, storage=url, progress=False)
    numbers = [(t.number, t.params) for t in first.trials]
    second = run_search(space, trials=3, storage=url, progress=False)
    assert len(second.trials) == 3 and [(t.number, t.params) for t in second.trials[:2]] == numbers
    assert second.trials[2].params != second.trials[0].params  # the resumed sampler does not redraw trial 0


def _journal_study(path: Path):
    import optuna

    from neuromodels.fitting.search import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name="convrnn", storage=open_storage(path), direction="maximize", load_if_exists=True
    )


def test_fail_stale_trials_fails_only_trials_whose_heartbeat_is_old(tmp_path):
    from optuna.trial import TrialState

    from neuromodels.fitting.search import fail_stale_trials

    study = _journal_study(tmp_path / "study.journal")
    dead, alive, just_started = study.ask(), study.ask(), study.ask()
    dead.set_user_attr("heartbeat", time.time() - 1000.0)  # a worker killed ~17 minutes ago
    alive.set_user_attr("heartbeat", time.time())
    # `just_started` has no heartbeat yet: its start time counts
    assert fail_stale_trials(study, grace_period=60.0) == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {
        dead.number: TrialState.FAIL,
        alive.number: TrialState.RUNNING,
        just_started.number: TrialState.RUNNING,
    }
    assert fail_stale_trials(study, grace_period=60.0) == []  # idempotent


def test_heartbeat_is_written_on_entry_and_exit(tmp_path):
    from neuromodels.fitting.search import _Heartbeat

    trial = _journal_study(tmp_path / "study.journal").ask()
    before = time.time()
    with _Heartbeat(trial, interval=3600.0):
        first = _journal_study(tmp_path / "study.journal").trials[0].user_attrs["heartbeat"]
        assert first >= before
    last = _journal_study(tmp_path / "study.journal").trials[0].user_attrs["heartbeat"]
    assert last >= first


def test_search_resume_marks_a_dead_workers_trial_failed_and_redoes_it(tmp_path):
    from optuna.trial import TrialState

    from neuromodels.fitting.search import run_search, write_report

    storage = tmp_path / "study.journal"
    dead = _journal_study(storage).ask()
    dead.set_user_attr("heartbeat", time.time() - 1000.0)
    study = run_search(dict(TINY, n_train=200, epochs=1), trials=1, storage=storage, progress=False)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]
    assert "heartbeat" in study.trials[1].user_attrs
    report = write_report(study, tmp_path / "out")
    assert report["stale"] == 0 and report["counts"]["fail"] == 1 and report["failed_stale"] == [0]
    assert report["finished"] == 1
