"""The distribution installs datasets/, fitting/, analysis/ as neuromodels.* and nothing top-level besides."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_only_the_neuromodels_package(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{result.stderr[-3000:]}")
    (wheel,) = tmp_path.glob("neuromodels-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"neuromodels"}
    for sub in ("datasets", "datasets/formats", "fitting", "analysis"):
        assert f"neuromodels/{sub}/__init__.py" in names
    assert "neuromodels/datasets/binning.py" in names
    assert "neuromodels/spiking/_lif_kernel.c" in names  # compiled on first use by neuromodels.spiking._compiled
    # every package of the source tree is in the wheel (a missing one breaks `pip install .` only)
    mapping = {
        "neuromodels": "neuromodels",
        "datasets": "neuromodels/datasets",
        "fitting": "neuromodels/fitting",
        "analysis": "neuromodels/analysis",
    }
    for folder, installed in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.relative_to(ROOT / folder).as_posix()
            assert f"{installed}/{relative}" in names, f"{folder}/{relative} is not in the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "neuromodels = neuromodels.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
