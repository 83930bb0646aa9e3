"""One JSON converter for reports: files and ``--json`` output hold the same strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from neuromodels._reports import jsonable, print_json, write_json


def _strict(text: str):
    def refuse(token: str):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_print_json_prints_what_write_json_writes(tmp_path, capsys):
    report = {
        "cc": np.array([0.5, np.nan]),
        "ratio": np.float32(2.5),
        "inf": math.inf,
        "n": np.int64(3),
        "path": Path("a/b"),
        7: "seven",
        "other": complex(1, 2),
    }
    expected = {"cc": [0.5, None], "ratio": 2.5, "inf": None, "n": 3, "path": "a/b", "7": "seven", "other": "(1+2j)"}
    assert jsonable(report) == expected
    print_json(report)
    printed = _strict(capsys.readouterr().out)  # a bare NaN or Infinity would fail here
    written = _strict(write_json(tmp_path / "report.json", report).read_text())
    assert printed == written == expected


def test_write_report_is_the_examples_checked_atomic_writer(tmp_path):
    import json
    import math

    from matplotlib.figure import Figure

    from neuromodels import write_report
    from neuromodels._outputs import MANIFEST
    from neuromodels.errors import ConfigError

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    out = write_report(tmp_path / "rep", "example", {"cc": 0.5, "cv": math.nan}, {"a.png": fig}, also=tmp_path / "f")
    assert json.loads((out / "report.json").read_text()) == {"cc": 0.5, "cv": None}  # strict JSON: NaN is null
    assert json.loads((out / MANIFEST).read_text())["files"] == ["a.png", "report.json", MANIFEST]
    assert (tmp_path / "f" / "a.png").stat().st_size > 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a neuromodels report folder"):
        write_report(mine, "example", {}, {"a.png": fig})
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="--figures"):  # a --figures folder it cannot make: --out untouched
        write_report(tmp_path / "rep2", "example", {}, {"a.png": fig}, also=blocker / "sub")
    assert not (tmp_path / "rep2").exists()
