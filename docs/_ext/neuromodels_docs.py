"""Sphinx extension for the neuromodels site: API pages from ``__all__``, an examples gallery, and cross-references.

At ``builder-inited`` (before Sphinx looks for source files) it writes two sets of generated pages into the
source folder, both ignored by git and rewritten on every build (a file is replaced only when its text changes,
atomically, so two builds at once do not corrupt each other):

* ``api/<package>.rst``: one page per installed package (the ``[tool.setuptools] packages`` list of
  pyproject.toml, less the command-line handlers), documenting the package's ``__all__`` and then each public
  module of the package with the names of its ``__all__`` that the package does not re-export. Nothing names
  a module by hand, so a module moved or renamed needs only a rebuild; a name in ``__all__`` that does not
  exist fails the build.
* ``gallery/<example>.md`` and ``gallery/index.md``: one page per ``examples/*.py`` with its module docstring
  (read with :mod:`ast`; the scripts are never run, since they need data the build may not have), the figures
  stored under ``docs/figures/examples/<example>/``, a link to ``docs/examples/<example>.md`` where that write-up
  exists, and the source.

Each object is documented once, at its canonical public name: the package that exports it (the deepest one
on the path of its defining module), else the module that defines it. A cross-reference to any other path of
the same object (the defining module ``neuromodels.analysis.ceilings.noise_ceiling``, a short name inside a
docstring, a type annotation) is redirected there by the ``missing-reference`` handler. References to other
projects' names (numpy, xarray, torch, ...) stay plain text (there is no network at build time for intersphinx);
an explicit role (``:func:`name```) that resolves to nothing stays a warning, so a stale API name fails the
``-W`` build.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import tomllib
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docstrings import prepare_docstring

logger = logging.getLogger(__name__)

# Packages and modules that are not part of the library's API: the argparse layer and its handlers.
EXCLUDED = {"neuromodels.commands", "neuromodels.cli", "neuromodels.__main__"}
FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")
# Other projects whose names appear in annotations and docstrings; without intersphinx they render as text.
THIRD_PARTY = frozenset(
    "numpy np xarray xr torch nn pandas pd scipy sklearn brian2 optuna dask matplotlib plt mpl neo pynwb h5py typing "
    "collections pathlib os numbers datetime dataclasses enum abc io tqdm PIL".split()
)
# Defining path or exported path -> canonical documented name, and every documented package and module, filled
# at builder-inited (one build per process).
CANONICAL: dict[str, str] = {}
MODULES: list[str] = []


# --------------------------------------------------------------------------------------------------------------
# writing generated files


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, and only when it differs (Sphinx rereads changed files only)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def remove_stale(folder: Path, pattern: str, keep: set[Path]) -> None:
    """Remove generated files matching ``pattern`` in ``folder`` that this build did not write."""
    for path in folder.glob(pattern):
        if path not in keep:
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------------
# API pages


@dataclass
class Container:
    """A package or module whose ``__all__`` is documented."""

    name: str
    module: ModuleType
    is_package: bool
    exports: list[str] = field(default_factory=list)
    modules: list[Container] = field(default_factory=list)  # for a package: its public plain modules


def installed_packages(repo: Path) -> list[str]:
    """The packages pyproject.toml installs, less the excluded ones, in the file's order."""
    with open(repo / "pyproject.toml", "rb") as f:
        packages = tomllib.load(f)["tool"]["setuptools"]["packages"]
    return [p for p in packages if p not in EXCLUDED]


def public_exports(module: ModuleType, is_package: bool) -> list[str]:
    """The module's ``__all__`` less private names; a package without one (a namespace of modules) exports none."""
    names = getattr(module, "__all__", None)
    if names is None:
        if not is_package:
            logger.warning(f"{module.__name__} has no __all__: the API pages list a module's public names from it")
        return []
    return [n for n in names if not n.startswith("_")]


def collect_containers(repo: Path, packages: list[str] | None = None) -> list[Container]:
    """Every documented package with its public plain modules, imported (a failing import fails the build)."""
    containers = []
    for package_name in installed_packages(repo) if packages is None else packages:
        package = importlib.import_module(package_name)
        container = Container(package_name, package, True, public_exports(package, True))
        # Only the package's own folder: neuromodels' __path__ may also hold the repository root in a checkout.
        for info in sorted(pkgutil.iter_modules(package.__path__[:1]), key=lambda i: i.name):
            full = f"{package_name}.{info.name}"
            if info.ispkg or info.name.startswith("_") or full in EXCLUDED:
                continue
            module = importlib.import_module(full)
            container.modules.append(Container(full, module, False, public_exports(module, False)))
        for each in (container, *container.modules):
            check_exports(each)
        containers.append(container)
    return containers


def object_key(obj: Any, container: str, name: str) -> tuple:
    """Identity of a documented object across the paths it is exported under."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and (inspect.isclass(obj) or callable(obj)):
        return ("def", module, qualname)
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        return ("id", id(obj))
    return ("name", container, name)


def common_prefix_length(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        n += 1
    return n


def check_exports(container: Container) -> None:
    """Drop (with a warning, which fails the -W build) names of ``__all__`` that the module does not define."""
    missing = [name for name in container.exports if not hasattr(container.module, name)]
    for name in missing:
        logger.warning(f"{container.name}.__all__ lists {name!r}, which the module does not define")
    container.exports = [name for name in container.exports if name not in missing]


def resolve_export(container: Container, name: str) -> Any:
    return getattr(container.module, name)


def canonical_names(containers: list[Container]) -> tuple[dict[tuple, str], dict[str, str]]:
    """``(key -> canonical full name, defining path -> canonical full name)`` of every exported object."""
    occurrences: dict[tuple, list[tuple[Container, str, Any]]] = {}
    for package in containers:
        for container in (package, *package.modules):
            for name in container.exports:
                obj = resolve_export(container, name)
                if inspect.ismodule(obj):
                    continue
                occurrences.setdefault(object_key(obj, container.name, name), []).append((container, name, obj))
    canonical, by_definition = {}, {}
    for key, places in occurrences.items():
        defining = key[1] if key[0] == "def" else ""

        def rank(place: tuple[Container, str, Any], defining: str = defining) -> tuple:
            container = place[0]
            return (not container.is_package, -common_prefix_length(container.name, defining), container.name)

        container, name, obj = min(places, key=rank)
        canonical[key] = f"{container.name}.{name}"
        if key[0] == "def":
            by_definition[f"{key[1]}.{key[2]}"] = canonical[key]
        for other, other_name, _ in places:
            by_definition.setdefault(f"{other.name}.{other_name}", canonical[key])
    return canonical, by_definition


def summary_line(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring, cut only where its inline markup stays balanced.

    (Autosummary would do this, but Sphinx 9.0's autosummary cuts at the first period even inside a literal.)
    """
    doc = inspect.getdoc(obj) if (inspect.isclass(obj) or callable(obj)) else None
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    sentences = paragraph.split(". ")
    for i in range(1, len(sentences) + 1):
        text = ". ".join(sentences[:i])
        if (
            text.count("``") % 2 == 0
            and text.replace("``", "").count("`") % 2 == 0
            and text.count("(") == text.count(")")
        ):
            return text if text.endswith(".") or i == len(sentences) else text + "."
    return paragraph


def autodoc_directive(obj: Any) -> tuple[str, list[str]]:
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return "autoexception", [":show-inheritance:"]
    if inspect.isclass(obj):
        return "autoclass", [":members:"] + [":show-inheritance:"] * (obj.__bases__ != (object,))
    if callable(obj):
        return "autofunction", []
    return "autodata", [":no-value:"]


def container_section(container: Container, canonical: dict[tuple, str], underline: str) -> list[str]:
    """RST for one package or module: its docstring, a summary table, and the objects documented here."""
    lines = [
        container.name,
        underline * len(container.name),
        "",
        f".. automodule:: {container.name}",
        "   :no-members:",
    ]
    # analysis.predictivity is both a module and the function the package exports: the function keeps the name.
    lines += ["   :no-index:"] * (container.name in canonical.values()) + [""]
    here, elsewhere, submodules = [], [], []
    for name in container.exports:
        obj = resolve_export(container, name)
        if inspect.ismodule(obj):
            submodules.append(obj.__name__)
            continue
        full = canonical[object_key(obj, container.name, name)]
        (here if full == f"{container.name}.{name}" else elsewhere).append((name, full, obj))
    if here:
        lines += [".. list-table::", "   :class: api-summary", "   :widths: 30 70", ""]
        for name, _, obj in here:
            lines += [f"   * - :py:obj:`{name}`", f"     - {summary_line(obj)}"]
        lines += [""]
    if elsewhere:
        links = ", ".join(f":py:obj:`~{full}`" for _, full, _ in elsewhere)
        lines += [f"Documented at their canonical path: {links}.", ""]
    if submodules:
        lines += ["Submodules: " + ", ".join(f":py:mod:`{m}`" for m in submodules) + ".", ""]
    for name, _, obj in here:
        directive, options = autodoc_directive(obj)
        lines += [f".. {directive}:: {container.name}.{name}", *(f"   {o}" for o in options), ""]
    return lines


def api_page(package: Container, canonical: dict[tuple, str]) -> str:
    lines = [".. This page is generated by docs/_ext/neuromodels_docs.py at every build; edit that file, not this.", ""]
    lines += container_section(package, canonical, "=")
    for module in package.modules:
        lines += container_section(module, canonical, "-")
    return "\n".join(lines).rstrip() + "\n"


def write_api_pages(app: Sphinx, repo: Path) -> None:
    containers = collect_containers(repo, app.config.neuromodels_api_packages)
    canonical, by_definition = canonical_names(containers)
    CANONICAL.clear()
    CANONICAL.update(by_definition)
    MODULES[:] = [c.name for package in containers for c in (package, *package.modules)]
    folder = Path(app.srcdir) / "api"
    written = set()
    for package in containers:
        path = folder / f"{package.name}.rst"
        write_if_changed(path, api_page(package, canonical))
        written.add(path)
    remove_stale(folder, "neuromodels*.rst", written)


# --------------------------------------------------------------------------------------------------------------
# examples gallery


@dataclass
class Example:
    name: str
    title: str
    summary: str
    body: str
    figures: list[str]
    has_writeup: bool


def read_example(path: Path, srcdir: Path) -> Example:
    """The example's docstring split into title / summary / body, its stored figures and write-up (no import)."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))) or ""
    if not docstring.strip():
        logger.warning(
            f"examples/{path.name} has no module docstring: the gallery shows it as the page's text", location=str(path)
        )
    first, _, body = docstring.strip().partition("\n\n")  # the first paragraph is the title, however long
    title = " ".join(first.split()).rstrip(".") or path.stem
    body = body.strip("\n")  # indentation kept: an indented block stays a code block
    summary = " ".join(body.strip().split("\n\n")[0].split()) if body.strip() else ""
    figure_dir = srcdir / "figures" / "examples" / path.stem
    figures = (
        sorted(p.name for p in figure_dir.iterdir() if p.suffix.lower() in FIGURE_SUFFIXES)
        if figure_dir.is_dir()
        else []
    )
    writeup = (srcdir / "examples" / f"{path.stem}.md").is_file()
    return Example(path.stem, title, summary, body, figures, writeup)


def markdown_text(text: str) -> str:
    """A docstring as Markdown: headings are demoted to plain paragraphs so they cannot break the page outline."""
    return "\n".join(("\\" + line) if line.startswith("#") else line for line in text.splitlines())


def example_page(example: Example) -> str:
    lines = [
        "<!-- Generated by docs/_ext/neuromodels_docs.py from examples/"
        f"{example.name}.py at every build; edit the example, not this page. -->",
        "",
        f"# {example.title}",
        "",
        f"`examples/{example.name}.py`",
        "",
        markdown_text(example.body),
        "",
    ]
    if example.has_writeup:
        lines += [f"The write-up with the numbers and their discussion: {{doc}}`/examples/{example.name}`.", ""]
    lines += ["## Figures", ""]
    if example.figures:
        lines += ["Stored output of the script (the documentation build does not run it).", ""]
        for figure in example.figures:
            lines += [f"```{{figure}} ../figures/examples/{example.name}/{figure}", f"{figure}", "```", ""]
    else:
        lines += [
            f"No stored figures yet: run `python examples/{example.name}.py` with its data present and "
            f"keep its figures in `docs/figures/examples/{example.name}/`.",
            "",
        ]
    lines += [
        "## Source",
        "",
        f"```{{literalinclude}} ../../examples/{example.name}.py",
        ":language: python",
        "```",
        "",
    ]
    return "\n".join(lines)


def gallery_index(examples: list[Example], writeups: list[str]) -> str:
    lines = [
        "<!-- Generated by docs/_ext/neuromodels_docs.py at every build. -->",
        "",
        "# Examples gallery",
        "",
        "Worked analyses of real recordings, scripts a lab can copy (`examples/*.py`, public API only). Each "
        "page shows the script's description, the figures it made (stored in `docs/figures/examples/`: the "
        "documentation build does not run the scripts, which need `../shared/data`) and its source.",
        "",
    ]
    if not examples:
        lines += ["No examples yet.", ""]
    toctree = [e.name for e in examples] + [f"/examples/{w}" for w in writeups]
    lines += ["```{toctree}", ":hidden:", "", *toctree, "```", ""]
    for example in examples:
        lines += [f"## [{example.title}]({example.name}.md)", ""]
        if example.summary:
            lines += [markdown_text(example.summary), ""]
        if example.figures:
            lines += [
                f"```{{image}} ../figures/examples/{example.name}/{example.figures[0]}",
                ":width: 360px",
                f":alt: {example.title}",
                "```",
                "",
            ]
    return "\n".join(lines)


def write_gallery(app: Sphinx, repo: Path) -> None:
    srcdir = Path(app.srcdir)
    folder = srcdir / "gallery"
    scripts = sorted(p for p in (repo / "examples").glob("*.py") if not p.name.startswith("_"))
    examples = [read_example(p, srcdir) for p in scripts]
    writeups = sorted(p.stem for p in (srcdir / "examples").glob("*.md")) if (srcdir / "examples").is_dir() else []
    written = {folder / "index.md"}
    write_if_changed(folder / "index.md", gallery_index(examples, writeups))
    for example in examples:
        path = folder / f"{example.name}.md"
        write_if_changed(path, example_page(example))
        written.add(path)
    remove_stale(folder, "*.md", written)


# --------------------------------------------------------------------------------------------------------------
# cross-references


def import_object(path: str) -> Any:
    """The object at dotted ``path`` (module prefix imported, the rest by attribute), or None."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def map_prefix(path: str, by_definition: dict[str, str]) -> str | None:
    """``path`` with its longest prefix known to ``by_definition`` replaced by the canonical name."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):  # a class, then its attribute
        prefix = ".".join(parts[:i])
        if prefix in by_definition:
            return ".".join([by_definition[prefix], *parts[i:]])
    return None


def candidate_paths(target: str, node: nodes.Element) -> list[str]:
    """Where ``target`` may live: as written, in the page's module and class, and around the docstring's object.

    Autodoc names the defining path of the object whose docstring holds the reference in the node's source
    (``file:docstring of neuromodels.fitting.estimator.RetinaEstimator``), so a short name in a docstring
    resolves in the module the docstring was written in, even when the object is documented under a package.
    """
    candidates = [target]
    module, cls = node.get("py:module"), node.get("py:class")
    if module:
        candidates += [f"{module}.{cls}.{target}"] * bool(cls) + [f"{module}.{target}"]
    source = node.source or ""
    if "docstring of " in source:
        parts = source.rsplit("docstring of ", 1)[1].split(".")
        candidates += [".".join([*parts[:i], target]) for i in range(len(parts), 1, -1)]
    # last resort: a name defined or imported in any of our modules, private ones included
    loaded = sorted(name for name in sys.modules if name.startswith("neuromodels.") and name not in MODULES)
    candidates += [f"{module}.{target}" for module in [*MODULES, *loaded]]
    return [c for c in candidates if c.startswith("neuromodels.")]


def resolve_missing(app: Sphinx, env: Any, node: nodes.Element, contnode: nodes.Element) -> nodes.Node | None:
    """Redirect references to other paths of a documented object; leave other names that exist as text.

    A name that imports but is not documented (a private helper, a module constant outside ``__all__``) and other
    projects' names render as plain text. A ``neuromodels`` name, or any name in an explicit role, that imports
    from nowhere stays unresolved: Sphinx warns, and the -W build fails on the stale name.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    for candidate in candidate_paths(target, node):
        obj = import_object(candidate)
        if obj is None:
            continue
        module_name, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        documented = None
        if isinstance(module_name, str) and isinstance(qualname, str):
            documented = map_prefix(f"{module_name}.{qualname}", CANONICAL)
        documented = documented or map_prefix(candidate, CANONICAL)
        if documented and documented != target:
            domain = env.get_domain("py")
            found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], documented, node, contnode)
            if found is not None:
                return found
        return contnode
    if node["reftype"] == "attr" and any(
        inspect.isclass(import_object(c.rsplit(".", 1)[0])) for c in candidate_paths(target, node)[:3] if "." in c
    ):
        return contnode  # an instance attribute (set in __init__) of a class that exists
    explicit_role = isinstance(contnode, nodes.literal) and "xref" in contnode.get("classes", [])
    if target.split(".")[0] in THIRD_PARTY or (not explicit_role and not target.startswith("neuromodels")):
        return contnode
    return None


def drop_type_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """A constant without a ``#:`` comment would show its type's docstring (ndarray's, dict's): show none."""
    if what in ("data", "attribute") and type(obj).__doc__:
        if [line.strip() for line in lines if line.strip()] == [
            line.strip() for line in prepare_docstring(type(obj).__doc__) if line.strip()
        ]:
            lines.clear()


FIELD_SECTIONS = {"parameters", "other parameters", "returns", "yields", "raises", "attributes", "keyword arguments"}
# ``name: description`` or ``a, b: description`` (no space before the colon, unlike numpy's ``name : type``)
SHORT_FIELD = re.compile(
    r"^(?P<indent>\s*)(?P<names>[A-Za-z_*][\w*]*(?:, ?[A-Za-z_*][\w*]*)*):(?!:)(?:\s+(?P<text>.*))?$"
)

NUMPY_FIELD = re.compile(r"^\s*[A-Za-z_*][\w*]*(?:, ?[A-Za-z_*][\w*]*)*(?:\s+:.*)?$")


def short_fields_to_numpy(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Rewrite ``name: description`` entries of numpy sections as ``name`` + indented description.

    Many docstrings here list parameters as ``name: text`` under a ``Parameters`` header; napoleon would read
    the text as the parameter's *type*. Runs before napoleon (priority 100).
    """
    section, base = None, ""
    out: list[str] = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if nxt.strip() and set(nxt.strip()) == {"-"} and line.strip():
            section, base = line.strip().lower(), line[: len(line) - len(line.lstrip())]
            out.append(line)
            continue
        match = SHORT_FIELD.match(line)
        at_base = line.strip() and line[: len(line) - len(line.lstrip())] == base
        if section in FIELD_SECTIONS and match and match.group("indent") == base:
            out.append(base + match.group("names"))
            if match.group("text"):
                out.append(base + "    " + match.group("text"))
            continue
        if section in FIELD_SECTIONS and at_base and i and not lines[i - 1].strip() and not NUMPY_FIELD.match(line):
            out += [base + "Notes", base + "-----"]  # prose after the fields: napoleon would read it as a field
            section = "notes"
        out.append(line)
    lines[:] = out


def readme_links_to_gallery(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    """In the README included as the landing page, point links to ``examples/NAME.py`` at the gallery pages.

    The README links the scripts for readers of the repository; the site has no copy of them, but a page each.
    """
    if Path(relative_path).name != "README.md" or Path(relative_path).parent != Path(".."):
        return
    content[0] = re.sub(r"\]\(examples/([A-Za-z0-9_]+)\.py\)", r"](docs/gallery/\1.md)", content[0])
    content[0] = re.sub(r"\]\(examples/(?:README\.md)?\)", "](docs/gallery/index.md)", content[0])


def generate(app: Sphinx) -> None:
    repo = Path(app.config.neuromodels_repository or Path(app.srcdir).resolve().parent)
    write_api_pages(app, repo)
    write_gallery(app, repo)


def setup(app: Sphinx) -> dict[str, Any]:
    # The repository (pyproject.toml, examples/): by default the folder above docs/. The packages to document:
    # by default those pyproject.toml installs (tests document fewer, to build fast).
    app.add_config_value("neuromodels_repository", None, "env")
    app.add_config_value("neuromodels_api_packages", None, "env")
    app.connect("builder-inited", generate)
    app.connect("missing-reference", resolve_missing)
    app.connect("include-read", readme_links_to_gallery)
    app.connect("autodoc-process-docstring", drop_type_docstring, priority=100)  # before napoleon rewrites it
    app.connect("autodoc-process-docstring", short_fields_to_numpy, priority=100)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
