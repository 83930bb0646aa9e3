"""One classification accuracy and one parameter count, reachable from every place that exports them."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def _identity_classifier(dtype: torch.dtype) -> nn.Module:
    model = nn.Linear(2, 2).to(dtype)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    return model


# arg-max of x is the predicted class: [0, 1, 0, 1, 1] against labels [0, 1, 1, 1, 0] -> 3 of 5 right
X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [1.0, 2.0]])
Y = torch.tensor([0, 1, 1, 1, 0])


@pytest.mark.parametrize("batch_size", [1, 2, 512])
def test_accuracy_counts_arg_max_hits_over_batches(batch_size):
    from neuromodels.fitting.classification import accuracy

    model = _identity_classifier(torch.float32).train()
    assert accuracy(model, (X, Y), batch_size=batch_size) == 3 / 5
    assert model.training  # mode restored
    dataset = list(zip(X, Y, strict=True))  # map-style (image, label) items
    assert accuracy(model, dataset, batch_size=batch_size) == 3 / 5


def test_accuracy_casts_float_inputs_to_the_model_dtype():
    from neuromodels.fitting.classification import accuracy

    model = _identity_classifier(torch.float64)
    assert accuracy(model, (X.float(), Y)) == 3 / 5  # float32 inputs, float64 model
    assert all(p.requires_grad for p in model.parameters())


def test_the_one_accuracy_is_exported_everywhere():
    from neuromodels import fitting
    from neuromodels.analysis import robustness
    from neuromodels.analysis.robustness import evaluate
    from neuromodels.fitting import classification

    assert robustness.accuracy is evaluate.accuracy is fitting.accuracy is classification.accuracy
    assert fitting.train_classifier is classification.train_classifier
    assert fitting.image_task is classification.image_task


def test_count_parameters_is_one_function_counting_shared_tensors_once():
    from neuromodels import convrnn, retina
    from neuromodels._parameters import count_parameters

    assert convrnn.count_parameters is retina.count_parameters is count_parameters
    shared = nn.Linear(3, 4)  # 12 + 4 elements
    frozen = nn.Linear(4, 2)  # 8 + 2 elements
    frozen.requires_grad_(False)
    model = nn.Sequential(shared, nn.ReLU(), shared, frozen)  # the same module twice
    assert count_parameters(model) == 16
    assert count_parameters(model, trainable_only=False) == 26
