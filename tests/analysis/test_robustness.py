"""Attacks, the gradient-masking diagnostic and the analyses of saturating networks (issue 15)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from neuromodels.analysis.robustness import (
    bim,
    fgsm,
    lbfgs,
    least_likely,
    linear_margin_scaling,
    masking_diagnostics,
    pgd,
    robustness_curve,
    sensitivity_spectrum,
    spsa,
    weight_kurtosis,
)
from neuromodels.classifiers import ScaledLogits
from neuromodels.errors import ConfigError, DataFormatError


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits in [0, 1] as ``(n, 1, 8, 8)`` tensors: 1,200 to train, 200 to attack."""
    from neuromodels.datasets.images import load_digits

    images = load_digits()
    x = torch.from_numpy(images.values).float()[:, None]
    y = torch.from_numpy(images["label"].values).long()
    return x[:1200], y[:1200], x[1200:1400], y[1200:1400]


@pytest.fixture(scope="module")
def trained_mlp(digits):
    """A small ReLU MLP trained through fitting.fit on the digits (about 95% test accuracy)."""
    from neuromodels.fitting import fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    x, y, _, _ = digits
    fit(
        model,
        (x, y),
        loss=lambda out, target: nn.functional.cross_entropy(out, target),
        epochs=30,
        batch_size=64,
        lr=3e-3,
        patience=None,
        progress=False,
        seed=0,
    )
    return model.eval()


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    layer = nn.Linear(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return nn.Sequential(nn.Flatten(), layer)


# ------------------------------------------------------------------------------------------- peer equality
def _transcribed_peer(model, x, y, eps, alpha, steps, single_step=False):
    """The update rules of torchattacks 3.5.1 FGSM / BIM / PGD(random_start=False), transcribed: mean
    cross-entropy, a sign step, then ``delta = clamp(adv - x, -eps, eps)``, ``adv = clamp(x + delta, 0, 1)``."""
    adv = x.clone()
    for _ in range(1 if single_step else steps):
        adv.requires_grad_(True)
        cost = nn.functional.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(cost, adv)
        adv = adv.detach() + (eps if single_step else alpha) * grad.sign()
        delta = torch.clamp(adv - x, -eps, eps)
        adv = torch.clamp(x + delta, 0, 1).detach()
    return adv


def test_fgsm_bim_pgd_match_the_transcribed_torchattacks_rules(trained_mlp, digits):
    _, _, x, y = digits
    assert (fgsm(trained_mlp, x, y, 0.1) - _transcribed_peer(trained_mlp, x, y, 0.1, 0, 1, True)).abs().max() <= 1e-6
    expected = _transcribed_peer(trained_mlp, x, y, 0.1, 0.01, 10)
    assert (bim(trained_mlp, x, y, 0.1, steps=10, alpha=0.01) - expected).abs().max() <= 1e-6
    ours = pgd(trained_mlp, x, y, 0.1, steps=10, alpha=0.01, random_start=False)
    assert (ours - expected).abs().max() <= 1e-6
    assert (ours - x).abs().max() > 0.09  # the attack moved


def test_fgsm_bim_pgd_equal_torchattacks(trained_mlp, digits):
    torchattacks = pytest.importorskip(
        "torchattacks", reason="torchattacks (peer) not installed: see docs/robustness.md"
    )
    _, _, x, y = digits
    pairs = [
        (fgsm(trained_mlp, x, y, 0.1), torchattacks.FGSM(trained_mlp, eps=0.1)(x, y)),
        (
            bim(trained_mlp, x, y, 0.1, steps=10, alpha=0.01),
            torchattacks.BIM(trained_mlp, eps=0.1, alpha=0.01, steps=10)(x, y),
        ),
        (
            pgd(trained_mlp, x, y, 0.1, steps=10, alpha=0.01, random_start=False),
            torchattacks.PGD(trained_mlp, eps=0.1, alpha=0.01, steps=10, random_start=False)(x, y),
        ),
    ]
    for ours, theirs in pairs:
        assert (ours - theirs).abs().max() <= 1e-6


# --------------------------------------------------------------------------------------------------- L-BFGS
def test_lbfgs_finds_the_closed_form_minimal_perturbation_of_a_linear_classifier():
    generator = torch.Generator().manual_seed(3)
    d = 20
    weight = torch.randn(2, d, generator=generator, dtype=torch.float64)
    bias = torch.zeros(2, dtype=torch.float64)
    model = _linear(weight, bias)
    x = 0.5 + 0.05 * torch.randn(6, d, generator=generator, dtype=torch.float64)  # far from the box walls
    y = model(x).argmax(1).detach()
    adversarial, success = lbfgs(model, x, y, search_steps=12)
    w = weight[1] - weight[0]
    closed_form = (x @ w).abs() / w.norm()  # distance to the hyperplane (w1 - w0) . x = 0
    found = (adversarial - x).norm(dim=1)
    assert success.all()
    assert torch.all(model(adversarial).argmax(1) != y)
    assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
    assert torch.all(found >= closed_form * (1 - 1e-9))
    assert torch.all(found <= closed_form * 1.01)


# ------------------------------------------------------------------------------------------ budget and box
@pytest.mark.parametrize("dtype", [None, torch.float64])
def test_every_attack_respects_its_budget_and_the_box_exactly(trained_mlp, digits, dtype):
    _, _, x, y = digits
    x, y = x[:40], y[:40]
    for eps in (0.07, 0.1, 0.3):
        runs = {
            "fgsm": fgsm(trained_mlp, x, y, eps, dtype=dtype),
            "bim": bim(trained_mlp, x, y, eps, steps=5, dtype=dtype),
            "pgd": pgd(trained_mlp, x, y, eps, steps=5, dtype=dtype, loss="margin"),
            "ll": least_likely(trained_mlp, x, y, eps, steps=5, dtype=dtype),
            "spsa": spsa(trained_mlp, x, y, eps, steps=3, samples=8, dtype=dtype),
        }
        for name, adversarial in runs.items():
            assert adversarial.dtype == x.dtype, name
            delta = adversarial.double() - x.double()
            assert float(delta.abs().max()) <= eps, name
            assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1, name
        l2 = pgd(trained_mlp, x, y, eps * 10, norm="l2", steps=5, dtype=dtype)
        assert float((l2.double() - x.double()).flatten(1).norm(dim=1).max()) <= eps * 10
        assert float(l2.min()) >= 0 and float(l2.max()) <= 1


def test_attacks_and_curves_are_deterministic_with_a_seed(trained_mlp, digits):
    _, _, x, y = digits
    x, y = x[:50], y[:50]
    assert torch.equal(pgd(trained_mlp, x, y, 0.1, seed=4), pgd(trained_mlp, x, y, 0.1, seed=4))
    assert not torch.equal(pgd(trained_mlp, x, y, 0.1, seed=4), pgd(trained_mlp, x, y, 0.1, seed=5))
    assert torch.equal(
        spsa(trained_mlp, x, y, 0.1, steps=3, samples=8, seed=1),
        spsa(trained_mlp, x, y, 0.1, steps=3, samples=8, seed=1),
    )
    runs = [
        robustness_curve(
            trained_mlp,
            x,
            y,
            ["fgsm", "pgd", "spsa"],
            [0.05, 0.2],
            steps=5,
            spsa_steps=3,
            spsa_samples=8,
            seed=2,
            progress=False,
        )
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].accuracy.values, runs[1].accuracy.values)
    assert runs[0].clean_accuracy == runs[1].clean_accuracy


def test_robustness_curve_falls_with_eps_and_iterative_beats_single_step(trained_mlp, digits):
    _, _, x, y = digits
    curve = robustness_curve(trained_mlp, x, y, ["fgsm", "bim", "pgd"], [0.0, 0.05, 0.1, 0.3], steps=10, progress=False)
    table = curve.accuracy
    assert curve.clean_accuracy > 0.9
    assert np.allclose(table.sel(eps=0.0).values, curve.clean_accuracy)
    assert np.all(np.diff(table.values, axis=1) <= 1e-12)
    assert float(table.sel(attack="pgd", eps=0.3)) < 0.05
    assert np.all(table.sel(attack="bim").values <= table.sel(attack="fgsm").values + 1e-12)


# ---------------------------------------------------------------------------------------- masking diagnostic
def test_masking_diagnostic_passes_an_ordinary_model(trained_mlp, digits):
    _, _, x, y = digits
    curve = robustness_curve(
        trained_mlp,
        x,
        y,
        ["fgsm", "bim", "pgd", "spsa"],
        [0.05, 0.1, 0.3],
        steps=10,
        spsa_steps=10,
        spsa_samples=32,
        progress=False,
    )
    report = masking_diagnostics(trained_mlp, x, y, curve)
    assert report.gradient_masking_suspected is False, report.reasons
    assert report.checks["unbounded_pgd_accuracy"] <= 0.05
    assert report.checks["gradients"]["zero_gradient_fraction"] == 0


def test_masking_diagnostic_flags_a_hard_softmax_and_margin_loss_sees_through_it(trained_mlp, digits):
    _, _, x, y = digits
    masked = ScaledLogits(trained_mlp, 1e4).eval()  # same predictions; float32 softmax saturates exactly
    curve = robustness_curve(
        masked,
        x,
        y,
        ["fgsm", "bim", "pgd", "spsa"],
        [0.05, 0.1, 0.3],
        steps=10,
        spsa_steps=10,
        spsa_samples=32,
        progress=False,
    )
    report = masking_diagnostics(masked, x, y, curve)
    assert report.gradient_masking_suspected is True
    assert report.checks["unbounded_pgd_accuracy"] > 0.5
    assert report.checks["gradients"]["zero_gradient_fraction"] > 0.5
    assert any("unbounded" in reason for reason in report.reasons)
    # Brendel & Bethge's remedy: the logit margin has no softmax to saturate
    assert masking_diagnostics(masked, x, y, loss="margin").gradient_masking_suspected is False
    assert (
        float(robustness_curve(masked, x, y, ["pgd"], [0.3], loss="margin", steps=10, progress=False).accuracy.max())
        < 0.05
    )


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(trained_mlp, digits):
    _, _, x, y = digits
    x, y = x[:5], y[:5]
    with pytest.raises(DataFormatError, match="inputs.*box"):
        fgsm(trained_mlp, x + 1.5, y, 0.1)
    nan = x.clone()
    nan[0, 0, 0, 0] = math.nan
    with pytest.raises(DataFormatError, match="inputs.*NaN"):
        pgd(trained_mlp, nan, y, 0.1)
    with pytest.raises(ConfigError, match="eps must be >= 0"):
        bim(trained_mlp, x, y, -0.1)
    with pytest.raises(ConfigError, match="not a classifier"):
        fgsm(nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)), x, y, 0.1)
    with pytest.raises(ConfigError, match="unknown attack"):
        robustness_curve(trained_mlp, x, y, ["fgsm", "deepfool"], [0.1])
    with pytest.raises(DataFormatError, match="labels"):
        fgsm(trained_mlp, x, y[:3], 0.1)


# ------------------------------------------------------------------------------------------------- analyses
def test_linear_margin_scaling_closed_forms():
    generator = np.random.default_rng(0)
    d = 100
    x = generator.uniform(0, 1, (200, d))
    dense = generator.standard_normal((2, d))
    sparse = np.zeros((2, d))
    sparse[0, 3], sparse[1, 7] = 1.0, -1.0
    for weight in (dense, sparse):
        bias = -(x @ weight.T).mean(0)
        y = (x @ weight.T + bias).argmax(1)
        result = linear_margin_scaling(weight, bias, x, y)
        # two classes: one pair, so L-inf distance * ||w||_1/||w||_2 is the L2 distance
        assert np.allclose(result["linf_distance"] * result["norm_ratio"], result["l2_distance"], rtol=1e-12)
        w = weight[0] - weight[1]
        assert np.allclose(result["norm_ratio"], np.abs(w).sum() / np.linalg.norm(w))
        # the closed-form L-inf step flips the class, a slightly smaller one does not
        xi, yi = x[0], int(y[0])
        w_pair, b_pair = weight[yi] - weight[1 - yi], bias[yi] - bias[1 - yi]
        step = result["linf_distance"].values[0] * -np.sign(w_pair)
        assert (xi + step * 1.0001) @ w_pair + b_pair < 0 < (xi + step * 0.9999) @ w_pair + b_pair
    assert linear_margin_scaling(sparse, np.zeros(2), x, (x @ sparse.T).argmax(1)).attrs[
        "median_norm_ratio"
    ] == pytest.approx(math.sqrt(2))


def test_sensitivity_spectrum_of_a_linear_model_is_its_squared_singular_values():
    weight = torch.randn(10, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = _linear(weight, torch.zeros(10, dtype=torch.float64))
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    spectrum = sensitivity_spectrum(model, x)
    assert np.allclose(spectrum.values, torch.linalg.svdvals(weight).numpy() ** 2, rtol=1e-10)


def test_weight_kurtosis_gaussian_and_laplace():
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 200), nn.Linear(200, 1000))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(200, 1000, generator=generator))
        laplace = torch.distributions.Laplace(0.0, 1.0)
        torch.manual_seed(0)
        model[1].weight.copy_(laplace.sample((1000, 200)))
    kurtosis = weight_kurtosis(model)
    assert abs(float(kurtosis.sel(layer="0"))) < 0.05  # Gaussian: 0
    assert float(kurtosis.sel(layer="1")) == pytest.approx(3.0, abs=0.15)  # Laplace: 3


def test_lbfgs_accuracy_counts_inputs_not_broken_within_each_radius():
    from neuromodels.analysis.robustness.reproduce import lbfgs_accuracy

    # 10 images, 8 classified correctly; L-BFGS broke 5 of them at these L2 norms and failed on 3
    row = {"n": 8, "l2": [0.4, None, 1.0, 2.5, None, 0.9, None, 5.0]}
    assert lbfgs_accuracy(row, [0.1, 0.4, 1.0, 3.0, 10.0], 10) == [0.8, 0.7, 0.5, 0.4, 0.3]
    with pytest.raises(ConfigError, match="norms"):
        lbfgs_accuracy({"n": 8, "l2": [0.4]}, [1.0], 10)
