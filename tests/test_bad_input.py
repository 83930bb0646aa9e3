"""Bad input through the real ``neuromodels`` entry point (issue 13): clean errors, nothing half-written.

Each case of :data:`CASES` builds its inputs in a fresh folder, runs the command line and expects a clean error:
exit code 2, no traceback, the words of ``needles`` in the message (the file or field named), nothing of
``absent`` and no other new file left behind. The tests run every case in-process (``neuromodels.cli.main``);
``python tests/test_bad_input.py`` runs them as subprocesses and prints the campaign's counts (clean errors,
tracebacks, bad input accepted, partial outputs). The tests after the cases check the report-folder rule, the
lock, the cleanup of a killed writer's temp files and a closed ``--json`` pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":  # run as a script, this folder is sys.path[0], where tests/neuromodels shadows the package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pytest

# the package is imported inside the functions: the campaign also runs against older versions of it
MANIFEST, LOCK = ".neuromodels-report.json", ".neuromodels.lock"

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NWB = SHARED_DATA / "nwb-fixtures" / "pynapple_A8604-211122.nwb"
SMR = SHARED_DATA / "neo-fixtures" / "Extracellular_Spikes.smr"


def _unwritable(d: Path) -> Path:
    """A folder this process cannot create files in (as root, chmod does not stop writes: use /proc)."""
    if os.geteuid() == 0:
        return Path("/proc/self/neuromodels-campaign")
    ro = d / "readonly"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o500)
    return ro


@dataclass
class Case:
    name: str
    argv: Callable[[Path], list[str]]
    needles: Callable[[Path], list[str]] = lambda d: []
    absent: Callable[[Path], list[Path]] = lambda d: []
    setup: Callable[[Path], None] | None = None
    needs: str | None = None  # "shared" (../shared/data) or "no-cuda"
    extra: dict = field(default_factory=dict)


# one minimal valid invocation of every command that writes a report folder, with OUT to fill in
WRITERS: dict[str, Callable[[str], list[str]]] = {
    "simulate": lambda out: ["simulate", "--example", "feedforward", "--out", out],
    "train-snn": lambda out: ["train-snn", "--task", "timing", "--trials", "1", "--out", out],
    "fit": lambda out: [
        "fit",
        "--data",
        "sample:retina",
        "--model",
        "ln",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        out,
    ],
    "train-convrnn": lambda out: ["train-convrnn", "--epochs", "1", "--channels", "4", "--no-progress", "--out", out],
    "ceiling": lambda out: ["ceiling", "sample:ventral", "--out", out],
    "theory depth-scales": lambda out: ["theory", "depth-scales", "--sigma-w2", "1:2:3", "--out", out],
    "theory phase-diagram": lambda out: [
        "theory",
        "phase-diagram",
        "--sigma-w2",
        "1:2:3",
        "--sigma-b2",
        "0:0.1:3",
        "--out",
        out,
    ],
    "theory spectrum": lambda out: [
        "theory",
        "spectrum",
        "--depth",
        "2",
        "--width",
        "20",
        "--points",
        "50",
        "--q-star",
        "0.5",
        "--draws",
        "1",
        "--out",
        out,
    ],
    "theory trajectory": lambda out: [
        "theory",
        "trajectory",
        "--depth",
        "2",
        "--width",
        "10",
        "--points",
        "200",
        "--sigma-w2",
        "2",
        "--sigma-b2",
        "0.1",
        "--out",
        out,
    ],
    "search": lambda out: [
        "search",
        "--data",
        "digits",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        out,
    ],
}


def _file(d: Path) -> Path:
    p = d / "a-file"
    p.write_text("mine\n")
    return p


def _config(d: Path, text: str) -> Path:
    p = d / "circuit.toml"
    p.write_text(text)
    return p


def _retina_with_inf(d: Path) -> None:
    import h5py
    import numpy as np

    from neuromodels.datasets import load, write_retina_hdf5

    write_retina_hdf5(load("sample:retina"), d / "retina.h5")
    with h5py.File(d / "retina.h5", "r+") as f:
        stim = f["test/stimulus"]
        frame = np.array(stim[3])
        frame[0, 0] = np.inf
        stim[3] = frame


def _converted_single_repetition(d: Path) -> None:
    from neuromodels.datasets import load, write_netcdf

    ventral = load("sample:ventral")
    write_netcdf(ventral.isel(presentation=(ventral["repetition"] == 0).values), d / "mine.nc")


def _converted_with_duplicates(d: Path) -> None:
    import numpy as np

    from neuromodels.datasets import load

    ventral = load("sample:ventral")
    ids = ventral["neuroid_id"].values.copy()
    ids[1] = ids[0]
    broken = ventral.assign_coords(neuroid_id=("neuroid", ids))
    broken.attrs["source"] = "sample:ventral"
    ds = broken.to_dataset(name="data", promote_attrs=True)
    ds = ds.assign_coords(neuroid_id=("neuroid", np.asarray(ids).astype(str)))
    ds.to_netcdf(d / "mine.nc")


CASES: list[Case] = []
for command, make in WRITERS.items():
    CASES.append(
        Case(
            f"{command}: --out unwritable",
            lambda d, make=make: make(str(_unwritable(d) / "out")),
            needles=lambda d: [str(_unwritable(d))],
        )
    )
    CASES.append(
        Case(
            f"{command}: --out is a file",
            lambda d, make=make: make(str(_file(d))),
            needles=lambda d: [str(d / "a-file"), "not a folder"],
        )
    )
    CASES.append(
        Case(
            f"{command}: --out a folder that is not a report",
            lambda d, make=make: make(str(d)),
            setup=lambda d: (d / "thesis.tex").write_text("mine\n"),
            needles=lambda d: [str(d), "not a neuromodels report folder"],
        )
    )

CASES += [
    Case(
        "data convert into a folder",
        lambda d: ["data", "convert", "sample:ventral", str(d)],
        needles=lambda d: [str(d), "folder"],
    ),
    Case(
        "data convert to out.txt",
        lambda d: ["data", "convert", "sample:ventral", str(d / "out.txt")],
        needles=lambda d: ["out.txt", ".nc"],
        absent=lambda d: [d / "out.txt"],
    ),
    Case(
        "data convert unwritable",
        lambda d: ["data", "convert", "sample:ventral", str(_unwritable(d) / "v.nc")],
        needles=lambda d: [str(_unwritable(d))],
    ),
    Case(
        "data convert: inf in a lazily read test/stimulus",
        lambda d: ["data", "convert", str(d / "retina.h5"), str(d / "retina.nc")],
        setup=_retina_with_inf,
        needles=lambda d: [str(d / "retina.h5"), "stimulus"],
        absent=lambda d: [d / "retina.nc"],
    ),
    Case(
        "data inspect --bin-size 1e-9",
        lambda d: ["data", "inspect", str(NWB), "--bin-size", "1e-9"],
        needles=lambda d: [str(NWB), "bin_size", "GiB"],
        needs="shared",
    ),
    Case(
        "data inspect --bin-size 1e9",
        lambda d: ["data", "inspect", str(NWB), "--bin-size", "1e9"],
        needles=lambda d: ["bin_size"],
        needs="shared",
    ),
    Case(
        "data convert --bin-size 1e9",
        lambda d: ["data", "convert", str(NWB), str(d / "x.nc"), "--bin-size", "1e9"],
        needles=lambda d: ["bin_size"],
        absent=lambda d: [d / "x.nc"],
        needs="shared",
    ),
    Case(
        "data inspect: error names the user's file, not the recorded sample: source",
        lambda d: ["data", "inspect", str(d / "mine.nc")],
        setup=_converted_with_duplicates,
        needles=lambda d: [str(d / "mine.nc"), "neuroid_id"],
    ),
    Case(
        "ceiling of a converted file: error names the user's file",
        lambda d: ["ceiling", str(d / "mine.nc"), "--out", str(d / "o")],
        setup=_converted_single_repetition,
        needles=lambda d: [str(d / "mine.nc")],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "simulate duration inf",
        lambda d: ["simulate", "--config", str(_config(d, "[simulation]\nduration = inf\n")), "--out", str(d / "o")],
        needles=lambda d: ["simulation.duration"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "simulate duration 1e9",
        lambda d: ["simulate", "--config", str(_config(d, "[simulation]\nduration = 1e9\n")), "--out", str(d / "o")],
        needles=lambda d: ["simulation.duration", "GiB"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "simulate duration below dt",
        lambda d: ["simulate", "--config", str(_config(d, "[simulation]\nduration = 1e-4\n")), "--out", str(d / "o")],
        needles=lambda d: ["simulation.duration", "dt"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "simulate seed -1",
        lambda d: ["simulate", "--config", str(_config(d, "[simulation]\nseed = -1\n")), "--out", str(d / "o")],
        needles=lambda d: ["simulation.seed"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "simulate weight_mean nan",
        lambda d: ["simulate", "--config", str(_config(d, "[network]\nweight_mean = nan\n")), "--out", str(d / "o")],
        needles=lambda d: ["network.weight_mean"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "fit --device cuda without CUDA",
        lambda d: ["fit", "--data", "sample:retina", "--model", "ln", "--device", "cuda", "--out", str(d / "o")],
        needles=lambda d: ["--device", "cuda"],
        absent=lambda d: [d / "o"],
        needs="no-cuda",
    ),
    Case(
        "fit --device nonsense",
        lambda d: ["fit", "--data", "sample:retina", "--model", "ln", "--device", "gpu0", "--out", str(d / "o")],
        needles=lambda d: ["--device"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "fit --param seed=5",
        lambda d: ["fit", "--data", "sample:retina", "--model", "ln", "--param", "seed=5", "--out", str(d / "o")],
        needles=lambda d: ["--param", "seed"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "fit: missing data does not create --out",
        lambda d: ["fit", "--data", str(d / "missing.h5"), "--out", str(d / "o")],
        needles=lambda d: [str(d / "missing.h5")],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "train-snn: bad trials does not create --out",
        lambda d: ["train-snn", "--task", "timing", "--trials", "0", "--out", str(d / "o")],
        needles=lambda d: ["--trials"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "theory spectrum --points 0",
        lambda d: ["theory", "spectrum", "--q-star", "0.5", "--points", "0", "--out", str(d / "o")],
        needles=lambda d: ["--points"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "theory trajectory --points 0",
        lambda d: [
            "theory",
            "trajectory",
            "--points",
            "0",
            "--sigma-w2",
            "2",
            "--sigma-b2",
            "0.1",
            "--out",
            str(d / "o"),
        ],
        needles=lambda d: ["--points"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "data inspect neo --bin-size 1e9",
        lambda d: ["data", "inspect", str(SMR), "--bin-size", "1e9"],
        needles=lambda d: [str(SMR), "bin_size"],
        needs="shared",
    ),
    Case(
        "data inspect neo --bin-size 1e-9",
        lambda d: ["data", "inspect", str(SMR), "--bin-size", "1e-9"],
        needles=lambda d: [str(SMR), "bin_size", "GiB"],
        needs="shared",
    ),
    Case(
        "theory phase-diagram grid beyond memory",
        lambda d: [
            "theory",
            "phase-diagram",
            "--sigma-w2",
            "1:4:1000000",
            "--sigma-b2",
            "0:1:1000000",
            "--out",
            str(d / "o"),
        ],
        needles=lambda d: ["--sigma-w2 x --sigma-b2", "GiB"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "theory depth-scales grid of 1e10 points",
        lambda d: ["theory", "depth-scales", "--sigma-w2", "1:4:10000000000", "--out", str(d / "o")],
        needles=lambda d: ["--sigma-w2", "GiB"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "fit --seed -1",
        lambda d: ["fit", "--data", "sample:retina", "--seed", "-1", "--out", str(d / "o")],
        needles=lambda d: ["--seed"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "train-snn --seed -1",
        lambda d: ["train-snn", "--task", "timing", "--seed", "-1", "--out", str(d / "o")],
        needles=lambda d: ["--seed"],
        absent=lambda d: [d / "o"],
    ),
    Case(
        "train-convrnn --epochs 0",
        lambda d: ["train-convrnn", "--epochs", "0", "--out", str(d / "o")],
        needles=lambda d: ["--epochs"],
        absent=lambda d: [d / "o"],
    ),
]


def available(case: Case) -> bool:
    if case.needs == "shared":
        return NWB.is_file() and SMR.is_file()
    if case.needs == "no-cuda":
        import torch

        return not torch.cuda.is_available()
    return True


def classify(case: Case, d: Path, returncode: int, stderr: str) -> str:
    """``clean``, ``traceback``, ``accepted`` (exit 0: bad input taken), ``partial`` (output left) or ``unclear``
    (exit 2 without the file or field named)."""
    if "Traceback" in stderr:
        return "traceback"
    if any(p.exists() for p in case.absent(d)):
        return "partial"
    if returncode == 0:
        return "accepted"
    if returncode != 2 or not all(n in stderr for n in case.needles(d)):
        return "unclear"
    return "clean"


def campaign(root: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    import re

    only = re.compile(os.environ.get("CAMPAIGN_MATCH", ""))  # to rerun some cases (a regular expression)
    for i, case in enumerate(CASES):
        if not only.search(case.name) or not available(case):
            continue
        d = root / f"case{i:03d}"
        d.mkdir(parents=True)
        if case.setup:
            case.setup(d)
        argv = case.argv(d)
        result = subprocess.run(
            [sys.executable, "-m", "neuromodels", *argv], capture_output=True, text=True, timeout=600, env=env, cwd=d
        )
        kind = classify(case, d, result.returncode, result.stderr)
        counts[kind] = counts.get(kind, 0) + 1
        last = (result.stderr.strip().splitlines() or [""])[-1][:160]
        print(f"{kind:9s} rc={result.returncode} {case.name}: {last}", flush=True)
    counts["tried"] = sum(counts.values())
    return counts


# ------------------------------------------------------------------------------------------------------ tests


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clean_error_and_leaves_nothing(case, tmp_path, capsys, monkeypatch):
    from neuromodels.cli import main

    if not available(case):
        pytest.skip(f"needs {case.needs}")
    monkeypatch.chdir(tmp_path)
    if case.setup:
        case.setup(tmp_path)
    argv = case.argv(tmp_path)
    before = _listing(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in case.needles(tmp_path):
        assert needle in err, (needle, err)
    for path in case.absent(tmp_path):
        assert not path.exists(), path
    assert _listing(tmp_path) == before  # nothing written, nothing removed


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "neuromodels", *argv], capture_output=True, text=True, timeout=300, env=env, **kwargs
    )


def test_json_into_a_closed_pipe_is_quiet(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuromodels",
            "theory",
            "depth-scales",
            "--sigma-w2",
            "1:4:50",
            "--json",
            "--out",
            str(tmp_path / "o"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # the reader (`| head`) is gone before anything is printed
    err = proc.stderr.read().decode()
    proc.wait(timeout=300)
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141


def test_report_folder_keeps_foreign_files_and_removes_only_its_stale_ones(tmp_path, capsys):
    import neuromodels._outputs as outputs
    from neuromodels.cli import main

    assert (MANIFEST, LOCK) == (outputs.MANIFEST, outputs.LOCK)
    out = tmp_path / "sim"
    assert main(["simulate", "--example", "feedforward", "--out", str(out)]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "simulate" and manifest["complete"] is True
    assert set(manifest["files"]) == {"simulation.nc", "raster.png", "rates.png", "report.json", MANIFEST}
    (out / "notes.txt").write_text("mine")
    (out / "old-output.png").write_text("written by an earlier run")
    manifest["files"].append("old-output.png")
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert main(["simulate", "--example", "feedforward", "--out", str(out)]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # never delete a file the command did not write
    assert not (out / "old-output.png").exists()  # a stale output the manifest says is ours
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST, "notes.txt", "raster.png", "rates.png", "report.json", "simulation.nc"]
    )


def test_failed_simulate_leaves_nothing_and_keeps_an_earlier_report(tmp_path, monkeypatch):
    import neuromodels.spiking.plots as plots
    from neuromodels.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    fresh, earlier = tmp_path / "fresh", tmp_path / "earlier"
    assert main(["simulate", "--example", "feedforward", "--out", str(earlier)]) == 0
    snapshot = {p.name: p.read_bytes() for p in earlier.iterdir()}
    monkeypatch.setattr(plots, "plot_rate_histogram", broken)
    for out in (fresh, earlier):
        with pytest.raises(RuntimeError, match="plotting failed"):
            main(["simulate", "--example", "feedforward", "--out", str(out)])
    assert not fresh.exists()  # no simulation.nc or raster.png without a report
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == snapshot


def test_second_writer_on_one_out_is_refused(tmp_path, capsys):
    from neuromodels._outputs import ReportFolder
    from neuromodels.cli import main

    out = tmp_path / "fit"
    with ReportFolder(out, "fit"):  # a first run holding the folder (an flock, as another process would)
        code = main(
            ["fit", "--data", "sample:retina", "--model", "ln", "--epochs", "1", "--no-progress", "--out", str(out)]
        )
        err = capsys.readouterr().err
        assert code == 2 and "another neuromodels command is writing there" in err and str(os.getpid()) in err
        assert [p.name for p in out.iterdir() if not p.name.startswith(".neuromodels-staging.")] == [LOCK]
    assert [p.name for p in out.iterdir()] == [MANIFEST]  # the refused run wrote nothing; the lock is gone


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    from neuromodels._outputs import ReportFolder

    out = tmp_path / "o"
    code = (
        "import os, sys; from neuromodels._outputs import ReportFolder; "
        f"f = ReportFolder({str(out)!r}, 'fit').__enter__(); f.keep('training/checkpoint.pt').write_text('x'); "
        "os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", code], timeout=120)
    assert (out / LOCK).exists() and (out / "training" / "checkpoint.pt").exists()
    with ReportFolder(out, "fit") as folder:  # the kernel released the dead process's lock
        assert folder.keep("training/checkpoint.pt").read_text() == "x"
    assert not (out / LOCK).exists()


def test_killed_convert_leaves_temp_files_that_the_next_write_removes(tmp_path):
    from neuromodels.cli import main

    target = tmp_path / "v.nc"
    code = (
        "import os; from neuromodels.datasets._io import atomic_path; "
        f"cm = atomic_path({str(target)!r}); p = cm.__enter__(); open(p, 'w').write('half'); "
        "os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", code], timeout=120)
    (stale,) = [p for p in tmp_path.iterdir() if p.name.startswith(".v.nc.")]
    decoy = tmp_path / ".v.nc.notours.tmp"  # not the package's pattern: left alone
    decoy.mkdir()
    assert main(["data", "convert", "sample:ventral", str(target)]) == 0
    assert not stale.exists() and decoy.exists() and target.is_file()


def test_a_live_writers_temp_folder_is_not_removed(tmp_path):
    from neuromodels.datasets._io import atomic_path, remove_stale_temp_folders

    with atomic_path(tmp_path / "x.nc") as tmp:
        tmp.write_text("in progress")
        assert remove_stale_temp_folders(tmp_path, "x.nc") == []
        assert tmp.exists()
    assert (tmp_path / "x.nc").read_text() == "in progress"


def test_fit_param_names_a_real_model_parameter_still_pass(tmp_path):
    from neuromodels.commands.fit import _parse_params
    from neuromodels.errors import ConfigError

    assert _parse_params(["ln.rank=2"], ["ln"]) == {"ln": {"rank": 2}}
    with pytest.raises(ConfigError, match="--seed"):
        _parse_params(["ln.seed=5"], ["ln"])


@pytest.mark.parametrize(
    "error, code, message",
    [
        (
            PermissionError(13, "Permission denied", "/data/x.nc"),
            2,
            "neuromodels: error: /data/x.nc: Permission denied",
        ),
        (OSError(28, "No space left on device"), 2, "neuromodels: error: No space left on device"),
        (MemoryError(), 2, "neuromodels: error: out of memory"),
    ],
)
def test_environment_failures_are_one_line_errors_and_bugs_keep_their_traceback(
    monkeypatch, capsys, error, code, message
):
    import neuromodels.commands.theory as theory
    from neuromodels.cli import main

    def fails(args):
        raise error

    monkeypatch.setattr(theory, "_depth_scales", fails)
    assert main(["theory", "depth-scales"]) == code
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    monkeypatch.setattr(theory, "_depth_scales", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["theory", "depth-scales"])


def test_errors_name_the_file_loaded_not_the_source_recorded_in_it():
    from neuromodels.errors import DataFormatError, naming_loaded_files, note_loaded

    with naming_loaded_files():  # what the command line does around every command
        note_loaded("sample:test-only", "/data/mine.nc")
        err = DataFormatError(file="sample:test-only", field="trials", expected="repeats", found="none")
        assert str(err).startswith("/data/mine.nc (recorded source sample:test-only): field 'trials'")
        assert err.file == "/data/mine.nc"
        note_loaded("sample:test-only", "sample:test-only")  # the sample used as itself afterwards
        assert str(DataFormatError(file="sample:test-only", field="trials")).startswith("sample:test-only: field")
        note_loaded("sample:test-only", "/data/mine.nc")
    # outside a command (library use) recorded names stay as they are
    assert str(DataFormatError(file="sample:test-only", field="trials")).startswith("sample:test-only: field")


def test_check_allocation_says_how_much_is_needed():
    from neuromodels._limits import check_allocation, format_bytes
    from neuromodels.errors import ConfigError

    assert format_bytes(3 * 2**30) == "3.0 GiB" and format_bytes(2**20) == "1.0 MiB"
    check_allocation(1024, "a small array")
    with pytest.raises(ConfigError, match=r"huge needs about 8,388,608.0 GiB of memory"):
        check_allocation(2.0**53, "huge")


if __name__ == "__main__":
    import tempfile

    print(campaign(Path(tempfile.mkdtemp(prefix="nm-campaign-"))))
