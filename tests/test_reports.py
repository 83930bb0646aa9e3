"""One JSON converter for reports: files and ``--json`` output hold the same strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

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
