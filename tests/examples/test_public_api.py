"""The examples are scripts a lab copies: they use the package's public API only (no ``_private`` module or name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


def _private_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("neuromodels"):
            parts = node.module.split(".") + [alias.name for alias in node.names]
            found += [
                f"from {node.module} import {a.name}" for a in node.names if any(p.startswith("_") for p in parts)
            ]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("neuromodels") and "._" in a.name]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in {"nd", "analysis", "neuromodels", "fitting", "datasets"}:
                found.append(f"{ast.unparse(node)}")
    return found


def test_the_check_sees_private_imports():
    assert _private_uses("from neuromodels._figures import save_figure") == [
        "from neuromodels._figures import save_figure"
    ]
    assert _private_uses("from neuromodels.fitting.loop import _call") == ["from neuromodels.fitting.loop import _call"]
    assert _private_uses("import neuromodels.datasets._io") == ["neuromodels.datasets._io"]
    assert _private_uses("nd._load(x)") == ["nd._load"]
    assert _private_uses("from neuromodels.analysis import noise_ceiling") == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_uses_the_public_api_only(path):
    assert EXAMPLES, "no examples found"
    assert _private_uses(path.read_text()) == [], path.name
