"""L-BFGS on already trained models (the reproduction's ``lbfgs_table``) and the masking diagnostic's naming of
dead (flat-logit) regions (issue 15): tiny models whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from neuromodels.analysis.robustness import masking_diagnostics
from neuromodels.analysis.robustness.reproduce import interpolation_bound, lbfgs_table, residue_analysis
from neuromodels.classifiers import ScaledLogits


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    layer = nn.Linear(weight.shape[1], weight.shape[0]).to(weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer.eval()


def test_lbfgs_table_gives_the_closed_form_distances_of_a_linear_classifier_in_both_dtypes():
    generator = torch.Generator().manual_seed(5)
    d = 20
    weight = torch.randn(2, d, generator=generator)
    model = _linear(weight, torch.zeros(2))
    x = 0.5 + 0.05 * torch.randn(7, d, generator=generator)  # far from the box walls
    y = model(x).argmax(1).detach()
    y[0] = 1 - y[0]  # misclassified: left out of the table
    table = lbfgs_table({"linear": model}, x, y, search_steps=12, progress=False)
    w = (weight[1] - weight[0]).double()
    closed_form = ((x[1:].double() @ w).abs() / w.norm()).numpy()  # distance to the hyperplane
    assert set(table["linear"]) == {"float32", "float64"}
    for row in table["linear"].values():
        assert row["n"] == 6
        assert row["success_rate"] == 1.0
        found = torch.tensor(row["l2"], dtype=torch.float64).numpy()
        assert (found >= closed_form * (1 - 1e-4)).all()
        assert (found <= closed_form * 1.01).all()
        assert abs(row["median_l2"] - float(np.median(closed_form))) <= 0.01 * row["median_l2"] + 1e-12


def _dead_region_model() -> nn.Module:
    """Two inputs in [0, 1]; one ReLU unit ``h = relu(0.6 - x_1)``; logits ``(1 + 5 h, 0)``: class 0
    everywhere, and for ``x_1 >= 0.6`` the unit is off and the logits are constant (a dead region)."""
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-1.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([0.6]))
        model[2].weight.copy_(torch.tensor([[5.0], [0.0]]))
        model[2].bias.copy_(torch.tensor([1.0, 0.0]))
    return model.eval()


def test_masking_diagnostic_names_a_dead_region_where_pgd_stalls():
    model = _dead_region_model()
    x = torch.stack([torch.linspace(0.05, 0.4, 8), torch.full((8,), 0.5)], 1)  # unit on: gradients are not zero
    y = torch.zeros(8, dtype=torch.long)
    for loss in ("ce", "margin"):
        report = masking_diagnostics(model, x, y, loss=loss, steps=10)
        assert report.checks["gradients"]["zero_gradient_fraction"] == 0  # nothing wrong at the clean inputs
        assert report.checks["unbounded_pgd_accuracy"] == 1.0  # but PGD walks into x_1 >= 0.6 and stops
        assert report.checks["unbounded_pgd_flat_logits_fraction"] == 1.0
        assert report.gradient_masking_suspected is True
        assert any("logits are flat" in reason for reason in report.reasons)


def test_a_saturated_softmax_is_not_named_a_dead_region():
    # a linear classifier with logits x 1e4: float32 cross-entropy gradients underflow, yet its logits move
    generator = torch.Generator().manual_seed(1)
    model = ScaledLogits(_linear(torch.randn(3, 10, generator=generator), torch.zeros(3)), 1e4).eval()
    x = torch.rand(40, 10, generator=generator)
    y = model(x).argmax(1).detach()
    report = masking_diagnostics(model, x, y, loss="ce", steps=10)
    assert report.checks["unbounded_pgd_accuracy"] > 0.5
    assert report.checks["unbounded_pgd_flat_logits_fraction"] == 0.0
    assert not any("logits are flat" in reason for reason in report.reasons)


def _two_region_model() -> nn.Module:
    """Two inputs in [0, 1]; ReLU units ``h_1 = relu(0.6 - x_1)`` and ``h_2 = relu(x_2 - 0.7)``; logits
    ``(1 + 5 h_1, 20 h_2)``. Where both units are off (``x_1 >= 0.6``, ``x_2 <= 0.7``) the logits are the constant
    ``(1, 0)``: a dead region that predicts class 0."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-1.0, 0.0], [0.0, 1.0]]))
        model[0].bias.copy_(torch.tensor([0.6, -0.7]))
        model[2].weight.copy_(torch.tensor([[5.0, 0.0], [0.0, 20.0]]))
        model[2].bias.copy_(torch.tensor([1.0, 0.0]))
    return model.eval()


def test_interpolation_bound_is_the_first_grid_point_that_changes_the_class():
    model = _two_region_model()
    x, partner = torch.tensor([[0.2, 0.2]]), torch.tensor([[0.8, 0.9]])
    # along x + t (p - x) the class turns 1 where 20 (0.2 + 0.7 t - 0.7) > 1, t > 11/14 = 0.786: grid point 0.8
    linf, l2 = interpolation_bound(model, x, torch.tensor([0]), partner, torch.tensor([1]), grid=50)
    assert linf[0] == pytest.approx(0.8 * 0.7, rel=1e-6)
    assert l2[0] == pytest.approx(0.8 * math.sqrt(0.6**2 + 0.7**2), rel=1e-6)
    # no partner of another class: no bound
    linf, l2 = interpolation_bound(model, x, torch.tensor([0]), partner, torch.tensor([0]))
    assert math.isinf(linf[0]) and math.isinf(l2[0])


def test_residue_analysis_finds_the_dead_region_that_unbounded_pgd_stalls_in():
    model = _two_region_model()
    class0 = torch.stack([torch.linspace(0.05, 0.4, 4), torch.full((4,), 0.2)], 1)  # h_1 on: gradients live
    class1 = torch.stack([torch.full((4,), 0.8), torch.linspace(0.8, 0.95, 4)], 1)  # h_2 on
    x = torch.cat([class0, class1])
    y = torch.tensor([0] * 4 + [1] * 4)
    out = residue_analysis(model, x, y, n_random=4000, samples=5)
    # PGD pushes x_1 up (class 0) or x_2 down (class 1) into the dead region: class 0 stays, class 1 is broken
    assert out["n_correct"] == 8 and out["n_residue"] == 4
    assert out["residue_labels"] == [4]
    assert out["residue_end_predictions"] == [4]
    for group in ("residue", "others"):
        assert out[group]["pgd_end_flat_logits_fraction"] == 1.0
        assert out[group]["pgd_end"]["layer_all_saturated_fraction"] == {"1": 1.0}
        assert out[group]["clean"]["layer_all_saturated_fraction"] == {"1": 0.0}
        assert out[group]["clean"]["saturated_fraction"] == {"1": 0.5}  # one of the two units on
    # the logits move at the clean class-0 inputs (h_1 is on): this is not a flat neighbourhood
    assert out["residue"]["random_sign_perturbations"]["0.01"]["zero_change_fraction"] == 0.0
    # the dead region is x_1 >= 0.6 and x_2 <= 0.7: 0.4 x 0.7 = 28% of the box
    assert out["random_images"]["layer_all_saturated_fraction"]["1"] == pytest.approx(0.28, abs=0.03)
    # the residue is not robust: lines towards class-1 inputs change its class within the box
    assert all(v < 1 for v in out["residue"]["interpolation_linf"])
