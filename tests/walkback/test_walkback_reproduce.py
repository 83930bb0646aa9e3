"""Variational Walkback reproductions (``make reproduce``, ``-m slow``): minutes each on one core.

Each calls one function of :mod:`neuromodels.analysis.walkback_reproduce`, writes its JSON and figures to
``$NEUROMODELS_REPORTS`` (default ``reports``) and asserts the claim; measured numbers are in docs/walkback.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _reports() -> Path:
    path = Path(os.environ.get("NEUROMODELS_REPORTS", "reports"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def spiral():
    from neuromodels.analysis.walkback_reproduce import reproduce_spiral

    result = reproduce_spiral(_reports())
    (_reports() / "walkback_spiral.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def test_spiral_bound_rises_and_cooled_samples_stay_on_the_data(spiral):
    bounds = spiral["history"]["valid_bound"]
    assert np.mean(bounds[-3:]) > bounds[0] + 0.3  # the held-out bound rises during training
    ratio = spiral["mmd_ratio"]  # MMD to held-out data / MMD between held-out halves
    # far closer to the data than the Gaussian fitted to it, and a chain 3x longer than training stays there
    assert ratio["walkback"] < ratio["gaussian"] / 4
    assert ratio["walkback_3x"] < 2 * ratio["walkback"]
    assert ratio["walkback_3x"] < ratio["gaussian"] / 4


def test_spiral_long_chains_stay_within_twice_the_held_out_floor(spiral):
    # issue 16: chains 3x longer than training stay within 2x of the held-out floor (mean over ten sampling
    # seeds; measured 0.47 at training seed 0, docs/walkback.md)
    assert spiral["mmd_ratio_seeds"]["walkback_3x_mean"] < 2


def test_spiral_cooled_samples_within_twice_the_held_out_floor(spiral):
    # issue 16: cooled samples within 2x of the held-out floor (mean over ten sampling seeds; measured
    # 0.66 at training seed 0, docs/walkback.md)
    assert spiral["mmd_ratio_seeds"]["walkback_mean"] < 2


def test_spiral_sample_criterion_holds_at_training_seeds_1_and_2():
    # the same criterion at two more training seeds (each draws its own spiral, split, initial weights and
    # noise), sample quality only. Measured (cooled / 3x, mean over ten sampling seeds): 0.81 / 0.89 and
    # 1.82 / 1.62; the previous defaults (15 epochs, no weight average) gave 2.74 / 2.16 and 2.92 / 2.66
    # (docs/walkback.md)
    from neuromodels.analysis.walkback_reproduce import reproduce_spiral_seeds

    result = reproduce_spiral_seeds((1, 2))
    (_reports() / "walkback_spiral_seeds.json").write_text(json.dumps(result, indent=2, default=float))
    for seed, run in result["training_seeds"].items():
        ratios = run["mmd_ratio_seeds"]
        assert ratios["walkback_mean"] < 2, (seed, ratios)
        assert ratios["walkback_3x_mean"] < 2, (seed, ratios)


def test_paper_vs_released_objective():
    from neuromodels.analysis.walkback_reproduce import reproduce_objective_ablation

    result = reproduce_objective_ablation(_reports())
    (_reports() / "walkback_ablation.json").write_text(json.dumps(result, indent=2, default=float))
    rows = result["objectives"]
    # the released term does not train the operator to walk back: its samples stay far from the data (measured
    # MMD ratios 15.6 vs 0.72 cooled, 18.0 vs 0.51 after 3x chains). The held-out bounds (-8.3 vs -7.3 nats) are
    # not compared: with per-step batch normalisation they are dominated by the noise of the batch statistics
    # (docs/walkback.md)
    assert rows["released"]["mmd_ratio"] > 5 * rows["paper"]["mmd_ratio"]
    assert rows["released"]["mmd_ratio_3x"] > 5 * rows["paper"]["mmd_ratio_3x"]


def test_digits_samples_beat_the_gaussian_and_are_not_copies():
    from neuromodels.analysis.walkback_reproduce import reproduce_digits

    result = reproduce_digits(_reports())
    (_reports() / "walkback_digits.json").write_text(json.dumps(result, indent=2, default=float))
    rows = result["comparison"]
    assert rows["walkback"]["parzen_log_likelihood"] > rows["gaussian"]["parzen_log_likelihood"]
    # samples are farther from their nearest training image than held-out images are: not copies
    assert rows["walkback"]["nn_distance"] > 0.8 * rows["held_out"]["nn_distance"]


def test_mnist_samples_beat_the_gaussian_and_are_not_copies(shared_data):
    from neuromodels.analysis.walkback_reproduce import reproduce_mnist

    result = reproduce_mnist(_reports())
    (_reports() / "walkback_mnist.json").write_text(json.dumps(result, indent=2, default=float))
    rows = result["comparison"]
    bounds = result["history"]["valid_bound"]
    assert np.mean(bounds[-3:]) > bounds[0] + 100  # nats per image; measured -253 at epoch 1, 546 at the end
    # measured 30.4 vs -45.3 nats per held-out image
    assert rows["walkback"]["parzen_log_likelihood"] > rows["gaussian"]["parzen_log_likelihood"] + 30
    assert rows["walkback_3x"]["parzen_log_likelihood"] > rows["gaussian"]["parzen_log_likelihood"] + 30
    assert rows["walkback"]["nn_distance"] > 0.8 * rows["held_out"]["nn_distance"]  # not copies
    # the diffusion baseline at the same number of updates, its sampler clipping predicted images to [0, 1]:
    # measured -444.6 nats (NN distance 12.1); without the clipping its samples left the pixel range
    assert rows["diffusion"]["clipped_to"] == [0.0, 1.0]
    assert rows["walkback"]["parzen_log_likelihood"] > rows["diffusion"]["parzen_log_likelihood"] + 100
