"""neuromodels: models of neural systems, the data to fit them to, and the tools to score them.

Subpackages: :mod:`neuromodels.datasets` (files -> validated xarray), :mod:`neuromodels.fitting`
(training), :mod:`neuromodels.analysis` (predictivity, noise ceilings, theory of deep networks).
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# In a source checkout the subpackages live beside this folder (datasets/, fitting/, analysis/) and are
# installed as neuromodels.<name> through setuptools' package-dir. When Python imports this folder
# directly (pytest or `python -m` from the repository root, without an editable install), extend the
# package path so that neuromodels.datasets still resolves to ../datasets.
_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "datasets")) and _os.path.isfile(
    _os.path.join(_root, "datasets", "__init__.py")
):
    __path__.append(_root)  # type: ignore[name-defined]

from neuromodels._lazy import lazy_attributes as _lazy_attributes  # noqa: E402
from neuromodels.errors import ConfigError, DataFormatError, NeuromodelsError  # noqa: E402

# Models, by name -> defining module; imported on first access so that `import neuromodels` stays light.
_LAZY = {
    **dict.fromkeys(["RetinaCNN", "LNModel", "GLM"], "neuromodels.retina"),
    **dict.fromkeys(["ConvRNN", "LayerSpec"], "neuromodels.convrnn"),
    **dict.fromkeys(["SpikingNetwork", "simulate"], "neuromodels.spiking"),
    "TransitionOperator": "neuromodels.walkback",
    # report folders (checked before work, written atomically, never touching your files): the examples use them
    **dict.fromkeys(["check_out_folder", "write_report"], "neuromodels._outputs"),
}

__all__ = ["__version__", "NeuromodelsError", "DataFormatError", "ConfigError", *_LAZY]

__getattr__, __dir__ = _lazy_attributes(__name__, _LAZY)
