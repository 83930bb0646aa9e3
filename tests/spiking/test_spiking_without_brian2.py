"""Brian2 is optional: without it, the parts that need it say how to install it (not a bare ModuleNotFoundError)."""

from __future__ import annotations

import argparse
import sys

import pytest

from neuromodels.commands import spiking as spiking_commands
from neuromodels.errors import ConfigError, NeuromodelsError
from neuromodels.spiking import SpikingNetwork, cross_check, poisson_spikes, to_brian2

INSTALL = r"Brian2 is needed for .*: pip install 'neuromodels\[spiking\]'"


@pytest.fixture
def no_brian2(monkeypatch):
    monkeypatch.setitem(sys.modules, "brian2", None)  # `import brian2` now raises ModuleNotFoundError


def test_cross_check_and_to_brian2_say_how_to_install_brian2(no_brian2):
    net = SpikingNetwork(20, [5], seed=0)
    x = poisson_spikes(20, 10.0, 0.05, 1e-3, seed=0)[0]
    with pytest.raises(ConfigError, match=INSTALL + "$") as caught:
        cross_check(net, x, dt=1e-3)
    assert "cross_check" in str(caught.value)
    with pytest.raises(ConfigError, match=INSTALL):
        to_brian2(net, x, 1e-3)


def test_simulate_backend_brian2_is_a_one_line_error_naming_the_extra(no_brian2, tmp_path):
    parser = argparse.ArgumentParser(prog="neuromodels")
    spiking_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--example", "feedforward", "--backend", "brian2", "--out", str(tmp_path)])
    with pytest.raises(NeuromodelsError, match=INSTALL) as caught:
        args.handler(args)
    assert "--backend brian2" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "simulation.nc").exists()
