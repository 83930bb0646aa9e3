"""The documentation site (`make docs`): the real build passes with warnings as errors and has its pages; the
docs extension (docs/_ext/neuromodels_docs.py) fails on stale names, redirects references to the documented name,
and renders examples as gallery pages without running them.

Sphinx comes with the ``docs`` extra, which `make test` installs: if it is missing, these tests fail, they do not
skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXTENSION_DIR = DOCS / "_ext"


def sphinx_build(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``sphinx-build -W --keep-going -n`` (warnings are errors, every reference must resolve) into ``out``."""
    missing = [name for name in ("sphinx", "myst_parser") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: `make install` installs the docs extra (pip install -e '.[docs]')"
        )
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]
    command += ["-d", str(out / "doctrees"), *extra, str(source), str(out / "html")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_site_builds_without_warnings_and_has_its_pages(tmp_path):
    result = sphinx_build(DOCS, tmp_path)
    assert result.returncode == 0, f"make docs would fail:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    html = tmp_path / "html"
    index = (html / "index.html").read_text(encoding="utf-8")
    assert "A five-minute tour" in index  # the README's tour is the landing page
    for page in ("predictivity", "gallery/index", "api/index"):  # a guide, the gallery, the API reference
        assert f'href="{page}.html"' in index, page
    assert "Neural predictivity and noise ceilings" in (html / "predictivity.html").read_text(encoding="utf-8")
    api = (html / "api" / "neuromodels.analysis.html").read_text(encoding="utf-8")
    assert 'id="neuromodels.analysis.noise_ceiling"' in api  # documented at the path users import it from
    assert 'id="neuromodels.analysis.ceilings.noise_ceiling"' not in api  # and only there
    gallery = (html / "gallery" / "index.html").read_text(encoding="utf-8")
    assert "Examples gallery" in gallery
    for script in sorted((REPO / "examples").glob("[!_]*.py")):
        page = (html / "gallery" / f"{script.stem}.html").read_text(encoding="utf-8")
        assert f'href="{script.stem}.html"' in gallery
        for figure in sorted((DOCS / "figures" / "examples" / script.stem).glob("*.png")):
            assert figure.name in page, f"gallery page of {script.name} misses its stored figure {figure.name}"


def make_project(
    root: Path, page: str, examples: dict[str, str], figures: dict[str, list[str]], readme: str = ""
) -> Path:
    """A small site in ``root/docs`` using the docs extension on ``neuromodels.analysis`` only, with examples and a
    README (included as the landing page, as docs/index.md does)."""
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(EXTENSION_DIR)!r})\n"
        "extensions = ['myst_parser', 'sphinx.ext.autodoc', 'sphinx.ext.napoleon', 'neuromodels_docs']\n"
        "nitpicky = True\n"
        "autodoc_inherit_docstrings = False\n"
        "neuromodels_api_packages = ['neuromodels.analysis']\n"
        f"neuromodels_repository = {str(root)!r}\n",
        encoding="utf-8",
    )
    (docs / "api").mkdir()
    (docs / "api" / "index.md").write_text("# API\n\n```{toctree}\n:glob:\n\nneuromodels*\n```\n", encoding="utf-8")
    (docs / "page.md").write_text(page, encoding="utf-8")
    toctree = "```{toctree}\n\npage\napi/index\ngallery/index\n```\n"
    include = "```{include} ../README.md\n:relative-docs: docs/\n:relative-images:\n```\n"
    (docs / "index.md").write_text(f"{include}\n{toctree}", encoding="utf-8")
    (root / "README.md").write_text(f"# Test site\n\n{readme}", encoding="utf-8")
    (root / "examples").mkdir()
    for name, source in examples.items():
        (root / "examples" / f"{name}.py").write_text(source, encoding="utf-8")
    for name, files in figures.items():
        folder = docs / "figures" / "examples" / name
        folder.mkdir(parents=True)
        for file in files:
            shutil.copy(DOCS / "figures" / "retina_cc_vs_ceiling.png", folder / file)
    return docs


EXAMPLE = '''"""Demo analysis: the title line,
and its second line.

What it shows, in a paragraph with ``code``.

    python examples/demo.py --data DIR

# a line that would be a Markdown heading
"""

raise SystemExit("the documentation build must not run examples")
'''


def test_references_go_to_the_documented_name_and_examples_render_without_running(tmp_path):
    page = (
        "# Page\n\n"
        "By import path {py:func}`neuromodels.analysis.noise_ceiling`, by defining module "
        "{py:func}`neuromodels.analysis.ceilings.noise_ceiling`.\n"
    )
    examples = {"demo": EXAMPLE, "bare": EXAMPLE.replace("Demo analysis", "Bare analysis")}
    readme = "The [demo script](examples/demo.py), [all examples](examples/README.md).\n"
    docs = make_project(tmp_path, page, examples, {"demo": ["b_second.png", "a_first.png"]}, readme)
    result = sphinx_build(docs, tmp_path / "build")
    assert result.returncode == 0, result.stderr[-4000:]
    html = tmp_path / "build" / "html"
    # both references link to the one documented entry
    page_html = (html / "page.html").read_text(encoding="utf-8")
    assert page_html.count('href="api/neuromodels.analysis.html#neuromodels.analysis.noise_ceiling"') == 2

    demo = (html / "gallery" / "demo.html").read_text(encoding="utf-8")
    assert "<h1>Demo analysis: the title line, and its second line" in demo
    assert "What it shows, in a paragraph with" in demo
    assert "python examples/demo.py --data DIR" in demo  # the indented block stays a code block
    assert "# a line that would be a Markdown heading" in demo  # text, not a heading
    assert demo.index("a_first.png") < demo.index("b_second.png")  # stored figures, in name order
    assert "the documentation build must not run examples" in demo  # the source is shown (and was not run)
    bare = (html / "gallery" / "bare.html").read_text(encoding="utf-8")
    assert "No stored figures yet" in bare
    landing = (html / "index.html").read_text(encoding="utf-8")
    assert 'href="gallery/demo.html"' in landing and 'href="gallery/index.html"' in landing  # README links
    index = (html / "gallery" / "index.html").read_text(encoding="utf-8")
    assert 'href="demo.html"' in index and 'href="bare.html"' in index
    assert "What it shows, in a paragraph with" in index  # the summary


def test_stale_names_and_undocumented_examples_fail_the_build(tmp_path):
    stale = "# Page\n\nA renamed function: {py:func}`neuromodels.analysis.noise_ceiling_v0`.\n"
    docs = make_project(tmp_path, stale, {"undocumented": "print('no docstring')\n"}, {})
    result = sphinx_build(docs, tmp_path / "build")
    assert result.returncode != 0
    assert "neuromodels.analysis.noise_ceiling_v0" in result.stderr
    assert "examples/undocumented.py has no module docstring" in result.stderr
