"""Sphinx configuration of the neuromodels documentation site (`make docs` -> build/docs/html).

Sphinx, as the field's libraries use it (Brian2, neo, snnTorch and Brain-Score publish Sphinx sites): the guides
are the Markdown files of docs/ (read by myst-parser), the landing page is the README, the API reference comes
from the docstrings (autodoc; napoleon reads the numpy-style sections), and docs/_ext/neuromodels_docs.py writes
the API pages from each package's ``__all__`` and the examples gallery from examples/*.py at every build.
The theme is alabaster, the one Sphinx ships: nothing else to install or keep in step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import neuromodels

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "neuromodels"
author = "The neuromodels developers"
copyright = "the neuromodels developers, BSD-3-Clause"
version = release = neuromodels.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "neuromodels_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "**/.*"]
# Every reference must resolve: a stale API name or a broken link between pages fails the -W build.
nitpicky = True

# Markdown guides: $...$ maths, ::: fences, headings as link targets (#section links between guides).
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
# Defaults by their repr. preserve_defaults (defaults as written) parses each function's source again and failed
# here with "pop from empty list" on two functions whose files were being edited during the build (not
# reproduced on the same signatures in isolation).
autodoc_preserve_defaults = False
autodoc_inherit_docstrings = False  # else undocumented overrides (forward) show torch's docstrings
napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "alabaster"
html_title = f"neuromodels {release}"
html_theme_options = {
    "description": "Models of neural systems, the data to fit them to, and the tools to score them.",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "250px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False
