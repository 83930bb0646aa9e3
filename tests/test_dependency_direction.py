"""Every import in the package follows the documented dependency direction (ARCHITECTURE.md, README).

    base + datasets  <-  models (neuromodels/)  <-  fitting/  <-  analysis/  <-  commands (cli.py, commands/)

A module may import its own layer and any layer to its left, never one to its right. The test reads every
module's source with :mod:`ast` (nothing is imported) and checks

* module-level imports and the lazy ones inside functions and methods (``import x`` / ``from x import y``,
  relative ones resolved against the importing package);
* ``importlib.import_module("...")`` with a literal module name;
* the lazy-export tables of the packages (``_LAZY = {name: module}``, read by :func:`neuromodels._lazy.
  lazy_attributes`): a name a package re-exports is an import of its module.

The base layer is infrastructure that every layer uses and that knows nothing of models, training or analysis:
errors, atomic file writing and private folders, report folders and JSON, size limits, figures, the lazy-export
helper, history windows, caches (:data:`BASE`). It sits at the bottom together with ``datasets``: the adapters
raise the base layer's errors and write through its atomic helpers, and the base layer writes files through
``datasets._io``; neither imports anything above. Putting it in its own layer is what lets ``datasets`` raise
``DataFormatError`` and the command line write report folders without either importing the other.

The package root ``neuromodels/__init__.py`` is imported by Python before any of its submodules, so importing it
(``from neuromodels import __version__``) is allowed everywhere: it counts as base. Its own lazy table re-exports
model classes (``neuromodels.ConvRNN``), so its imports follow the models layer's rule. ``__main__.py`` runs the
command line, so it is in the commands layer.

:data:`KNOWN_VIOLATIONS` lists imports against the direction that another change is removing, each named; a
listed import that is gone fails :func:`test_known_violations_are_still_there`, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# layer name -> rank; a module may import modules of its rank or lower
RANKS = {"base": 0, "datasets": 0, "models": 1, "fitting": 2, "analysis": 3, "commands": 4}

# source folder -> the package it installs as (pyproject.toml, [tool.setuptools.package-dir])
PACKAGE_DIRS = {
    "neuromodels": "neuromodels",
    "datasets": "neuromodels.datasets",
    "fitting": "neuromodels.fitting",
    "analysis": "neuromodels.analysis",
}

# the infrastructure modules of neuromodels/ (module docstring: why they are a layer of their own)
BASE = frozenset(
    {
        "neuromodels.errors",
        "neuromodels._cache",
        "neuromodels._figures",
        "neuromodels._history",
        "neuromodels._lazy",
        "neuromodels._limits",
        "neuromodels._outputs",
        "neuromodels._reports",
    }
)
COMMANDS = frozenset({"neuromodels.cli", "neuromodels.__main__", "neuromodels.commands"})

# Violations that another change removes; each entry names that change. Empty when the direction holds.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


def layer_of(module: str) -> str | None:
    """The layer of a module of the package (``None`` for modules outside it: numpy, torch, ...)."""
    if module != "neuromodels" and not module.startswith("neuromodels."):
        return None
    if module == "neuromodels" or any(module == base or module.startswith(base + ".") for base in BASE):
        return "base"
    if any(module == cli or module.startswith(cli + ".") for cli in COMMANDS):
        return "commands"
    for package, layer in (
        ("neuromodels.datasets", "datasets"),
        ("neuromodels.fitting", "fitting"),
        ("neuromodels.analysis", "analysis"),
    ):
        if module == package or module.startswith(package + "."):
            return layer
    return "models"


def importer_layer(module: str) -> str:
    """The layer whose rules a module's own imports follow (the root's lazy table re-exports models)."""
    return "models" if module == "neuromodels" else layer_of(module)


def package_modules() -> dict[str, Path]:
    """Every module of the package (dotted name -> file), from the source folders."""
    modules = {}
    for folder, package in PACKAGE_DIRS.items():
        root = REPO / folder
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if any(part.startswith(".") or part == "__pycache__" for part in parts):
                continue
            if folder == "neuromodels" and parts[0] in ("datasets", "fitting", "analysis"):
                continue  # an installed layout inside the folder (never in a checkout)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = frozenset(package_modules())


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _lazy_table_modules(value: ast.expr, package: str) -> list[str]:
    """Module names in a ``_LAZY`` table: dict values and the module argument of ``dict.fromkeys(names, module)``."""
    found = []
    if isinstance(value, ast.Dict):
        for key, item in zip(value.keys, value.values):
            if key is None and isinstance(item, ast.Call) and len(item.args) == 2:  # **dict.fromkeys([...], "m")
                item = item.args[1]
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                name = item.value
                found.append(name if name.startswith("neuromodels") else f"{package}.{name}")
    return found


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``path``, at any depth of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node)
            found.append((source, node.lineno))
            # `from neuromodels import fitting` imports the subpackage
            found += [
                (f"{source}.{alias.name}", node.lineno) for alias in node.names if f"{source}.{alias.name}" in MODULES
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            package = module if is_package else module.rpartition(".")[0]
            found += [(name, node.lineno) for name in _lazy_table_modules(node.value, package)]
    return found


def violations() -> dict[tuple[str, str], str]:
    """``(importer, imported) -> "file:line"`` for every import against the direction."""
    bad = {}
    for module, path in package_modules().items():
        own = RANKS[importer_layer(module)]
        for imported, line in imports_of(module, path):
            layer = layer_of(imported)
            if layer is not None and RANKS[layer] > own:
                bad.setdefault((module, imported), f"{path.relative_to(REPO)}:{line}")
    return bad


def test_the_walker_sees_every_kind_of_import(tmp_path):
    source = (
        "import numpy\n"
        "from neuromodels.fitting import fit\n"
        "from . import sibling\n"
        "from neuromodels import analysis\n"
        "from ..analysis.predictivity import predictivity\n"
        "def f():\n"
        "    import neuromodels.commands.fit\n"
        "    importlib.import_module('neuromodels.analysis.scale')\n"
        "_LAZY = {'a': 'neuromodels.retina', **dict.fromkeys(['b'], 'loop')}\n"
    )
    path = tmp_path / "example.py"
    path.write_text(source)
    found = {name for name, _ in imports_of("neuromodels.fitting.example", path)}
    assert found == {
        "numpy",
        "neuromodels.fitting",
        "neuromodels",
        "neuromodels.analysis",
        "neuromodels.analysis.predictivity",
        "neuromodels.commands.fit",
        "neuromodels.analysis.scale",
        "neuromodels.retina",
        "neuromodels.fitting.loop",
    }
    assert [
        layer_of(name)
        for name in (
            "neuromodels.errors",
            "neuromodels.errors.ConfigError",
            "neuromodels.convrnn.model",
            "neuromodels.cli",
            "neuromodels.commands.fit",
            "neuromodels.datasets._io",
            "neuromodels",
            "torch",
        )
    ] == ["base", "base", "models", "commands", "commands", "datasets", "base", None]
    assert importer_layer("neuromodels") == "models"


def test_the_walker_finds_the_package():
    modules = package_modules()
    for name in (
        "neuromodels.cli",
        "neuromodels.errors",
        "neuromodels.datasets",
        "neuromodels.fitting.loop",
        "neuromodels.analysis.theory",
        "neuromodels.commands.fit",
        "neuromodels.convrnn.model",
    ):
        assert name in modules, name
    assert all(layer_of(name) is not None for name in modules)


def test_every_base_module_exists():
    modules = package_modules()
    assert BASE <= set(modules), sorted(BASE - set(modules))


def test_imports_follow_the_dependency_direction():
    bad = violations()
    unexpected = sorted(set(bad) - KNOWN_VIOLATIONS)
    assert not unexpected, "imports against datasets <- models <- fitting <- analysis <- commands:\n" + "\n".join(
        f"  {bad[pair]}: {pair[0]} ({importer_layer(pair[0])}) imports {pair[1]} ({layer_of(pair[1])})"
        for pair in unexpected
    )


def test_known_violations_are_still_there():
    """A known violation that was fixed must leave the list (so that it cannot come back unnoticed)."""
    gone = sorted(KNOWN_VIOLATIONS - set(violations()))
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {gone}"
