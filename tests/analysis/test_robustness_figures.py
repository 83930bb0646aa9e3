"""The reproduction's figures (issue 15): runs with different nonlinearities write to one folder without
overwriting each other's figures. Tiny settings (a few hundred MNIST images, one epoch): only the file names are
checked here; the numbers are the slow tests' (test_robustness_reproduce.py)."""

from __future__ import annotations

import hashlib

from neuromodels.analysis.robustness.reproduce import reproduce_saturating_networks

TINY = dict(
    kinds=("mlp",),
    strengths=(0.0,),
    n_train=160,
    n_test=40,
    n_attack=8,
    eps=(0.1,),
    epochs=1,
    steps=2,
    n_lbfgs=0,
    progress=False,
)


def _digests(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.glob("*.png"))}


def test_runs_with_different_nonlinearities_share_a_folder_without_overwriting(shared_data, tmp_path):
    reproduce_saturating_networks(tmp_path, **TINY)
    relu = _digests(tmp_path)
    assert set(relu) == {
        "robustness_mlp_lambda0.png",
        "robustness_sensitivity.png",
        "robustness_linear_kurtosis.png",
    }
    reproduce_saturating_networks(tmp_path, nonlinearity="tanh", **TINY)
    both = _digests(tmp_path)
    assert set(both) == set(relu) | {
        "robustness_mlp_lambda0-tanh.png",
        "robustness_sensitivity-tanh.png",
        "robustness_linear_kurtosis-tanh.png",
    }
    # the ReLU run's figures are untouched
    assert {name: both[name] for name in relu} == relu
