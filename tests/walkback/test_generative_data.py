"""Data for generative models: toy sets, images, user arrays; the conv operator on image shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromodels.datasets.generative import load_points, make_circle, make_mog, make_spiral, split_points
from neuromodels.errors import ConfigError, DataFormatError
from neuromodels.walkback import TransitionOperator


def test_toy_sets_follow_their_constructions():
    spiral = make_spiral(2000, noise=0.0, seed=0)
    radius, angle = np.hypot(*spiral.T), np.arctan2(spiral[:, 0], spiral[:, 1])
    position = (3 * radius - 1) / 2  # radius (2p + 1)/3 at angle 2 pi p
    np.testing.assert_allclose(np.mod(angle - 2 * np.pi * position + np.pi, 2 * np.pi) - np.pi, 0, atol=1e-5)
    np.testing.assert_allclose(np.hypot(*make_circle(500, seed=1).T), 1.0, rtol=1e-6)
    mog = make_mog(8000, components=4, std=0.01, seed=2)
    centres = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])
    nearest = np.linalg.norm(mog[:, None] - centres[None], axis=2).min(1)
    assert nearest.max() < 0.06
    assert make_spiral(10, seed=3).dtype == np.float32 and np.array_equal(
        make_spiral(10, seed=3), make_spiral(10, seed=3)
    )


def test_digits_user_arrays_and_splits(tmp_path):
    digits = load_points("digits")
    assert digits.points.shape == (1797, 64) and digits.image_shape == (1, 8, 8)
    assert digits.points.min() == 0 and digits.points.max() == 1
    np.save(tmp_path / "images.npy", np.zeros((5, 4, 6), dtype=np.uint8))
    images = load_points(tmp_path / "images.npy")
    assert images.points.shape == (5, 24) and images.image_shape == (1, 4, 6)
    train, held = split_points(digits, seed=0)
    assert len(train) + len(held) == 1797 and len(held) == 359
    with pytest.raises(DataFormatError, match="spiral"):
        load_points("nonsense")
    with pytest.raises(DataFormatError, match="no such file"):
        load_points(tmp_path / "missing.npy")


def test_mnist_from_the_shared_folder(shared_data):
    mnist = load_points("mnist", n=50)
    assert mnist.points.shape == (50, 784) and mnist.image_shape == (1, 28, 28)
    assert 0 <= mnist.points.min() and mnist.points.max() <= 1


def test_conv_operator_on_images_and_per_step_norm():
    torch.manual_seed(0)
    op = TransitionOperator(
        64, hidden=(8, 8), architecture="conv", image_shape=(1, 8, 8), per_step_norm=True, n_steps=3
    )
    x = torch.rand(5, 64)
    mean, std = op(x, 2.0, step=1)
    assert mean.shape == std.shape == (5, 64) and (std > 0).all()
    with torch.no_grad():  # a different step uses different normalisation parameters
        op.norms[0].gain[2].mul_(3.0)
    assert torch.equal(op(x, 2.0, step=1)[0], mean)
    assert not torch.allclose(op(x, 2.0, step=2)[0], mean)
    assert len(op.generate(4, extra_steps=2)) == 1 + 3 + 2
    with pytest.raises(ConfigError, match="image_shape"):
        TransitionOperator(64, architecture="conv")
