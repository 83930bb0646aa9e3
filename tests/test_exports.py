"""The public names of each package resolve lazily, to the object defined in their module."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["neuromodels", "neuromodels.datasets", "neuromodels.fitting", "neuromodels.analysis"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018 - the attribute access is what raises


def test_lazy_names_are_the_defining_objects():
    import neuromodels
    from neuromodels import analysis, fitting
    from neuromodels.analysis.predictivity import predictivity
    from neuromodels.fitting.loop import fit
    from neuromodels.retina import RetinaCNN

    assert fitting.fit is fit
    assert analysis.predictivity is predictivity
    assert neuromodels.RetinaCNN is RetinaCNN


def test_importing_the_packages_does_not_import_torch():
    code = (
        "import sys, neuromodels, neuromodels.datasets, neuromodels.fitting, neuromodels.analysis; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_name_shared_with_its_module_stays_the_function():
    code = (
        "import sys, importlib; importlib.import_module('neuromodels.analysis.predictivity'); "
        "import neuromodels.analysis as a; "
        "print(a.predictivity is sys.modules['neuromodels.analysis.predictivity'].predictivity)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
