"""Figures: built without pyplot, written atomically, and the library never switches matplotlib's backend."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from neuromodels._figures import new_figure, save_figure

REPO = Path(__file__).resolve().parents[1]


def test_new_figure_is_not_registered_with_pyplot_and_saves(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    before = plt.get_fignums()
    fig, axes = new_figure(2, 3, figsize=(6, 4), sharey=True)
    assert isinstance(fig, Figure) and axes.shape == (2, 3)
    assert tuple(fig.get_size_inches()) == (6.0, 4.0)
    assert axes[0, 1].get_shared_y_axes().joined(axes[0, 0], axes[1, 2])
    assert plt.get_fignums() == before  # pyplot's registry does not see it
    fig_one, ax = new_figure()
    assert not isinstance(ax, np.ndarray)  # one axes, as pyplot.subplots() returns
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig_one, tmp_path / "one.png")  # closing a figure pyplot does not manage is a no-op
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_save_figure_closes_pyplot_figures(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    save_figure(fig, tmp_path / "pyplot.png")
    assert fig.number not in plt.get_fignums()
    assert (tmp_path / "pyplot.png").stat().st_size > 0


def _library_files() -> list[Path]:
    files = []
    for folder in ("neuromodels", "datasets", "fitting", "analysis"):
        files += sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def _calls_matplotlib_use(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "use"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("matplotlib", "mpl")
        for node in ast.walk(tree)
    )


def test_only_the_command_line_switches_the_backend():
    switching = {str(path.relative_to(REPO)) for path in _library_files() if _calls_matplotlib_use(path)}
    assert switching == {"neuromodels/cli.py"}, f"library code switches matplotlib's backend: {sorted(switching)}"


# Every plotting function of these modules, called with small made-up results, in a fresh interpreter whose
# backend is "pdf" (non-interactive, available headless, not Agg): the backend must still be "pdf" afterwards,
# and pyplot must not even have been imported (importing it is what selects a backend).
PLOTTING_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import numpy as np
    import torch
    import xarray as xr

    out = Path(sys.argv[1])
    from neuromodels._figures import save_figure
    from neuromodels.analysis import plots_retina
    from neuromodels.analysis.convrnn_reproduce import write_memory_task_report
    from neuromodels.analysis.robustness.reproduce import _plot_linear, _plot_spectra, plot_examples
    from neuromodels.analysis.temporal_predictivity import plot_time_courses

    rng = np.random.default_rng(0)
    cells = ["a", "b"]
    time = np.arange(20) * 0.01
    trace = xr.DataArray(rng.random((20, 2)), dims=("time", "cell"), coords={"time": time, "cell": cells})
    metrics = xr.Dataset({"cc": ("cell", [0.5, 0.6]), "cc_max": ("cell", [0.8, 0.9])}, coords={"cell": cells})
    save_figure(plots_retina.plot_filters(rng.normal(size=(3, 5, 4, 4))), out / "filters.png")
    save_figure(plots_retina.plot_cc_vs_ceiling({"CNN": metrics}), out / "cc.png")
    save_figure(plots_retina.plot_test_traces({"CNN": trace}, trace), out / "traces.png")
    scores = xr.Dataset({"score": (("layer", "time_bin"), rng.random((2, 3))),
                         "error": (("layer", "time_bin"), 0.1 * rng.random((2, 3)))},
                        coords={"layer": ["layers.0", "layers.1"], "time_bin_start": ("time_bin", [0., 10., 20.]),
                                "time_bin_end": ("time_bin", [10., 20., 30.])})
    plot_time_courses({"RGC": scores}, out / "time_courses.png")
    table = {k: {"mean": 0.5, "sem": 0.01, "accuracies": [0.49, 0.51], "parameters": 100, "channels": [1]}
             for k in ("feedforward", "rgc")}
    settings = {"dataset": "digits", "size": 8, "image_steps": 2, "steps": 5, "readout_step": 4}
    write_memory_task_report({"table": table, "settings": settings}, out)
    images = torch.rand(6, 1, 8, 8)
    save_figure(plot_examples(images, {"fgsm": images}, n=3), out / "examples.png")
    save_figure(_plot_spectra({"mlp": [3.0, 2.0, 1.0]}), out / "spectra.png")
    row = {"weight_excess_kurtosis": 1.0, "median_norm_ratio": 2.0, "median_linf_distance": 0.1,
           "median_l2_distance": 1.0, "sqrt_d": 28.0}
    save_figure(_plot_linear([row, {**row, "weight_excess_kurtosis": 2.0}]), out / "linear.png")

    pyplot_imported = "matplotlib.pyplot" in sys.modules
    import matplotlib
    print(json.dumps({"backend": matplotlib.get_backend(), "pyplot_imported": pyplot_imported,
                      "files": sorted(p.name for p in out.iterdir())}))
""")


def test_library_plots_leave_the_backend_alone(tmp_path):
    pytest.importorskip("matplotlib.backends.backend_pdf")
    script = tmp_path / "plots.py"
    script.write_text(PLOTTING_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "MPLBACKEND": "pdf", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "pdf"
    assert report["pyplot_imported"] is False
    assert report["files"] == sorted(
        [
            "filters.png",
            "cc.png",
            "traces.png",
            "time_courses.png",
            "examples.png",
            "spectra.png",
            "linear.png",
            "convrnn_memory_task.png",
            "convrnn_memory_task.json",
        ]
    )


def test_the_command_line_selects_agg_once(monkeypatch, tmp_path):
    import matplotlib

    from neuromodels.cli import main

    calls = []
    monkeypatch.setattr(matplotlib, "use", lambda backend, *args, **kwargs: calls.append(backend))
    assert main(["data", "inspect", str(tmp_path / "missing.nc")]) == 2
    assert calls == ["Agg"]
