"""ConvRNN unrolling: feedforward equivalence, arrival times, feedback delay, gradients through time."""

from __future__ import annotations

import copy

import pytest
import torch

from neuromodels.convrnn import ConvRNN, LayerSpec
from neuromodels.errors import ConfigError

torch.set_num_threads(1)

LAYERS = [LayerSpec(4, 3, 2), LayerSpec(6, 3, 1), LayerSpec(8, 3, 2)]


def _independent_cnn(model: ConvRNN) -> torch.nn.Sequential:
    """A CNN built from torch.nn parts only, with weights copied from ``model`` (not shared)."""
    parts = []
    for spec, layer in zip(model.specs, model.layers):
        conv = torch.nn.Conv2d(layer.in_channels, spec.channels, spec.kernel_size, padding=spec.kernel_size // 2)
        conv.load_state_dict(layer.conv.state_dict())
        parts += [conv, torch.nn.ELU()] + ([torch.nn.MaxPool2d(spec.pool)] if spec.pool > 1 else [])
    return torch.nn.Sequential(*parts)


@pytest.mark.parametrize(
    "cell, recurrence, feedback", [("feedforward", True, []), ("rgc", False, [(2, 0)]), ("lstm", False, [(1, 1)])]
)
def test_recurrence_off_equals_the_feedforward_cnn_exactly(cell, recurrence, feedback):
    torch.manual_seed(0)
    model = ConvRNN(LAYERS, cell=cell, feedback=feedback, steps=5, recurrence=recurrence)
    images = torch.randn(3, 1, 12, 12)
    cnn = _independent_cnn(model)
    run = model.run(images)
    top = cnn(images)
    # exact here: the same torch ops (conv2d, elu, max_pool2d, mean, linear) on equal inputs of equal shapes, one thread
    for t in range(2, 5):  # the top layer (index 2) holds the CNN's output from t = 2 on
        assert torch.equal(run.layers[2][:, t], top)
    assert torch.equal(model(images), model.readout(top.mean(dim=(-2, -1))))
    assert torch.equal(model.feedforward_cnn()(images), model(images))


def test_each_layer_is_zero_before_its_input_arrives():
    torch.manual_seed(1)
    model = ConvRNN(LAYERS, cell="rgc", feedback=[(2, 0), (2, 1)], steps=6)
    out = model.run(torch.randn(2, 1, 12, 12))
    for index, layer in enumerate(out.layers):
        assert torch.count_nonzero(layer[:, :index]) == 0
        assert torch.count_nonzero(layer[:, index]) > 0


def test_a_feedback_edge_acts_exactly_one_step_later():
    torch.manual_seed(2)
    with_feedback = ConvRNN(LAYERS, cell="vanilla", feedback=[(2, 0)], steps=7)
    without = copy.deepcopy(with_feedback)
    with torch.no_grad():
        without.feedback["0"].weight.zero_()
    images = torch.randn(2, 1, 12, 12)
    a, b = with_feedback.run(images).layers, without.run(images).layers
    # the source (layer 2) first fires at t = 2; layer 0 sees it at t = 3, layer 1 at t = 4, layer 2 at t = 5
    for index, first_change in ((0, 3), (1, 4), (2, 5)):  # exact: the same code on the same inputs until then
        assert torch.equal(a[index][:, :first_change], b[index][:, :first_change])
        assert not torch.allclose(a[index][:, first_change], b[index][:, first_change])


def test_image_is_replaced_by_gray_after_image_steps():
    torch.manual_seed(3)
    model = ConvRNN(LAYERS, cell="feedforward", steps=6, image_steps=2, gray_value=0.5)
    images = torch.randn(2, 1, 12, 12)
    out = model.run(images).layers
    cnn = model.feedforward_cnn()[:-2]
    gray_top = cnn(torch.full_like(images, 0.5))  # exact below: the same modules on equal inputs and shapes
    assert torch.equal(out[2][:, 3], cnn(images))  # input of t = 1 reaches the top at t = 3
    assert torch.equal(out[2][:, 4], gray_top)  # input of t = 2 (gray) at t = 4
    assert not torch.allclose(out[2][:, 3], gray_top)


def test_gradient_flows_through_time_finite_differences():
    torch.manual_seed(4)
    model = ConvRNN(
        [LayerSpec(2, 3, 2), LayerSpec(3, 3, 1)],
        cell="rgc",
        feedback=[(1, 0)],
        steps=5,
        image_steps=1,
        num_classes=2,
        cell_options={"kernel_size": 3},
    ).double()
    images = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    # the image is shown at t = 0 only and read out at t = 4: the gradient must pass through the cells' states
    assert torch.autograd.gradcheck(model, (images,), eps=1e-6, atol=1e-6)
    weight = model.layers[0].cell.from_h.weight  # [W_hh; W_hc]
    names = dict(model.named_parameters())
    name = next(k for k, v in names.items() if v is weight)

    def as_function_of_weight(w):
        return torch.func.functional_call(model, {name: w}, (images.detach(),))

    assert torch.autograd.gradcheck(
        as_function_of_weight, (weight.detach().clone().requires_grad_(),), eps=1e-6, atol=1e-6
    )


def test_checkpointing_gives_the_same_gradients():
    torch.manual_seed(5)
    model = ConvRNN(LAYERS, cell="rgc", feedback=[(2, 0)], steps=6, image_steps=3)
    images = torch.randn(2, 1, 12, 12)
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.checkpoint_steps = flag
        model(images).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g0, g1, rtol=1e-5, atol=1e-6)


def test_readout_step_and_run_logits_agree():
    torch.manual_seed(6)
    model = ConvRNN(LAYERS, cell="gru", steps=6, readout_step=4)
    images = torch.randn(2, 1, 12, 12)
    # exact: forward runs the same steps as run, stopping after step 4
    torch.testing.assert_close(model(images), model.run(images).logits[:, 4], rtol=0, atol=0)


def test_bad_configurations_raise_config_error():
    with pytest.raises(ConfigError, match="feedback edge"):
        ConvRNN(LAYERS, feedback=[(0, 2)])
    with pytest.raises(ConfigError, match="image_steps"):
        ConvRNN(LAYERS, steps=3, image_steps=5)
    with pytest.raises(ConfigError, match="bypass"):
        ConvRNN([LayerSpec(4, bypass=True)], cell="lstm")
    with pytest.raises(ConfigError, match="images must be"):
        ConvRNN(LAYERS)(torch.zeros(2, 3, 12, 12))
    with pytest.raises(ConfigError, match="too small"):
        ConvRNN(LAYERS)(torch.zeros(1, 1, 2, 2))


def test_bypass_feeds_the_layer_input_into_the_rgc_gate():
    torch.manual_seed(7)
    model = ConvRNN([LayerSpec(4, 3, 2, bypass=True), LayerSpec(6, 3, 1, bypass=True)], cell="rgc", steps=4)
    assert model.layers[1].cell.W_rh.in_channels == 4  # the layer input (layer 0's output), not x
    images = torch.randn(2, 1, 8, 8)
    silent = copy.deepcopy(model)
    with torch.no_grad():
        for layer in silent.layers:
            layer.cell.W_rh.weight.zero_()
    a, b = model.run(images).layers, silent.run(images).layers
    assert not torch.allclose(a[0][:, 0], b[0][:, 0])  # the bypass acts from the first step on
